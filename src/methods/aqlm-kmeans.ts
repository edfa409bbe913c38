/**
 * Residual k-means initialisation of AQLM's codebooks (Egiazarian et al. 2024, §3.1, "we
 * initialize codebooks with residual K-means"; aq.py `init_aq_kmeans`): k-means on the weight
 * groups gives codebook 1, the nearest codeword is subtracted, k-means on the residuals gives
 * codebook 2, and so on. Plain Euclidean k-means (Lloyd); distances as ‖c‖² − 2·p·c with the
 * p·c products as one backend matmul per chunk of points.
 */
import type { Backend } from '../backend/types.js';

export interface KmeansOptions {
  /** Lloyd iterations at most (stops earlier when no assignment changes). */
  iters: number;
  rand: () => number;
  backend: Backend;
  /** Empty clusters keep their centroid (the official fit_kmeans) instead of taking over the worst-served point. */
  keepEmpty?: boolean;
}

/** Score buffer cap: points per chunk × K ≤ this many floats (16 MB). */
const CHUNK_FLOATS = 1 << 22;

/**
 * Nearest centroid of every point: writes assign[i] and returns the squared distances.
 * points [n, d], centroids [K, d].
 */
export function nearestCentroids(
  points: Float32Array, n: number, d: number, centroids: Float32Array, K: number, assign: Uint16Array | Int32Array, backend: Backend,
): Float64Array {
  const norms = new Float32Array(K);
  for (let k = 0; k < K; k++) {
    let s = 0;
    for (let t = 0; t < d; t++) s += centroids[k * d + t]! ** 2;
    norms[k] = s;
  }
  const chunk = Math.max(1, Math.min(n, Math.floor(CHUNK_FLOATS / K)));
  const scores = backend.alloc(chunk * K); // [chunk, K] p·c
  const dist = new Float64Array(n);
  try {
    for (let i0 = 0; i0 < n; i0 += chunk) {
      const rows = Math.min(chunk, n - i0);
      backend.matmul(scores, points.subarray(i0 * d, (i0 + rows) * d), centroids, rows, K, d);
      for (let i = 0; i < rows; i++) {
        let best = 0;
        let bestV = Infinity;
        const o = i * K;
        for (let k = 0; k < K; k++) {
          const v = norms[k]! - 2 * scores[o + k]!;
          if (v < bestV) { bestV = v; best = k; }
        }
        assign[i0 + i] = best;
        let p2 = 0;
        for (let t = 0; t < d; t++) p2 += points[(i0 + i) * d + t]! ** 2;
        dist[i0 + i] = Math.max(0, p2 + bestV);
      }
    }
  } finally {
    backend.free?.(scores);
  }
  return dist;
}

/**
 * Lloyd's k-means of points [n, d] into K centroids [K, d], seeded with K distinct random points.
 * With n ≤ K every point is its own centroid (the unused codewords repeat random points).
 * Empty clusters are re-seeded with the point farthest from its centroid.
 */
export function kmeans(points: Float32Array, n: number, d: number, K: number, opts: KmeansOptions): { centroids: Float32Array; assign: Uint16Array } {
  const centroids = new Float32Array(K * d);
  const assign = new Uint16Array(n);
  if (n <= K) {
    centroids.set(points.subarray(0, n * d));
    for (let k = n; k < K; k++) {
      const i = Math.floor(opts.rand() * n);
      centroids.set(points.subarray(i * d, (i + 1) * d), k * d);
    }
    for (let i = 0; i < n; i++) assign[i] = i;
    return { centroids, assign };
  }
  // K distinct random points (partial Fisher–Yates)
  const order = Int32Array.from({ length: n }, (_, i) => i);
  for (let k = 0; k < K; k++) {
    const j = k + Math.floor(opts.rand() * (n - k));
    [order[k], order[j]] = [order[j]!, order[k]!];
    centroids.set(points.subarray(order[k]! * d, (order[k]! + 1) * d), k * d);
  }
  const prev = new Uint16Array(n);
  const sums = new Float64Array(K * d);
  const counts = new Int32Array(K);
  for (let it = 0; it < opts.iters; it++) {
    const dist = nearestCentroids(points, n, d, centroids, K, assign, opts.backend);
    if (it > 0 && assign.every((a, i) => a === prev[i])) break;
    prev.set(assign);
    sums.fill(0);
    counts.fill(0);
    for (let i = 0; i < n; i++) {
      const k = assign[i]!;
      counts[k]!++;
      for (let t = 0; t < d; t++) sums[k * d + t]! += points[i * d + t]!;
    }
    for (let k = 0; k < K; k++) {
      if (counts[k]! > 0) {
        for (let t = 0; t < d; t++) centroids[k * d + t] = sums[k * d + t]! / counts[k]!;
        continue;
      }
      if (opts.keepEmpty) continue;
      // empty: take over the worst-served point (and stop it from being taken twice)
      let far = 0;
      for (let i = 1; i < n; i++) if (dist[i]! > dist[far]!) far = i;
      centroids.set(points.subarray(far * d, (far + 1) * d), k * d);
      dist[far] = 0;
    }
  }
  nearestCentroids(points, n, d, centroids, K, assign, opts.backend);
  return { centroids, assign };
}

/**
 * Residual k-means over M codebooks. groups [n, g] (not modified) → codebooks [M, K, g] and
 * codes [n, M]; the residual after all M codebooks is returned too (its norm is the init error).
 */
export function residualKmeans(
  groups: Float32Array, n: number, g: number, M: number, K: number, opts: KmeansOptions,
): { codebooks: Float32Array; codes: Uint16Array; residual: Float32Array } {
  const residual = groups.slice();
  const codebooks = new Float32Array(M * K * g);
  const codes = new Uint16Array(n * M);
  for (let m = 0; m < M; m++) {
    const { centroids, assign } = kmeans(residual, n, g, K, opts);
    codebooks.set(centroids, m * K * g);
    for (let i = 0; i < n; i++) {
      const k = assign[i]!;
      codes[i * M + m] = k;
      for (let t = 0; t < g; t++) residual[i * g + t]! -= centroids[k * g + t]!;
    }
  }
  return { codebooks, codes, residual };
}
