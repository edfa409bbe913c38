/**
 * SliM-LLM: salience, SBA (average exactly b, the lowest-scoring candidate), 1-bit groups, SQC,
 * the layer against GPTQ at the same bits, and on stories260K: the packed mixed-precision file
 * computes what the fake-quantized model computes, and SliM-LLM beats GPTQ at 2 bits.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createReferenceBackend } from '../src/backend/reference.js';
import { perplexity } from '../src/eval/perplexity.js';
import { dequantizeGroups, type GroupQuantized } from '../src/formats/quantized.js';
import { getFormat, packGroups } from '../src/formats/registry.js';
import type { PackedTensor } from '../src/formats/types.js';
import { gptqDefaults, quantizeGptqLayer } from '../src/methods/gptq.js';
import { getMethod } from '../src/methods/registry.js';
import { addAbsoluteDamp, allocateBits, binaryGrid, groupSalience, quantizeSlimLayer, sbaShiftLimit, searchBitAllocation, slimDefaults, slimLevel, sqcFitter } from '../src/methods/slim.js';
import { createBackend } from '../src/node/backend.js';
import { quantizeModel } from '../src/pipeline/quantize.js';
import { dequantizeLevel, fitGrid, maxLevel, quantizeLevel } from '../src/quant/grid.js';
import { HessianAccumulator, dampen, upperCholeskyOfInverse } from '../src/quant/hessian.js';
import { DenseLinear } from '../src/runtime/dense.js';
import { LlamaModel } from '../src/runtime/model.js';
import { PackedModel } from '../src/packed/reader.js';
import { planPackedModel } from '../src/packed/writer.js';
import { BufferSource } from '../src/io/bytes.js';
import { mulberry32 as rng, gaussians } from '../src/quant/random.js';
import { storiesData } from './stories.js';

const ref = createReferenceBackend();

/** X [n, k]: low-rank correlated inputs whose column groups differ a lot in scale (where mixed precision pays). */
function inputs(seed: number, n: number, k: number): Float32Array {
  const rand = rng(seed);
  const rank = 6;
  const Z = gaussians(rand, n * rank);
  const A = gaussians(rand, rank * k);
  const col = Array.from({ length: k }, (_, j) => Math.exp(0.7 * gaussians(rand, 1)[0]!) * (1 + 3 * Math.floor((j * 7) / k) % 3));
  const X = gaussians(rand, n * k, 0.1);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < k; j++) {
      let s = 0;
      for (let p = 0; p < rank; p++) s += Z[i * rank + p]! * A[p * k + j]!;
      X[i * k + j] = (X[i * k + j]! + s) * col[j]!;
    }
  }
  return X;
}
function hessianOf(X: Float32Array, n: number, k: number): Float64Array {
  const acc = new HessianAccumulator(ref, k);
  acc.add(X, n);
  return acc.h;
}
function outputError(Wq: Float32Array, W: Float32Array, X: Float32Array, out: number, n: number, k: number): number {
  let total = 0;
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < out; r++) {
      let d = 0;
      for (let c = 0; c < k; c++) d += (Wq[r * k + c]! - W[r * k + c]!) * X[i * k + c]!;
      total += d * d;
    }
  }
  return total;
}

