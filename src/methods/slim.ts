/**
 * SliM-LLM (Huang et al. 2024, "SliM-LLM: Salience-Driven Mixed-Precision Quantization for Large
 * Language Models", arXiv:2405.14917, §3): keep the average bit-width b of a layer but give
 * whole column groups b−1, b or b+1 bits according to their salience, then quantize with GPTQ
 * whose group grids are fitted with the group's own width and a salience-weighted clipping search.
 *
 *   1. salience   δ_ij = w_ij² / U_jj², U the upper Cholesky factor of H⁻¹ (§3.2, Eq. 5), H dampened
 *                 by 0.01·I and then GPTQ's relative λ (official); group salience = Σ over the group
 *   2. SBA        for i = 1 … ⌊n/2⌋ − 1: the i least salient groups b−1 bits, the i most salient b+1;
 *                 score each candidate (and the uniform i = 0, a bitcrush addition) by the change of
 *                 the layer output, KL(softmax(XŴᵀ) ‖ softmax(XWᵀ)) on groups min-max rounded (§3.2)
 *   3. GPTQ       with per-group bit-widths (quantizeGptqLayer's hooks), error feedback unchanged
 *   4. SQC        each group's grid: clip factor p ∈ [0.9, 1.1] (101 values) on min/max minimising
 *                 Σ_non-salient |ŵ − w|^2.4 + λ_s Σ_salient |ŵ − w|^2.4, salient: z-score of δ > 2 (§3.3)
 *   5. 1-bit      zero = mean(w), scale = mean|w| (official; spec: mean|w − zero|), ŵ = zero ± scale
 * Where the official code (slim-llm/slim_gptq.py, utils/) and the paper differ, see docs/slim.md.
 */
import type { Backend } from '../backend/types.js';
import { groupCount, roundToF16 } from '../formats/quantized.js';
import { dequantizeLevel, fitGrid, groupWidth, maxLevel, quantizeLevel } from '../quant/grid.js';
import { dampen, fixDeadInputs, upperCholeskyOfInverse } from '../quant/hessian.js';
import { checkLayerShape, type LayerContext, type LayerResult, type QuantMethod } from '../quant/method.js';
import { gptqDefaults, quantizeGptqLayer, type GroupGridFitter } from './gptq.js';

export interface SlimOptions {
  /** b: the average bits per weight; groups get b−1, b or b+1. */
  bits: number;
  groupSize: number;
  percdamp: number;
  /** λ_s of SQC: weight of the salient elements' error (1 = unweighted, the official default). */
  lambdaSalience: number;
  /** Skip SQC's clipping search: plain min-max grids (ablation). */
  minMaxGrids: boolean;
  /** Score SBA candidates by output MSE instead of the official KL of softmax outputs. */
  sbaMse: boolean;
  /** Calibration rows SBA scores on (evenly spaced); 0 = all. */
  sbaRows: number;
  /** Absolute dampening added to diag(H) before the relative one (official get_salience: 0.01, in place). */
  absDamp: number;
  /** Rank a partial last group in SBA (official; the average is then not exactly b bits per weight). */
  tailGroup: boolean;
  /** SBA candidates i ≤ 'all': ⌊n/2⌋ − 1 over all groups (official), capped at ⌊full/2⌋; 'full': ⌊full/2⌋ − 1. */
  sbaCount: string;
  /** 1-bit groups' scale: 'centered' mean|w − mean| (the spec), 'abs' mean|w| (official binary_scale). */
  binaryScale: string;
  /** SBA scores only the mixed candidates i ≥ 1 (official); off, the uniform i = 0 competes too. */
  sbaMixedOnly: boolean;
}

export const slimDefaults: SlimOptions = {
  bits: 2,
  groupSize: 128,
  percdamp: 0.01,
  lambdaSalience: 1,
  minMaxGrids: false,
  sbaMse: false,
  sbaRows: 0,
  absDamp: 0.01,
  tailGroup: false,
  sbaCount: 'all',
  binaryScale: 'abs',
  sbaMixedOnly: false,
};

