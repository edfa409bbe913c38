/**
 * Uniform b-bit group formats (GPTQ / RTN grids): every column group of every row has its own
 * float16 scale and, in the asymmetric variant, a b-bit integer zero; the symmetric variant's
 * zero is the grid midpoint 2^(b−1) (GPTQ's `sym=True`). The byte layout is documented where
 * the formats are registered (registry.ts); this file implements it.
 */
import type { Backend } from '../backend/types.js';
import { dequantizeGroups, groupCount, roundToF16, type GroupQuantized } from './quantized.js';
import { bitstreamBytes, decodeF16, decodeInts, encodeF16, littleEndianBytes, packBits, unpackBits } from './bitpack.js';
import type { Blob, BlobSpec, PackedTensor, WeightFormat } from './types.js';
import { UniformLinear } from './uniform-linear.js';

export type UniformParams = {
  bits: number;
  /** Columns per group; inDim = one group per row (per-channel). The last group may be partial. */
  groupSize: number;
  /** Columns stored permuted (GPTQ act-order); the perm blob maps stored → original column. */
  actOrder: boolean;
};

export const UNIFORM_BITS: readonly number[] = [2, 3, 4, 8];
/** Above this many columns a column index no longer fits int16. */
const I16_PERM_MAX_IN = 32768;

export function permDtype(inDim: number): 'I16' | 'I32' {
  return inDim <= I16_PERM_MAX_IN ? 'I16' : 'I32';
}

/** The arrays a uniform tensor's blobs decode to (scales and zeros as float, perm as int32). */
export interface UniformArrays {
  q: Uint8Array; // packed levels [outDim, rowBytes]
  rowBytes: number;
  scale: Float32Array; // [outDim, nGroups]
  zero: Float32Array; // [outDim, nGroups]
  perm: Int32Array | null; // [inDim]
  /** The scale blob's float16 bits [outDim, nGroups] and the zero blob (null: symmetric), for the native kernels. */
  scaleBits: Uint16Array;
  zeroBits: Uint8Array | null;
}

