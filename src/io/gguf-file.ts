/**
 * GGUF containers (llama.cpp's `gguf.md`), read through a ByteSource and written to bytes:
 *   "GGUF" | u32 version (2 or 3) | u64 tensor_count | u64 kv_count
 *   kv_count × (string key | u32 value type | value)
 *   tensor_count × (string name | u32 n_dims | u64 ne[n_dims] | u32 ggml type | u64 offset)
 *   padding to `general.alignment` (default 32) | data: each tensor at data start + offset
 * A string is u64 byte length + UTF-8 bytes; an array is u32 element type + u64 count + elements.
 * ne[0] is the innermost (contiguous) dimension: a [rows, cols] matrix is stored as ne = [cols, rows].
 *
 * Why not @huggingface/gguf here: its parser is async and fetch-based (a URL or a local path
 * through node:fs), while bitcrush's loaders are synchronous over ByteSource so one code path
 * serves Node and the browser. The tests parse our files with it to cross-check this one.
 */
import type { ByteSource } from './bytes.js';
import { check, InputError } from './errors.js';
import { GGML_TYPES, type GgmlType } from './gguf-quants.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
export const GGUF_DEFAULT_ALIGNMENT = 32;

export enum GgufValueType {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
}

export type GgufScalar = number | bigint | boolean | string;
export type GgufValue = GgufScalar | GgufScalar[];

export interface GgufTensorInfo {
  name: string;
  /** ne[0] first (columns of a matrix). */
  ne: number[];
  type: GgmlType;
  /** Absolute byte offset in the file. */
  offset: number;
  byteLength: number;
}

const MAX_ITEMS = 1 << 24; // kv pairs, tensors, array elements: far above any real file
const MAX_DIMS = 4;

export class GgufFile {
  readonly version: number;
  readonly metadata = new Map<string, GgufValue>();
  readonly tensors = new Map<string, GgufTensorInfo>();
  readonly alignment: number;
  readonly dataStart: number;
  private offset = 0;
  private buf: Uint8Array;
  private bufStart = 0;

  constructor(readonly src: ByteSource) {
    const file = src.name;
    this.buf = new Uint8Array(0);
    check(src.size >= 24, file, `truncated: ${src.size} bytes, shorter than a GGUF header`);
    check(this.u32() === GGUF_MAGIC, file, 'not a GGUF file (bad magic)');
    this.version = this.u32();
    check(this.version === 2 || this.version === 3, file, `unsupported GGUF version ${this.version} (supported: 2, 3)`);
    const nTensors = this.count('tensor_count');
    const nKv = this.count('kv_count');
    for (let i = 0; i < nKv; i++) {
      const key = this.string(`key of kv pair ${i}`);
      check(!this.metadata.has(key), file, `bad GGUF header: duplicate key ${JSON.stringify(key)}`);
      const type = this.u32();
      this.metadata.set(key, this.value(type, key, 0));
    }
    const align = this.metadata.get('general.alignment') ?? GGUF_DEFAULT_ALIGNMENT;
    check(typeof align === 'number' && Number.isInteger(align) && align > 0 && (align & (align - 1)) === 0 && align <= 1 << 16, file, `bad general.alignment ${String(align)} (a power of two is expected)`);
    this.alignment = align;
    const infos: Array<Omit<GgufTensorInfo, 'offset' | 'byteLength'> & { rel: number }> = [];
    for (let i = 0; i < nTensors; i++) {
      const name = this.string(`name of tensor ${i}`);
      const nDims = this.u32();
      check(nDims >= 1 && nDims <= MAX_DIMS, file, `tensor ${name}: bad n_dims ${nDims}`);
      const ne: number[] = [];
      for (let d = 0; d < nDims; d++) {
        const n = this.u64();
        check(n >= 1 && n <= 2 ** 40, file, `tensor ${name}: bad dimension ${n}`);
        ne.push(n);
      }
      const typeId = this.u32();
      const type = GGML_TYPES.get(typeId);
      check(type !== undefined, file, `tensor ${name}: ggml type ${typeId} is not supported (supported: ${[...GGML_TYPES.values()].map((t) => t.name).join(', ')})`);
      const rel = this.u64();
      check(!this.tensors.has(name) && !infos.some((t) => t.name === name), file, `bad GGUF header: duplicate tensor ${name}`);
      infos.push({ name, ne, type, rel });
    }
    this.dataStart = Math.ceil(this.offset / align) * align;
    check(this.dataStart <= src.size, file, `truncated: the data section would start at byte ${this.dataStart} but the file has ${src.size}`);
    const dataSize = src.size - this.dataStart;
    for (const t of infos) {
      check(t.ne[0]! % t.type.blockWeights === 0, file, `tensor ${t.name}: row length ${t.ne[0]} is not a multiple of ${t.type.name}'s block of ${t.type.blockWeights}`);
      const count = t.ne.reduce((a, b) => a * b, 1);
      const byteLength = (count / t.type.blockWeights) * t.type.blockBytes;
      check(Number.isSafeInteger(byteLength), file, `tensor ${t.name}: too large`);
      check(t.rel % align === 0, file, `tensor ${t.name}: offset ${t.rel} is not a multiple of the alignment ${align}`);
      check(t.rel + byteLength <= dataSize, file, `truncated: tensor ${t.name} needs data bytes ${t.rel}..${t.rel + byteLength} but the data section has ${dataSize}`);
      this.tensors.set(t.name, { name: t.name, ne: t.ne, type: t.type, offset: this.dataStart + t.rel, byteLength });
    }
    const sorted = [...this.tensors.values()].sort((a, b) => a.offset - b.offset);
    for (let i = 1; i < sorted.length; i++) {
      check(sorted[i]!.offset >= sorted[i - 1]!.offset + sorted[i - 1]!.byteLength, file, `bad GGUF header: tensors ${sorted[i - 1]!.name} and ${sorted[i]!.name} overlap`);
    }
    this.buf = new Uint8Array(0);
  }

