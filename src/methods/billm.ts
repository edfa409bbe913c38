/**
 * BiLLM (Huang et al. 2024, "BiLLM: Pushing the Limit of Post-Training Quantization for LLMs",
 * arXiv:2402.04291, §3.1–3.2, Algorithm 1). Per block of `blockSize` columns:
 *   1. salience of column j: Σ_rows w²/[H⁻¹]_jj² (H⁻¹ = UᵀU, d_j = U_jj as in GPTQ; `salientMetric`
 *      'magnitude': Σ_rows |w|, the official code's default);
 *   2. the k most salient columns (k searched in 1..maxSalient for the least ‖W − Ŵ‖², the rest
 *      binarized at order `searchOrder` during this search: 2 in the official BiLLM code, 1 in
 *      DBellQuant's) get residual
 *      binarization: ŵ = α1·sign(w − μ1) + μ1 + α2·sign(r − μ2) + μ2, r = w − first order;
 *   3. the other weights are split at a magnitude p (searched over the 10..90 % percentiles of
 *      their |w|, step 1 %; `splitPercentiles` 'block': of the whole block's, salient entries as 0) into a concentrated (|w| < p) and a sparse (|w| ≥ p) part, each
 *      binarized with its own μ = mean, α = mean |w − μ| per row;
 *   4. GPTQ-style error feedback between blocks: E = (W_blk − Ŵ_blk)/diag(U), W[:, later] −= E·U[blk, later].
 * As in the official bigptq.py, the whole block is binarized at once (no feedback inside a block).
 * Scales are stored as float16 (what the format holds) and Ŵ is computed from the stored values,
 * so the packed file is exactly the fake-quantized layer. sign(0) is taken as +1 (1-bit storage).
 */
import type { Backend } from '../backend/types.js';
import { blockCount, dequantizeBinary, NS, AC, MC, AS, MS, A1, A2, MSAL, type BinaryQuantized } from '../formats/binary.js';
import { roundToF16 } from '../formats/quantized.js';
import { dampen, fixDeadInputs, upperCholeskyOfInverse } from '../quant/hessian.js';
import { checkLayerShape, type LayerContext, type LayerResult, type QuantMethod } from '../quant/method.js';
import { UsageError } from '../io/errors.js';

export interface BillmOptions {
  /** Columns per block (a multiple of 8; 128 in the paper). */
  blockSize: number;
  /** Most salient columns per block the search tries (50 in the official code). */
  maxSalient: number;
  /** λ in H += λ·mean(diag H)·I. */
  percdamp: number;
  /**
   * Binarization order of the non-salient weights while the salient-column count is searched
   * (the official BiLLM code: 2; the official DBellQuant code: 1). Only the search; the final
   * binarization of those weights is order 1 either way.
   */
  searchOrder: number;
  /** Column ranking: 'hessian' Σ_rows w²/[H⁻¹]_jj² (the paper), 'magnitude' Σ_rows |w| (the official code's default). */
  salientMetric: string;
  /**
   * The split grid: percentiles of the non-salient |w| ('rest'), or of the whole block's |w| with
   * the salient entries counted as 0 ('block', the official code).
   */
  splitPercentiles: string;
}

export const billmDefaults: BillmOptions = { blockSize: 128, maxSalient: 50, percdamp: 0.01, searchOrder: 2, salientMetric: 'hessian', splitPercentiles: 'rest' };

/** Percentiles of |w| tried as the split point: 0.10, 0.11, …, 0.90 (81 values, the official grid). */
const SPLIT_PERCENTILES = Array.from({ length: 81 }, (_, i) => 0.1 + i * 0.01);