describe('SliM-LLM pieces', () => {
  it('group salience is Σ w²/U_jj² over the group, U the factor of the dampened H⁻¹', () => {
    const [out, k, n, g] = [3, 8, 40, 4];
    const X = inputs(1, n, k);
    const W = gaussians(rng(2), out * k);
    const h = hessianOf(X, n, k);
    dampen(h, k, 0.01);
    upperCholeskyOfInverse(ref, h, k);
    const d = Float64Array.from({ length: k }, (_, j) => h[j * k + j]!);
    const s = groupSalience(W, out, k, d, g);
    let want = 0;
    for (let r = 0; r < out; r++) for (let c = 4; c < 8; c++) want += W[r * k + c]! ** 2 / d[c]! ** 2;
    assert.ok(Math.abs(s[1]! - want) <= 1e-9 * want);
  });

  it('SBA candidates move the i least / most salient groups and keep the average at b', () => {
    const sal = Float64Array.from([5, 1, 9, 3, 7, 2, 8, 4]);
    for (const b of [2, 3]) {
      for (let i = 1; i <= 3; i++) {
        const w = allocateBits(sal, b, i);
        assert.equal(w.reduce((a, x) => a + x, 0), b * sal.length);
        assert.equal(w.filter((x) => x === b - 1).length, i);
      }
      assert.deepEqual([...allocateBits(sal, b, 2)], [b, b - 1, b + 1, b, b, b - 1, b + 1, b]);
    }
  });

  it('SBA keeps the candidate with the lowest KL of the softmax outputs', () => {
    const [out, k, n, g] = [6, 64, 200, 8];
    const X = inputs(3, n, k);
    const W = gaussians(rng(4), out * k);
    const sal = Float64Array.from({ length: k / g }, (_, i) => ((i * 5) % 8) + 1);
    const r = searchBitAllocation(ref, W, out, k, sal, { bits: 2, sbaMse: false, sbaRows: 0, groupSize: g }, { x: X, rows: n });
    // every candidate scored independently here: naive rounding and a float64 KL
    const score = (widths: Uint8Array) => {
      const Wq = new Float32Array(W.length);
      for (let row = 0; row < out; row++) {
        for (let gi = 0; gi < k / g; gi++) {
          const vals = W.subarray(row * k + gi * g, row * k + gi * g + g);
          const grid = widths[gi] === 1 ? binaryGrid(vals, 0, g, 1) : fitGrid(Math.min(...vals), Math.max(...vals), widths[gi]!, false);
          for (let c = 0; c < g; c++) Wq[row * k + gi * g + c] = dequantizeLevel(slimLevel(vals[c]!, grid.scale, grid.zero, maxLevel(widths[gi]!)), grid.scale, grid.zero);
        }
      }
      let kl = 0;
      for (let i = 0; i < n; i++) {
        const soft = (M: Float32Array) => {
          const y = Array.from({ length: out }, (_, r2) => { let s = 0; for (let c = 0; c < k; c++) s += M[r2 * k + c]! * X[i * k + c]!; return s; });
          const m = Math.max(...y);
          const e = y.map((v) => Math.exp(v - m));
          const z = e.reduce((a, b) => a + b, 0);
          return e.map((v) => Math.max(v / z, 1e-6));
        };
        const p = soft(Wq);
        const q = soft(W);
        for (let j = 0; j < out; j++) kl += p[j]! * Math.log(p[j]! / q[j]!);
      }
      return kl / n;
    };
    const scores = [1, 2, 3].map((i) => score(allocateBits(sal, 2, i)));
    const best = scores.indexOf(Math.min(...scores)) + 1;
    assert.equal(r.shift, best, `scores ${scores.join(', ')}`);
    assert.ok(Math.abs(r.score - scores[best - 1]!) <= 1e-4 * scores[best - 1]!);
  });

  it('1-bit groups are mean ± mean|w − mean|, stored exactly as scale·(q − zero)', () => {
    const v = Float32Array.from([0.3, -0.1, 0.25, 0.9, -0.4, 0.05]);
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const spread = v.reduce((a, b) => a + Math.abs(b - mean), 0) / v.length;
    const gr = binaryGrid(v, 0, v.length, 1);
    for (const w of v) {
      const q = slimLevel(w, gr.scale, gr.zero, 1);
      assert.equal(q, w >= mean ? 1 : 0);
      assert.ok(Math.abs(dequantizeLevel(q, gr.scale, gr.zero) - (mean + (q ? spread : -spread))) < 2e-3);
    }
  });

  it('1-bit groups with --binary-scale abs are mean ± mean|w| (official binary_scale)', () => {
    const v = Float32Array.from([0.3, -0.1, 0.25, 0.9, -0.4, 0.05]);
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const absMean = v.reduce((a, b) => a + Math.abs(b), 0) / v.length;
    const gr = binaryGrid(v, 0, v.length, 1, true);
    for (const w of v) {
      const q = slimLevel(w, gr.scale, gr.zero, 1);
      assert.equal(q, w >= mean ? 1 : 0);
      assert.ok(Math.abs(dequantizeLevel(q, gr.scale, gr.zero) - (mean + (q ? absMean : -absMean))) < 2e-3);
    }
  });

  it('SBA candidate count: the official ⌊n/2⌋ − 1 over all groups, capped so the tail can stay at b', () => {
    assert.equal(sbaShiftLimit(6, 5, 'all'), 2); // stories260K down_proj at g32: 5 full groups + a 12-column tail
    assert.equal(sbaShiftLimit(6, 5, 'full'), 1);
    assert.equal(sbaShiftLimit(6, 6, 'all'), 2);
    assert.equal(sbaShiftLimit(8, 8, 'all'), 3);
    assert.equal(sbaShiftLimit(3, 2, 'all'), 0);
    assert.equal(sbaShiftLimit(2, 2, 'full'), 0);
  });

  it('SBA keeps a partial last group at b (exactly b bits per weight) unless tailGroup ranks it', () => {
    const [out, k, n, g] = [4, 44, 120, 8]; // 5 full groups + a 4-column tail
    const X = inputs(5, n, k);
    const W = gaussians(rng(6), out * k);
    const sal = Float64Array.from([3, 1, 4, 2, 5, 100]); // the tail most salient
    for (const sbaCount of ['all', 'full']) {
      const r = searchBitAllocation(ref, W, out, k, sal, { bits: 3, sbaMse: false, sbaRows: 0, groupSize: g, sbaCount }, { x: X, rows: n });
      assert.equal(r.widths[5], 3);
      let bits = 0;
      for (let gi = 0; gi < 6; gi++) bits += r.widths[gi]! * Math.min(g, k - gi * g);
      assert.equal(bits, 3 * k);
      assert.ok(r.shift >= 1 && r.shift <= (sbaCount === 'all' ? 2 : 1));
    }
    const t = searchBitAllocation(ref, W, out, k, sal, { bits: 3, sbaMse: false, sbaRows: 0, groupSize: g, tailGroup: true }, { x: X, rows: n });
    assert.equal(t.widths[5], 4);
  });

  it('SBA (unless sbaMixedOnly) also scores the all-b allocation and keeps it when it changes the output least', () => {
    const [out, k, n, g] = [6, 64, 200, 8];
    const X = inputs(7, n, k);
    const W = gaussians(rng(8), out * k);
    const sal = Float64Array.from({ length: k / g }, (_, i) => ((i * 3) % 8) + 1);
    const base = { bits: 3, sbaMse: true, sbaRows: 0, groupSize: g };
    const r1 = searchBitAllocation(ref, W, out, k, sal, { ...base, sbaMixedOnly: true }, { x: X, rows: n });
    const r0 = searchBitAllocation(ref, W, out, k, sal, { ...base, sbaMixedOnly: false }, { x: X, rows: n });
    assert.ok(r0.score <= r1.score);
    assert.equal(r0.shift === 0, r0.score < r1.score);
    if (r0.shift === 0) assert.ok(r0.widths.every((b) => b === 3));
    else assert.deepEqual([...r0.widths], [...r1.widths]);
  });

  it('the absolute dampening adds to the live diagonal only (dead inputs stay for GPTQ to find)', () => {
    const h = Float64Array.from([2, 0.5, 0, 0.5, 3, 0, 0, 0, 0]);
    addAbsoluteDamp(h, 3, 0.01);
    assert.deepEqual([...h], [2.01, 0.5, 0, 0.5, 3.01, 0, 0, 0, 0]);
  });

  it('SQC never does worse than min-max on its objective, and λ_s > 1 lowers the salient error', () => {
    const [rows, width] = [40, 32];
    const wt = gaussians(rng(5), rows * width); // [width, rows]
    for (let i = 0; i < wt.length; i += 37) wt[i]! *= 4; // a few large (salient) weights
    const diag = Float64Array.from({ length: width }, (_, k) => 0.5 + (k % 5) / 5);
    const fit = (lambda: number, search: boolean) => {
      const s = new Float32Array(rows);
      const z = new Float32Array(rows);
      sqcFitter(lambda, search).fit(wt, width, rows, 2, diag, s, z);
      return { s, z };
    };
    const errs = ({ s, z }: { s: Float32Array; z: Float32Array }, which: (i: number) => boolean) => {
      let e = 0;
      for (let k = 0; k < width; k++) for (let r = 0; r < rows; r++) {
        if (!which(k * rows + r)) continue;
        const w = wt[k * rows + r]!;
        e += Math.abs(dequantizeLevel(quantizeLevel(w, s[r]!, z[r]!, 3), s[r]!, z[r]!) - w) ** 2.4;
      }
      return e;
    };
    const all = () => true;
    assert.ok(errs(fit(1, true), all) < errs(fit(1, false), all));
    const big = (i: number) => Math.abs(wt[i]!) > 3;
    assert.ok(errs(fit(20, true), big) < errs(fit(1, true), big));
  });
});