  get name(): string {
    return this.src.name;
  }

  raw(t: GgufTensorInfo): Uint8Array {
    return this.src.read(t.offset, t.byteLength);
  }

  /** Bytes at the cursor, read through a window so the header costs few reads. */
  private take(n: number): DataView {
    check(this.offset + n <= this.src.size, this.src.name, `truncated: the GGUF header needs bytes ${this.offset}..${this.offset + n} but the file has ${this.src.size}`);
    if (this.offset < this.bufStart || this.offset + n > this.bufStart + this.buf.length) {
      this.bufStart = this.offset;
      this.buf = this.src.read(this.offset, Math.min(this.src.size - this.offset, Math.max(n, 1 << 20)));
    }
    const at = this.offset - this.bufStart;
    this.offset += n;
    return new DataView(this.buf.buffer, this.buf.byteOffset + at, n);
  }

  private u32(): number {
    return this.take(4).getUint32(0, true);
  }

  private u64(): number {
    const v = this.take(8).getBigUint64(0, true);
    check(v <= BigInt(Number.MAX_SAFE_INTEGER), this.src.name, `bad GGUF header: a size of ${v} at byte ${this.offset - 8}`);
    return Number(v);
  }

  private count(what: string): number {
    const n = this.u64();
    check(n <= MAX_ITEMS, this.src.name, `bad GGUF header: ${what} ${n}`);
    return n;
  }

  private string(what: string): string {
    const n = this.u64();
    check(n <= this.src.size - this.offset, this.src.name, `truncated: ${what} is ${n} bytes long, past the end of the file`);
    const v = this.take(n);
    try {
      return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(new Uint8Array(v.buffer, v.byteOffset, n));
    } catch {
      throw new InputError(this.src.name, `bad GGUF header: ${what} is not UTF-8`);
    }
  }

  private value(type: number, key: string, depth: number): GgufValue {
    switch (type) {
      case GgufValueType.UINT8: return this.take(1).getUint8(0);
      case GgufValueType.INT8: return this.take(1).getInt8(0);
      case GgufValueType.UINT16: return this.take(2).getUint16(0, true);
      case GgufValueType.INT16: return this.take(2).getInt16(0, true);
      case GgufValueType.UINT32: return this.take(4).getUint32(0, true);
      case GgufValueType.INT32: return this.take(4).getInt32(0, true);
      case GgufValueType.FLOAT32: return this.take(4).getFloat32(0, true);
      case GgufValueType.BOOL: {
        const b = this.take(1).getUint8(0);
        check(b <= 1, this.src.name, `bad GGUF header: ${key} is a bool of value ${b}`);
        return b === 1;
      }
      case GgufValueType.STRING: return this.string(`value of ${key}`);
      case GgufValueType.UINT64: return unsafeToNumber(this.take(8).getBigUint64(0, true));
      case GgufValueType.INT64: return unsafeToNumber(this.take(8).getBigInt64(0, true));
      case GgufValueType.FLOAT64: return this.take(8).getFloat64(0, true);
      case GgufValueType.ARRAY: {
        check(depth === 0, this.src.name, `bad GGUF header: ${key} nests arrays`);
        const elem = this.u32();
        const n = this.count(`length of ${key}`);
        // every element takes at least one byte: a count past the file's end is a lie
        check(n <= this.src.size - this.offset, this.src.name, `truncated: ${key} claims ${n} elements, past the end of the file`);
        const out: GgufScalar[] = [];
        for (let i = 0; i < n; i++) out.push(this.value(elem, key, depth + 1) as GgufScalar);
        return out;
      }
      default:
        throw new InputError(this.src.name, `bad GGUF header: ${key} has unknown value type ${type}`);
    }
  }
}

