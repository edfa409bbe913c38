/**
 * The mixed-precision group format of SliM-LLM: every column group has its own bit-width 1..4
 * (the same for all rows, so the per-group map is stored once), each row's groups are packed at
 * their own widths. The byte layout is documented where the format is registered (registry.ts);
 * this file implements it, the kernels are in mixed-linear.ts.
 */
import type { Backend } from '../backend/types.js';
import { dequantizeGroups, groupCount, roundToF16, type GroupQuantized } from './quantized.js';
import { bitstreamBytes, decodeF16, encodeF16, packBits, unpackBits } from './bitpack.js';
import type { Blob, BlobSpec, PackedTensor, WeightFormat } from './types.js';
import { MixedLinear } from './mixed-linear.js';

export type MixedParams = {
  /** Columns per group; the last group may be partial. */
  groupSize: number;
  /** [4] how many column groups have 1, 2, 3, 4 bits (sums to nGroups). */
  groups: readonly number[];
  /** Width of the last group (which may be partial), so row sizes follow from the header. */
  lastBits: number;
};

export const MIXED_MAX_BITS = 4;

/** What the kernels need, decoded once: per-group widths and offsets, scales and zeros as float. */
export interface MixedLayout {
  groupSize: number;
  nGroups: number;
  widths: Uint8Array; // [nGroups]
  /** [nGroups + 1] byte offset of each group within a row of q; rowBytes = groupByte[nGroups]. */
  groupByte: Int32Array;
}

export interface MixedArrays extends MixedLayout {
  q: Uint8Array; // [outDim, rowBytes]
  scale: Float32Array; // [outDim, nGroups]
  zero: Float32Array; // [outDim, nGroups]
  /** The scale, zero and zero1 blobs as stored, for the native kernels (mixed-native.ts). */
  raw?: { scaleBits: Uint16Array; zeroBits: Uint8Array | null; zero1Bits: Uint16Array | null; zeroBytes: number; n1: number };
}

/** A Uint16Array over float16 bytes (little-endian), a view when aligned. */
function f16Bits(bytes: Uint8Array): Uint16Array {
  if (bytes.byteOffset % 2 === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 1);
  return new Uint16Array(bytes.slice().buffer);
}

function layoutOf(inDim: number, groupSize: number, widths: Uint8Array): MixedLayout {
  const nGroups = widths.length;
  const groupByte = new Int32Array(nGroups + 1);
  for (let g = 0; g < nGroups; g++) {
    const len = Math.min(groupSize, inDim - g * groupSize);
    groupByte[g + 1] = groupByte[g]! + bitstreamBytes(len, widths[g]!);
  }
  return { groupSize, nGroups, widths, groupByte };
}

/** Row bytes of q and of the integer-zero bitstream, from the header alone. */
function rowSizes(inDim: number, p: MixedParams): { rowBytes: number; zeroBits: number } {
  const nGroups = groupCount(inDim, p.groupSize);
  const lastLen = inDim - (nGroups - 1) * p.groupSize;
  let rowBytes = 0;
  let zeroBits = 0;
  for (let b = 1; b <= MIXED_MAX_BITS; b++) {
    const n = p.groups[b - 1]! - (b === p.lastBits ? 1 : 0);
    rowBytes += n * bitstreamBytes(p.groupSize, b);
    if (b >= 2) zeroBits += p.groups[b - 1]! * b;
  }
  rowBytes += bitstreamBytes(lastLen, p.lastBits);
  return { rowBytes, zeroBits };
}

/** Writes `bits` bits of v at bit position `bit` of dst (bytes zero there). */
function putBits(dst: Uint8Array, bit: number, v: number, bits: number): void {
  for (let k = 0; k < bits; k++, bit++) if ((v >>> k) & 1) dst[bit >>> 3]! |= 1 << (bit & 7);
}

function getBits(src: Uint8Array, bit: number, bits: number): number {
  let v = 0;
  for (let k = 0; k < bits; k++, bit++) v |= ((src[bit >>> 3]! >>> (bit & 7)) & 1) << k;
  return v;
}

function decodeWidths(bytes: Uint8Array, nGroups: number): Uint8Array {
  const codes = new Uint8Array(nGroups);
  unpackBits(bytes, 0, codes, nGroups, 2);
  return codes.map((c) => c + 1);
}

