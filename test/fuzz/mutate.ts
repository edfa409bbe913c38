/**
 * The seeded mutator of the fuzz suite: one mutation of one input file, chosen and applied by a
 * mulberry32 stream, so a (seed, case) pair always produces the same bytes. Mutations follow
 * how files break in practice and how parsers are attacked:
 *   truncate      cut anywhere, half the time inside the header
 *   bitflip       1–8 bits, half the time inside the header
 *   header-int    a binary header integer set to 0, −1, 2³¹−1, −2³¹, huge, ±1
 *   json-field    a JSON field (config.json, tokenizer.json, a safetensors header, the packed
 *                 header inside it) set to a wrong type, a huge or negative value, or deleted
 *   nan-payload   NaN / ±Inf / ±3e38 (or f16 Inf/NaN/65504) written into tensor data
 *   shift         a safetensors header length or an entry's data_offsets moved by a few bytes
 * GGUF files: header-int picks one of the header's counts, string lengths, array types and
 * lengths, tensor dims, types or offsets (found by walking the header) and sets it.
 */
import { mulberry32 } from '../../src/quant/random.js';

/** How a file is laid out, which decides where its header is and which mutations apply. */
/** `raw`: headerless bytes (a resume directory's float32 inputs and packed blocks). */
export type FileKind = 'llama2c-model' | 'llama2c-tokenizer' | 'json' | 'safetensors' | 'gguf' | 'raw';

export const MUTATIONS = ['truncate', 'bitflip', 'header-int', 'json-field', 'nan-payload', 'shift'] as const;
export type MutationKind = (typeof MUTATIONS)[number];

export interface Mutation {
  kind: MutationKind;
  /** What was changed, for the report ("header int 6 (seq_len) = -1"). */
  what: string;
  bytes: Uint8Array;
}

export type Rand = () => number;

export function rng(seed: number, caseIndex: number): Rand {
  // decorrelate neighbouring cases of one seed
  return mulberry32((Math.imul(seed, 0x9e3779b1) ^ Math.imul(caseIndex + 1, 0x85ebca77)) >>> 0);
}

const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const int = (r: Rand, n: number): number => Math.floor(r() * n);

/** The mutations that make sense for a kind of file. */
export function mutationsFor(kind: FileKind): MutationKind[] {
  switch (kind) {
    case 'json':
      return ['truncate', 'bitflip', 'json-field', 'json-field', 'json-field'];
    case 'safetensors':
      return ['truncate', 'bitflip', 'header-int', 'json-field', 'json-field', 'nan-payload', 'shift'];
    case 'llama2c-model':
      return ['truncate', 'bitflip', 'header-int', 'header-int', 'nan-payload'];
    case 'llama2c-tokenizer':
      return ['truncate', 'bitflip', 'header-int', 'header-int', 'nan-payload'];
    case 'gguf':
      return ['truncate', 'bitflip', 'header-int', 'header-int', 'header-int'];
    case 'raw':
      return ['truncate', 'bitflip', 'nan-payload'];
  }
}

export function mutate(kind: FileKind, base: Uint8Array, r: Rand): Mutation {
  const m = pick(r, mutationsFor(kind));
  switch (m) {
    case 'truncate':
      return truncate(kind, base, r);
    case 'bitflip':
      return bitflip(kind, base, r);
    case 'header-int':
      return kind === 'safetensors' ? headerLength(base, r) : kind === 'llama2c-model' ? llama2cHeader(base, r) : kind === 'gguf' ? ggufField(base, r) : tokenizerInt(base, r);
    case 'json-field':
      return kind === 'json' ? jsonText(base, r) : safetensorsJson(base, r);
    case 'nan-payload':
      return kind === 'safetensors' ? safetensorsPayload(base, r) : floatPayload(kind, base, r);
    case 'shift':
      return shift(base, r);
  }
}