describe('SliM-LLM layer', () => {
  const [out, k, n] = [24, 128, 400];
  const X = inputs(11, n, k);
  const W = gaussians(rng(12), out * k, 0.05);

  for (const bits of [2, 3]) {
    it(`${bits}-bit: payload = fake-quantized weights, average exactly ${bits}, output error below GPTQ`, () => {
      const r = quantizeSlimLayer(W, out, k, hessianOf(X, n, k), { ...slimDefaults, bits, groupSize: 16, sbaMixedOnly: true }, ref, 'test', { x: X, rows: n });
      assert.equal(r.payload.format, 'groups');
      const p = r.payload.data as GroupQuantized;
      assert.deepStrictEqual(dequantizeGroups(p), r.dequantized);
      assert.equal(p.bits.reduce((a, b) => a + b, 0), bits * p.bits.length);
      assert.ok(r.stats.sbaShift! >= 1, 'some groups moved');
      const t = packGroups(p);
      assert.equal(t.format, 'mixed-asym');
      assert.deepStrictEqual(getFormat(t.format).dequantize(t), r.dequantized);
      const g = quantizeGptqLayer(W, out, k, hessianOf(X, n, k), { ...gptqDefaults, bits, groupSize: 16 }, ref);
      const eSlim = outputError(r.dequantized, W, X, out, n, k);
      const eGptq = outputError(g.dequantized, W, X, out, n, k);
      assert.ok(eSlim < eGptq, `SliM ${eSlim} vs GPTQ ${eGptq}`);
    });
  }
});

