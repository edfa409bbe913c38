/**
 * Reference of the native 8-bit-code AQLM kernels' int8 lookup tables (native/codebook-lut8.c,
 * compared in test/formats.test.ts), in the same role as int8-activations.ts for the grid formats.
 * The float table of AQLM §3.3, T[(j, m), k] = C_m[k] · x_j, is cut into slices s of
 * CODEBOOK_SLICE groups j of one codebook m (codebooks apart: AQLM's later codebooks fit
 * residuals and are several times smaller); each slice keeps one step
 * Δ_s = max_{(j,m)∈s,k} |T[(j, m), k]| / 127 and the entries q = round(T / Δ_s), so
 *   y_r = s_r · Σ_s Δ_s · Σ_{(j,m)∈s} q[(j, m), b_{r,j,m}].
 * Rounding moves each entry by at most Δ_s / 2, hence the bound
 *   |y_r − (W·x)_r| ≤ |s_r| · Σ_s n_s · Δ_s / 2      (n_s groups in slice s)
 * (plus float32 accumulation), returned per row. The step follows the largest |C_m[k]·x_j| of
 * the slice's groups, as int8 activation blocks follow their largest |x_j|.
 */
import type { CodebookQuantized } from './codebook.js';

/** Groups of one codebook per int8 step (native/codebook.h CB_SLICE). */
export const CODEBOOK_SLICE = 16;

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
  const nG = inDim / g;
  const perM = Math.ceil(nG / CODEBOOK_SLICE);
  // slice s = (codebook m, groups [j0, j1)): its step and the int8 table rows [nG·M, K] in file index order j·M + m
  const slices: Array<{ m: number; j0: number; j1: number; step: number }> = [];
  const table = new Int8Array(nG * M * K);
  const t = new Float32Array(CODEBOOK_SLICE * K);
  for (let m = 0; m < M; m++) {
    for (let p = 0; p < perM; p++) {
      const j0 = p * CODEBOOK_SLICE;
      const j1 = Math.min(j0 + CODEBOOK_SLICE, nG);
      let max = 0;
      for (let j = j0; j < j1; j++) {
        for (let k = 0; k < K; k++) {
          let d = 0;
          for (let u = 0; u < g; u++) d += codebooks[(m * K + k) * g + u]! * x[j * g + u]!;
          t[(j - j0) * K + k] = d;
          max = Math.max(max, Math.abs(t[(j - j0) * K + k]!));
        }
      }
      const inv = max > 0 ? Math.fround(127 / max) : 0;
      for (let j = j0; j < j1; j++) {
        for (let k = 0; k < K; k++) table[(j * M + m) * K + k] = Math.round(Math.fround(t[(j - j0) * K + k]! * inv));
      }
      slices.push({ m, j0, j1, step: Math.fround(max / 127) });
    }
  }
  const y = new Float32Array(outDim);
  const bound = new Float32Array(outDim);
  const n = nG * M;
  for (let r = 0; r < outDim; r++) {
    let acc = 0;
    let b = 0;
    for (const { m, j0, j1, step } of slices) {
      let sum = 0;
      for (let j = j0; j < j1; j++) sum += table[(j * M + m) * K + codes[r * n + j * M + m]!]!;
      acc += step * sum;
      b += ((j1 - j0) * step) / 2;
    }
    y[r] = scale[r]! * acc;
    bound[r] = Math.abs(scale[r]!) * b;
  }
  return { y, bound, maxStep: slices.reduce((a, s) => Math.max(a, s.step), 0) };
}