/** Bytes of the header region of a file (where most parsers decide everything). */
function headerEnd(kind: FileKind, b: Uint8Array): number {
  if (kind === 'llama2c-model') return 28;
  if (kind === 'llama2c-tokenizer' || kind === 'raw') return Math.min(b.length, 256);
  if (kind === 'safetensors') return Math.min(b.length, 8 + Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true)));
  if (kind === 'gguf') return ggufFields(b).end;
  return b.length;
}

function truncate(kind: FileKind, b: Uint8Array, r: Rand): Mutation {
  const inHeader = r() < 0.5;
  const end = inHeader ? int(r, headerEnd(kind, b)) : int(r, b.length);
  return { kind: 'truncate', what: `cut to ${end} of ${b.length} bytes${inHeader ? ' (inside the header)' : ''}`, bytes: b.slice(0, end) };
}

function bitflip(kind: FileKind, b: Uint8Array, r: Rand): Mutation {
  const out = b.slice();
  const n = 1 + int(r, 8);
  const inHeader = r() < 0.5;
  const span = inHeader ? headerEnd(kind, b) : b.length;
  const at: number[] = [];
  for (let i = 0; i < n; i++) {
    const p = int(r, span);
    out[p]! ^= 1 << int(r, 8);
    at.push(p);
  }
  return { kind: 'bitflip', what: `${n} bit(s) flipped at ${at.join(',')}${inHeader ? ' (header)' : ''}`, bytes: out };
}

/** Integer values that break naive parsers: zero, negatives, int32 extremes, huge, off by one. */
function nastyInt(r: Rand, old: number): number {
  return pick(r, [0, -1, 2 ** 31 - 1, -(2 ** 31), 1 << 24, 1 << 30, old + 1, old - 1, old * 2, 1 + int(r, 1 << 20)]);
}

const LLAMA2C_FIELDS = ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len'];

function llama2cHeader(b: Uint8Array, r: Rand): Mutation {
  const out = b.slice();
  const v = new DataView(out.buffer);
  const f = int(r, 7);
  const value = nastyInt(r, v.getInt32(4 * f, true)) | 0;
  v.setInt32(4 * f, value, true);
  return { kind: 'header-int', what: `header ${LLAMA2C_FIELDS[f]} = ${value}`, bytes: out };
}

/** tokenizer.bin: the max_token_length, or one token's length or score field. */
function tokenizerInt(b: Uint8Array, r: Rand): Mutation {
  const out = b.slice();
  const v = new DataView(out.buffer);
  if (r() < 0.3) {
    const value = nastyInt(r, v.getInt32(0, true)) | 0;
    v.setInt32(0, value, true);
    return { kind: 'header-int', what: `max_token_length = ${value}`, bytes: out };
  }
  const records: number[] = []; // byte offset of each token's (score, length)
  for (let off = 4; off + 8 <= b.length; ) {
    records.push(off);
    const len = v.getInt32(off + 4, true);
    if (len < 0) break;
    off += 8 + len;
  }
  const t = int(r, records.length);
  const value = nastyInt(r, v.getInt32(records[t]! + 4, true)) | 0;
  v.setInt32(records[t]! + 4, value, true);
  return { kind: 'header-int', what: `token ${t} length = ${value}`, bytes: out };
}

function headerLength(b: Uint8Array, r: Rand): Mutation {
  const out = b.slice();
  const v = new DataView(out.buffer);
  const old = v.getBigUint64(0, true);
  const value = pick(r, [0n, 0xffffffffffffffffn, 2n ** 31n - 1n, 2n ** 63n, 1n << 40n, old + 1n, old - 1n, old + 8n, old - 8n, BigInt(b.length)]);
  v.setBigUint64(0, BigInt.asUintN(64, value), true);
  return { kind: 'header-int', what: `header length ${old} → ${BigInt.asUintN(64, value)}`, bytes: out };
}