export function quantizeBillmLayer(
  W: Float32Array, // [out, in]
  outDim: number,
  inDim: number,
  H: Float64Array, // [in, in] 2XᵀX/n; overwritten
  opts: BillmOptions,
  backend: Backend,
  name = 'layer',
): LayerResult {
  const t0 = performance.now();
  const rows = outDim;
  const cols = inDim;
  const Bs = opts.blockSize;
  const nB = blockCount(cols, Bs);
  const Wk = Float64Array.from(W); // [out, in] working copy, receives the error feedback
  const searchOrder = opts.searchOrder === 1 ? 1 : 2;
  const dead = fixDeadInputs(H, cols);
  for (const j of dead) for (let r = 0; r < rows; r++) Wk[r * cols + j] = 0;
  const damp = dampen(H, cols, opts.percdamp);
  if (!upperCholeskyOfInverse(backend, H, cols)) {
    throw new UsageError(`${name}: BiLLM: the dampened Hessian is not positive definite; raise percdamp (now ${opts.percdamp})`);
  }
  const U = H; // [in, in] upper: H⁻¹ = UᵀU

  const signs = new Uint8Array(rows * cols);
  const split = new Uint8Array(rows * cols);
  const salient = new Uint8Array(cols);
  const scales = new Float32Array(rows * nB * NS);
  const residualCols: Uint8Array[] = []; // per salient column (column order): its s2 of every row
  let loss = 0;
  let salientTotal = 0;

  for (let b = 0; b < nB; b++) {
    const c0 = b * Bs;
    const n = Math.min(Bs, cols - c0);
    const blk = new Float64Array(rows * n); // [out, n]
    for (let r = 0; r < rows; r++) for (let i = 0; i < n; i++) blk[r * n + i] = Wk[r * cols + c0 + i];
    const d = Float64Array.from({ length: n }, (_, i) => U[(c0 + i) * cols + c0 + i]);

    // 1–2: salient columns by Σ w²/d², their number searched
    const magnitude = opts.salientMetric === 'magnitude';
    const salience = Array.from({ length: n }, (_, i) => {
      let s = 0;
      for (let r = 0; r < rows; r++) s += magnitude ? Math.abs(blk[r * n + i]) : blk[r * n + i] ** 2;
      return magnitude ? s : s / (d[i] * d[i]);
    });
    const order = Array.from({ length: n }, (_, i) => i).sort((a, c) => salience[c] - salience[a] || a - c);
    const sal = new Uint8Array(n);
    let bestK = 0;
    let bestErr = Infinity;
    const inSet = new Float64Array(n);
    const outSet = new Float64Array(n);
    for (let k = 1; k <= Math.min(opts.maxSalient, n - 1); k++) {
      sal.fill(0);
      for (let t = 0; t < k; t++) sal[order[t]] = 1;
      let err = 0;
      for (let r = 0; r < rows; r++) {
        let a = 0;
        let o = 0;
        for (let i = 0; i < n; i++) {
          if (sal[i]) inSet[a++] = blk[r * n + i];
          else outSet[o++] = blk[r * n + i];
        }
        err += binarizationError(inSet, a, 2) + binarizationError(outSet, o, searchOrder);
      }
      if (err < bestErr) [bestErr, bestK] = [err, k];
    }
    sal.fill(0);
    for (let t = 0; t < bestK; t++) sal[order[t]] = 1;

    // 3: the split point of the other weights
    const mags: number[] = [];
    const wholeBlock = opts.splitPercentiles === 'block';
    for (let r = 0; r < rows; r++) for (let i = 0; i < n; i++) if (!sal[i] || wholeBlock) mags.push(sal[i] ? 0 : Math.abs(blk[r * n + i]));
    mags.sort((a, c) => a - c);
    let p = Infinity;
    bestErr = Infinity;
    for (const q of SPLIT_PERCENTILES) {
      const cand = quantile(mags, q);
      let err = 0;
      for (let r = 0; r < rows; r++) {
        let a = 0;
        let o = 0;
        for (let i = 0; i < n; i++) {
          if (sal[i]) continue;
          const v = blk[r * n + i];
          if (Math.abs(v) < cand) inSet[a++] = v;
          else outSet[o++] = v;
        }
        err += binarizationError(inSet, a, 1) + binarizationError(outSet, o, 1);
      }
      if (err < bestErr) [bestErr, p] = [err, cand];
    }

    // the block's binarization with float16 scales, and its error fed to the later columns
    const salCols = Array.from({ length: n }, (_, i) => i).filter((i) => sal[i]);
    for (const i of salCols) salient[c0 + i] = 1;
    const s2cols = salCols.map(() => new Uint8Array(rows));
    salientTotal += salCols.length;
    const E = new Float32Array(rows * n); // [out, n] (w − ŵ)/d
    const wHat = new Float64Array(n);
    for (let r = 0; r < rows; r++) {
      const w = blk.subarray(r * n, (r + 1) * n);
      const sc = (r * nB + b) * NS;
      const isSparse = (i: number) => !sal[i] && Math.abs(w[i]) >= p;
      const conc = fitPart(w, n, (i) => !sal[i] && !isSparse(i));
      const sparse = fitPart(w, n, isSparse);
      const first = fitPart(w, n, (i) => sal[i] === 1);
      // second order on the residual of the (unrounded) first order, as the official code
      const resid = Float64Array.from(w, (v, i) => v - (first.mu + first.alpha * (v - first.mu >= 0 ? 1 : -1)));
      const second = fitPart(resid, n, (i) => sal[i] === 1);
      scales[sc + AC] = roundToF16(conc.alpha);
      scales[sc + MC] = roundToF16(conc.mu);
      scales[sc + AS] = roundToF16(sparse.alpha);
      scales[sc + MS] = roundToF16(sparse.mu);
      scales[sc + A1] = roundToF16(first.alpha);
      scales[sc + A2] = roundToF16(second.alpha);
      scales[sc + MSAL] = roundToF16(first.mu + second.mu);
      let k = 0;
      for (let i = 0; i < n; i++) {
        const j = r * cols + c0 + i;
        if (sal[i]) {
          const s1 = w[i] - first.mu >= 0 ? 1 : -1;
          const s2 = resid[i] - second.mu >= 0 ? 1 : -1;
          signs[j] = s1 > 0 ? 1 : 0;
          s2cols[k++][r] = s2 > 0 ? 1 : 0;
          wHat[i] = Math.fround(scales[sc + A1] * s1 + scales[sc + A2] * s2 + scales[sc + MSAL]);
        } else {
          const sp = isSparse(i);
          const part = sp ? sparse : conc;
          const s = w[i] - part.mu >= 0 ? 1 : -1;
          signs[j] = s > 0 ? 1 : 0;
          split[j] = sp ? 1 : 0;
          wHat[i] = Math.fround(sp ? scales[sc + AS] * s + scales[sc + MS] : scales[sc + AC] * s + scales[sc + MC]);
        }
        const e = (w[i] - wHat[i]) / d[i];
        E[r * n + i] = e;
        loss += e * e;
      }
    }
    residualCols.push(...s2cols);
    feedBack(backend, Wk, E, U, rows, cols, c0, n);
  }

  const residual = new Uint8Array(rows * salientTotal); // [out, nSalient]
  residualCols.forEach((col, k) => {
    for (let r = 0; r < rows; r++) residual[r * salientTotal + k] = col[r];
  });
  const data: BinaryQuantized = { outDim, inDim, blockSize: Bs, signs, salient, split, residual, scales };
  return {
    payload: { format: 'binary', data },
    dequantized: dequantizeBinary(data),
    stats: { loss: loss / 2, salientColumns: salientTotal, deadInputs: dead.length, damp, seconds: (performance.now() - t0) / 1000 },
  };
}

