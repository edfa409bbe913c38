/**
 * safetensors containers (https://huggingface.co/docs/safetensors), read lazily:
 *   u64 LE header length N | N bytes of JSON header | data section
 * The header maps each tensor name to { dtype, shape, data_offsets: [begin, end] } (offsets
 * relative to the data section) plus an optional "__metadata__" string→string map.
 * Used both for HF weights and for bitcrush's own packed formats (integer dtypes), so it
 * exposes raw bytes for every dtype and float32 conversion for the float ones.
 */
import { copyToArrayBuffer, type ByteSource } from './bytes.js';
import { check, InputError } from './errors.js';
import { checkFinite } from './finite.js';

export type SafetensorsDtype =
  | 'BOOL' | 'U8' | 'I8' | 'F8_E4M3' | 'F8_E5M2'
  | 'U16' | 'I16' | 'F16' | 'BF16'
  | 'U32' | 'I32' | 'F32'
  | 'U64' | 'I64' | 'F64';

/** Bytes per element of every dtype the format defines. */
export const DTYPE_BYTES: Readonly<Record<SafetensorsDtype, number>> = {
  BOOL: 1, U8: 1, I8: 1, F8_E4M3: 1, F8_E5M2: 1,
  U16: 2, I16: 2, F16: 2, BF16: 2,
  U32: 4, I32: 4, F32: 4,
  U64: 8, I64: 8, F64: 8,
};

export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
}

interface Placement extends SafetensorsEntry {
  /** Absolute byte offset of the tensor in the file. */
  offset: number;
  byteLength: number;
}