/** SQC's error norm and search grid (official utils/mixed_quantizer.py: norm 2.4, τ ±0.1, 50 steps a side). */
const SQC_NORM = 2.4;
const SQC_RANGE = 0.1;
const SQC_STEPS = 50;
/** Salient elements: z-score of δ within the group above this (official salient_mask.py). */
const SALIENT_Z = 2;

/** Per-element salience summed per column group: [nGroups]. W [out, in], hinvDiag [in] = U_jj. */
export function groupSalience(W: Float32Array, outDim: number, inDim: number, hinvDiag: Float64Array, groupSize: number): Float64Array {
  const nGroups = groupCount(inDim, groupSize);
  const s = new Float64Array(nGroups);
  for (let r = 0; r < outDim; r++) {
    for (let c = 0; c < inDim; c++) {
      const w = W[r * inDim + c]!;
      const d = hinvDiag[c]!;
      s[Math.floor(c / groupSize)] += (w * w) / (d * d);
    }
  }
  return s;
}

/**
 * The SBA candidate with i groups moved down and i up, by ascending salience: [nGroups] widths.
 * Ties in salience keep the lower group index first (deterministic).
 */
export function allocateBits(salience: Float64Array, bits: number, i: number): Uint8Array {
  const n = salience.length;
  const order = Array.from({ length: n }, (_, k) => k).sort((a, b) => salience[a]! - salience[b]! || a - b);
  const widths = new Uint8Array(n).fill(bits);
  for (let k = 0; k < i; k++) {
    widths[order[k]!] = bits - 1;
    widths[order[n - 1 - k]!] = bits + 1;
  }
  return widths;
}

/**
 * 1-bit grid of values (spec step 5) in the GroupQuantized form ŵ = s·(q − z), q ∈ {0, 1}:
 * s = 2·scale and z = ½ − zero/s, both float16 so a packed file reproduces it exactly. s has a
 * floor relative to |zero| so a constant group keeps z within float16 range.
 */
export function binaryGrid(values: ArrayLike<number>, start: number, count: number, stride: number, absScale = false): { scale: number; zero: number } {
  let mean = 0;
  for (let k = 0, p = start; k < count; k++, p += stride) mean += values[p]!;
  mean /= count;
  let spread = 0;
  const centre = absScale ? 0 : mean;
  for (let k = 0, p = start; k < count; k++, p += stride) spread += Math.abs(values[p]! - centre);
  spread /= count;
  const s = roundToF16(Math.max(2 * spread, Math.abs(mean) * 2 ** -10, 2 ** -24));
  return { scale: s, zero: roundToF16(0.5 - mean / s) };
}

/** Level of w on any SliM grid: 1-bit groups take the nearer of their two values (sign rule). */
export function slimLevel(w: number, scale: number, zero: number, maxq: number): number {
  if (maxq === 1) return w / scale + zero >= 0.5 ? 1 : 0;
  return quantizeLevel(w, scale, zero, maxq);
}