/** μ = mean, α = mean |w − μ| of the selected entries of one row (0, 0 when none). */
function fitPart(w: Float64Array, n: number, sel: (i: number) => boolean): { mu: number; alpha: number } {
  let count = 0;
  let sum = 0;
  for (let i = 0; i < n; i++) if (sel(i)) [count, sum] = [count + 1, sum + w[i]];
  if (count === 0) return { mu: 0, alpha: 0 };
  const mu = sum / count;
  let dev = 0;
  for (let i = 0; i < n; i++) if (sel(i)) dev += Math.abs(w[i] - mu);
  return { mu, alpha: dev / count };
}

/**
 * Squared error of binarizing v[0..count) with `order` residual steps (unrounded scales).
 * Each step: μ = mean, α = mean |v − μ|, v ← v − (μ + α·sign(v − μ)); v is overwritten.
 */
function binarizationError(v: Float64Array, count: number, order: 1 | 2): number {
  if (count === 0) return 0;
  for (let o = 0; o < order; o++) {
    let mu = 0;
    for (let i = 0; i < count; i++) mu += v[i];
    mu /= count;
    let alpha = 0;
    for (let i = 0; i < count; i++) alpha += Math.abs(v[i] - mu);
    alpha /= count;
    for (let i = 0; i < count; i++) v[i] -= v[i] - mu >= 0 ? mu + alpha : mu - alpha;
  }
  let err = 0;
  for (let i = 0; i < count; i++) err += v[i] * v[i];
  return err;
}

