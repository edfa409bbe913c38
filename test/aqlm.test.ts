/**
 * AQLM: the beam search's closed-form loss changes, the alternating optimisation, the
 * lookup-table kernel against dequantize-then-multiply, and packed file = in-memory model on
 * stories260K. (Round trip and bpw of the format are covered by formats.test.ts.)
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createReferenceBackend } from '../src/backend/reference.js';
import { perplexity } from '../src/eval/perplexity.js';
import { codebookFormat, dequantizeCodebook, type CodebookQuantized } from '../src/formats/codebook.js';
import { CodebookLinear } from '../src/formats/codebook-linear.js';
import { BufferSource } from '../src/io/bytes.js';
import { UsageError } from '../src/io/errors.js';
import { blockForward } from '../src/autograd/block.js';
import { aqlmDefaults, parseScheme, quantizeAqlmLayer, type AqlmOptions } from '../src/methods/aqlm.js';
import { beamSearchCodes, reconstruct, rowLosses } from '../src/methods/aqlm-beam.js';
import { residualKmeans } from '../src/methods/aqlm-kmeans.js';
import { getMethod } from '../src/methods/registry.js';
import { createBackend } from '../src/node/backend.js';
import { PackedModel } from '../src/packed/reader.js';
import { planPackedModel } from '../src/packed/writer.js';
import { quantizeModel } from '../src/pipeline/quantize.js';
import { HessianAccumulator } from '../src/quant/hessian.js';
import type { BlockRefineContext } from '../src/quant/method.js';
import { DenseLinear } from '../src/runtime/dense.js';
import { LlamaModel } from '../src/runtime/model.js';
import { mulberry32 as rng, gaussians } from '../src/quant/random.js';
import { storiesData } from './stories.js';

const ref = createReferenceBackend();

/** Correlated inputs X [n, k] (low rank plus noise, uneven channel scales) and H = 2XᵀX/n. */
function correlatedHessian(seed: number, n: number, k: number): Float64Array {
  const rand = rng(seed);
  const rank = 5;
  const Z = gaussians(rand, n * rank);
  const A = gaussians(rand, rank * k);
  const col = Array.from(gaussians(rand, k), (v) => Math.exp(0.6 * v));
  const X = gaussians(rand, n * k, 0.2);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < k; j++) {
      let s = 0;
      for (let p = 0; p < rank; p++) s += Z[i * rank + p]! * A[p * k + j]!;
      X[i * k + j] = (X[i * k + j]! + s) * col[j]!;
    }
  }
  const acc = new HessianAccumulator(ref, k);
  acc.add(X, n);
  const h = acc.h;
  for (let i = 0; i < h.length; i++) h[i] = (2 * h[i]!) / n;
  return h;
}

function totalLoss(W: Float32Array, Wq: Float32Array, H: Float64Array, out: number, k: number): number {
  let s = 0;
  const e = new Float64Array(k);
  for (let r = 0; r < out; r++) {
    for (let c = 0; c < k; c++) e[c] = Wq[r * k + c]! - W[r * k + c]!;
    for (let a = 0; a < k; a++) {
      let v = 0;
      for (let b = 0; b < k; b++) v += H[a * k + b]! * e[b]!;
      s += e[a]! * v;
    }
  }
  return s;
}