describe('SliM-LLM on stories260K', () => {
  // float activations: the packed file must compute the fake-quantized model exactly; its uniform
  // g32 layers now run the native int8 kernels by default, checked against W·x̂ in formats.test.ts
  const backend = createBackend({ floatActivations: true });
  after(() => backend.dispose());
  const { source, heldout, calibration: cal } = storiesData({ count: 16, seqLen: 64 });
  const EVAL = { seqLen: 128, maxWindows: 24 };
  const runFull = (method: string, given: Record<string, unknown>) => {
    const { method: m, opts } = getMethod(method, given);
    return quantizeModel(source, { backend, method: m, methodOptions: opts, calibration: cal });
  };
  const run = (method: string, given: Record<string, unknown>) => runFull(method, given).packed;
  const fake = (packed: Map<string, PackedTensor>) =>
    new LlamaModel(source, {
      backend,
      linear: (name, src) => {
        const t = packed.get(name);
        if (t !== undefined) return new DenseLinear(backend, getFormat(t.format).dequantize(t), t.outDim, t.inDim);
        const [o, i] = src.tensors().find((x) => x.name === name)!.shape as [number, number];
        return new DenseLinear(backend, src.load(name), o, i);
      },
    });
  const slim2 = run('slim', { bits: 2, groupSize: 32 });

  it('the packed mixed-precision file computes what the fake-quantized model computes (2-bit g32)', () => {
    assert.ok([...slim2.values()].some((t) => t.format === 'mixed-asym'), 'some layer is mixed');
    const plan = planPackedModel({ config: source.config, method: { name: 'slim', options: {} }, source, packed: slim2 });
    const bytes = new Uint8Array(plan.size);
    let off = 0;
    for (const c of plan.chunks()) {
      bytes.set(c, off);
      off += c.byteLength;
    }
    const file = new PackedModel(new BufferSource('slim.bcq', bytes));
    const a = perplexity(new LlamaModel(file, { backend, linear: file.linears(backend) }), heldout, EVAL).ppl;
    const b = perplexity(fake(slim2), heldout, EVAL).ppl;
    assert.ok(Math.abs(a - b) / b <= 1e-4, `packed ${a} vs fake-quantized ${b}`);
  });

  it('beats GPTQ at 2 bits, group 32', () => {
    const s = perplexity(fake(slim2), heldout, EVAL).ppl;
    const g = perplexity(fake(run('gptq', { bits: 2, groupSize: 32 })), heldout, EVAL).ppl;
    assert.ok(s < g, `SliM-LLM ${s} vs GPTQ ${g}`);
  });

  it('SliM-LLM+: training the clipping lowers every block\'s output MSE on its objective (stored grids vs initial clipping)', () => {
    // default targets: the float block on the quantized stream plus on the float model's stream
    const r = runFull('slim+', { bits: 2, groupSize: 32, epochs: 2 });
    const downs = r.layers.filter((x) => x.name.endsWith('down_proj.weight'));
    assert.equal(downs.length, source.config.nLayers);
    for (const d of downs) {
      const s = d.stats;
      assert.ok(s.blockMseFinalQuant! + s.blockMseFinalFloat! < s.blockMseInitQuant! + s.blockMseInitFloat!, `${d.name}: ${JSON.stringify(s)}`);
    }
    assert.ok([...r.packed.values()].some((t) => t.format === 'mixed-asym'));
  });
});