/** SQC (§3.3) as a GPTQ group fitter: salience-weighted clipping search per row of the group. */
export function sqcFitter(lambdaSalience: number, search: boolean, absScale = false): GroupGridFitter {
  const err = (e: number) => Math.pow(Math.abs(e), SQC_NORM);
  const factors = [1];
  for (let k = 1; k <= SQC_STEPS; k++) factors.push(1 + (SQC_RANGE * k) / SQC_STEPS);
  for (let k = 1; k <= SQC_STEPS; k++) factors.push(1 - (SQC_RANGE * k) / SQC_STEPS);
  return {
    level: slimLevel,
    fit(wt, width, rows, bits, hinvDiag, scale, zero) {
      if (bits === 1) {
        for (let r = 0; r < rows; r++) ({ scale: scale[r], zero: zero[r] } = binaryGrid(wt, r, width, rows, absScale));
        return;
      }
      const maxq = maxLevel(bits);
      // salient elements of the whole group: z-score of δ = w²/U_jj² above 2 (std unbiased, as torch)
      const salient = new Uint8Array(width * rows);
      if (search && hinvDiag !== null && lambdaSalience !== 1 && width * rows > 1) {
        const delta = new Float64Array(width * rows);
        let mean = 0;
        for (let k = 0; k < width; k++) {
          const d2 = hinvDiag[k]! * hinvDiag[k]!;
          for (let r = 0; r < rows; r++) mean += delta[k * rows + r] = (wt[k * rows + r]! ** 2) / d2;
        }
        mean /= delta.length;
        let v = 0;
        for (const x of delta) v += (x - mean) ** 2;
        const sd = Math.sqrt(v / (delta.length - 1));
        for (let i = 0; i < delta.length; i++) salient[i] = sd > 0 && (delta[i]! - mean) / sd > SALIENT_Z ? 1 : 0;
      }
      for (let r = 0; r < rows; r++) {
        let lo = 0;
        let hi = 0;
        for (let k = 0; k < width; k++) {
          const w = wt[k * rows + r]!;
          if (w < lo) lo = w;
          if (w > hi) hi = w;
        }
        let best = Infinity;
        for (const p of search ? factors : [1]) {
          const g = fitGrid(p * lo, p * hi, bits, false);
          let e = 0;
          for (let k = 0; k < width; k++) {
            const w = wt[k * rows + r]!;
            const d = err(dequantizeLevel(quantizeLevel(w, g.scale, g.zero, maxq), g.scale, g.zero) - w);
            e += salient[k * rows + r] ? lambdaSalience * d : d;
          }
          if (e < best) {
            best = e;
            scale[r] = g.scale;
            zero[r] = g.zero;
          }
        }
      }
    },
  };
}

/** Ŵ [out, in] with each row's group rounded on its own min-max (or 1-bit) grid: SBA's cheap proxy. */
function roundGroups(W: Float32Array, outDim: number, inDim: number, groupSize: number, widths: Uint8Array, absScale: boolean): Float32Array {
  const out = new Float32Array(W.length);
  for (let r = 0; r < outDim; r++) {
    for (let gi = 0; gi < widths.length; gi++) {
      const c0 = gi * groupSize;
      const n = Math.min(groupSize, inDim - c0);
      const bits = widths[gi]!;
      let g: { scale: number; zero: number };
      if (bits === 1) g = binaryGrid(W, r * inDim + c0, n, 1, absScale);
      else {
        let lo = Infinity;
        let hi = -Infinity;
        for (let c = c0; c < c0 + n; c++) {
          lo = Math.min(lo, W[r * inDim + c]!);
          hi = Math.max(hi, W[r * inDim + c]!);
        }
        g = fitGrid(lo, hi, bits, false);
      }
      const maxq = maxLevel(bits);
      for (let c = c0; c < c0 + n; c++) out[r * inDim + c] = dequantizeLevel(slimLevel(W[r * inDim + c]!, g.scale, g.zero, maxq), g.scale, g.zero);
    }
  }
  return out;
}

/** Rows of X SBA scores on: all, or `limit` evenly spaced ones. [rows, in] */
function scoringRows(x: Float32Array, rows: number, inDim: number, limit: number): { x: Float32Array; rows: number } {
  if (limit <= 0 || limit >= rows) return { x, rows };
  const sub = new Float32Array(limit * inDim);
  for (let i = 0; i < limit; i++) {
    const r = Math.floor((i * rows) / limit);
    sub.set(x.subarray(r * inDim, (r + 1) * inDim), i * inDim);
  }
  return { x: sub, rows: limit };
}