export function mixedFormat(id: string, summary: string): WeightFormat<MixedParams, GroupQuantized> {
  const blobs = (outDim: number, inDim: number, p: MixedParams): Record<string, BlobSpec> => {
    const nGroups = groupCount(inDim, p.groupSize);
    const { rowBytes, zeroBits } = rowSizes(inDim, p);
    const specs: Record<string, BlobSpec> = {
      widths: { dtype: 'U8', shape: [bitstreamBytes(nGroups, 2)] },
      q: { dtype: 'U8', shape: [outDim, rowBytes] },
      scale: { dtype: 'F16', shape: [outDim, nGroups] },
    };
    if (zeroBits > 0) specs.zero = { dtype: 'U8', shape: [outDim, Math.ceil(zeroBits / 8)] };
    if (p.groups[0]! > 0) specs.zero1 = { dtype: 'F16', shape: [outDim, p.groups[0]!] };
    return specs;
  };

  const arrays = (t: PackedTensor<MixedParams>): MixedArrays => {
    const { outDim, inDim, params: p } = t;
    const nGroups = groupCount(inDim, p.groupSize);
    const layout = layoutOf(inDim, p.groupSize, decodeWidths(t.blobs.widths!.bytes, nGroups));
    const { zeroBits } = rowSizes(inDim, p);
    const zBytes = Math.ceil(zeroBits / 8);
    // the float arrays are decoded on first use: the native kernels read the blobs as stored
    const decodeZero = (): Float32Array => {
      const zero1 = t.blobs.zero1 ? decodeF16(t.blobs.zero1.bytes) : new Float32Array(0);
      const zero = new Float32Array(outDim * nGroups);
      for (let r = 0; r < outDim; r++) {
        let bit = r * zBytes * 8;
        let k1 = r * p.groups[0]!;
        for (let g = 0; g < nGroups; g++) {
          const b = layout.widths[g]!;
          if (b === 1) zero[r * nGroups + g] = zero1[k1++]!;
          else {
            zero[r * nGroups + g] = getBits(t.blobs.zero!.bytes, bit, b);
            bit += b;
          }
        }
      }
      return zero;
    };
    const raw = {
      scaleBits: f16Bits(t.blobs.scale!.bytes),
      zeroBits: t.blobs.zero ? t.blobs.zero.bytes : null,
      zero1Bits: t.blobs.zero1 ? f16Bits(t.blobs.zero1.bytes) : null,
      zeroBytes: zBytes,
      n1: p.groups[0]!,
    };
    let scale: Float32Array | undefined;
    let zero: Float32Array | undefined;
    return {
      ...layout,
      q: t.blobs.q!.bytes,
      get scale() {
        return (scale ??= decodeF16(t.blobs.scale!.bytes));
      },
      get zero() {
        return (zero ??= decodeZero());
      },
      raw,
    };
  };

  const unpack = (t: PackedTensor<MixedParams>): GroupQuantized => {
    const { outDim, inDim, params: p } = t;
    const a = arrays(t);
    const rowBytes = a.groupByte[a.nGroups]!;
    const q = new Uint8Array(outDim * inDim);
    for (let r = 0; r < outDim; r++) {
      for (let g = 0; g < a.nGroups; g++) {
        const c0 = g * p.groupSize;
        const len = Math.min(p.groupSize, inDim - c0);
        unpackBits(a.q, r * rowBytes + a.groupByte[g]!, q.subarray(r * inDim + c0), len, a.widths[g]!);
      }
    }
    return { outDim, inDim, groupSize: p.groupSize, bits: a.widths.slice(), q, scale: a.scale, zero: a.zero, perm: null };
  };

  const paramsOf = (g: GroupQuantized): MixedParams => {
    const groups = [0, 0, 0, 0];
    for (const b of g.bits) groups[b - 1]!++;
    return { groupSize: g.groupSize, groups, lastBits: g.bits[g.bits.length - 1]! };
  };

  /** Why `g` cannot be stored exactly, or null. */
  const misfit = (g: GroupQuantized): string | null => {
    const nGroups = groupCount(g.inDim, g.groupSize);
    if (g.bits.length !== nGroups || g.q.length !== g.outDim * g.inDim || g.scale.length !== g.outDim * nGroups || g.zero.length !== g.outDim * nGroups) {
      return 'array lengths do not match outDim, inDim and groupSize';
    }
    if (g.perm !== null) return 'permuted columns (act-order) are not supported';
    const bad = g.bits.findIndex((b) => !(b >= 1 && b <= MIXED_MAX_BITS));
    if (bad >= 0) return `group ${bad} has ${g.bits[bad]} bits (1..${MIXED_MAX_BITS} supported)`;
    for (let i = 0; i < g.zero.length; i++) {
      const z = g.zero[i]!;
      const b = g.bits[i % nGroups]!;
      const ok = b === 1 ? Number.isFinite(z) && roundToF16(z) === z : Number.isInteger(z) && z >= 0 && z < 2 ** b;
      if (!ok) return `zero[${i}] = ${z} is not ${b === 1 ? 'a float16 value' : `an integer in [0, ${2 ** b - 1}]`}`;
    }
    for (let i = 0; i < g.scale.length; i++) {
      if (roundToF16(g.scale[i]!) !== g.scale[i]) return `scale[${i}] = ${g.scale[i]} is not a float16 value`;
    }
    // one pass over the levels: each column's limit from its group, compared row by row
    const limit = new Uint8Array(g.inDim);
    for (let j = 0; j < nGroups; j++) limit.fill(2 ** g.bits[j]! - 1, j * g.groupSize, Math.min(g.inDim, (j + 1) * g.groupSize));
    const q = g.q;
    for (let r = 0, o = 0; r < g.outDim; r++, o += g.inDim) {
      let over = 0;
      for (let c = 0; c < g.inDim; c++) over |= q[o + c]! > limit[c]! ? 1 : 0;
      if (over !== 0) for (let c = 0; c < g.inDim; c++) if (q[o + c]! > limit[c]!) return `level ${o + c} exceeds its group's width`;
    }
    return null;
  };

  return {
    id,
    family: 'mixed',
    summary,
    block: (p) => ({ weights: p.groupSize, bytes: bitstreamBytes(p.groupSize, p.lastBits) }),

    parseParams(raw, _outDim, inDim) {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'params is not an object';
      const { groupSize, groups, lastBits, ...rest } = raw as Record<string, unknown>;
      const extra = Object.keys(rest);
      if (extra.length > 0) return `unknown params ${extra.join(', ')}`;
      if (typeof groupSize !== 'number' || !Number.isInteger(groupSize) || groupSize < 1 || groupSize > inDim) {
        return `groupSize ${JSON.stringify(groupSize)} is not an integer in [1, ${inDim}]`;
      }
      const nGroups = groupCount(inDim, groupSize);
      if (!Array.isArray(groups) || groups.length !== MIXED_MAX_BITS || !groups.every((n) => Number.isInteger(n) && n >= 0)) {
        return `groups ${JSON.stringify(groups)} is not ${MIXED_MAX_BITS} counts`;
      }
      if (groups.reduce((s: number, n: number) => s + n, 0) !== nGroups) return `groups ${JSON.stringify(groups)} do not sum to the ${nGroups} column groups`;
      if (typeof lastBits !== 'number' || !Number.isInteger(lastBits) || lastBits < 1 || lastBits > MIXED_MAX_BITS || groups[lastBits - 1] === 0) {
        return `lastBits ${JSON.stringify(lastBits)} is not a width that some group has`;
      }
      return { groupSize, groups: groups as number[], lastBits };
    },

    blobs,

    validate(t) {
      const p = t.params;
      const nGroups = groupCount(t.inDim, p.groupSize);
      const widths = decodeWidths(t.blobs.widths!.bytes, nGroups);
      for (let b = 1; b <= MIXED_MAX_BITS; b++) {
        const n = widths.filter((w) => w === b).length;
        if (n !== p.groups[b - 1]) return `the width map has ${n} ${b}-bit groups, the header says ${p.groups[b - 1]}`;
      }
      if (widths[nGroups - 1] !== p.lastBits) return `the last group has ${widths[nGroups - 1]} bits, the header says ${p.lastBits}`;
      // on the float16 bits (exponent all ones: infinite or NaN); the ≥2-bit groups' zeros are integers
      const { raw } = arrays(t);
      const inf = (h: number) => (h & 0x7c00) === 0x7c00;
      const bad = raw!.scaleBits.findIndex(inf);
      if (bad >= 0) return `scale[${bad}] is not finite`;
      const badZero = raw!.zero1Bits ? raw!.zero1Bits.findIndex(inf) : -1;
      if (badZero >= 0) return `zero1[${badZero}] is not finite`;
      return null;
    },

    accepts: (g) => misfit(g) === null,
    paramsFor: (g) => paramsOf(g),

    pack(g) {
      const why = misfit(g);
      if (why !== null) throw new RangeError(`${id}: cannot store this tensor: ${why}`);
      const p = paramsOf(g);
      const { outDim, inDim } = g;
      const specs = blobs(outDim, inDim, p);
      const layout = layoutOf(inDim, p.groupSize, g.bits);
      const rowBytes = layout.groupByte[layout.nGroups]!;
      const nGroups = layout.nGroups;
      const widths = new Uint8Array(bitstreamBytes(nGroups, 2));
      packBits(widths, 0, g.bits.map((b) => b - 1), nGroups, 2);
      const q = new Uint8Array(outDim * rowBytes);
      const zBytes = specs.zero ? specs.zero.shape[1]! : 0;
      const zero = new Uint8Array(outDim * zBytes);
      const zero1: number[] = [];
      for (let r = 0; r < outDim; r++) {
        let bit = r * zBytes * 8;
        for (let gi = 0; gi < nGroups; gi++) {
          const c0 = gi * p.groupSize;
          const len = Math.min(p.groupSize, inDim - c0);
          const b = g.bits[gi]!;
          packBits(q, r * rowBytes + layout.groupByte[gi]!, g.q.subarray(r * inDim + c0, r * inDim + c0 + len), len, b);
          const z = g.zero[r * nGroups + gi]!;
          if (b === 1) zero1.push(z);
          else {
            putBits(zero, bit, z, b);
            bit += b;
          }
        }
      }
      const out: Record<string, Blob> = {
        widths: { ...specs.widths!, bytes: widths },
        q: { ...specs.q!, bytes: q },
        scale: { ...specs.scale!, bytes: encodeF16(g.scale, 'scale') },
      };
      if (specs.zero) out.zero = { ...specs.zero, bytes: zero };
      if (specs.zero1) out.zero1 = { ...specs.zero1, bytes: encodeF16(zero1, 'zero1') };
      return { format: id, outDim, inDim, params: p, blobs: out };
    },

    unpack,

    payloadWeights: dequantizeGroups,

    dequantize: (t) => dequantizeGroups(unpack(t)),

    makeLinear: (t, backend: Backend) => new MixedLinear(t.outDim, t.inDim, arrays(t), backend),

    examples() {
      const ex: Array<{ outDim: number; inDim: number; params: MixedParams }> = [
        { outDim: 7, inDim: 100, params: { groupSize: 32, groups: [1, 1, 1, 1], lastBits: 2 } }, // partial last group
        { outDim: 5, inDim: 64, params: { groupSize: 16, groups: [0, 2, 2, 0], lastBits: 3 } },
        { outDim: 3, inDim: 768, params: { groupSize: 128, groups: [1, 4, 1, 0], lastBits: 2 } },
        { outDim: 4, inDim: 48, params: { groupSize: 16, groups: [3, 0, 0, 0], lastBits: 1 } }, // all 1-bit: no integer zeros
        { outDim: 6, inDim: 60, params: { groupSize: 16, groups: [0, 0, 2, 2], lastBits: 4 } }, // no 1-bit: no F16 zeros
        { outDim: 5, inDim: 35, params: { groupSize: 10, groups: [1, 1, 1, 1], lastBits: 3 } }, // groups not byte-sized
        // wasm kernels (csrc/lowbit.c): every width in whole 16-byte blocks (g128), in short blocks
        // (g32: 8- and 16-bit lanes; g64: the 1-bit group), a partial last group, odd row counts
        { outDim: 9, inDim: 1024, params: { groupSize: 128, groups: [2, 2, 2, 2], lastBits: 3 } },
        { outDim: 7, inDim: 288, params: { groupSize: 32, groups: [2, 3, 2, 2], lastBits: 1 } },
        { outDim: 5, inDim: 256, params: { groupSize: 64, groups: [1, 1, 1, 1], lastBits: 1 } },
        { outDim: 11, inDim: 424, params: { groupSize: 128, groups: [1, 1, 1, 1], lastBits: 4 } }, // last group 40 columns
      ];
      return ex;
    },

    randomPayload(outDim, inDim, p, rand) {
      const nGroups = groupCount(inDim, p.groupSize);
      const pool: number[] = [];
      for (let b = 1; b <= MIXED_MAX_BITS; b++) for (let k = 0; k < p.groups[b - 1]! - (b === p.lastBits ? 1 : 0); k++) pool.push(b);
      for (let i = pool.length - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [pool[i], pool[j]] = [pool[j]!, pool[i]!];
      }
      const bits = Uint8Array.from([...pool, p.lastBits]);
      const q = new Uint8Array(outDim * inDim);
      for (let i = 0; i < q.length; i++) q[i] = Math.floor(rand() * 2 ** bits[Math.floor((i % inDim) / p.groupSize)]!);
      const scale = Float32Array.from({ length: outDim * nGroups }, () => roundToF16((rand() < 0.1 ? -1 : 1) * (1e-3 + 0.1 * rand())));
      const zero = Float32Array.from({ length: outDim * nGroups }, (_, i) => {
        const b = bits[i % nGroups]!;
        return b === 1 ? roundToF16(4 * rand() - 2) : Math.floor(rand() * 2 ** b);
      });
      return { outDim, inDim, groupSize: p.groupSize, bits, q, scale, zero, perm: null };
    },
  };
}

/**
 * The bit-width of each column group of a grid-format tensor [nGroups] (for reports: inspect's
 * histogram and bit-map plot), or null for formats without per-group widths (codebooks, binary).
 */
export function groupBitMap(t: PackedTensor): Uint8Array | null {
  const p = t.params as Record<string, unknown>;
  const groupSize = p.groupSize;
  if (typeof groupSize !== 'number') return null;
  const nGroups = groupCount(t.inDim, groupSize);
  if (t.blobs.widths && Array.isArray(p.groups)) return decodeWidths(t.blobs.widths.bytes, nGroups);
  if (typeof p.bits === 'number' && t.blobs.q) return new Uint8Array(nGroups).fill(p.bits);
  return null;
}
