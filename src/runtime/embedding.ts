/**
 * The token embedding as the forward pass sees it: a table [vocab, dim] that writes one token's
 * row. A float table is one implementation; a packed low-bit file gathers the row from its
 * stored format (formats' `rowGather`) without expanding the table.
 */
import type { RowGather } from '../model/weights.js';

export type Embedding = RowGather;

/** The float32 table held whole. */
export function denseEmbedding(
  table: Float32Array, // [vocab, dim]
  vocab: number,
  dim: number,
): Embedding {
  if (table.length !== vocab * dim) throw new RangeError(`embedding has ${table.length} values, expected ${vocab}×${dim}`);
  return {
    rows: vocab,
    cols: dim,
    row: (dst, r) => dst.set(table.subarray(r * dim, (r + 1) * dim)),
  };
}
