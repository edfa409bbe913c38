/**
 * Reads a bitcrush packed model file (layout in metadata.ts) as a ModelSource plus a Linear
 * factory, so the runtime runs the packed weights directly: each linear gets its format's fast
 * kernels, and no tensor is dequantized at load. Everything in the header is checked against
 * the config and the format registry before any data is used (the file is untrusted).
 */
import type { Backend } from '../backend/types.js';
import type { ByteSource } from '../io/bytes.js';
import { check, InputError } from '../io/errors.js';
import { SafetensorsFile } from '../io/safetensors.js';
import type { LlamaConfig } from '../model/config.js';
import { expectedShapes, type ModelSource, type RowGather, type SourceDtype, type TensorInfo } from '../model/weights.js';
import { findFormat, bitsPerWeight } from '../formats/registry.js';
import { blobBytes, type Blob, type BlobDtype, type FormatParams, type PackedTensor, type WeightFormat } from '../formats/types.js';
import { DenseLinear, type LinearFactory } from '../runtime/dense.js';
import type { Linear } from '../runtime/linear.js';
import { withActQuant } from '../quant/act-quant.js';
import { blobEntryName, PACKED_ALIGN, PAD_PREFIX, parsePackedHeader, type PackedHeader } from './metadata.js';

interface PackedEntry {
  format: WeightFormat;
  params: FormatParams;
  outDim: number;
  inDim: number;
  blobs: Record<string, { entry: string; dtype: BlobDtype; shape: number[] }>;
}

export class PackedModel implements ModelSource {
  readonly header: PackedHeader;
  readonly config: LlamaConfig;
  private readonly file: SafetensorsFile;
  private readonly packedEntries = new Map<string, PackedEntry>();
  private readonly shapes: Map<string, number[]>;

  constructor(src: ByteSource) {
    this.file = new SafetensorsFile(src);
    const name = src.name;
    this.header = parsePackedHeader(name, this.file.metadata);
    this.config = this.header.config;
    this.shapes = expectedShapes(this.config);
    const claimed = new Set<string>(); // safetensors entries accounted for

    const records = this.header.tensors;
    for (const t of Object.keys(records)) check(this.shapes.has(t), name, `packed model header: ${t} is not a tensor of this config`);
    for (const [t, shape] of this.shapes) {
      const rec = records[t];
      check(rec !== undefined, name, `packed model header: tensor ${t} is missing`);
      check(rec.shape.join() === shape.join(), name, `tensor ${t} is [${rec.shape}], the config implies [${shape}]`);
      if (rec.format === 'dense') {
        const dtype = (rec as { dtype: string }).dtype;
        this.checkEntry(t, dtype, shape);
        claimed.add(t);
        continue;
      }
      const format = findFormat(rec.format);
      check(format !== undefined, name, `tensor ${t}: unknown packed format ${JSON.stringify(rec.format)} (written by a newer bitcrush?)`);
      const [outDim, inDim] = shape as [number, number];
      const params = format.parseParams((rec as { params: unknown }).params, outDim, inDim);
      check(typeof params !== 'string', name, `tensor ${t} (${format.id}): bad params: ${params}`);
      const blobs: PackedEntry['blobs'] = {};
      for (const [blob, spec] of Object.entries(format.blobs(outDim, inDim, params))) {
        const entry = blobEntryName(t, blob);
        this.checkEntry(entry, spec.dtype, spec.shape);
        claimed.add(entry);
        blobs[blob] = { entry, ...spec };
      }
      const bpw = bitsPerWeight(format, outDim, inDim, params);
      check(Math.abs(rec.bpw - bpw) <= 1e-9 * bpw, name, `tensor ${t}: header says ${rec.bpw} bits per weight, its blobs hold ${bpw}`);
      this.packedEntries.set(t, { format, params, outDim, inDim, blobs });
    }
    const stored = Object.values(records).reduce((n, r) => n + r.shape.reduce((a, b) => a * b, 1), 0);
    const mw = this.header.totals.modelWeights;
    check(mw === undefined || mw <= stored, name, `packed model header: totals.modelWeights ${mw} exceeds the ${stored} weights stored`);
    for (const e of this.file.entries()) {
      if (claimed.has(e.name)) continue;
      const filler = e.name.startsWith(PAD_PREFIX) && e.dtype === 'U8' && e.shape.length === 1 && e.shape[0]! < PACKED_ALIGN;
      check(filler, name, `unexpected tensor ${e.name} in a packed model`);
    }
  }

  get name(): string {
    return this.file.name;
  }