/** Replacement values of a JSON field: wrong types, huge and negative numbers, NaN spelled out. */
function nastyJson(r: Rand, old: unknown): unknown {
  const n = typeof old === 'number' ? old : 1;
  return pick(r, [
    0, -1, 2 ** 31 - 1, 2 ** 53 + 1, 1 << 24, 1e9, 1e308, -1e308, 0.5, n * 2, n + 1, -n,
    'x', '', 'NaN', null, true, false, [], {}, [n, n], { value: old }, 'a'.repeat(1 + int(r, 100_000)),
  ]);
}

/** All paths of a JSON value (arrays sampled, so a 30 000-entry vocabulary does not dominate). */
function paths(v: unknown, prefix: Array<string | number> = [], out: Array<Array<string | number>> = [], depth = 0): Array<Array<string | number>> {
  if (depth > 6 || out.length > 5000) return out;
  if (Array.isArray(v)) {
    const idx = v.length <= 8 ? v.map((_, i) => i) : [0, 1, v.length - 1, v.length >> 1];
    for (const i of idx) {
      out.push([...prefix, i]);
      paths(v[i], [...prefix, i], out, depth + 1);
    }
  } else if (typeof v === 'object' && v !== null) {
    const keys = Object.keys(v);
    const sample = keys.length <= 40 ? keys : [keys[0]!, keys[1]!, keys[keys.length - 1]!, keys[keys.length >> 1]!];
    for (const k of sample) {
      out.push([...prefix, k]);
      paths((v as Record<string, unknown>)[k], [...prefix, k], out, depth + 1);
    }
  }
  return out;
}

/** Sets or deletes one field of `doc` (mutated in place); returns what was done. */
function mutateJsonValue(doc: unknown, r: Rand): string {
  const all = paths(doc);
  if (all.length === 0) return 'nothing to change';
  const path = pick(r, all);
  let parent = doc as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
  const key = path[path.length - 1]!;
  const name = path.join('.');
  if (r() < 0.12 && !Array.isArray(parent)) {
    delete parent[key];
    return `${name} deleted`;
  }
  const value = nastyJson(r, parent[key]);
  parent[key] = value;
  const shown = JSON.stringify(value) ?? String(value);
  return `${name} = ${shown.length > 40 ? `${shown.slice(0, 40)}…` : shown}`;
}

function jsonText(b: Uint8Array, r: Rand): Mutation {
  const doc = JSON.parse(new TextDecoder().decode(b)) as unknown;
  const what = mutateJsonValue(doc, r);
  return { kind: 'json-field', what, bytes: new TextEncoder().encode(JSON.stringify(doc)) };
}

interface SafetensorsParts {
  header: Record<string, unknown>;
  data: Uint8Array;
  headerBytes: number;
}

function splitSafetensors(b: Uint8Array): SafetensorsParts {
  const n = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(b.subarray(8, 8 + n))) as Record<string, unknown>;
  return { header, data: b.subarray(8 + n), headerBytes: n };
}