/** Log-softmax of y[0..n) with probabilities clamped at 1e-6 as the official kl_div: (log p, p). */
function clampedLogSoftmax(y: Float32Array, off: number, n: number, logp: Float64Array, p: Float64Array): void {
  let max = -Infinity;
  for (let j = 0; j < n; j++) max = Math.max(max, y[off + j]!);
  let sum = 0;
  for (let j = 0; j < n; j++) sum += Math.exp(y[off + j]! - max);
  for (let j = 0; j < n; j++) {
    p[j] = Math.max(Math.exp(y[off + j]! - max) / sum, 1e-6);
    logp[j] = Math.log(p[j]!);
  }
}

/**
 * SBA's score of Ŵ: mean over calibration rows of KL(softmax(xŴᵀ) ‖ softmax(xWᵀ)) (official
 * kl_div, reduction batchmean), or of ‖x(Ŵ − W)ᵀ‖² / out. Y = XWᵀ [rows, out] precomputed.
 */
function outputChange(backend: Backend, X: { x: Float32Array; rows: number }, Y: Float32Array, Wq: Float32Array, outDim: number, inDim: number, mse: boolean): number {
  const chunk = Math.max(1, Math.min(X.rows, Math.floor((1 << 22) / outDim)));
  const yq = backend.alloc(chunk * outDim);
  const w = backend.alloc(outDim * inDim);
  w.set(Wq);
  const [lp, p, lq, q] = [0, 0, 0, 0].map(() => new Float64Array(outDim)) as [Float64Array, Float64Array, Float64Array, Float64Array];
  let total = 0;
  try {
    for (let r0 = 0; r0 < X.rows; r0 += chunk) {
      const m = Math.min(chunk, X.rows - r0);
      backend.matmul(yq, X.x.subarray(r0 * inDim, (r0 + m) * inDim), w, m, outDim, inDim);
      for (let i = 0; i < m; i++) {
        const off = (r0 + i) * outDim;
        if (mse) {
          for (let j = 0; j < outDim; j++) total += (yq[i * outDim + j]! - Y[off + j]!) ** 2 / outDim;
          continue;
        }
        clampedLogSoftmax(yq, i * outDim, outDim, lp, p);
        clampedLogSoftmax(Y, off, outDim, lq, q);
        for (let j = 0; j < outDim; j++) total += p[j]! * (lp[j]! - lq[j]!);
      }
    }
  } finally {
    backend.free?.(yq);
    backend.free?.(w);
  }
  return total / X.rows;
}

/**
 * SBA's largest candidate i for n groups of which `full` are ranked: 'all' the official ⌊n/2⌋ − 1,
 * at most ⌊full/2⌋ (the i lowest and i highest ranked groups distinct); 'full' ⌊full/2⌋ − 1.
 */
export function sbaShiftLimit(n: number, full: number, mode: string): number {
  return mode === 'full' ? Math.floor(full / 2) - 1 : Math.min(Math.floor(n / 2) - 1, Math.floor(full / 2));
}

/**
 * SBA (§3.2): the widths [nGroups] of the best candidate, its index i and score (i = 0: no
 * candidate, every group b bits — a layer with fewer than 4 whole groups).
 */