describe('AQLM beam search', () => {
  const out = 6;
  const k = 16;
  const g = 4;
  const M = 2;
  const K = 8;
  const rand = rng(3);
  const W = gaussians(rand, out * k, 0.1);
  const H64 = correlatedHessian(4, 200, k);
  const H = Float32Array.from(H64);
  const codebooks = gaussians(rand, M * K * g, 0.05);
  const scale = Float32Array.from({ length: out }, () => 0.5 + rand());

  it('tracks the loss in closed form and never ends worse than where it started', () => {
    for (const beamSize of [1, 4]) {
      const codes = Uint16Array.from({ length: out * (k / g) * M }, () => Math.floor(rand() * K));
      const before = new Float32Array(out * k);
      reconstruct(before, codes, codebooks, scale, out, k, M, K, g);
      const tracked = beamSearchCodes({ backend: ref, outDim: out, inDim: k, M, K, g, W, H, codebooks, scale, codes, beamSize });
      const after = new Float32Array(out * k);
      reconstruct(after, codes, codebooks, scale, out, k, M, K, g);
      const exact = totalLoss(W, after, H64, out, k);
      assert.ok(Math.abs(tracked - exact) <= 1e-4 * exact, `beam ${beamSize}: tracked ${tracked} vs exact ${exact}`);
      assert.ok(exact < totalLoss(W, before, H64, out, k), `beam ${beamSize}: loss did not fall`);
    }
  });

  it('with one codebook and a block-diagonal H finds the exact optimum (groups decouple)', () => {
    const Hb = new Float32Array(k * k);
    for (let a = 0; a < k; a++) for (let b = 0; b < k; b++) if (Math.floor(a / g) === Math.floor(b / g)) Hb[a * k + b] = H[a * k + b]!;
    const codes = new Uint16Array(out * (k / g));
    beamSearchCodes({ backend: ref, outDim: out, inDim: k, M: 1, K, g, W, H: Hb, codebooks, scale, codes, beamSize: 1 });
    for (let r = 0; r < out; r++) {
      for (let j = 0; j < k / g; j++) {
        // brute force: the codeword minimising the H_jj-weighted error of this group
        let best = -1;
        let bestV = Infinity;
        for (let c = 0; c < K; c++) {
          let v = 0;
          for (let a = 0; a < g; a++) {
            for (let b = 0; b < g; b++) {
              const ea = scale[r]! * codebooks[c * g + a]! - W[r * k + j * g + a]!;
              const eb = scale[r]! * codebooks[c * g + b]! - W[r * k + j * g + b]!;
              v += ea * Hb[(j * g + a) * k + j * g + b]! * eb;
            }
          }
          if (v < bestV) { bestV = v; best = c; }
        }
        assert.equal(codes[r * (k / g) + j], best, `row ${r} group ${j}`);
      }
    }
  });
});