/** Re-assembles a safetensors file, padding the header with spaces to its old length (or to a multiple of 64) so aligned data stays aligned. */
function joinSafetensors(p: SafetensorsParts, header: Record<string, unknown>): Uint8Array {
  let json = new TextEncoder().encode(JSON.stringify(header));
  const target = json.length <= p.headerBytes ? p.headerBytes : Math.ceil((json.length + 8) / 64) * 64 - 8;
  if (json.length < target) {
    const padded = new Uint8Array(target).fill(0x20);
    padded.set(json);
    json = padded;
  }
  const out = new Uint8Array(8 + json.length + p.data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(p.data, 8 + json.length);
  return out;
}

/** A field of a safetensors header: an entry's dtype/shape/offsets, or (packed files) the bitcrush header inside __metadata__. */
function safetensorsJson(b: Uint8Array, r: Rand): Mutation {
  const p = splitSafetensors(b);
  const meta = p.header['__metadata__'] as Record<string, string> | undefined;
  if (meta?.['bitcrush'] !== undefined && r() < 0.6) {
    const inner = JSON.parse(meta['bitcrush']) as unknown;
    const what = mutateJsonValue(inner, r);
    meta['bitcrush'] = JSON.stringify(inner);
    return { kind: 'json-field', what: `packed header ${what}`, bytes: joinSafetensors(p, p.header) };
  }
  const what = mutateJsonValue(p.header, r);
  return { kind: 'json-field', what: `safetensors header ${what}`, bytes: joinSafetensors(p, p.header) };
}

const F32_NASTY = [NaN, Infinity, -Infinity, 3e38, -3e38];
const F16_NASTY = [0x7e00, 0x7c00, 0xfc00, 0x7bff, 0xfbff];

function floatPayload(kind: FileKind, b: Uint8Array, r: Rand): Mutation {
  const out = b.slice();
  const v = new DataView(out.buffer);
  const start = kind === 'llama2c-model' ? 28 : kind === 'raw' ? 0 : 4;
  const n = 1 + int(r, 16);
  const value = pick(r, F32_NASTY);
  let first = -1;
  if (kind === 'llama2c-tokenizer') {
    // token scores: float32 at the start of each record
    let off = 4;
    for (let t = 0; off + 8 <= b.length && t < 10_000; t++) {
      if (r() < n / 500) {
        v.setFloat32(off, value, true);
        if (first < 0) first = t;
      }
      const len = v.getInt32(off + 4, true);
      if (len < 0) break;
      off += 8 + len;
    }
    return { kind: 'nan-payload', what: `token scores = ${value} (from token ${first})`, bytes: out };
  }
  const at = start + 4 * int(r, (b.length - start) / 4);
  for (let i = 0; i < n && at + 4 * i + 4 <= out.length; i++) v.setFloat32(at + 4 * i, value, true);
  return { kind: 'nan-payload', what: `${n} float(s) = ${value} at byte ${at}`, bytes: out };
}

function safetensorsPayload(b: Uint8Array, r: Rand): Mutation {
  const p = splitSafetensors(b);
  const entries = Object.entries(p.header).filter(([k]) => k !== '__metadata__') as Array<[string, { dtype: string; data_offsets: [number, number] }]>;
  const [name, e] = pick(r, entries);
  const out = b.slice();
  const v = new DataView(out.buffer);
  const base = 8 + p.headerBytes + e.data_offsets[0];
  const len = e.data_offsets[1] - e.data_offsets[0];
  if (len === 0) return { kind: 'nan-payload', what: `${name} is empty: unchanged`, bytes: out };
  if (e.dtype === 'F32') {
    const value = pick(r, F32_NASTY);
    const i = int(r, len / 4);
    v.setFloat32(base + 4 * i, value, true);
    return { kind: 'nan-payload', what: `${name}[${i}] = ${value}`, bytes: out };
  }
  if (e.dtype === 'F16' || e.dtype === 'BF16') {
    const bits = e.dtype === 'F16' ? pick(r, F16_NASTY) : pick(r, [0x7fc0, 0x7f80, 0xff80, 0x7f7f]);
    const i = int(r, len / 2);
    v.setUint16(base + 2 * i, bits, true);
    return { kind: 'nan-payload', what: `${name}[${i}] = ${e.dtype} 0x${bits.toString(16)}`, bytes: out };
  }
  // packed codes and indices: arbitrary bytes over a stretch
  const i = int(r, len);
  const n = Math.min(len - i, 1 + int(r, 64));
  for (let k = 0; k < n; k++) out[base + i + k] = pick(r, [0x00, 0xff, int(r, 256)]);
  return { kind: 'nan-payload', what: `${name} bytes ${i}..${i + n} overwritten`, bytes: out };
}

/** Shifted offsets: the header length (JSON padded so it still parses) or one entry's data_offsets. */
function shift(b: Uint8Array, r: Rand): Mutation {
  const p = splitSafetensors(b);
  const k = pick(r, [1, 2, 3, 4, 8, 64, -1, -2, -4, -8, -64]);
  if (r() < 0.4) {
    // the data section moves under every tensor: k filler bytes after the header (its length
    // now k short, as in a writer's off-by-k bug), or the data's first -k bytes lost
    const head = b.subarray(0, 8 + p.headerBytes);
    const tail = k > 0 ? concat(new Uint8Array(k).fill(0x20), p.data) : p.data.subarray(-k);
    return { kind: 'shift', what: `data section shifted by ${k} bytes against the header`, bytes: concat(head, tail) };
  }
  const entries = Object.keys(p.header).filter((n) => n !== '__metadata__');
  const name = pick(r, entries);
  const e = p.header[name] as { data_offsets: [number, number] };
  const both = r() < 0.5;
  e.data_offsets = [e.data_offsets[0] + (both ? k : 0), e.data_offsets[1] + k];
  return { kind: 'shift', what: `${name} data_offsets ${both ? 'both' : 'end'} shifted by ${k}`, bytes: joinSafetensors(p, p.header) };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

interface GgufField {
  at: number;
  bytes: 4 | 8;
  what: string;
}

/** The integer fields of a (valid) GGUF header, by walking it as gguf.md lays it out; `end`: where the header ends. */
function ggufFields(b: Uint8Array): { fields: GgufField[]; end: number } {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const fields: GgufField[] = [];
  let at = 8;
  const u32 = (what: string): number => {
    fields.push({ at, bytes: 4, what });
    at += 4;
    return v.getUint32(at - 4, true);
  };
  const u64 = (what: string): number => {
    fields.push({ at, bytes: 8, what });
    at += 8;
    return Number(v.getBigUint64(at - 8, true));
  };
  const str = (what: string): void => {
    const n = u64(`${what} length`);
    at += n;
  };
  const SIZES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
  const value = (type: number, what: string): void => {
    if (type === 8) str(what);
    else if (type === 9) {
      const elem = u32(`${what} element type`);
      const n = u64(`${what} count`);
      // long arrays: their first elements' fields only (the rest are alike)
      for (let i = 0; i < n && at <= b.length; i++) {
        if (elem === 8) {
          if (i < 64) str(`${what}[${i}]`);
          else at += 8 + Number(v.getBigUint64(at, true));
        } else if (elem === 9) throw new Error('nested arrays in the fuzz corpus');
        else at += SIZES[elem]!;
      }
    } else at += SIZES[type]!;
  };
  try {
    const nTensors = u64('tensor count');
    const nKv = u64('kv count');
    for (let k = 0; k < nKv; k++) {
      const len = Number(v.getBigUint64(at, true));
      const key = new TextDecoder().decode(b.subarray(at + 8, at + 8 + len));
      str(`key ${k}`);
      const type = u32(`${key} type`);
      value(type, key);
    }
    for (let t = 0; t < nTensors; t++) {
      str(`tensor ${t} name`);
      const dims = u32(`tensor ${t} n_dims`);
      for (let d = 0; d < dims; d++) u64(`tensor ${t} ne[${d}]`);
      u32(`tensor ${t} type`);
      u64(`tensor ${t} offset`);
    }
  } catch {
    // a header this walker cannot follow: the fields found so far
  }
  return { fields, end: Math.min(b.length, at) };
}

function ggufField(b: Uint8Array, r: Rand): Mutation {
  const out = b.slice();
  const v = new DataView(out.buffer);
  const { fields } = ggufFields(b);
  const f = pick(r, fields);
  const old = f.bytes === 4 ? v.getUint32(f.at, true) : Number(v.getBigUint64(f.at, true));
  const value = r() < 0.2 && f.bytes === 8 ? 2n ** 63n + BigInt(int(r, 1000)) : BigInt(nastyInt(r, old));
  if (f.bytes === 4) v.setUint32(f.at, Number(BigInt.asUintN(32, value)), true);
  else v.setBigUint64(f.at, BigInt.asUintN(64, value), true);
  return { kind: 'header-int', what: `${f.what} = ${value}`, bytes: out };
}
