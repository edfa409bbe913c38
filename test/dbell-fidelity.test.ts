/**
 * The DBellQuant behaviours taken from its released code (issue 16): LTDB keeping the scale after
 * the best step, the salient-column search binarizing the other weights at order 1, and
 * calibration on quantized activations (the block runner quantizes each linear input in place,
 * so the capture sees, and q/k/v share, what the packed file's activation quantizer computes).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { getFormat } from '../src/formats/registry.js';
import { billmDefaults, quantizeBillmLayer } from '../src/methods/billm.js';
import { dbellDefaults, optimizeBlock, proximityLoss } from '../src/methods/dbell.js';
import { getMethod } from '../src/methods/registry.js';
import { layerTensor } from '../src/model/weights.js';
import { createBackend } from '../src/node/backend.js';
import { BlockRunner } from '../src/pipeline/block-runner.js';
import { quantizeModel } from '../src/pipeline/quantize.js';
import { ActQuantLinear, fakeQuantizeRows } from '../src/quant/act-quant.js';
import { HessianAccumulator } from '../src/quant/hessian.js';
import { DenseLinear } from '../src/runtime/dense.js';
import { allocScratch, loadLayerWeights, type LayerWeights } from '../src/runtime/model.js';
import { normal, storiesData } from './stories.js';

const backend = createBackend();
after(() => backend.dispose());

describe('LTDB scale kept', () => {
  const rand = normal(5);
  const rows = 64;
  const n = 64;
  const W = Float64Array.from({ length: rows * n }, () => 0.05 * rand());
  const s0 = Float64Array.from({ length: n }, () => 1 + 0.2 * rand());

  it("one step: 'measured' keeps s0, 'after' keeps s0 − lr·∇L(s0)", () => {
    const lr = 0.01;
    const grad = new Float64Array(n);
    proximityLoss(W, rows, n, s0, grad);
    assert.deepEqual(optimizeBlock(W, rows, n, s0, 1, lr, false), s0);
    const kept = optimizeBlock(W, rows, n, s0, 1, lr, true);
    for (let j = 0; j < n; j++) assert.equal(kept[j], s0[j]! - lr * grad[j]!);
  });

  it("many steps: 'after' is one step past 'measured' (the same best step)", () => {
    const lr = 0.01;
    const measured = optimizeBlock(W, rows, n, s0, 200, lr, false);
    const kept = optimizeBlock(W, rows, n, s0, 200, lr, true);
    const grad = new Float64Array(n);
    proximityLoss(W, rows, n, measured, grad);
    assert.ok(measured.some((v, j) => v !== s0[j]), 'SGD moved the scales');
    for (let j = 0; j < n; j++) assert.ok(Math.abs(kept[j]! - (measured[j]! - lr * grad[j]!)) <= 1e-12, `s_${j}`);
  });
});

describe('BiLLM salient-column search order', () => {
  // one block, H = I: every column has the same [H⁻¹]_jj, so salience ranks by Σ_rows w²
  const rand = normal(9);
  const out = 24;
  const inDim = 32;
  const W = Float32Array.from({ length: out * inDim }, (_, i) => (1 + 3 * Math.exp(-(i % inDim) / 3)) * 0.05 * rand());

  /** The official structural_searching criterion: order-2 salient columns + order-`order` rest, least squared error. */
  function referenceK(order: number, maxSalient: number, metric = 'hessian'): number {
    const ranked = Array.from({ length: inDim }, (_, j) => j);
    const sal = ranked.map((j) => { let s = 0; for (let r = 0; r < out; r++) s += metric === 'magnitude' ? Math.abs(W[r * inDim + j]!) : W[r * inDim + j]! ** 2; return s; });
    ranked.sort((a, b) => sal[b]! - sal[a]! || a - b);
    const err = (v: number[], o: number) => {
      for (let step = 0; step < o; step++) {
        const mu = v.reduce((a, x) => a + x, 0) / v.length;
        const alpha = v.reduce((a, x) => a + Math.abs(x - mu), 0) / v.length;
        v = v.map((x) => x - (x - mu >= 0 ? mu + alpha : mu - alpha));
      }
      return v.reduce((a, x) => a + x * x, 0);
    };
    let best = Infinity;
    let bestK = 0;
    for (let k = 1; k <= Math.min(maxSalient, inDim - 1); k++) {
      const set = new Set(ranked.slice(0, k));
      let e = 0;
      for (let r = 0; r < out; r++) {
        const row = Array.from(W.subarray(r * inDim, (r + 1) * inDim), Number);
        e += err(row.filter((_, j) => set.has(j)), 2) + err(row.filter((_, j) => !set.has(j)), order);
      }
      if (e < best) [best, bestK] = [e, k];
    }
    return bestK;
  }

  for (const order of [1, 2]) {
    it(`searchOrder ${order} picks the count the reference criterion picks`, () => {
      const H = new Float64Array(inDim * inDim);
      for (let j = 0; j < inDim; j++) H[j * inDim + j] = 1;
      const r = quantizeBillmLayer(W, out, inDim, H, { ...billmDefaults, blockSize: inDim, maxSalient: 20, searchOrder: order }, backend);
      const got = (r.payload.data as { salient: Uint8Array }).salient.reduce((a, b) => a + b, 0);
      assert.equal(got, referenceK(order, 20));
    });
  }
  it('the two orders choose different counts on this matrix (the option is not a no-op)', () => {
    assert.notEqual(referenceK(1, 20), referenceK(2, 20));
  });

  const identity = () => {
    const H = new Float64Array(inDim * inDim);
    for (let j = 0; j < inDim; j++) H[j * inDim + j] = 1;
    return H;
  };
  it("salientMetric 'magnitude' ranks columns by Σ|w| (the count and the columns the reference picks)", () => {
    const r = quantizeBillmLayer(W, out, inDim, identity(), { ...billmDefaults, blockSize: inDim, maxSalient: 20, salientMetric: 'magnitude' }, backend);
    const salient = (r.payload.data as { salient: Uint8Array }).salient;
    const k = referenceK(2, 20, 'magnitude');
    assert.equal(salient.reduce((a, b) => a + b, 0), k);
    const l1 = Array.from({ length: inDim }, (_, j) => { let s = 0; for (let x = 0; x < out; x++) s += Math.abs(W[x * inDim + j]!); return s; });
    const top = Array.from({ length: inDim }, (_, j) => j).sort((a, b) => l1[b]! - l1[a]! || a - b).slice(0, k);
    assert.deepEqual([...salient.keys()].filter((j) => salient[j]), top.sort((a, b) => a - b));
  });

  for (const mode of ['rest', 'block']) {
    it(`splitPercentiles '${mode}': the split is the reference grid's best`, () => {
      const r = quantizeBillmLayer(W, out, inDim, identity(), { ...billmDefaults, blockSize: inDim, maxSalient: 20, searchOrder: 1, splitPercentiles: mode }, backend);
      const data = r.payload.data as { salient: Uint8Array; split: Uint8Array };
      const sal = data.salient;
      const mags: number[] = [];
      for (let x = 0; x < out; x++) for (let j = 0; j < inDim; j++) if (!sal[j] || mode === 'block') mags.push(sal[j] ? 0 : Math.abs(W[x * inDim + j]!));
      mags.sort((a, b) => a - b);
      const q = (p: number) => { const pos = p * (mags.length - 1); const lo = Math.floor(pos); const hi = Math.min(lo + 1, mags.length - 1); return mags[lo]! + (mags[hi]! - mags[lo]!) * (pos - lo); };
      const fit = (v: number[]) => { if (v.length === 0) return 0; const mu = v.reduce((a, b) => a + b, 0) / v.length; const al = v.reduce((a, b) => a + Math.abs(b - mu), 0) / v.length; return v.reduce((a, b) => a + (b - (b - mu >= 0 ? mu + al : mu - al)) ** 2, 0); };
      let best = Infinity;
      let bestP = 0;
      for (let i = 0; i <= 80; i++) {
        const p = q(0.1 + i * 0.01);
        let e = 0;
        for (let x = 0; x < out; x++) {
          const row = Array.from({ length: inDim }, (_, j) => W[x * inDim + j]!).filter((_, j) => !sal[j]);
          e += fit(row.filter((v) => Math.abs(v) < p)) + fit(row.filter((v) => Math.abs(v) >= p));
        }
        if (e < best) [best, bestP] = [e, p];
      }
      for (let x = 0; x < out; x++) for (let j = 0; j < inDim; j++) {
        if (sal[j]) continue;
        assert.equal(data.split[x * inDim + j], Math.abs(W[x * inDim + j]!) >= bestP ? 1 : 0, `split of w[${x}, ${j}]`);
      }
    });
  }
  it('the two split grids split this matrix differently (the option is not a no-op)', () => {
    const split = (mode: string) => (quantizeBillmLayer(W, out, inDim, identity(), { ...billmDefaults, blockSize: inDim, maxSalient: 20, searchOrder: 1, splitPercentiles: mode }, backend).payload.data as { split: Uint8Array }).split;
    assert.notDeepEqual(split('rest'), split('block'));
  });
});

