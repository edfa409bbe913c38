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
 *
 * W* = W·(C + δI)·L⁻ᵀ·L⁻¹ with L the Cholesky factor of G + δI, as float32 products on the
 * backend (of float64 factors) instead of two triangular solves per row: left to right when
 * out < in (3·out·in² multiply-adds), else through K = (C + δI)(G + δI)⁻¹ (2·in³ + out·in²).
 */
export function asymmetricTarget(
  backend: Backend, w: Float32Array, out: number, inDim: number, H: Float64Array, C: Float64Array, alpha: number,
): Float32Array {
  const n2 = inDim * inDim;
  const A = backend.alloc64?.(n2) ?? new Float64Array(n2);
  const bufs: Float32Array[] = [];
  const alloc = (len: number): Float32Array => { const b = backend.alloc(len); bufs.push(b); return b; };
  try {
    let tr = 0;
    for (let i = 0; i < inDim; i++) tr += H[i * inDim + i]! / 2;
    const delta = ASYM_DAMP * (tr / inDim) + 1e-12;
    for (let i = 0; i < n2; i++) A[i] = H[i]! / 2;
    for (let i = 0; i < inDim; i++) A[i * inDim + i] += delta;
    if (!backend.cholesky(A, inDim)) return w;
    backend.triInverse(A, inDim); // A = L⁻¹ (lower)
    const linv = alloc(n2); // [in, in] L⁻¹
    const linvT = alloc(n2); // [in, in] (L⁻¹)ᵀ
    for (let i = 0; i < inDim; i++) {
      for (let j = 0; j <= i; j++) linv[i * inDim + j] = linvT[j * inDim + i] = A[i * inDim + j]!;
    }
    const cd = alloc(n2); // [in, in] C + δI
    for (let i = 0; i < n2; i++) cd[i] = C[i]!;
    for (let i = 0; i < inDim; i++) cd[i * inDim + i] = C[i * inDim + i]! + delta;
    const wb = alloc(out * inDim); // [out, in] W in backend memory
    wb.set(w);
    const res = alloc(out * inDim); // [out, in] W*
    if (out < inDim) {
      const cdT = alloc(n2); // [in, in] (C + δI)ᵀ
      for (let i = 0; i < inDim; i++) for (let j = 0; j < inDim; j++) cdT[j * inDim + i] = cd[i * inDim + j]!;
      const t = alloc(out * inDim); // [out, in]
      backend.matmul(t, wb, cdT, out, inDim, inDim); // W·(C + δI)
      backend.matmul(res, t, linv, out, inDim, inDim); // ·L⁻ᵀ
      t.set(res);
      backend.matmul(res, t, linvT, out, inDim, inDim); // ·L⁻¹
    } else {
      const inv = alloc(n2); // [in, in] (G + δI)⁻¹ = L⁻ᵀ·L⁻¹
      backend.matmul(inv, linvT, linvT, inDim, inDim, inDim);
      const kT = alloc(n2); // [in, in] Kᵀ = (G + δI)⁻¹·(C + δI)ᵀ (the inverse is symmetric)
      backend.matmul(kT, inv, cd, inDim, inDim, inDim);
      backend.matmul(res, wb, kT, out, inDim, inDim); // W·K
    }
    const target = new Float32Array(out * inDim);
    for (let i = 0; i < target.length; i++) {
      const v = w[i]! + alpha * (res[i]! - w[i]!);
      if (!Number.isFinite(v)) return w;
      target[i] = v;
    }
    return target;
  } finally {
    backend.free?.(A);
    for (const b of bufs) backend.free?.(b);
  }
}