/** A 64-bit integer as a number when exact, else the bigint. */
function unsafeToNumber(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** A metadata entry to write, with its GGUF type (arrays: the element type). */
export type GgufKv = { key: string; type: GgufValueType; value: GgufScalar } | { key: string; type: GgufValueType.ARRAY; elem: GgufValueType; value: GgufScalar[] };

export interface GgufTensorOut {
  name: string;
  ne: number[];
  type: GgmlType;
  /** Byte length of the data. */
  size: number;
  /** The data, produced when it is written (one tensor in memory at a time). */
  bytes(): Uint8Array;
}

/** A GGUF v3 file as chunks (header, then each tensor padded to the alignment). */
export function* ggufChunks(kvs: readonly GgufKv[], tensors: readonly GgufTensorOut[], alignment = GGUF_DEFAULT_ALIGNMENT): Generator<Uint8Array> {
  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(3);
  w.u64(tensors.length);
  w.u64(kvs.length);
  for (const kv of kvs) {
    w.string(kv.key);
    w.u32(kv.type);
    if (kv.type === GgufValueType.ARRAY) {
      const a = kv as Extract<GgufKv, { elem: GgufValueType }>;
      w.u32(a.elem);
      w.u64(a.value.length);
      for (const v of a.value) w.scalar(a.elem, v);
    } else w.scalar(kv.type, kv.value as GgufScalar);
  }
  let rel = 0;
  const pad = (n: number) => (alignment - (n % alignment)) % alignment;
  for (const t of tensors) {
    w.string(t.name);
    w.u32(t.ne.length);
    for (const n of t.ne) w.u64(n);
    w.u32(t.type.id);
    w.u64(rel);
    rel += t.size + pad(t.size);
  }
  const header = w.bytes();
  yield header;
  yield new Uint8Array(pad(header.length));
  for (const t of tensors) {
    const b = t.bytes();
    if (b.length !== t.size) throw new Error(`GGUF tensor ${t.name}: ${b.length} bytes, planned ${t.size}`);
    yield b;
    yield new Uint8Array(pad(t.size));
  }
}

class ByteWriter {
  private parts: Uint8Array[] = [];
  private fixed(n: number, f: (v: DataView) => void): void {
    const b = new Uint8Array(n);
    f(new DataView(b.buffer));
    this.parts.push(b);
  }
  u32(v: number): void { this.fixed(4, (d) => d.setUint32(0, v, true)); }
  u64(v: number | bigint): void { this.fixed(8, (d) => d.setBigUint64(0, BigInt(v), true)); }
  string(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.parts.push(b);
  }
  scalar(type: GgufValueType, v: GgufScalar): void {
    switch (type) {
      case GgufValueType.UINT8: return this.fixed(1, (d) => d.setUint8(0, Number(v)));
      case GgufValueType.INT8: return this.fixed(1, (d) => d.setInt8(0, Number(v)));
      case GgufValueType.UINT16: return this.fixed(2, (d) => d.setUint16(0, Number(v), true));
      case GgufValueType.INT16: return this.fixed(2, (d) => d.setInt16(0, Number(v), true));
      case GgufValueType.UINT32: return this.u32(Number(v));
      case GgufValueType.INT32: return this.fixed(4, (d) => d.setInt32(0, Number(v), true));
      case GgufValueType.FLOAT32: return this.fixed(4, (d) => d.setFloat32(0, Number(v), true));
      case GgufValueType.BOOL: return this.fixed(1, (d) => d.setUint8(0, v ? 1 : 0));
      case GgufValueType.STRING: return this.string(String(v));
      case GgufValueType.UINT64: return this.u64(BigInt(v as number));
      case GgufValueType.INT64: return this.fixed(8, (d) => d.setBigInt64(0, BigInt(v as number), true));
      case GgufValueType.FLOAT64: return this.fixed(8, (d) => d.setFloat64(0, Number(v), true));
      default: throw new Error(`cannot write GGUF value type ${type}`);
    }
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.parts.reduce((a, p) => a + p.length, 0));
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}
