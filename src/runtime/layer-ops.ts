/**
 * The vector work of a transformer block between its matvecs: the residual add fused with the
 * next RMSNorm, SwiGLU's silu(gate) ⊙ up, and the one-row (decode) attention over the KV cache.
 * The functions here are the reference, the forward pass's own arithmetic; a backend may carry
 * faster ones (`layerOps`: the native addon, native/decode-ops.c — one call per step instead of
 * JavaScript loops, attention split over heads), which test/layer-ops.test.ts checks against these.
 */
import type { Backend } from '../backend/types.js';

export interface LayerOps {
  /** x[n] += d[n] (d null: no add), then o[n] = weight ⊙ x / rms(x). */
  addRmsnorm(o: Float32Array, x: Float32Array, d: Float32Array | null, weight: Float32Array, n: number, eps: number): void;
  /** h[n] = silu(h) ⊙ u. */
  siluMul(h: Float32Array, u: Float32Array, n: number): void;
  /**
   * out [nHeads·headSize] = softmax(q_h · Kᵀ / √headSize) · V for each query head h of one row,
   * over cache rows 0..pos (row p at keyCache[layerOff + p·kvDim ..]; kv head ⌊h / (nHeads / nKvHeads)⌋).
   * att [≥ pos + 1] is scratch for one head's scores (kernels with their own may ignore it).
   */
  attention(
    out: Float32Array, q: Float32Array, keyCache: Float32Array, valueCache: Float32Array,
    layerOff: number, pos: number, nHeads: number, nKvHeads: number, headSize: number, kvDim: number, att: Float32Array,
  ): void;
}

export const referenceLayerOps: LayerOps = {
  addRmsnorm(o, x, d, weight, n, eps) {
    if (d) for (let i = 0; i < n; i++) x[i] += d[i];
    rmsnorm(o, x, weight, 1, n, eps);
  },
  siluMul(h, u, n) {
    for (let i = 0; i < n; i++) {
      const g = h[i];
      h[i] = (g / (1 + Math.exp(-g))) * u[i];
    }
  },
  attention(out, q, keyCache, valueCache, layerOff, pos, nHeads, nKvHeads, hs, kvDim, att) {
    const groupSize = nHeads / nKvHeads;
    const scale = 1 / Math.sqrt(hs);
    for (let h = 0; h < nHeads; h++) {
      const qOff = h * hs;
      const kvOff = layerOff + Math.floor(h / groupSize) * hs;
      // scores against every cached key up to this position
      for (let j = 0; j <= pos; j++) {
        const kOff = kvOff + j * kvDim;
        let dot = 0;
        for (let i = 0; i < hs; i++) dot += q[qOff + i] * keyCache[kOff + i];
        att[j] = dot * scale;
      }
      softmaxInPlace(att, pos + 1);
      // weighted sum of the cached values
      const o = out.subarray(qOff, qOff + hs);
      o.fill(0);
      for (let j = 0; j <= pos; j++) {
        const a = att[j];
        const vOff = kvOff + j * kvDim;
        for (let i = 0; i < hs; i++) o[i] += a * valueCache[vOff + i];
      }
    }
  },
};

/** o[r] = weight ⊙ x[r] / rms(x[r]) for each of `rows` rows. */
export function rmsnorm(
  o: Float32Array, // [rows, n]
  x: Float32Array, // [rows, n]
  weight: Float32Array, // [n]
  rows: number,
  n: number,
  eps: number,
): void {
  for (let r = 0; r < rows; r++) {
    const off = r * n;
    let ss = 0;
    for (let i = 0; i < n; i++) ss += x[off + i] * x[off + i];
    const scale = 1 / Math.sqrt(ss / n + eps);
    for (let i = 0; i < n; i++) o[off + i] = weight[i] * (scale * x[off + i]);
  }
}

/** softmax of x[0..n) in place. */
export function softmaxInPlace(x: Float32Array, n: number): void {
  let max = -Infinity;
  for (let j = 0; j < n; j++) if (x[j] > max) max = x[j];
  let sum = 0;
  for (let j = 0; j < n; j++) {
    x[j] = Math.exp(x[j] - max);
    sum += x[j];
  }
  for (let j = 0; j < n; j++) x[j] /= sum;
}

/** The backend's layer ops, or the reference. */
export function layerOpsOf(backend: Backend): LayerOps {
  return (backend as Backend & { layerOps?: LayerOps }).layerOps ?? referenceLayerOps;
}
