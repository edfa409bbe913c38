/**
 * Causal grouped-query attention over the KV cache: out = softmax(q·Kᵀ / √headSize) · V for
 * each query row at position startPos + r, over cache positions 0..startPos + r. Query heads
 * h share kv head ⌊h / groupSize⌋.
 *
 * Two ways to compute the same thing: a direct loop for decode (one row: the work is small and
 * a kernel call would cost more than it saves), and, for a chunk of rows (prefill,
 * evaluation), two backend matmuls per kv head — scores then values — because there the
 * T·n·headSize products are a large share of the forward pass (most of it for stories260K).
 */
import type { Backend } from '../backend/types.js';
import { headSize as headSizeOf, kvDim as kvDimOf, qDim as qDimOf, type LlamaConfig } from '../model/config.js';
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
  if (rows === 1) attentionOneRow(out, q, s, c, layer, startPos);
  else attentionRows(backend, out, q, s, c, layer, rows, startPos);
}

function attentionOneRow(out: Float32Array, q: Float32Array, s: Scratch, c: LlamaConfig, layer: number, pos: number): void {
  const hs = headSizeOf(c);
  const kvDim = kvDimOf(c);
  const groupSize = c.nHeads / c.nKvHeads;
  const layerOff = layer * s.positions * kvDim;
  const scale = 1 / Math.sqrt(hs);
  const att = s.att;
  for (let h = 0; h < c.nHeads; h++) {
    const qOff = h * hs;
    const kvOff = layerOff + Math.floor(h / groupSize) * hs;
    // scores against every cached key up to this position
    for (let j = 0; j <= pos; j++) {
      const kOff = kvOff + j * kvDim;
      let dot = 0;
      for (let i = 0; i < hs; i++) dot += q[qOff + i] * s.keyCache[kOff + i];
      att[j] = dot * scale;
    }
    softmaxInPlace(att, pos + 1);
    // weighted sum of the cached values
    const o = out.subarray(qOff, qOff + hs);
    o.fill(0);
    for (let j = 0; j <= pos; j++) {
      const a = att[j];
      const vOff = kvOff + j * kvDim;
      for (let i = 0; i < hs; i++) o[i] += a * s.valueCache[vOff + i];
    }
  }
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
  const gRows = groupSize * rows; // the group's query heads stacked: row (g, r) = g * rows + r
  const layerOff = layer * s.positions * kvDim;
  const scale = 1 / Math.sqrt(hs);
  const kh = s.kHead.subarray(0, n * hs); // [n, hs]
  const vt = s.vHeadT.subarray(0, hs * n); // [hs, n]
  const qh = s.qGroup.subarray(0, gRows * hs); // [gRows, hs]
  const scores = s.scores.subarray(0, gRows * n); // [gRows, n]
  const oh = s.outGroup.subarray(0, gRows * hs); // [gRows, hs]
  for (let kvh = 0; kvh < c.nKvHeads; kvh++) {
    // gather this kv head's keys [n, hs] and transposed values [hs, n] from the cache
    for (let j = 0; j < n; j++) {
      const off = layerOff + j * kvDim + kvh * hs;
      kh.set(s.keyCache.subarray(off, off + hs), j * hs);
      for (let i = 0; i < hs; i++) vt[i * n + j] = s.valueCache[off + i];
    }
    // gather the queries of the heads that share it
    for (let g = 0; g < groupSize; g++) {
      const h = kvh * groupSize + g;
      for (let r = 0; r < rows; r++) qh.set(q.subarray(r * qDim + h * hs, r * qDim + (h + 1) * hs), (g * rows + r) * hs);
    }
    // scores = qh · khᵀ, then a causal softmax per row (positions past the row's own get 0)
    backend.matmul(scores, qh, kh, gRows, n, hs);
    for (let gr = 0; gr < gRows; gr++) {
      const row = scores.subarray(gr * n, (gr + 1) * n);
      const visible = startPos + (gr % rows) + 1;
      for (let j = 0; j < visible; j++) row[j] *= scale;
      softmaxInPlace(row, visible);
      row.fill(0, visible);
    }
    // oh = scores · v, scattered back to each head's columns
    backend.matmul(oh, scores, vt, gRows, hs, n);
    for (let g = 0; g < groupSize; g++) {
      const h = kvh * groupSize + g;
      for (let r = 0; r < rows; r++) out.set(oh.subarray((g * rows + r) * hs, (g * rows + r + 1) * hs), r * qDim + h * hs);
    }
  }
}

/** softmax of x[0..n) in place. */
function softmaxInPlace(x: Float32Array, n: number): void {
  let max = -Infinity;
  for (let j = 0; j < n; j++) if (x[j] > max) max = x[j];
  let sum = 0;
  for (let j = 0; j < n; j++) {
    x[j] = Math.exp(x[j] - max);
    sum += x[j];
  }
  for (let j = 0; j < n; j++) x[j] /= sum;
}
