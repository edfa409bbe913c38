/**
 * Splitting [lo, hi) into per-thread ranges. Empty ranges are dropped, so the result may have
 * fewer parts than asked for (and always at least one range, possibly empty when lo == hi).
 */
import type { Range } from './wasm-pool.js';

/** Equal ranges whose inner boundaries are multiples of `align` past lo. */
export function evenRanges(lo: number, hi: number, parts: number, align: number): Range[] {
  const blocks = Math.ceil((hi - lo) / align);
  const p = Math.max(1, Math.min(parts, blocks));
  const out: Range[] = [];
  for (let t = 0; t < p; t++) {
    const a = lo + Math.floor((blocks * t) / p) * align;
    const b = t === p - 1 ? hi : lo + Math.floor((blocks * (t + 1)) / p) * align;
    if (b > a || out.length === 0) out.push([a, Math.min(b, hi)]);
  }
  return out;
}

/** Ranges of roughly equal total cost, where item i costs cost(i) (e.g. triangular rows). */
export function linearCostRanges(lo: number, hi: number, parts: number, cost: (i: number) => number): Range[] {
  if (parts <= 1 || hi - lo <= 1) return [[lo, hi]];
  let total = 0;
  for (let i = lo; i < hi; i++) total += cost(i);
  const out: Range[] = [];
  let start = lo;
  let acc = 0;
  for (let i = lo; i < hi && out.length < parts - 1; i++) {
    acc += cost(i);
    if (acc >= (total * (out.length + 1)) / parts) {
      out.push([start, i + 1]);
      start = i + 1;
    }
  }
  if (start < hi) out.push([start, hi]);
  return out;
}
