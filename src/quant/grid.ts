/**
 * The min-max uniform quantization grid, as pure functions (gptq.py keeps its grid in its own
 * file too). A grid maps a weight w to an integer level q in [0, maxq] and back:
 *   q = clamp(round(w / scale) + zero, 0, maxq),   ŵ = scale · (q − zero),   maxq = 2^bits − 1.
 * RTN, GPTQ and SliM-LLM all fit their groups with `fitGrid`, so a packed file (which stores
 * scale as float16 and zero as an integer) reproduces their fake-quantized weights exactly.
 */
import { roundToF16 } from '../formats/quantized.js';

export interface Grid {
  /** float16-representable, > 0 */
  scale: number;
  /** integer in [0, maxq] */
  zero: number;
}

/** Smallest positive float16 (subnormal): scales below it would round to 0. */
const F16_MIN = 2 ** -24;
const F16_MAX = 65504;

export function maxLevel(bits: number): number {
  return 2 ** bits - 1;
}

/**
 * The grid of a group whose weights span [min, max].
 * - The range is widened to contain 0 (as gptq.py's quantizer does), so that zero is a level
 *   in [0, maxq] — the invariant the packed formats rely on — and w = 0 is exact.
 * - Asymmetric: scale = (max − min) / maxq, zero = round(−min / scale).
 * - Symmetric: range ±max|w|, zero = (maxq + 1) / 2 = 2^(bits−1), as gptq.py (so the top level
 *   is (2^(bits−1) − 1)·scale, slightly below max|w|). gptq.py leaves the range at [0, max]
 *   when no weight is negative, which clips half the group; here the range is always ±max|w|.
 * - An all-zero group gets the range [−1, 1] (gptq.py) so the scale stays positive.
 * The scale is rounded to float16 before the zero point is derived from it, so the grid
 * used for fake quantization is exactly the one a packed file stores.
 */
export function fitGrid(min: number, max: number, bits: number, sym: boolean): Grid {
  if (!Number.isFinite(min) || !Number.isFinite(max)) {
    throw new RangeError(`fitGrid: weights are not finite (min ${min}, max ${max})`);
  }
  const maxq = maxLevel(bits);
  let lo = Math.min(min, 0);
  let hi = Math.max(max, 0);
  if (sym) {
    hi = Math.max(-lo, hi);
    lo = -hi;
  }
  if (lo === 0 && hi === 0) {
    lo = -1;
    hi = 1;
  }
  const scale = Math.min(Math.max(roundToF16((hi - lo) / maxq), F16_MIN), F16_MAX);
  const zero = sym ? (maxq + 1) / 2 : Math.min(Math.max(Math.round(-lo / scale), 0), maxq);
  return { scale, zero };
}

/** Min and max of values[start], values[start + stride], … (count of them). */
export function rangeOf(values: ArrayLike<number>, start: number, count: number, stride = 1): [number, number] {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0, p = start; i < count; i++, p += stride) {
    const v = values[p];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return [min, max];
}

/** Round half to even, like torch.round, so ties land where the reference code puts them. */
function roundEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The level of w on the grid. */
export function quantizeLevel(w: number, scale: number, zero: number, maxq: number): number {
  const q = roundEven(w / scale) + zero;
  return q < 0 ? 0 : q > maxq ? maxq : q;
}

/**
 * The value of level q, rounded to float32 exactly as `dequantizeGroups` stores it (the
 * product of a float16 scale and a small integer is exact in float64; fround gives the
 * float32 a Float32Array would hold).
 */
export function dequantizeLevel(q: number, scale: number, zero: number): number {
  return Math.fround(scale * (q - zero));
}

/** ŵ: w snapped to the grid (fake quantization). */
export function fakeQuantize(w: number, scale: number, zero: number, maxq: number): number {
  return dequantizeLevel(quantizeLevel(w, scale, zero, maxq), scale, zero);
}

/** Columns per group: `groupSize` ≤ 0 (gptq.py's −1) or ≥ inDim means one grid per row. */
export function groupWidth(groupSize: number, inDim: number): number {
  return groupSize <= 0 || groupSize >= inDim ? inDim : groupSize;
}