export function uniformFormat(id: string, symmetric: boolean, summary: string): WeightFormat<UniformParams, GroupQuantized> {
  const midpoint = (bits: number) => 2 ** (bits - 1);

  const blobs = (outDim: number, inDim: number, p: UniformParams): Record<string, BlobSpec> => {
    const nGroups = groupCount(inDim, p.groupSize);
    const specs: Record<string, BlobSpec> = {
      q: { dtype: 'U8', shape: [outDim, bitstreamBytes(inDim, p.bits)] },
      scale: { dtype: 'F16', shape: [outDim, nGroups] },
    };
    if (!symmetric) specs.zero = { dtype: 'U8', shape: [outDim, bitstreamBytes(nGroups, p.bits)] };
    if (p.actOrder) specs.perm = { dtype: permDtype(inDim), shape: [inDim] };
    return specs;
  };

  /**
   * Blobs → arrays, zeros decoded from their bitstream (or the implicit midpoint). The float
   * scale and zero arrays are decoded on first use: the native kernels read the float16 bits and
   * the zero bitstream as stored, so loading for them decodes nothing.
   */
  const arrays = (t: PackedTensor<UniformParams>): UniformArrays => {
    const { outDim, inDim, params: p } = t;
    const nGroups = groupCount(inDim, p.groupSize);
    const decodeZero = (): Float32Array => {
      const zero = new Float32Array(outDim * nGroups);
      if (symmetric) return zero.fill(midpoint(p.bits));
      const zBytes = bitstreamBytes(nGroups, p.bits);
      const row = new Uint8Array(nGroups);
      for (let r = 0; r < outDim; r++) {
        unpackBits(t.blobs.zero!.bytes, r * zBytes, row, nGroups, p.bits);
        zero.set(row, r * nGroups);
      }
      return zero;
    };
    const perm = t.blobs.perm;
    let scale: Float32Array | undefined;
    let zero: Float32Array | undefined;
    return {
      q: t.blobs.q!.bytes,
      rowBytes: bitstreamBytes(inDim, p.bits),
      get scale() {
        return (scale ??= decodeF16(t.blobs.scale!.bytes));
      },
      get zero() {
        return (zero ??= decodeZero());
      },
      perm: perm ? decodeInts(perm.bytes, perm.dtype as 'I16' | 'I32') : null,
      scaleBits: f16Bits(t.blobs.scale!.bytes),
      zeroBits: symmetric ? null : t.blobs.zero!.bytes,
    };
  };

  const unpack = (t: PackedTensor<UniformParams>): GroupQuantized => {
    const { outDim, inDim, params: p } = t;
    const a = arrays(t);
    const q = new Uint8Array(outDim * inDim);
    for (let r = 0; r < outDim; r++) unpackBits(a.q, r * a.rowBytes, q.subarray(r * inDim), inDim, p.bits);
    const bits = new Uint8Array(groupCount(inDim, p.groupSize)).fill(p.bits);
    return { outDim, inDim, groupSize: p.groupSize, bits, q, scale: a.scale, zero: a.zero, perm: a.perm };
  };

  const paramsOf = (g: GroupQuantized): UniformParams | string => {
    const b = g.bits[0];
    if (b === undefined || !g.bits.every((x) => x === b)) return 'per-group bit-widths differ (a mixed-width format is needed)';
    if (!UNIFORM_BITS.includes(b)) return `${b}-bit groups are not supported (bits ${UNIFORM_BITS.join(', ')})`;
    return { bits: b, groupSize: g.groupSize, actOrder: g.perm !== null };
  };

  /** Why `g` cannot be stored exactly, or null. */
  const misfit = (g: GroupQuantized): string | null => {
    const p = paramsOf(g);
    if (typeof p === 'string') return p;
    const nGroups = groupCount(g.inDim, g.groupSize);
    if (g.bits.length !== nGroups || g.q.length !== g.outDim * g.inDim || g.scale.length !== g.outDim * nGroups || g.zero.length !== g.outDim * nGroups) {
      return 'array lengths do not match outDim, inDim and groupSize';
    }
    const maxq = 2 ** p.bits - 1;
    for (let i = 0; i < g.zero.length; i++) {
      const z = g.zero[i]!;
      if (symmetric ? z !== midpoint(p.bits) : !(Number.isInteger(z) && z >= 0 && z <= maxq)) {
        return `zero[${i}] = ${z} is not ${symmetric ? `the midpoint ${midpoint(p.bits)}` : `an integer in [0, ${maxq}]`}`;
      }
    }
    for (let i = 0; i < g.scale.length; i++) {
      if (roundToF16(g.scale[i]!) !== g.scale[i]) return `scale[${i}] = ${g.scale[i]} is not a float16 value`;
    }
    for (let i = 0; i < g.q.length; i++) if (g.q[i]! > maxq) return `a level exceeds ${maxq} (${g.q[i]} at ${i})`;
    if (g.perm && !isPermutation(g.perm, g.inDim)) return 'perm is not a permutation of the columns';
    return null;
  };

  return {
    id,
    family: 'uniform',
    summary,
    block: (p) => ({ weights: 8, bytes: p.bits }),

    parseParams(raw, _outDim, inDim) {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'params is not an object';
      const { bits, groupSize, actOrder, ...rest } = raw as Record<string, unknown>;
      const extra = Object.keys(rest);
      if (extra.length > 0) return `unknown params ${extra.join(', ')}`;
      if (typeof bits !== 'number' || !UNIFORM_BITS.includes(bits)) return `bits ${JSON.stringify(bits)} is not one of ${UNIFORM_BITS.join(', ')}`;
      if (typeof groupSize !== 'number' || !Number.isInteger(groupSize) || groupSize < 1 || groupSize > inDim) {
        return `groupSize ${JSON.stringify(groupSize)} is not an integer in [1, ${inDim}]`;
      }
      if (typeof actOrder !== 'boolean') return `actOrder ${JSON.stringify(actOrder)} is not a boolean`;
      return { bits, groupSize, actOrder };
    },

    blobs,

    validate(t) {
      const { scaleBits, perm } = arrays(t);
      // float16 infinities and NaNs: exponent bits all ones
      const bad = scaleBits.findIndex((h) => (h & 0x7c00) === 0x7c00);
      if (bad >= 0) return `scale[${bad}] is not finite`;
      if (perm && !isPermutation(perm, t.inDim)) return 'perm is not a permutation of the columns';
      return null;
    },

    accepts: (g) => misfit(g) === null,
    paramsFor: (g) => paramsOf(g) as UniformParams,

    pack(g) {
      const why = misfit(g);
      if (why !== null) throw new RangeError(`${id}: cannot store this tensor: ${why}`);
      const p = paramsOf(g) as UniformParams;
      const { outDim, inDim } = g;
      const specs = blobs(outDim, inDim, p);
      const nGroups = groupCount(inDim, p.groupSize);
      const rowBytes = bitstreamBytes(inDim, p.bits);
      const q = new Uint8Array(outDim * rowBytes);
      for (let r = 0; r < outDim; r++) packBits(q, r * rowBytes, g.q.subarray(r * inDim, (r + 1) * inDim), inDim, p.bits);
      const out: Record<string, Blob> = {
        q: { ...specs.q!, bytes: q },
        scale: { ...specs.scale!, bytes: encodeF16(g.scale, 'scale') },
      };
      if (!symmetric) {
        const zBytes = bitstreamBytes(nGroups, p.bits);
        const z = new Uint8Array(outDim * zBytes);
        for (let r = 0; r < outDim; r++) packBits(z, r * zBytes, g.zero.subarray(r * nGroups, (r + 1) * nGroups), nGroups, p.bits);
        out.zero = { ...specs.zero!, bytes: z };
      }
      if (g.perm) {
        const ints = specs.perm!.dtype === 'I16' ? Int16Array.from(g.perm) : Int32Array.from(g.perm);
        out.perm = { ...specs.perm!, bytes: littleEndianBytes(ints) };
      }
      return { format: id, outDim, inDim, params: p, blobs: out };
    },

    unpack,

    payloadWeights: dequantizeGroups,

    dequantize: (t) => dequantizeGroups(unpack(t)),

    makeLinear: (t, backend: Backend) => new UniformLinear(t.outDim, t.inDim, t.params, arrays(t), backend),

    rowGather(t) {
      const { outDim, inDim, params: p } = t;
      const a = arrays(t);
      const nGroups = groupCount(inDim, p.groupSize);
      const levels = new Uint8Array(inDim); // one row's levels, reused
      return {
        rows: outDim,
        cols: inDim,
        row(dst, r) {
          if (!(Number.isInteger(r) && r >= 0 && r < outDim)) throw new RangeError(`row ${r} outside 0..${outDim - 1}`);
          unpackBits(a.q, r * a.rowBytes, levels, inDim, p.bits);
          const g0 = r * nGroups;
          for (let j = 0; j < inDim; j++) {
            const g = g0 + Math.floor(j / p.groupSize);
            dst[a.perm ? a.perm[j]! : j] = a.scale[g]! * (levels[j]! - a.zero[g]!);
          }
        },
      };
    },

    examples() {
      const shapes: Array<[number, number, number]> = [
        [7, 100, 100], // per-channel
        [7, 100, 32], // partial last group (4 columns)
        [5, 64, 16], // even groups
        // native kernels (native/lowbit.h): 128-column blocks with a short last block, a short last group, odd rows
        [9, 300, 128],
        [5, 520, 256],
        // groups inside 128-column blocks (GGUF Q4_0/Q8_0, GPTQ g32/g64): a short last block and a
        // short last group with groups past the row's end; [7, 100, 32] above is one short block
        [9, 300, 32],
        [5, 520, 64],
      ];
      const ex: Array<{ outDim: number; inDim: number; params: UniformParams }> = [];
      for (const bits of UNIFORM_BITS) {
        for (const [outDim, inDim, groupSize] of shapes) {
          for (const actOrder of [false, true]) ex.push({ outDim, inDim, params: { bits, groupSize, actOrder } });
        }
      }
      ex.push({ outDim: 2, inDim: 33000, params: { bits: 3, groupSize: 128, actOrder: true } }); // int32 perm
      return ex;
    },

    randomPayload(outDim, inDim, p, rand) {
      const nGroups = groupCount(inDim, p.groupSize);
      const maxq = 2 ** p.bits - 1;
      const q = Uint8Array.from({ length: outDim * inDim }, () => Math.floor(rand() * (maxq + 1)));
      const scale = Float32Array.from({ length: outDim * nGroups }, () => roundToF16((rand() < 0.1 ? -1 : 1) * (1e-3 + 0.1 * rand())));
      const zero = Float32Array.from({ length: outDim * nGroups }, () => (symmetric ? midpoint(p.bits) : Math.floor(rand() * (maxq + 1))));
      let perm: Int32Array | null = null;
      if (p.actOrder) {
        perm = Int32Array.from({ length: inDim }, (_, i) => i);
        for (let i = inDim - 1; i > 0; i--) {
          const j = Math.floor(rand() * (i + 1));
          [perm[i], perm[j]] = [perm[j]!, perm[i]!];
        }
      }
      return { outDim, inDim, groupSize: p.groupSize, bits: new Uint8Array(nGroups).fill(p.bits), q, scale, zero, perm };
    },
  };
}

/** A Uint16Array over float16 bytes (little-endian), a view when aligned. */
function f16Bits(bytes: Uint8Array): Uint16Array {
  if (bytes.byteOffset % 2 === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 1);
  return new Uint16Array(bytes.slice().buffer);
}

function isPermutation(perm: Int32Array, n: number): boolean {
  if (perm.length !== n) return false;
  const seen = new Uint8Array(n);
  for (const c of perm) {
    if (!(c >= 0 && c < n) || seen[c]) return false;
    seen[c] = 1;
  }
  return true;
}