/** numpy's default (linear interpolation) quantile of sorted values. */
function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Infinity;
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** W[:, c0+n:] −= E · U[c0:c0+n, c0+n:] as one matrix product on the backend. */
function feedBack(backend: Backend, Wk: Float64Array, E: Float32Array, U: Float64Array, rows: number, cols: number, c0: number, n: number): void {
  const t0 = c0 + n;
  const rest = cols - t0;
  if (rest === 0) return;
  const A = backend.alloc(rows * n); // [out, n] E
  const B = backend.alloc(rest * n); // [rest, n] U[c0:c0+n, t0:]ᵀ
  const C = backend.alloc(rows * rest); // [out, rest]
  try {
    A.set(E);
    for (let c = 0; c < rest; c++) for (let i = 0; i < n; i++) B[c * n + i] = U[(c0 + i) * cols + t0 + c];
    backend.matmul(C, A, B, rows, rest, n);
    for (let r = 0; r < rows; r++) for (let c = 0; c < rest; c++) Wk[r * cols + t0 + c] -= C[r * rest + c];
  } finally {
    backend.free?.(A);
    backend.free?.(B);
    backend.free?.(C);
  }
}

export const billm: QuantMethod<BillmOptions> = {
  name: 'billm',
  describe:
    'BiLLM (Huang et al. 2024): ~1-bit weights. Per block of blockSize columns, the most salient ' +
    'columns (by w²/[H⁻¹]_jj², count searched) get order-2 residual binarization, the rest are split ' +
    'by a searched magnitude into two parts binarized separately; GPTQ-style error feedback between ' +
    'blocks. As the official code: whole block binarized at once, split searched over 10–90 % percentiles.',
  defaults: billmDefaults,
  options: {
    blockSize: { kind: 'int', help: 'columns per binarization block (multiple of 8)', min: 8, max: 4096 },
    maxSalient: { kind: 'int', help: 'most salient columns per block tried by the search', min: 0, max: 4096 },
    percdamp: { kind: 'number', help: 'dampening λ: H += λ·mean(diag H)·I', min: 0, max: 1 },
    searchOrder: { kind: 'int', help: 'binarization order of the non-salient weights during the salient-column search', choices: [1, 2] },
    salientMetric: { kind: 'string', help: "salient-column ranking: 'hessian' Σw²/[H⁻¹]_jj² or 'magnitude' Σ|w| (official code default)", pattern: /^(hessian|magnitude)$/ },
    splitPercentiles: { kind: 'string', help: "split grid: percentiles of the non-salient |w| ('rest') or of the whole block with salient entries as 0 ('block', official code)", pattern: /^(rest|block)$/ },
  },
  requires: { hessian: true, inputs: false },
  quantizeLayer(W: Float32Array, outDim: number, inDim: number, H: Float64Array | null, opts: BillmOptions, ctx: LayerContext): LayerResult {
    checkLayerShape(ctx, W, outDim, inDim, H);
    if (H === null) throw new RangeError(`${ctx.name}: BiLLM needs the layer Hessian`);
    if (opts.blockSize % 8 !== 0) throw new RangeError(`${ctx.name}: BiLLM blockSize ${opts.blockSize} is not a multiple of 8`);
    return quantizeBillmLayer(W, outDim, inDim, H, opts, ctx.backend, ctx.name);
  },
};
