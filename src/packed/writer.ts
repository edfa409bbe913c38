/**
 * The packed model file writer core: lays out the header and the blobs (layout in metadata.ts)
 * and yields the file's bytes in order. No I/O here: src/node/atomic-write.ts streams the chunks
 * to a temp file and renames it; a browser can collect them into a Blob.
 */
import { numberToBf16Bits, numberToF16Bits } from '../io/safetensors.js';
import { expectedShapes, type ModelSource, type SourceDtype } from '../model/weights.js';
import type { LlamaConfig } from '../model/config.js';
import { getFormat, bitsPerWeight } from '../formats/registry.js';
import { blobBytes, elementCount, type BlobDtype, type PackedTensor } from '../formats/types.js';
import {
  blobEntryName, DENSE_BITS, PACKED_ALIGN, PACKED_FORMAT, PACKED_VERSION, PAD_PREFIX,
  type DenseDtype, type PackedHeader, type TensorRecord,
} from './metadata.js';

export interface PackedModelInput {
  config: LlamaConfig;
  method: { name: string; options: Record<string, unknown> };
  /** Every tensor that is not packed is read from here, one at a time, while the file is written. */
  source: ModelSource;
  /** The quantized tensors by canonical name (typically the seven linears of every layer). */
  packed: ReadonlyMap<string, PackedTensor>;
  /** Activation bits the file is run with (4, 6, 8); undefined or 16 = none. */
  actBits?: number;
  /**
   * Storage of every unquantized tensor (norms, a float embedding or head); default: each in its
   * source dtype (`source.dtypeOf`; F64 as F32), so no tensor is stored wider than it came.
   */
  denseDtype?: DenseDtype;
  /** Parameters of the source model, when the file stores more (a tied matrix stored as embedding and head). */
  modelWeights?: number;
}

export interface PackedFilePlan {
  header: PackedHeader;
  /** Bytes of the whole file. */
  size: number;
  /** The file's bytes in order; unquantized tensors are read from the source as they are reached. */
  chunks(): Iterable<Uint8Array>;
}

interface Piece {
  entry: string;
  dtype: BlobDtype | DenseDtype;
  shape: number[];
  byteLength: number;
  bytes: () => Uint8Array;
}