describe('AQLM layer quantization', () => {
  const out = 96;
  const k = 64;
  const W = gaussians(rng(11), out * k, 0.05);
  const H = correlatedHessian(12, 400, k);
  const opts: AqlmOptions = { ...aqlmDefaults, scheme: '2x4', groupSize: 4, beamSize: 4, maxEpochs: 6, stepsPerEpoch: 40, lr: 1e-3 };

  it('epochs of Adam and beam search lower the loss below the k-means init, and the payload packs exactly', () => {
    const r = quantizeAqlmLayer(W, out, k, H.slice(), opts, ref);
    const s = r.stats;
    assert.ok(s.epochs! >= 1);
    assert.ok(s.loss! < 0.8 * s.initLoss!, `loss ${s.loss} vs init ${s.initLoss}`);
    // the reported loss is ½·Σ eHeᵀ of the returned weights
    const exact = totalLoss(W, r.dequantized, H, out, k) / 2;
    assert.ok(Math.abs(s.loss! - exact) <= 1e-3 * exact, `reported ${s.loss} vs ${exact}`);
    assert.equal(r.payload.format, 'codebook');
    const t = codebookFormat.pack(r.payload.data as CodebookQuantized);
    assert.deepStrictEqual(codebookFormat.dequantize(t), r.dequantized);
  });

  it('out groups (og 2): a codeword and a scale per 2 rows, the reported loss is that of the real rows, q/k rows paired (il 2)', () => {
    const o2: AqlmOptions = { ...opts, outGroupSize: 2 };
    for (const [name, il] of [['model.layers.0.mlp.up_proj.weight', undefined], ['model.layers.0.self_attn.q_proj.weight', 2]] as const) {
      const r = quantizeAqlmLayer(W, out, k, H.slice(), o2, ref, name);
      const q = r.payload.data as CodebookQuantized;
      assert.equal(q.og, 2);
      assert.equal(q.il, il, name);
      assert.equal(q.scale.length, out / 2);
      assert.equal(q.codes.length, (out / 2) * (k / 4) * 2);
      assert.equal(q.codebooks.length, 2 * 16 * 2 * 4);
      const s = r.stats;
      assert.ok(s.loss! < 0.8 * s.initLoss!, `${name}: loss ${s.loss} vs init ${s.initLoss}`);
      // the virtual rows' loss (what the method minimised) is Σ eHeᵀ over the real rows
      const exact = totalLoss(W, r.dequantized, H, out, k) / 2;
      assert.ok(Math.abs(s.loss! - exact) <= 1e-3 * exact, `${name}: reported ${s.loss} vs ${exact}`);
      assert.deepStrictEqual(codebookFormat.dequantize(codebookFormat.pack(q)), r.dequantized);
    }
    assert.throws(() => quantizeAqlmLayer(W, out, k, H.slice(), { ...opts, outGroupSize: 32 }, ref), /outGroupSize 32 × groupSize 4 exceeds 64/);
    assert.throws(() => quantizeAqlmLayer(W, out, k, H.slice(), { ...o2, finetuneEpochs: 1 }, ref), /fine-tuning/);
  });

  it('weighs errors by XᵀX: lower output error than plain nearest-codeword (k-means) codes', () => {
    const plain = quantizeAqlmLayer(W, out, k, H.slice(), { ...opts, maxEpochs: 0 }, ref);
    const tuned = quantizeAqlmLayer(W, out, k, H.slice(), { ...opts, maxEpochs: 1, stepsPerEpoch: 0 }, ref);
    assert.ok(tuned.stats.loss! < plain.stats.loss!, `beam search ${tuned.stats.loss} vs k-means ${plain.stats.loss}`);
  });

  it('rejects bad schemes and group sizes that do not divide the row', () => {
    assert.throws(() => parseScheme('2x'), UsageError);
    assert.throws(() => parseScheme('0x8'), UsageError);
    assert.deepEqual(parseScheme('1x16'), { M: 1, B: 16 });
    assert.throws(() => quantizeAqlmLayer(W, out, k, H.slice(), { ...opts, groupSize: 6 }, ref), /does not divide/);
    assert.throws(() => getMethod('aqlm', { scheme: 'two' }), UsageError);
  });

  it('residual k-means: each extra codebook lowers the residual', () => {
    const groups = gaussians(rng(5), 500 * 4, 1);
    const norm = (r: Float32Array) => r.reduce((a, v) => a + v * v, 0);
    const one = residualKmeans(groups, 500, 4, 1, 16, { iters: 20, rand: rng(1), backend: ref });
    const two = residualKmeans(groups, 500, 4, 2, 16, { iters: 20, rand: rng(1), backend: ref });
    assert.ok(norm(one.residual) < 0.7 * norm(groups));
    assert.ok(norm(two.residual) < 0.8 * norm(one.residual));
  });
});

describe('AQLM lookup-table kernel', () => {
  it('matches dequantize-then-multiply on a 2x8 layer (and the direct kernel does too)', () => {
    const q = codebookFormat.randomPayload(384, 128, { M: 2, B: 8, g: 8 }, rng(9));
    const w = dequantizeCodebook(q);
    const x = gaussians(rng(10), 128);
    const lut = new CodebookLinear(q, ref);
    assert.equal(lut.kernel, 'lut'); // 384 rows: the table pays off
    const direct = new CodebookLinear(q, ref, 'direct');
    for (const lin of [lut, direct]) {
      const y = new Float32Array(384);
      lin.matvec(y, x);
      for (let r = 0; r < 384; r++) {
        let want = 0;
        let mag = 0;
        for (let c = 0; c < 128; c++) {
          want += w[r * 128 + c]! * x[c]!;
          mag += Math.abs(w[r * 128 + c]! * x[c]!);
        }
        assert.ok(Math.abs(y[r]! - want) <= 1e-5 * mag, `${lin.kernel} row ${r}: ${y[r]} vs ${want}`);
      }
    }
  });
});