  /** Bytes of the whole packed file (for an imported checkpoint, the file `bitcrush convert` writes). */
  get fileBytes(): number {
    return this.file.src.size;
  }

  tensors(): TensorInfo[] {
    return [...this.shapes].map(([name, shape]) => ({ name, shape: [...shape] }));
  }

  /** Whether `name` is stored in a packed low-bit format (else unquantized). */
  isPacked(name: string): boolean {
    return this.packedEntries.has(name);
  }

  /** Bytes of a packed tensor's blobs in the file (undefined: the tensor is stored unquantized). */
  packedBytes(name: string): number | undefined {
    const e = this.packedEntries.get(name);
    if (e === undefined) return undefined;
    return Object.values(e.blobs).reduce((sum, b) => sum + blobBytes(b), 0);
  }

  /** The packed tensor with its blobs read and its data invariants checked. */
  packed(name: string): PackedTensor {
    const e = this.packedEntries.get(name);
    check(e !== undefined, this.name, `tensor ${name} is not packed`);
    const blobs: Record<string, Blob> = {};
    for (const [blob, b] of Object.entries(e.blobs)) blobs[blob] = { dtype: b.dtype, shape: b.shape, bytes: this.file.raw(b.entry) };
    const t: PackedTensor = { format: e.format.id, outDim: e.outDim, inDim: e.inDim, params: e.params, blobs };
    const problem = e.format.validate(t);
    check(problem === null, this.name, `tensor ${name} (${e.format.id}): ${problem}`);
    return t;
  }

  /** Float32 values; a packed tensor is dequantized (this tensor only, for inspection and evaluation). */
  load(name: string): Float32Array {
    const e = this.packedEntries.get(name);
    if (e !== undefined) return e.format.dequantize(this.packed(name));
    check(this.shapes.has(name), this.name, `no tensor named ${name}`);
    return this.file.float32(name);
  }

  /**
   * A packed tensor read one row at a time (the token embedding: one row per token, the table
   * never expanded); undefined for a tensor stored unquantized, which `load` reads whole.
   */
  rowGather(name: string): RowGather | undefined {
    const e = this.packedEntries.get(name);
    if (e === undefined) return undefined;
    const t = this.packed(name);
    if (e.format.rowGather) return e.format.rowGather(t);
    // a format without a row reader (none of the grid formats the pipeline writes an embedding in): expand it once
    const w = e.format.dequantize(t);
    return { rows: e.outDim, cols: e.inDim, row: (dst, r) => dst.set(w.subarray(r * e.inDim, (r + 1) * e.inDim)) };
  }

  /** Storage type of a tensor in this file (packed tensors count as the float32 they decode to). */
  dtypeOf(name: string): SourceDtype {
    const rec = this.header.tensors[name];
    check(rec !== undefined, this.name, `no tensor named ${name}`);
    return rec.format === 'dense' ? (rec as { dtype: SourceDtype }).dtype : 'F32';
  }

  /** The runtime's Linear for a 2-D tensor: the format's fast kernels, or dense float32. */
  linearFor(name: string, backend: Backend): Linear {
    const e = this.packedEntries.get(name);
    if (e !== undefined) return e.format.makeLinear(this.packed(name), backend);
    const shape = this.shapes.get(name);
    check(shape !== undefined && shape.length === 2, this.name, `no 2-D tensor named ${name}`);
    return new DenseLinear(backend, this.load(name), shape[0]!, shape[1]!);
  }

  /** The factory the runtime's model takes (`new LlamaModel(packed, { backend, linear: packed.linears(backend) })`). */
  linears(backend: Backend): LinearFactory {
    // the file's activation quantization wraps every block linear, packed or dense
    const bits = this.header.actBits ?? 16;
    return (name) => withActQuant(this.linearFor(name, backend), name, bits, backend);
  }

  private checkEntry(entry: string, dtype: string, shape: number[]): void {
    check(this.file.has(entry), this.name, `tensor ${entry} is missing from the data`);
    const e = this.file.entry(entry);
    check(
      e.dtype === dtype && e.shape.join() === shape.join(),
      this.name,
      `tensor ${entry} is ${e.dtype} [${e.shape}], expected ${dtype} [${shape}]`,
    );
  }
}

/** Whether a safetensors source is a bitcrush packed model (looks at the metadata only). */
export function isPackedModel(src: ByteSource): boolean {
  try {
    return new SafetensorsFile(src).metadata.format === 'bitcrush';
  } catch (e) {
    if (e instanceof InputError) return false;
    throw e;
  }
}