describe('calibration on quantized activations (stories260K block 0)', () => {
  const { source, calibration: cal } = storiesData({ count: 4, seqLen: 64 });
  const c = { ...source.config, nLayers: 1 };
  const { dim } = c;
  const weights = (): LayerWeights => loadLayerWeights(source, 0, (name, src) => {
    const [o, i] = src.tensors().find((t) => t.name === name)!.shape as [number, number];
    return new DenseLinear(backend, src.load(name), o, i);
  });
  const stream = () => {
    const emb = source.load('model.embed_tokens.weight');
    const X = new Float32Array(cal.tokens.length * dim);
    cal.tokens.forEach((t, i) => X.set(emb.subarray(t * dim, (t + 1) * dim), i * dim));
    return X;
  };
  const runner = (bits: number) => new BlockRunner(backend, c, allocScratch(c, backend, 64), cal, undefined, bits);

  it('propagation = the block with activation-quantizing linears (the packed file at A8), bit for bit', () => {
    const L = weights();
    const a = stream();
    const r8 = runner(8);
    r8.propagate(L, a);
    r8.dispose();
    const wrapped: LayerWeights = { ...L };
    for (const f of ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'] as const) wrapped[f] = new ActQuantLinear(L[f], 8, backend);
    const b = stream();
    const r16 = runner(16);
    r16.propagate(wrapped, b);
    const f = stream();
    r16.propagate(L, f);
    r16.dispose();
    assert.deepEqual(a, b);
    assert.ok(a.some((v, i) => v !== f[i]), 'quantized activations change the stream');
  });

  it('the q/k/v Hessian is that of the quantized norm output', () => {
    const L = weights();
    const floatCap = runner(16).capture(L, stream(), ['self_attn.q_proj'], { hessian: false, inputs: true }, false).get('attn')!;
    const q = new Float32Array(floatCap.inputs!.length);
    fakeQuantizeRows(q, floatCap.inputs!, floatCap.filled, dim, 6);
    const ref = new HessianAccumulator(backend, dim);
    ref.add(q, floatCap.filled);
    const cap = runner(6).capture(L, stream(), ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'], { hessian: true, inputs: true }, false).get('attn')!;
    assert.deepEqual(cap.inputs, q);
    const h = cap.hessian!.h;
    for (let i = 0; i < h.length; i++) assert.ok(Math.abs(h[i]! - ref.h[i]!) <= 1e-9 * (1 + Math.abs(ref.h[i]!)), `H[${i}]`);
  });

  it('DBellQuant at A4 calibrates on quantized activations unless floatActCalib; at A16 the option changes nothing', () => {
    const small = { blockSize: 64, epochs: 20 };
    const runWith = (actBits: number, floatActCalib: boolean) => {
      const { method, opts } = getMethod('dbell', { ...small, floatActCalib });
      const packed = quantizeModel(source, { backend, method, methodOptions: opts, calibration: cal, actBits }).packed;
      return [...packed.values()].map((t) => Array.from(getFormat(t.format).dequantize(t))).flat();
    };
    assert.notDeepEqual(runWith(4, false), runWith(4, true));
    assert.deepEqual(runWith(16, false), runWith(16, true));
    assert.equal(dbellDefaults.floatActCalib, false);
  });
});