/** Headers larger than this are refused: real ones are kilobytes, and JSON.parse of an attacker-sized header would exhaust memory. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;
const MAX_DIMS = 8;

export class SafetensorsFile {
  /** The "__metadata__" map ({} when absent). */
  readonly metadata: Readonly<Record<string, string>>;
  private readonly placements = new Map<string, Placement>();

  constructor(readonly src: ByteSource) {
    const file = src.name;
    check(src.size >= 8, file, `truncated: a safetensors file needs at least 8 bytes, this one has ${src.size}`);
    const lenBytes = src.read(0, 8);
    const headerLen = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true);
    check(
      !(headerLen >= 2n && headerLen <= BigInt(MAX_HEADER_BYTES) && headerLen > BigInt(src.size - 8)),
      file,
      `truncated: the safetensors header alone needs ${8n + headerLen} bytes but the file has ${src.size}`,
    );
    check(
      headerLen >= 2n && headerLen <= BigInt(Math.min(MAX_HEADER_BYTES, src.size - 8)),
      file,
      `bad safetensors header length ${headerLen} (file size ${src.size}, limit ${MAX_HEADER_BYTES})`,
    );
    const dataStart = 8 + Number(headerLen);
    const header = parseHeaderJson(file, src.read(8, Number(headerLen)));
    const dataSize = src.size - dataStart;

    let metadata: Record<string, string> = {};
    for (const [name, value] of Object.entries(header)) {
      if (name === '__metadata__') {
        metadata = parseMetadata(file, value);
        continue;
      }
      const p = parseEntry(file, name, value, dataSize);
      this.placements.set(name, { ...p, offset: dataStart + p.offset });
    }
    this.metadata = metadata;
    checkNoOverlap(file, [...this.placements.values()]);
    // with no overlaps, covering the data section exactly means no holes and no trailing bytes:
    // a header length off by a few bytes (every tensor shifted) fails here, not as garbage values
    const covered = [...this.placements.values()].reduce((a, p) => a + p.byteLength, 0);
    check(covered === dataSize, file, `bad safetensors header: the tensors cover ${covered} bytes of a ${dataSize}-byte data section (wrong header length, or a hole)`);
  }

  get name(): string {
    return this.src.name;
  }

  entries(): SafetensorsEntry[] {
    return [...this.placements.values()].map(({ name, dtype, shape }) => ({ name, dtype, shape: [...shape] }));
  }

  has(name: string): boolean {
    return this.placements.has(name);
  }

  entry(name: string): SafetensorsEntry {
    const { dtype, shape } = this.placement(name);
    return { name, dtype, shape: [...shape] };
  }

  /** The tensor's bytes, little-endian as stored. May be a view into the source: do not mutate. */
  raw(name: string): Uint8Array {
    const p = this.placement(name);
    return this.src.read(p.offset, p.byteLength);
  }

  /** The raw bits of an F16 or BF16 tensor (an aligned copy); undefined for other dtypes. */
  half(name: string): { dtype: 'F16' | 'BF16'; bits: Uint16Array } | undefined {
    const p = this.placement(name);
    if (p.dtype !== 'F16' && p.dtype !== 'BF16') return undefined;
    const bits = new Uint16Array(alignedCopy(this.raw(name)).buffer, 0, p.byteLength / 2);
    // all-ones exponent: infinity or NaN (BF16: 8 exponent bits, F16: 5)
    const exp = p.dtype === 'BF16' ? 0x7f80 : 0x7c00;
    const bad = bits.findIndex((h) => (h & exp) === exp);
    if (bad >= 0) {
      const value = p.dtype === 'BF16' ? bf16ToF32(bits.subarray(bad, bad + 1))[0]! : f16BitsToNumber(bits[bad]!);
      throw new InputError(this.src.name, `tensor ${name} holds a non-finite value (${value}) at index ${bad}`);
    }
    return { dtype: p.dtype, bits };
  }

  /** The tensor converted to float32 (F32, F16, BF16 and F64 only); a NaN or infinity in it is an InputError. */
  float32(name: string): Float32Array {
    const values = this.float32Unchecked(name);
    checkFinite(this.src.name, name, values);
    return values;
  }

  private float32Unchecked(name: string): Float32Array {
    const p = this.placement(name);
    const bytes = this.raw(name);
    const n = p.byteLength / DTYPE_BYTES[p.dtype];
    switch (p.dtype) {
      case 'F32':
        return new Float32Array(alignedCopy(bytes).buffer, 0, n);
      case 'F16':
        return f16ToF32(new Uint16Array(alignedCopy(bytes).buffer, 0, n));
      case 'BF16':
        return bf16ToF32(new Uint16Array(alignedCopy(bytes).buffer, 0, n));
      case 'F64':
        return Float32Array.from(new Float64Array(alignedCopy(bytes).buffer, 0, n));
      default:
        throw new InputError(this.src.name, `tensor ${name} has dtype ${p.dtype}, expected a float type (F32, F16, BF16, F64)`);
    }
  }

  private placement(name: string): Placement {
    const p = this.placements.get(name);
    check(p !== undefined, this.src.name, `no tensor named ${name}`);
    return p;
  }
}

function parseHeaderJson(file: string, bytes: Uint8Array): Record<string, unknown> {
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw new InputError(file, `bad safetensors header: ${(e as Error).message}`);
  }
  check(isObject(header), file, 'bad safetensors header: not a JSON object');
  return header;
}

function parseMetadata(file: string, value: unknown): Record<string, string> {
  check(isObject(value), file, 'bad safetensors header: __metadata__ is not an object');
  for (const [k, v] of Object.entries(value)) {
    check(typeof v === 'string', file, `bad safetensors header: __metadata__.${k} is not a string`);
  }
  return { ...(value as Record<string, string>) };
}

