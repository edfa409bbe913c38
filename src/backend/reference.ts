/**
 * The reference backend: every kernel as plain loops, the oracle the fast backends are tested
 * against. Dot products accumulate in float64 (JavaScript numbers), so the reference is at
 * least as accurate as any float32 kernel; Cholesky and the triangular inverse are float64.
 */
import type { Backend } from './types.js';

export function createReferenceBackend(): Backend {
  return {
    name: 'reference',
    threads: 1,
    alloc: (length) => new Float32Array(length),
    alloc64: (length) => new Float64Array(length),
    free: () => {},
    matmul: referenceMatmul,
    gemv: referenceGemv,
    xtxAccumulate: referenceXtx,
    cholesky: referenceCholesky,
    triInverse: referenceTriInverse,
    dispose: () => {},
  };
}

/** c[m,n] = a[m,k] · b[n,k]ᵀ. */
export function referenceMatmul(c: Float32Array, a: Float32Array, b: Float32Array, m: number, n: number, k: number): void {
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * k + p] * b[j * k + p];
      c[i * n + j] = s;
    }
  }
}

/** y[n] = w[n,k] · x[k]. */
export function referenceGemv(y: Float32Array, w: Float32Array, x: Float32Array, n: number, k: number): void {
  referenceMatmul(y, x, w, 1, n, k);
}

/** h[k,k] += x[rows,k]ᵀ · x[rows,k] in float64. */
export function referenceXtx(h: Float64Array, x: Float32Array, rows: number, k: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * k;
    for (let i = 0; i < k; i++) {
      const xi = x[o + i];
      if (xi === 0) continue;
      for (let j = 0; j < k; j++) h[i * k + j] += xi * x[o + j];
    }
  }
}

/** In-place lower Cholesky factor; false when a[n,n] is not positive definite. */
export function referenceCholesky(a: Float64Array, n: number): boolean {
  for (let j = 0; j < n; j++) {
    let s = a[j * n + j];
    for (let p = 0; p < j; p++) s -= a[j * n + p] * a[j * n + p];
    if (!(s > 0)) return false; // also rejects NaN
    const d = Math.sqrt(s);
    a[j * n + j] = d;
    for (let i = j + 1; i < n; i++) {
      let t = a[i * n + j];
      for (let p = 0; p < j; p++) t -= a[i * n + p] * a[j * n + p];
      a[i * n + j] = t / d;
    }
    for (let c = j + 1; c < n; c++) a[j * n + c] = 0;
  }
  return true;
}

/** In-place inverse of a lower-triangular l[n,n], column by column from the right. */
export function referenceTriInverse(l: Float64Array, n: number): void {
  for (let j = n - 1; j >= 0; j--) {
    const xjj = 1 / l[j * n + j];
    // Descending i keeps the original column j of L readable until row i is overwritten.
    for (let i = n - 1; i > j; i--) {
      let s = 0;
      for (let p = j + 1; p <= i; p++) s += l[i * n + p] * l[p * n + j];
      l[i * n + j] = -s * xjj;
    }
    l[j * n + j] = xjj;
  }
}
