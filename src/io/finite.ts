/**
 * Weights are untrusted input too: one NaN or Inf in a tensor makes every logit NaN, and a
 * NaN perplexity or an empty story with exit code 0 looks like a result. Loaders reject
 * non-finite values when a tensor is read, naming it.
 */
import { InputError } from './errors.js';

/** Index of the first NaN or ±Infinity in `values`, or -1. */
export function firstNonFinite(values: ArrayLike<number>): number {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    // v - v is 0 for every finite v and NaN for NaN and ±Infinity: one compare per value
    if (v - v !== 0) return i;
  }
  return -1;
}

/** Throws an InputError naming `file` and `tensor` when `values` holds a NaN or an infinity. */
export function checkFinite(file: string, tensor: string, values: ArrayLike<number>): void {
  const i = firstNonFinite(values);
  if (i >= 0) throw new InputError(file, `tensor ${tensor} holds a non-finite value (${values[i]}) at index ${i}`);
}