function parseEntry(file: string, name: string, value: unknown, dataSize: number): Placement {
  const bad = (problem: string) => new InputError(file, `bad safetensors entry ${name}: ${problem}`);
  if (!isObject(value)) throw bad('not an object');
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) throw bad(`unknown dtype ${JSON.stringify(dtype)}`);
  const isDim = (d: unknown): d is number => Number.isSafeInteger(d) && (d as number) >= 0;
  if (!Array.isArray(shape) || shape.length > MAX_DIMS || !shape.every(isDim)) throw bad(`bad shape ${JSON.stringify(shape)}`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isDim)) {
    throw bad(`bad data_offsets ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) throw bad(`data_offsets [${begin}, ${end}] end before they begin`);
  if (end > dataSize) throw bad(`data_offsets [${begin}, ${end}] outside the data section of ${dataSize} bytes (truncated file?)`);
  const elemBytes = DTYPE_BYTES[dtype as SafetensorsDtype];
  const count = (shape as number[]).reduce((a, b) => a * b, 1);
  // a shape whose element count overflows 2^53 fails the isSafeInteger test
  if (!Number.isSafeInteger(count * elemBytes) || count * elemBytes !== end - begin) {
    throw bad(`data_offsets span ${end - begin} bytes but shape [${shape.join(', ')}] of ${dtype} needs ${count * elemBytes}`);
  }
  return { name, dtype: dtype as SafetensorsDtype, shape: shape as number[], offset: begin, byteLength: end - begin };
}

function checkNoOverlap(file: string, ps: Placement[]): void {
  const sorted = ps.filter((p) => p.byteLength > 0).sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    check(cur.offset >= prev.offset + prev.byteLength, file, `bad safetensors header: tensors ${prev.name} and ${cur.name} overlap`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * A copy whose buffer starts at offset 0, so typed-array views of any width are aligned (not
 * `bytes.slice()`: on a Node Buffer that is a view into the same memory).
 */
function alignedCopy(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(copyToArrayBuffer(bytes));
}

let f16Table: Float32Array | undefined;

/** IEEE half (as raw u16 bits) → float32. One 65536-entry table (256 KB), built on first use. */
export function f16ToF32(src: Uint16Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  f16Table ??= buildF16Table();
  for (let i = 0; i < src.length; i++) out[i] = f16Table[src[i]!]!;
  return out;
}

/** One IEEE half (raw bits) → number. */
export function f16BitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero and subnormals
  if (exp === 0x1f) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function buildF16Table(): Float32Array {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) t[h] = f16BitsToNumber(h);
  return t;
}

/** bfloat16 (raw u16 bits) → float32: bf16 is the top half of a float32. */
export function bf16ToF32(src: Uint16Array): Float32Array {
  const out = new Uint32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i]! << 16;
  return new Float32Array(out.buffer);
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** number → IEEE half bits, round to nearest even (overflow → ±Infinity), for writers of F16 tensors. */
export function numberToF16Bits(x: number): number {
  f32Scratch[0] = x;
  const f = u32Scratch[0]!;
  const sign = (f >>> 16) & 0x8000;
  const exp = (f >>> 23) & 0xff;
  const mant = f & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // Inf / NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal
    const m = mant | 0x800000; // implicit leading 1
    const shift = 14 - e;
    return sign | roundShift(m, shift);
  }
  // normal: carry from rounding may bump the exponent, which is the right result
  return sign | ((e << 10) + roundShift(mant, 13));
}

/** number → bfloat16 bits (the top half of the float32), round to nearest even; NaN stays NaN. */
export function numberToBf16Bits(x: number): number {
  f32Scratch[0] = x;
  const f = u32Scratch[0]!;
  if ((f & 0x7f800000) === 0x7f800000 && (f & 0x7fffff) !== 0) return (f >>> 16) | 0x40; // quiet NaN
  return roundShift(f, 16) & 0xffff; // a carry into the exponent (or to Inf) is the right result
}

/** m >> shift, rounded to nearest, ties to even. */
function roundShift(m: number, shift: number): number {
  const q = m >>> shift;
  const rem = m - q * 2 ** shift;
  const half = 2 ** (shift - 1);
  return rem > half || (rem === half && (q & 1) === 1) ? q + 1 : q;
}
