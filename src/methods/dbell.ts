/**
 * DBellQuant (Ye et al. 2025, "DBellQuant: Breaking the Bell with Double-Bell Transformation for
 * LLMs Post Training Binarization", arXiv:2507.01483, §3.2 LTDB and §3.3). Binarization error is
 * smallest when each row's weights sit in two tight bells at a ± b; real rows form one bell at 0.
 * LTDB (learnable transformation for dual-bell) learns a per-input-column scale s so that
 * W' = W·diag(s) is dual-bell, and folds 1/s into the RMSNorm weight in front:
 *   W'·(g/s ⊙ n(x)) = W·(g ⊙ n(x))  — the model's function is unchanged, the activations are
 * divided by s (smoothed, easier to quantize). Then BiLLM binarizes W' (billm.ts).
 *
 * Per norm (attention norm → q/k/v, MLP norm → gate/up; o_proj and down_proj are untouched):
 *   1. s_j = max|X_j|^α / max_rows|W_j|^(1−α) per projection (SmoothQuant init, α = 0.85), X the norm output;
 *   2. per block of blockSize columns, SGD (lr, ≤ epochs steps) on the proximity loss
 *        L = 100 · mean_ij (w'_ij − t_ij)² / t_ij²,  t_ij the nearer of a_i ± b_i,
 *        a_i = mean_j w'_ij,  b_i = mean_j |w'_ij − a_i|  (a, b recomputed from w' every step),
 *      stopping when the mean distance to the nearer target rises; the best-loss s is kept;
 *   3. projections sharing the norm take, per column, the s of largest |s|.
 * As in the released code, a and b are differentiated through, and the scale kept is the one
 * *after* the step that had the best loss (`ltdbKeep` 'measured': the scale whose loss it was).
 * With activation bits < 16 the pipeline calibrates on quantized activations (calibrationActBits).
 */
import type { Backend } from '../backend/types.js';
import type { LlamaConfig } from '../model/config.js';
import { EMBED, layerTensor, type LinearName, type ModelSource } from '../model/weights.js';
import type { PrepareContext, QuantMethod } from '../quant/method.js';
import { DenseLinear } from '../runtime/dense.js';
import { layerForward } from '../runtime/forward.js';
import { allocScratch, freeScratch, loadLayerWeights } from '../runtime/model.js';
import { billm, billmDefaults, type BillmOptions } from './billm.js';

export interface DbellOptions extends BillmOptions {
  /** SmoothQuant migration strength of the initial scales. */
  alpha: number;
  /** Most SGD steps per block of columns. */
  epochs: number;
  /** SGD learning rate. */
  lr: number;
  /**
   * Which scale LTDB keeps of the step with the best loss: 'after' (the released code: the scale
   * that step produced) or 'measured' (the scale whose loss was measured, the paper's "best").
   */
  ltdbKeep: string;
  /**
   * With activation bits < 16: calibrate (Hessians, propagation) on float activations instead of
   * the quantized ones the released code's in-place activation quantizer feeds its hooks.
   */
  floatActCalib: boolean;
}

// as the released code: 1..49 salient columns tried (range(1, 50)), the rest binarized at order 1
// meanwhile, columns ranked by Σ|w| (its default salient_metric 'magnitude')
export const dbellDefaults: DbellOptions = { ...billmDefaults, maxSalient: 49, searchOrder: 1, salientMetric: 'magnitude', alpha: 0.85, epochs: 200, lr: 0.01, ltdbKeep: 'after', floatActCalib: false };

const ATTN: readonly LinearName[] = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'];
const MLP: readonly LinearName[] = ['mlp.gate_proj', 'mlp.up_proj'];

/** The learned scales: one [dim] vector per norm of each block. */
export interface LtdbScales {
  attn: Float32Array[]; // [nLayers][dim]
  mlp: Float32Array[]; // [nLayers][dim]
}