export function searchBitAllocation(
  backend: Backend,
  W: Float32Array, // [out, in]
  outDim: number,
  inDim: number,
  salience: Float64Array, // [nGroups]
  opts: Pick<SlimOptions, 'bits' | 'sbaMse' | 'sbaRows'> & Partial<Pick<SlimOptions, 'tailGroup' | 'sbaCount' | 'binaryScale' | 'sbaMixedOnly'>> & { groupSize: number },
  inputs: { x: Float32Array /* [rows, in] */; rows: number } | undefined,
): { widths: Uint8Array; shift: number; score: number } {
  const n = salience.length;
  const uniform = { widths: new Uint8Array(n).fill(opts.bits), shift: 0, score: NaN };
  // A partial last group stays at b and out of the search (unless tailGroup, the official code):
  // moving whole groups up and down then keeps the average at exactly b bits per weight.
  const full = inDim % opts.groupSize === 0 || opts.tailGroup === true ? n : n - 1;
  const maxShift = sbaShiftLimit(n, full, opts.sbaCount ?? 'all');
  if (maxShift < 1) return uniform;
  if (inputs === undefined) throw new RangeError('SliM-LLM SBA needs the calibration inputs of the layer');
  const X = scoringRows(inputs.x, inputs.rows, inDim, opts.sbaRows);
  const Y = new Float32Array(X.rows * outDim);
  backend.matmul(Y, X.x, W, X.rows, outDim, inDim);
  let best: { widths: Uint8Array; shift: number; score: number } = { widths: uniform.widths, shift: 0, score: Infinity };
  for (let i = opts.sbaMixedOnly === false ? 0 : 1; i <= maxShift; i++) {
    const widths = uniform.widths.slice();
    widths.set(allocateBits(salience.subarray(0, full), opts.bits, i));
    const score = outputChange(backend, X, Y, roundGroups(W, outDim, inDim, opts.groupSize, widths, opts.binaryScale === 'abs'), outDim, inDim, opts.sbaMse);
    if (score < best.score) best = { widths, shift: i, score };
  }
  return best;
}

/** U_jj (the diagonal of the inverse-Hessian factor GPTQ uses) from a copy of H, dead inputs fixed and dampened as GPTQ does. */
export function inverseFactorDiagonal(backend: Backend, H: Float64Array, n: number, percdamp: number, name: string): Float64Array {
  const h = backend.alloc64?.(n * n) ?? new Float64Array(n * n);
  try {
    h.set(H.subarray(0, n * n));
    fixDeadInputs(h, n);
    dampen(h, n, percdamp);
    if (!upperCholeskyOfInverse(backend, h, n)) throw new Error(`${name}: SliM-LLM: the dampened Hessian is not positive definite; raise percdamp`);
    return Float64Array.from({ length: n }, (_, j) => h[j * n + j]!);
  } finally {
    backend.free?.(h);
  }
}

/** H += d·I on the live inputs, in place (official get_salience's 0.01); dead inputs stay 0 for GPTQ. */
export function addAbsoluteDamp(H: Float64Array, n: number, d: number): void {
  if (d === 0) return;
  for (let j = 0; j < n; j++) if (H[j * n + j] !== 0) H[j * n + j] += d;
}

export function quantizeSlimLayer(
  W: Float32Array, // [out, in]
  outDim: number,
  inDim: number,
  H: Float64Array, // [in, in] 2XᵀX/n; overwritten
  opts: SlimOptions,
  backend: Backend,
  name = 'layer',
  inputs?: { x: Float32Array /* [rows, in] */; rows: number },
): LayerResult {
  const t0 = performance.now();
  const g = groupWidth(opts.groupSize, inDim);
  // 1. salience, on W with dead inputs zeroed (as the official fasterquant)
  const Wlive = W.slice();
  for (let j = 0; j < inDim; j++) {
    if (H[j * inDim + j] === 0) for (let r = 0; r < outDim; r++) Wlive[r * inDim + j] = 0;
  }
  addAbsoluteDamp(H, inDim, opts.absDamp);
  const hinvDiag = inverseFactorDiagonal(backend, H, inDim, opts.percdamp, name);
  const salience = groupSalience(Wlive, outDim, inDim, hinvDiag, g);
  // 2. SBA
  const sba = searchBitAllocation(backend, Wlive, outDim, inDim, salience, { ...opts, groupSize: g }, inputs);
  // 3–5. GPTQ with the group widths and SQC grids; one GPTQ block per group as the official code,
  // so each group's grid is fitted on weights carrying every earlier group's error feedback
  const r = quantizeGptqLayer(
    W, outDim, inDim, H,
    { ...gptqDefaults, bits: opts.bits, groupSize: g, percdamp: opts.percdamp, blockSize: g },
    backend, name,
    { groupBits: sba.widths, fitter: sqcFitter(opts.lambdaSalience, !opts.minMaxGrids, opts.binaryScale === 'abs') },
  );
  const count = (b: number) => sba.widths.filter((w) => w === b).length;
  r.stats = {
    ...r.stats,
    groups1: count(1), groups2: count(2), groups3: count(3), groups4: count(4),
    sbaShift: sba.shift, sbaScore: sba.score,
    seconds: (performance.now() - t0) / 1000,
  };
  return r;
}

