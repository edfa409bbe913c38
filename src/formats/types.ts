/**
 * The traits every packed weight format implements (ggml's type traits, one row of the table in
 * registry.ts). A format turns a method's payload (GroupQuantized for grid methods; codes and
 * codebooks for AQLM; sign planes for BiLLM) into named byte blobs and back, and runs y = W x
 * on those blobs without materialising W in float32.
 *
 * The header rule that keeps files self-describing: the dtype and shape of every blob follow from
 * (outDim, inDim, params) alone (`blobs`), so a reader checks every size before reading data and
 * bits per weight is a pure function of the header. A format whose sizes depend on the data
 * (SliM-LLM's per-group widths) puts the counts it needs in its params (e.g. how many groups
 * use each width) and checks them against the data in `validate`.
 */
import type { Backend } from '../backend/types.js';
import type { Linear } from '../runtime/linear.js';
import type { RowGather } from '../model/weights.js';

/** Element types a blob may have; names and sizes as in safetensors. */
export type BlobDtype = 'U8' | 'U16' | 'I16' | 'I32' | 'F16' | 'F32';

export const BLOB_DTYPE_BYTES: Readonly<Record<BlobDtype, number>> = { U8: 1, U16: 2, I16: 2, I32: 4, F16: 2, F32: 4 };

export interface BlobSpec {
  dtype: BlobDtype;
  shape: number[];
}

/** One named array of a packed tensor: little-endian bytes, byteLength = prod(shape) · dtype size. */
export interface Blob extends BlobSpec {
  bytes: Uint8Array;
}

/** A format's parameters: plain JSON, stored verbatim in the file header. */
export type FormatParams = { readonly [key: string]: number | boolean | string | readonly number[] };

/** A weight matrix [outDim, inDim] in some registered format. */
export interface PackedTensor<P extends FormatParams = FormatParams> {
  readonly format: string;
  readonly outDim: number;
  readonly inDim: number;
  readonly params: P;
  readonly blobs: Readonly<Record<string, Blob>>;
}

export type FormatFamily = 'uniform' | 'mixed' | 'codebook' | 'binary';

export interface WeightFormat<P extends FormatParams = FormatParams, Payload = unknown> {
  /** Stable id written into files; never reuse one for a different layout. */
  readonly id: string;
  readonly family: FormatFamily;
  readonly summary: string;

  /** The packing unit of the bulk data (ggml's block size and type size). */
  block(params: P): { weights: number; bytes: number };

  /** Params read from an untrusted header: the typed params, or a one-line problem. */
  parseParams(raw: unknown, outDim: number, inDim: number): P | string;

  /** Dtype and shape of every blob (the reader's size check and the bits-per-weight count). */
  blobs(outDim: number, inDim: number, params: P): Record<string, BlobSpec>;

  /** Data invariants the sizes cannot show (a permutation is one, scales are finite): a problem or null. */
  validate(t: PackedTensor<P>): string | null;

  /** Reference packing; throws RangeError when the payload does not fit the format. */
  pack(payload: Payload): PackedTensor<P>;
  /** Exact inverse of pack. */
  unpack(t: PackedTensor<P>): Payload;
  /** The payload's weights [outDim, inDim], original column order: the oracle for everything else. */
  payloadWeights(payload: Payload): Float32Array;
  /** Reference dequantization of the packed blobs to [outDim, inDim]. */
  dequantize(t: PackedTensor<P>): Float32Array;

  /** Fast y = W x without a float32 copy of W (fused unpack and dot, tiled matmul). */
  makeLinear(t: PackedTensor<P>, backend: Backend): Linear;

  /**
   * One row at a time without dequantizing the rest (a token embedding stored in this format);
   * each row equals that row of `dequantize` bit for bit. Absent: the format serves no embedding.
   */
  rowGather?(t: PackedTensor<P>): RowGather;

  /** Grid payloads only: whether this format stores `payload` exactly (for automatic choice). */
  accepts?(payload: Payload): boolean;
  /** With accepts: the params pack would write for an accepted payload (sizes compared without packing). */
  paramsFor?(payload: Payload): P;

  /** Test support: shapes and params the registry-driven test covers, and random payloads. */
  examples(): Array<{ outDim: number; inDim: number; params: P }>;
  randomPayload(outDim: number, inDim: number, params: P, rand: () => number): Payload;
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function blobBytes(spec: BlobSpec): number {
  return elementCount(spec.shape) * BLOB_DTYPE_BYTES[spec.dtype];
}
