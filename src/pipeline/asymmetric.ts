/**
 * Asymmetric calibration targets (bitcrush's addition to AQLM; the idea of GPTAQ, Li et al.
 * 2025, "asymmetric calibration"): a linear of block l sees inputs X̃ in the model whose blocks
 * before l are quantized, but the float model feeds it X. Quantizing W on ‖(Ŵ − W)X̃ᵀ‖² keeps
 * the error the earlier blocks made; the asymmetric objective ‖ŴX̃ᵀ − WXᵀ‖² asks the layer to
 * undo it. With C = XᵀX̃/n and G = X̃ᵀX̃/n it equals tr((Ŵ − W*) G (Ŵ − W*)ᵀ) + const for
 *   W* = (W·C + δW)(G + δI)⁻¹
 * (δ = 1 % of G's mean diagonal: a ridge towards W, so a poorly sampled direction keeps the
 * float weights), so the method runs unchanged on the target W + α(W* − W) with the usual H.
 */
import type { Backend } from '../backend/types.js';

/** Relative ridge δ / mean(diag G). */
export const ASYM_DAMP = 0.01;
/** Rows per chunk of the cross-product (two [in, chunk] transposed copies). */
const CHUNK_ROWS = 4096;

/** C = XᵀX̃/n [in, in] (float64) of two [rows, in] input arrays, chunked over rows on the backend. */
export function crossMoment(backend: Backend, xf: Float32Array, xq: Float32Array, rows: number, inDim: number): Float64Array {
  const chunk = Math.min(rows, CHUNK_ROWS);
  const a = backend.alloc(inDim * chunk);
  const b = backend.alloc(inDim * chunk);
  const c = backend.alloc(inDim * inDim);
  const out = new Float64Array(inDim * inDim);
  try {
    for (let r0 = 0; r0 < rows; r0 += chunk) {
      const n = Math.min(chunk, rows - r0);
      for (let i = 0; i < n; i++) {
        const o = (r0 + i) * inDim;
        for (let k = 0; k < inDim; k++) {
          a[k * n + i] = xf[o + k]!;
          b[k * n + i] = xq[o + k]!;
        }
      }
      backend.matmul(c, a, b, inDim, inDim, n); // [in, n]·[in, n]ᵀ
      for (let i = 0; i < inDim * inDim; i++) out[i] += c[i]!;
    }
  } finally {
    for (const buf of [a, b, c]) backend.free?.(buf);
  }
  for (let i = 0; i < inDim * inDim; i++) out[i] /= rows;
  return out;
}

/**
 * W + α(W* − W) [out, in] for W [out, in], H = 2G (the pipeline's Hessian) and C from
 * crossMoment. Returns W itself when G + δI is not positive definite.
 */
export function asymmetricTarget(
  backend: Backend, w: Float32Array, out: number, inDim: number, H: Float64Array, C: Float64Array, alpha: number,
): Float32Array {
  const A = backend.alloc64?.(inDim * inDim) ?? new Float64Array(inDim * inDim);
  try {
    let tr = 0;
    for (let i = 0; i < inDim; i++) tr += H[i * inDim + i]! / 2;
    const delta = ASYM_DAMP * (tr / inDim) + 1e-12;
    for (let i = 0; i < inDim * inDim; i++) A[i] = H[i]! / 2;
    for (let i = 0; i < inDim; i++) A[i * inDim + i] += delta;
    if (!backend.cholesky(A, inDim)) return w;
    const res = new Float32Array(out * inDim);
    const b = new Float64Array(inDim);
    for (let r = 0; r < out; r++) {
      const o = r * inDim;
      // b = (w_r C + δ w_r)ᵀ, then (G + δI) x = b by the Cholesky factor (G symmetric)
      for (let c = 0; c < inDim; c++) b[c] = delta * w[o + c]!;
      for (let i = 0; i < inDim; i++) {
        const wi = w[o + i]!;
        if (wi === 0) continue;
        const ci = i * inDim;
        for (let c = 0; c < inDim; c++) b[c] += wi * C[ci + c]!;
      }
      for (let i = 0; i < inDim; i++) {
        let v = b[i]!;
        const li = i * inDim;
        for (let k = 0; k < i; k++) v -= A[li + k]! * b[k]!;
        b[i] = v / A[li + i]!;
      }
      for (let i = inDim - 1; i >= 0; i--) {
        let v = b[i]!;
        for (let k = i + 1; k < inDim; k++) v -= A[k * inDim + i]! * b[k]!;
        b[i] = v / A[i * inDim + i]!;
      }
      for (let c = 0; c < inDim; c++) res[o + c] = w[o + c]! + alpha * (b[c]! - w[o + c]!);
    }
    for (let i = 0; i < res.length; i++) if (!Number.isFinite(res[i]!)) return w;
    return res;
  } finally {
    backend.free?.(A);
  }
}
