/**
 * Reference of the native 8-bit-code AQLM kernels' int8 lookup tables (native/codebook-lut8.c,
 * compared in test/formats.test.ts), in the same role as int8-activations.ts for the grid formats.
 * The float table of AQLM §3.3, T[i, k] = C_m[k] · x_j for table index i = j·M + m, is cut into
 * slices of CODEBOOK_SLICE indices; each slice s keeps one step Δ_s = max_{i∈s,k} |T[i, k]| / 127
 * and the entries q[i, k] = round(T[i, k] / Δ_s), so
 *   y_r = s_r · Σ_s Δ_s · Σ_{i∈s} q[i, b_{r,i}].
 * Rounding moves each entry by at most Δ_s / 2, hence the bound
 *   |y_r − (W·x)_r| ≤ |s_r| · Σ_s n_s · Δ_s / 2      (n_s indices in slice s)
 * (plus float32 accumulation), returned per row. The step follows the largest |C_m[k]·x_j| of
 * the slice's CODEBOOK_SLICE / M groups, as int8 activation blocks follow their largest |x_j|.
 */
import type { CodebookQuantized } from './codebook.js';

/** Table indices per int8 step (native/codebook.h CB_SLICE). */
export const CODEBOOK_SLICE = 32;

export interface CodebookInt8Result {
  /** [outDim] y = s_r · Σ_s Δ_s · Σ q. */
  y: Float32Array;
  /** [outDim] the rounding bound |s_r| · Σ_s n_s·Δ_s / 2 on |y − W·x|. */
  bound: Float32Array;
  /** max_s Δ_s: a kernel whose float32 table lands an entry on the other side of a rounding tie differs by Δ_s there. */
  maxStep: number;
}

/** y = W·x through int8 tables (payload with B = 8; x [inDim]). */
export function codebookInt8Matvec(q: CodebookQuantized, x: Float32Array): CodebookInt8Result {
  const { outDim, inDim, M, B, g, codes, codebooks, scale } = q;
  if (B !== 8) throw new Error(`codebookInt8Matvec: B = ${B}, the int8 tables take 8-bit codes`);
  const K = 256;
  const n = (inDim / g) * M;
  const nsl = Math.ceil(n / CODEBOOK_SLICE);
  const table = new Int8Array(n * K);
  const step = new Float32Array(nsl);
  const t = new Float32Array(CODEBOOK_SLICE * K);
  for (let s = 0; s < nsl; s++) {
    const i0 = s * CODEBOOK_SLICE;
    const i1 = Math.min(i0 + CODEBOOK_SLICE, n);
    let max = 0;
    for (let i = i0; i < i1; i++) {
      const j = Math.floor(i / M);
      const m = i % M;
      for (let k = 0; k < K; k++) {
        let d = 0;
        for (let u = 0; u < g; u++) d += codebooks[(m * K + k) * g + u]! * x[j * g + u]!;
        t[(i - i0) * K + k] = d;
        max = Math.max(max, Math.abs(t[(i - i0) * K + k]!));
      }
    }
    step[s] = Math.fround(max / 127);
    const inv = max > 0 ? Math.fround(127 / max) : 0;
    for (let e = 0; e < (i1 - i0) * K; e++) table[i0 * K + e] = Math.round(Math.fround(t[e]! * inv));
  }
  const y = new Float32Array(outDim);
  const bound = new Float32Array(outDim);
  for (let r = 0; r < outDim; r++) {
    let acc = 0;
    let b = 0;
    for (let s = 0; s < nsl; s++) {
      const i0 = s * CODEBOOK_SLICE;
      const i1 = Math.min(i0 + CODEBOOK_SLICE, n);
      let sum = 0;
      for (let i = i0; i < i1; i++) sum += table[i * K + codes[r * n + i]!]!;
      acc += step[s]! * sum;
      b += ((i1 - i0) * step[s]!) / 2;
    }
    y[r] = scale[r]! * acc;
    bound[r] = Math.abs(scale[r]!) * b;
  }
  return { y, bound, maxStep: step.reduce((a, b) => Math.max(a, b), 0) };
}
