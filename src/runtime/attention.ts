/**
 * Causal grouped-query attention over the KV cache: out = softmax(q·Kᵀ / √headSize) · V for
 * each query row at position startPos + r, over cache positions 0..startPos + r. Query heads
 * h share kv head ⌊h / groupSize⌋.
 *
 * Two ways to compute the same thing: a direct loop for decode (one row: the work is small;
 * layer-ops.ts, or the backend's own, native/decode-ops.c, split over heads), and, for a chunk of rows (prefill,
 * evaluation), two backend matmuls per kv head and causal block of query rows — scores then
 * values, over the positions the block sees — because there the
 * T·n·headSize products are a large share of the forward pass (most of it for stories260K).
 */
import type { Backend } from '../backend/types.js';
import { headSize as headSizeOf, kvDim as kvDimOf, qDim as qDimOf, type LlamaConfig } from '../model/config.js';
import { layerOpsOf, softmaxInPlace } from './layer-ops.js';
import type { Scratch } from './scratch.js';

export function attention(
  backend: Backend,
  out: Float32Array, // [rows, qDim]
  q: Float32Array, // [rows, qDim]
  s: Scratch,
  c: LlamaConfig,
  layer: number,
  rows: number,
  startPos: number,
): void {
  if (rows === 1) {
    const kvDim = kvDimOf(c);
    layerOpsOf(backend).attention(out, q, s.keyCache, s.valueCache, layer * s.positions * kvDim, startPos, c.nHeads, c.nKvHeads, headSizeOf(c), kvDim, s.att);
  } else attentionRows(backend, out, q, s, c, layer, rows, startPos);
}

function attentionRows(
  backend: Backend,
  out: Float32Array, // [rows, qDim]
  q: Float32Array, // [rows, qDim]
  s: Scratch,
  c: LlamaConfig,
  layer: number,
  rows: number,
  startPos: number,
): void {
  const hs = headSizeOf(c);
  const kvDim = kvDimOf(c);
  const qDim = qDimOf(c);
  const groupSize = c.nHeads / c.nKvHeads;
  const n = startPos + rows; // cache positions any row attends to
  const layerOff = layer * s.positions * kvDim;
  const scale = 1 / Math.sqrt(hs);
  const kh = s.kHead.subarray(0, n * hs); // [n, hs]
  for (let kvh = 0; kvh < c.nKvHeads; kvh++) {
    // gather this kv head's keys [n, hs] from the cache
    for (let j = 0; j < n; j++) {
      const off = layerOff + j * kvDim + kvh * hs;
      kh.set(s.keyCache.subarray(off, off + hs), j * hs);
    }
    // causal blocks of query rows: block r0..r1 sees positions 0..startPos + r1 − 1 only, so
    // the scores and values past that are neither computed nor masked
    for (let r0 = 0; r0 < rows; r0 += CAUSAL_BLOCK) {
      const r1 = Math.min(rows, r0 + CAUSAL_BLOCK);
      const br = r1 - r0;
      const nb = startPos + r1; // positions this block's rows attend to
      const gRows = groupSize * br; // the group's query heads stacked: row (g, r) = g * br + r − r0
      const vt = s.vHeadT.subarray(0, hs * nb); // [hs, nb] values, transposed
      const qh = s.qGroup.subarray(0, gRows * hs); // [gRows, hs]
      const scores = s.scores.subarray(0, gRows * nb); // [gRows, nb]
      const oh = s.outGroup.subarray(0, gRows * hs); // [gRows, hs]
      for (let j = 0; j < nb; j++) {
        const off = layerOff + j * kvDim + kvh * hs;
        for (let i = 0; i < hs; i++) vt[i * nb + j] = s.valueCache[off + i];
      }
      // gather the queries of the heads that share it
      for (let g = 0; g < groupSize; g++) {
        const h = kvh * groupSize + g;
        for (let r = r0; r < r1; r++) qh.set(q.subarray(r * qDim + h * hs, r * qDim + (h + 1) * hs), (g * br + r - r0) * hs);
      }
      // scores = qh · khᵀ, then a causal softmax per row (positions past the row's own get 0)
      backend.matmul(scores, qh, kh.subarray(0, nb * hs), gRows, nb, hs);
      for (let gr = 0; gr < gRows; gr++) {
        const row = scores.subarray(gr * nb, (gr + 1) * nb);
        const visible = startPos + r0 + (gr % br) + 1;
        for (let j = 0; j < visible; j++) row[j] *= scale;
        softmaxInPlace(row, visible);
        row.fill(0, visible);
      }
      // oh = scores · v, scattered back to each head's columns
      backend.matmul(oh, scores, vt, gRows, hs, nb);
      for (let g = 0; g < groupSize; g++) {
        const h = kvh * groupSize + g;
        for (let r = r0; r < r1; r++) out.set(oh.subarray((g * br + r - r0) * hs, (g * br + r - r0 + 1) * hs), r * qDim + h * hs);
      }
    }
  }
}

/**
 * Query rows per causal block of the chunk path: smaller blocks skip more of the masked
 * triangle (rows = 512: 62.5 % of the square at 128) but make smaller matrix products.
 */
const CAUSAL_BLOCK = 128;