/** max_t |X_tj| of the attention-norm and MLP-norm outputs of every block, over the calibration windows (float model). */
export function normOutputAbsMax(source: ModelSource, tokens: Int32Array, seqLen: number, backend: Backend): LtdbScales {
  const c = source.config;
  const { dim } = c;
  const windows = tokens.length / seqLen;
  const blockConfig: LlamaConfig = { ...c, nLayers: 1 };
  const rows = Math.min(seqLen, 512);
  const s = allocScratch(blockConfig, backend, rows);
  const emb = source.load(EMBED); // [vocab, dim]
  const X = new Float32Array(tokens.length * dim); // [windows·seqLen, dim] the residual stream
  tokens.forEach((t, i) => X.set(emb.subarray(t * dim, (t + 1) * dim), i * dim));
  const out: LtdbScales = { attn: [], mlp: [] };
  try {
    for (let l = 0; l < c.nLayers; l++) {
      const L = loadLayerWeights(source, l, (name, src) => {
        const [o, i] = src.tensors().find((t) => t.name === name)!.shape as [number, number];
        return new DenseLinear(backend, src.load(name), o, i);
      });
      const attn = new Float32Array(dim);
      const mlp = new Float32Array(dim);
      const hook = (linear: LinearName, x: Float32Array, n: number) => {
        const m = linear === 'self_attn.q_proj' ? attn : linear === 'mlp.gate_proj' ? mlp : null;
        if (m) for (let i = 0; i < n * dim; i++) m[i % dim] = Math.max(m[i % dim]!, Math.abs(x[i]!));
      };
      for (let w = 0; w < windows; w++) {
        for (let start = 0; start < seqLen; start += rows) {
          const T = Math.min(rows, seqLen - start);
          const off = (w * seqLen + start) * dim;
          s.x.set(X.subarray(off, off + T * dim));
          layerForward(backend, blockConfig, L, s, 0, T, start, hook);
          X.set(s.x.subarray(0, T * dim), off);
        }
      }
      for (const lin of [L.wq, L.wk, L.wv, L.wo, L.w1, L.w2, L.w3]) lin.dispose?.();
      out.attn.push(attn);
      out.mlp.push(mlp);
    }
  } finally {
    freeScratch(backend, s);
  }
  return out;
}

/**
 * The proximity loss of w' = W·diag(s) (W [rows, n]) and its gradient with respect to s.
 * Returns the loss, the mean distance to the nearer target (the early-stopping signal), and
 * fills grad [n].
 */
export function proximityLoss(W: Float64Array, rows: number, n: number, s: Float64Array, grad: Float64Array | null): { loss: number; distance: number } {
  const K = 100 / (rows * n);
  let loss = 0;
  let distance = 0;
  grad?.fill(0);
  const df = new Float64Array(n); // ∂f/∂w' direct term of one row
  const dt = new Float64Array(n); // ∂f/∂t of one row
  const sigma = new Int8Array(n);
  const sg = new Int8Array(n);
  for (let r = 0; r < rows; r++) {
    const w = (j: number) => W[r * n + j]! * s[j]!;
    let a = 0;
    for (let j = 0; j < n; j++) a += w(j);
    a /= n;
    let b = 0;
    let msg = 0;
    for (let j = 0; j < n; j++) {
      const v = w(j) - a;
      b += Math.abs(v);
      sg[j] = Math.sign(v);
      msg += sg[j]!;
    }
    b /= n;
    msg /= n;
    let GA = 0;
    let GB = 0;
    for (let j = 0; j < n; j++) {
      const v = w(j);
      const d1 = v - (a + b);
      const d2 = v - (a - b);
      const near1 = Math.abs(d1) < Math.abs(d2);
      const t = near1 ? a + b : a - b;
      const d = near1 ? d1 : d2;
      loss += (d * d) / (t * t);
      distance += Math.min(Math.abs(d1), Math.abs(d2));
      if (!grad) continue;
      sigma[j] = near1 ? 1 : -1;
      df[j] = (2 * d) / (t * t);
      dt[j] = (-2 * d * v) / (t * t * t);
      GA += dt[j]!;
      GB += sigma[j]! * dt[j]!;
    }
    if (!grad) continue;
    for (let j = 0; j < n; j++) {
      const total = df[j]! + GA / n + (GB / n) * (sg[j]! - msg);
      grad[j] += K * total * W[r * n + j]!;
    }
  }
  return { loss: K * loss, distance: distance / (rows * n) };
}

/**
 * SGD on one block of columns from s0; returns the scales of the best loss seen: those whose loss
 * it was (`keepAfterStep` false), or those the step from them produced (true, the released code).
 */
export function optimizeBlock(W: Float64Array, rows: number, n: number, s0: Float64Array, epochs: number, lr: number, keepAfterStep = false): Float64Array {
  const s = Float64Array.from(s0);
  const grad = new Float64Array(n);
  let best = Infinity;
  let bestS = Float64Array.from(s0);
  let lastDistance = Infinity;
  for (let epoch = 0; epoch < epochs; epoch++) {
    const { loss, distance } = proximityLoss(W, rows, n, s, grad);
    if (!(distance <= lastDistance)) break; // early stop: the weights moved away from the targets
    lastDistance = distance;
    const improved = loss < best;
    if (improved) {
      best = loss;
      if (!keepAfterStep) bestS = Float64Array.from(s);
    }
    for (let j = 0; j < n; j++) s[j] -= lr * grad[j]!;
    if (improved && keepAfterStep) bestS = Float64Array.from(s);
  }
  return bestS;
}