describe('AQLM on stories260K', () => {
  const backend = createBackend();
  after(() => backend.dispose());

  const { source, heldout, calibration } = storiesData({ count: 8, seqLen: 64 });
  const ppl = (model: LlamaModel) => perplexity(model, heldout, { seqLen: 128, maxWindows: 16 }).ppl;

  /** Packs the pipeline's result and returns the perplexity of the packed file and of the method's own fake-quantized weights. */
  function packedAndMemory(r: ReturnType<typeof quantizeModel>, dequantized: Map<string, Float32Array>, norms = new Map<string, Float32Array>()): { packed: number; memory: number } {
    // r.source: the model whose unquantized tensors (trained norms included) the file stores, as the CLI writes it
    const plan = planPackedModel({ config: source.config, method: { name: 'aqlm', options: {} }, source: r.source, packed: r.packed });
    const bytes = new Uint8Array(plan.size);
    let off = 0;
    for (const chunk of plan.chunks()) { bytes.set(chunk, off); off += chunk.byteLength; }
    const file = new PackedModel(new BufferSource('aqlm.bcq', bytes));
    const packedModel = new LlamaModel(file, { backend, linear: file.linears(backend) });
    // the in-memory model: the method's own fake-quantized weights and trained norms, never the packed bytes
    const memorySource = { name: source.name, config: source.config, tensors: () => source.tensors(), load: (name: string) => norms.get(name) ?? source.load(name) };
    const memory = new LlamaModel(memorySource, {
      backend,
      linear: (name, src) => {
        const [out, inDim] = src.tensors().find((x) => x.name === name)!.shape as [number, number];
        return new DenseLinear(backend, dequantized.get(name) ?? src.load(name), out, inDim);
      },
    });
    return { packed: ppl(packedModel), memory: ppl(memory) };
  }

  it('the packed file computes what the in-memory quantized model computes (1x4, g4)', () => {
    const { method, opts } = getMethod('aqlm', { scheme: '1x4', groupSize: 4, beamSize: 2, maxEpochs: 2, stepsPerEpoch: 10 });
    const dequantized = new Map<string, Float32Array>();
    const counting = { ...method, quantizeLayer: (...a: Parameters<typeof method.quantizeLayer>) => {
      const r = method.quantizeLayer(...a);
      dequantized.set(a[5].name, r.dequantized);
      return r;
    } };
    const r = quantizeModel(source, { backend, method: counting, methodOptions: opts, calibration });
    for (const t of r.packed.values()) assert.equal(t.format, 'aqlm');
    const { packed: a, memory: b } = packedAndMemory(r, dequantized);
    assert.ok(Math.abs(a - b) / b <= 1e-4, `packed ${a} vs in-memory ${b}`);
    const fp = ppl(new LlamaModel(source, { backend }));
    assert.ok(b > fp, `quantized ${b} should be worse than fp32 ${fp}`);
  });

  it('block fine-tuning (codebooks, scales, norms) lowers the block output MSE on training and held-out windows, and packs exactly (1x4, g4)', () => {
    const { method, opts } = getMethod('aqlm', { scheme: '1x4', groupSize: 4, beamSize: 2, maxEpochs: 2, stepsPerEpoch: 10, finetuneEpochs: 3, finetuneLr: 1e-3 });
    const dequantized = new Map<string, Float32Array>();
    const norms = new Map<string, Float32Array>();
    const mse: Array<{ block: number; trainBefore: number; trainAfter: number; heldBefore: number; heldAfter: number }> = [];
    const watched = {
      ...method,
      quantizeLayer: (...a: Parameters<typeof method.quantizeLayer>) => {
        const r = method.quantizeLayer(...a);
        dequantized.set(a[5].name, r.dequantized);
        return r;
      },
      // measures the block's output error itself, before and after, with the float block as target
      refineBlock: (ctx: BlockRefineContext, o: AqlmOptions) => {
        let trained: { attnNorm?: Float32Array; ffnNorm?: Float32Array } = {};
        const out = method.refineBlock!({ ...ctx, setNorms: (n) => { trained = n; ctx.setNorms!(n); } }, o);
        const D = ctx.seqLen * ctx.config.dim;
        const params = (pick: (name: string) => Float32Array, n = ctx.norms) => ({
          attnNorm: n.attnNorm, ffnNorm: n.ffnNorm,
          wq: pick('self_attn.q_proj'), wk: pick('self_attn.k_proj'), wv: pick('self_attn.v_proj'), wo: pick('self_attn.o_proj'),
          w1: pick('mlp.gate_proj'), w2: pick('mlp.down_proj'), w3: pick('mlp.up_proj'),
        });
        const floatP = params((n) => ctx.weights.get(n)!.w);
        const beforeP = params((n) => ctx.results.get(n)!.dequantized);
        const afterP = params((n) => (out.get(n) ?? ctx.results.get(n)!).dequantized, { ...ctx.norms, ...trained });
        if (trained.attnNorm) norms.set(`model.layers.${ctx.block}.input_layernorm.weight`, trained.attnNorm);
        if (trained.ffnNorm) norms.set(`model.layers.${ctx.block}.post_attention_layernorm.weight`, trained.ffnNorm);
        const errs = [0, 0];
        const errsHeld = [0, 0];
        for (let s = 0; s < ctx.windows; s++) {
          const x = ctx.inputs.subarray(s * D, (s + 1) * D);
          const target = blockForward(ctx.config, floatP, x, ctx.seqLen).out;
          [beforeP, afterP].forEach((p, k) => {
            const y = blockForward(ctx.config, p, x, ctx.seqLen).out;
            let e = 0;
            for (let i = 0; i < D; i++) e += (y[i]! - target[i]!) ** 2;
            if (s === ctx.windows - 1) errsHeld[k] += e; // 10 % of 8 windows: the last one is held out
            else errs[k] += e;
          });
        }
        mse.push({ block: ctx.block, trainBefore: errs[0]!, trainAfter: errs[1]!, heldBefore: errsHeld[0]!, heldAfter: errsHeld[1]! });
        for (const [short, r] of out) dequantized.set(`model.layers.${ctx.block}.${short}.weight`, r.dequantized);
        return out;
      },
    };
    const r = quantizeModel(source, { backend, method: watched, methodOptions: opts, calibration });
    assert.equal(mse.length, source.config.nLayers);
    for (const m of mse) {
      assert.ok(m.heldAfter <= m.heldBefore, `block ${m.block}: held-out error ${m.heldAfter} > ${m.heldBefore} (the best epoch is kept)`);
    }
    const m0 = mse[0]!;
    assert.ok(m0.trainAfter < m0.trainBefore && m0.heldAfter < m0.heldBefore, `block 0 not improved: ${JSON.stringify(m0)}`);
    const tuned = r.layers.filter((l) => l.stats.ftHeldMseAfter !== undefined);
    assert.ok(tuned.length >= 7, 'block 0 linears report their fine-tuning');
    // block 0 was improved, so its norms were trained: they moved, and the file stores them
    const n0 = norms.get('model.layers.0.input_layernorm.weight');
    assert.ok(n0 !== undefined && n0.some((v, i) => v !== source.load('model.layers.0.input_layernorm.weight')[i]), 'block 0 attention norm trained');
    assert.deepEqual(r.source.load('model.layers.0.input_layernorm.weight'), n0);
    const { packed: a, memory: b } = packedAndMemory(r, dequantized, norms);
    assert.ok(Math.abs(a - b) / b <= 1e-4, `packed ${a} vs in-memory ${b}`);
  });
});