export const slim: QuantMethod<SlimOptions> = {
  name: 'slim',
  describe:
    'SliM-LLM (Huang et al. 2024): salience-driven mixed precision per column group. Group salience ' +
    'Σ w²/U_jj² from the inverse-Hessian factor; SBA moves the i least/most salient groups to b−1/b+1 ' +
    'bits (average exactly b), i chosen by the KL of the layer\'s softmax outputs (official; --sba-mse: ' +
    'output MSE) on the calibration inputs; GPTQ with per-group widths, one block per group; ' +
    'SQC clipping search p ∈ [0.9, 1.1] with salient errors weighted by --lambda-salience (default 1 as ' +
    'the official code, which makes the weighting a no-op; the paper\'s method is > 1); 1-bit groups: ' +
    'mean ± mean|w| (official; --binary-scale centered: mean ± mean|w − mean|). H += 0.01·I before the relative dampening (--abs-damp, official); bitcrush: SBA ' +
    'also scores the uniform allocation (--sba-mixed-only: official) and keeps a partial last group at b ' +
    '(--tail-group: official, more bits). docs/slim.md has the ablation.',
  defaults: slimDefaults,
  options: {
    bits: { kind: 'int', help: 'average bits per weight b (groups get b−1, b, b+1)', choices: [2, 3] },
    groupSize: { kind: 'int', help: 'columns per group (all of a group share one bit-width)', min: 1 },
    percdamp: { kind: 'number', help: 'dampening λ: H += λ·mean(diag H)·I', min: 0, max: 1 },
    lambdaSalience: { kind: 'number', help: 'SQC weight λ_s of the salient elements\' error', min: 0 },
    minMaxGrids: { kind: 'boolean', help: 'skip the SQC clipping search: min-max grids (ablation)' },
    sbaMse: { kind: 'boolean', help: 'score SBA candidates by output MSE instead of KL' },
    sbaRows: { kind: 'int', help: 'calibration rows SBA scores on (0 = all)', min: 0 },
    absDamp: { kind: 'number', help: 'absolute dampening added to diag(H) before the relative one (official: 0.01)', min: 0 },
    tailGroup: { kind: 'boolean', help: 'rank a partial last group in SBA as the official code (average width then not exactly b)' },
    sbaCount: { kind: 'string', pattern: /^(all|full)$/, help: 'SBA candidates: all (⌊n/2⌋ − 1 over all groups, official) or full (⌊full/2⌋ − 1 over the full groups)' },
    sbaMixedOnly: { kind: 'boolean', help: 'SBA scores only mixed candidates (official); default: the uniform allocation competes too' },
    binaryScale: { kind: 'string', pattern: /^(centered|abs)$/, help: '1-bit groups: zero = mean, scale = mean|w − mean| (centered) or mean|w| (abs, official binary_scale)' },
  },
  requires: { hessian: true, inputs: true },
  quantizeLayer(W, outDim, inDim, H, opts, ctx: LayerContext): LayerResult {
    checkLayerShape(ctx, W, outDim, inDim, H);
    if (H === null) throw new RangeError(`${ctx.name}: SliM-LLM needs the layer Hessian`);
    return quantizeSlimLayer(W, outDim, inDim, H, opts, ctx.backend, ctx.name, ctx.inputs);
  },
};