/** LTDB scales of one norm: init, per-block SGD for each projection behind it, merged by largest |s|. */
export function ltdbScales(source: ModelSource, l: number, linears: readonly LinearName[], actMax: Float32Array, opts: DbellOptions): Float32Array {
  const dim = actMax.length;
  const merged = new Float32Array(dim);
  for (const linear of linears) {
    const name = layerTensor(l, linear);
    const W = source.load(name); // [out, dim]
    const rows = W.length / dim;
    const s = new Float64Array(dim);
    for (let j = 0; j < dim; j++) {
      let wmax = 0;
      for (let r = 0; r < rows; r++) wmax = Math.max(wmax, Math.abs(W[r * dim + j]!));
      s[j] = Math.max(1e-5, actMax[j]! ** opts.alpha / wmax ** (1 - opts.alpha));
    }
    for (let c0 = 0; c0 < dim; c0 += opts.blockSize) {
      const n = Math.min(opts.blockSize, dim - c0);
      const blk = new Float64Array(rows * n);
      for (let r = 0; r < rows; r++) for (let i = 0; i < n; i++) blk[r * n + i] = W[r * dim + c0 + i]!;
      const sb = optimizeBlock(blk, rows, n, s.subarray(c0, c0 + n), opts.epochs, opts.lr, opts.ltdbKeep === 'after');
      for (let i = 0; i < n; i++) if (Math.abs(sb[i]!) > Math.abs(merged[c0 + i]!)) merged[c0 + i] = sb[i]!;
    }
  }
  return merged;
}

/**
 * The transformed model, computed lazily from the original and the scales: q/k/v (gate/up)
 * columns multiplied by the attention (MLP) scales, those norm weights divided by them.
 */
export function transformedSource(source: ModelSource, scales: LtdbScales): ModelSource {
  const rule = new Map<string, { s: Float32Array; op: 'mulColumns' | 'divide' }>();
  for (let l = 0; l < source.config.nLayers; l++) {
    for (const lin of ATTN) rule.set(layerTensor(l, lin), { s: scales.attn[l]!, op: 'mulColumns' });
    for (const lin of MLP) rule.set(layerTensor(l, lin), { s: scales.mlp[l]!, op: 'mulColumns' });
    rule.set(layerTensor(l, 'input_layernorm'), { s: scales.attn[l]!, op: 'divide' });
    rule.set(layerTensor(l, 'post_attention_layernorm'), { s: scales.mlp[l]!, op: 'divide' });
  }
  return {
    name: `${source.name} (DBellQuant LTDB)`,
    config: source.config,
    tensors: () => source.tensors(),
    load(name: string): Float32Array {
      const t = source.load(name);
      const r = rule.get(name);
      if (r === undefined) return t;
      const n = r.s.length;
      const out = new Float32Array(t.length);
      for (let i = 0; i < t.length; i++) out[i] = r.op === 'divide' ? t[i]! / r.s[i % n]! : t[i]! * r.s[i % n]!;
      return out;
    },
  };
}

/** The whole LTDB step: activation statistics of the float model, scales for every norm, the transformed model. */
export function ltdbTransform(source: ModelSource, opts: DbellOptions, ctx: PrepareContext): { source: ModelSource; scales: LtdbScales } {
  const cal = ctx.calibration;
  const act = normOutputAbsMax(source, cal.tokens, cal.seqLen, ctx.backend);
  const scales: LtdbScales = { attn: [], mlp: [] };
  for (let l = 0; l < source.config.nLayers; l++) {
    scales.attn.push(ltdbScales(source, l, ATTN, act.attn[l]!, opts));
    scales.mlp.push(ltdbScales(source, l, MLP, act.mlp[l]!, opts));
  }
  return { source: transformedSource(source, scales), scales };
}

export const dbell: QuantMethod<DbellOptions> = {
  ...billm,
  name: 'dbell',
  describe:
    'DBellQuant (Ye et al. 2025): LTDB, a per-column scale per RMSNorm (SmoothQuant init α, SGD on the ' +
    'dual-bell proximity loss per block, early stop, merged by largest |s| over q/k/v and gate/up) folded ' +
    'into the norm weights, then BiLLM binarization of the transformed weights; as the released code, the ' +
    'salient count is searched over 1..49 columns ranked by Σ|w| with the rest at order 1, the LTDB scale ' +
    'is the one after the best step, and with --act-bits < 16 calibration runs on quantized activations.',
  defaults: dbellDefaults,
  options: {
    ...billm.options,
    alpha: { kind: 'number', help: 'SmoothQuant migration strength of the initial LTDB scales', min: 0, max: 1 },
    epochs: { kind: 'int', help: 'most LTDB SGD steps per block of columns', min: 0, max: 100000 },
    lr: { kind: 'number', help: 'LTDB SGD learning rate', min: 0, max: 100 },
    ltdbKeep: { kind: 'string', help: "LTDB keeps the scale after the best step ('after', released code) or the one whose loss was best ('measured')", pattern: /^(after|measured)$/ },
    floatActCalib: { kind: 'boolean', help: 'with --act-bits < 16, calibrate on float activations (default: on the quantized ones, as the released code)' },
  },
  calibrationActBits: (opts, actBits) => (opts.floatActCalib ? 16 : actBits),
  prepare: (source, opts, ctx) => ltdbTransform(source, opts, ctx).source,
};