export function planPackedModel(input: PackedModelInput): PackedFilePlan {
  const { config, source, packed } = input;
  const dtypeOf = (name: string): DenseDtype => input.denseDtype ?? storageDtype(source.dtypeOf?.(name) ?? 'F32');
  const shapes = expectedShapes(config);
  for (const name of packed.keys()) {
    if (!shapes.has(name)) throw new RangeError(`packed tensor ${name} is not a tensor of this model`);
  }
  const sourceShapes = new Map(source.tensors().map((t) => [t.name, t.shape]));

  const records: Record<string, TensorRecord> = {};
  const pieces: Piece[] = [];
  const totals = { packedWeights: 0, packedBytes: 0, packedBpw: 0, denseWeights: 0, denseBytes: 0, paddingBytes: 0, modelBpw: 0 };
  for (const [name, shape] of shapes) {
    const t = packed.get(name);
    if (t !== undefined) {
      if (t.outDim !== shape[0] || t.inDim !== shape[1]) throw new RangeError(`packed tensor ${name} is [${t.outDim}, ${t.inDim}], the model needs [${shape}]`);
      const format = getFormat(t.format);
      const specs = format.blobs(t.outDim, t.inDim, t.params);
      for (const [blob, spec] of Object.entries(specs)) {
        const b = t.blobs[blob];
        if (b === undefined || b.dtype !== spec.dtype || b.bytes.byteLength !== blobBytes(spec)) {
          throw new RangeError(`packed tensor ${name}: blob ${blob} does not match format ${t.format}`);
        }
        pieces.push({ entry: blobEntryName(name, blob), dtype: spec.dtype, shape: spec.shape, byteLength: b.bytes.byteLength, bytes: () => b.bytes });
        totals.packedBytes += b.bytes.byteLength;
      }
      totals.packedWeights += t.outDim * t.inDim;
      records[name] = { format: t.format, params: t.params, shape: [t.outDim, t.inDim], bpw: bitsPerWeight(format, t.outDim, t.inDim, t.params) };
    } else {
      const have = sourceShapes.get(name);
      if (have === undefined || have.join() !== shape.join()) throw new RangeError(`${source.name}: tensor ${name} is missing or not [${shape}]`);
      const n = elementCount(shape);
      const dtype = dtypeOf(name);
      const byteLength = (n * DENSE_BITS[dtype]) / 8;
      pieces.push({ entry: name, dtype, shape, byteLength, bytes: () => encodeDense(source.load(name), dtype) });
      totals.denseWeights += n;
      totals.denseBytes += byteLength;
      records[name] = { format: 'dense', dtype, shape, bpw: DENSE_BITS[dtype] };
    }
  }

  // data section: each piece at a multiple of PACKED_ALIGN, explicit pad entries in between
  const entries: Record<string, unknown> = {};
  const layout: Array<Piece | number> = []; // a number is that many filler bytes
  let offset = 0;
  for (const p of pieces) {
    const pad = (PACKED_ALIGN - (offset % PACKED_ALIGN)) % PACKED_ALIGN;
    if (pad > 0) {
      entries[`${PAD_PREFIX}${offset}`] = { dtype: 'U8', shape: [pad], data_offsets: [offset, offset + pad] };
      layout.push(pad);
      offset += pad;
      totals.paddingBytes += pad;
    }
    entries[p.entry] = { dtype: p.dtype, shape: p.shape, data_offsets: [offset, offset + p.byteLength] };
    layout.push(p);
    offset += p.byteLength;
  }
  const dataBytes = offset;
  totals.packedBpw = totals.packedWeights > 0 ? (totals.packedBytes * 8) / totals.packedWeights : 0;
  const stored = totals.packedWeights + totals.denseWeights;
  const weights = input.modelWeights !== undefined && input.modelWeights !== stored ? input.modelWeights : stored;
  totals.modelBpw = ((totals.packedBytes + totals.denseBytes) * 8) / weights;

  const header: PackedHeader = {
    format: PACKED_FORMAT,
    version: PACKED_VERSION,
    method: input.method,
    ...(input.actBits !== undefined && input.actBits < 16 ? { actBits: input.actBits } : {}),
    config,
    tensors: records,
    totals: weights !== stored ? { ...totals, modelWeights: weights } : totals,
  };
  const headerBytes = encodeHeader({ __metadata__: { format: PACKED_FORMAT, [PACKED_FORMAT]: JSON.stringify(header) }, ...entries });
  return {
    header,
    size: headerBytes.byteLength + dataBytes,
    *chunks() {
      yield headerBytes;
      for (const p of layout) {
        if (typeof p === 'number') yield new Uint8Array(p);
        else {
          const bytes = p.bytes();
          if (bytes.byteLength !== p.byteLength) throw new RangeError(`${p.entry}: ${bytes.byteLength} bytes, planned ${p.byteLength}`);
          yield bytes;
        }
      }
    },
  };
}

/** u64 LE length + JSON, padded with spaces (which safetensors allows) so the data starts aligned. */
function encodeHeader(json: unknown): Uint8Array {
  const text = new TextEncoder().encode(JSON.stringify(json));
  const n = text.byteLength + ((PACKED_ALIGN - ((8 + text.byteLength) % PACKED_ALIGN)) % PACKED_ALIGN);
  const out = new Uint8Array(8 + n).fill(0x20, 8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  out.set(text, 8);
  return out;
}

/** A source dtype's storage in a packed file: itself, except F64 (the runtime computes in float32). */
function storageDtype(d: SourceDtype): DenseDtype {
  return d === 'F64' ? 'F32' : d;
}

function encodeDense(values: Float32Array, dtype: DenseDtype): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const toBits = dtype === 'F16' ? numberToF16Bits : numberToBf16Bits;
  const h = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) h[i] = toBits(values[i]!);
  return new Uint8Array(h.buffer);
}
