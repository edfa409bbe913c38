/**
 * The binary weight format of BiLLM and DBellQuant (family 'binary'; byte layout at its
 * `register` call in registry.ts). Every weight is one sign bit; within each block of
 * `blockSize` columns a row has its own scales for three parts:
 *   salient columns (shared by all rows of the block): ŵ = α1·s1 + α2·s2 + μsal (residual, two sign planes)
 *   other weights with split bit 0 ("concentrated"):   ŵ = αc·s + μc
 *   other weights with split bit 1 ("sparse", large |w|): ŵ = αs·s + μs
 * with s = +1 for a set sign bit, −1 otherwise. μsal = μ1 + μ2 of BiLLM's order-2 residual
 * binarization, stored once because only the sum enters ŵ.
 */
import type { Backend } from '../backend/types.js';
import { bitstreamBytes, decodeF16, encodeF16 } from './bitpack.js';
import { roundToF16 } from './quantized.js';
import type { Blob, BlobSpec, PackedTensor, WeightFormat } from './types.js';
import { BinaryLinear } from './binary-linear.js';

/** Scales per (row, block), in this order. */
export const BINARY_SCALES = ['alphaC', 'muC', 'alphaS', 'muS', 'alpha1', 'alpha2', 'muSal'] as const;
export const NS = BINARY_SCALES.length;
export const [AC, MC, AS, MS, A1, A2, MSAL] = [0, 1, 2, 3, 4, 5, 6] as const;

/** What BiLLM hands to the formats: one 0/1 byte per bit (packing is the format's job). */
export interface BinaryQuantized {
  outDim: number;
  inDim: number;
  /** Columns per block (a multiple of 8, so blocks start on byte boundaries); the last block may be partial. */
  blockSize: number;
  /** [outDim, inDim] 1 = +1, 0 = −1 (the first-order sign of salient weights). */
  signs: Uint8Array;
  /** [inDim] 1 = salient column. */
  salient: Uint8Array;
  /** [outDim, inDim] 1 = sparse part; always 0 on salient columns. */
  split: Uint8Array;
  /** [outDim, nSalient] second-order signs of the salient columns, in column order. */
  residual: Uint8Array;
  /** [outDim, nBlocks, NS] float16 values, fields as BINARY_SCALES. */
  scales: Float32Array;
}

export type BinaryParams = {
  blockSize: number;
  /** Number of salient columns (sizes the residual blob). */
  salientColumns: number;
};

export function blockCount(inDim: number, blockSize: number): number {
  return Math.ceil(inDim / blockSize);
}

/** The reference ŵ [outDim, inDim]; BiLLM's fake-quantized weights are exactly this. */
export function dequantizeBinary(p: BinaryQuantized): Float32Array {
  const { outDim, inDim, blockSize, signs, salient, split, residual, scales } = p;
  const nB = blockCount(inDim, blockSize);
  const nSal = salientCount(salient);
  const w = new Float32Array(outDim * inDim);
  for (let r = 0; r < outDim; r++) {
    let k = 0; // salient column index
    for (let j = 0; j < inDim; j++) {
      const sc = (r * nB + Math.floor(j / blockSize)) * NS;
      const s = signs[r * inDim + j] ? 1 : -1;
      if (salient[j]) {
        const s2 = residual[r * nSal + k++] ? 1 : -1;
        w[r * inDim + j] = scales[sc + A1]! * s + scales[sc + A2]! * s2 + scales[sc + MSAL]!;
      } else if (split[r * inDim + j]) w[r * inDim + j] = scales[sc + AS]! * s + scales[sc + MS]!;
      else w[r * inDim + j] = scales[sc + AC]! * s + scales[sc + MC]!;
    }
  }
  return w;
}

export function salientCount(salient: Uint8Array): number {
  let n = 0;
  for (const v of salient) n += v;
  return n;
}

/** 0/1 bytes [rows, n] → bitstream rows of ceil(n/8) bytes. */
function packPlane(bits: Uint8Array, rows: number, n: number): Uint8Array {
  const rb = bitstreamBytes(n, 1);
  const out = new Uint8Array(rows * rb);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < n; j++) if (bits[r * n + j]) out[r * rb + (j >>> 3)] |= 1 << (j & 7);
  }
  return out;
}

function unpackPlane(bytes: Uint8Array, rows: number, n: number): Uint8Array {
  const rb = bitstreamBytes(n, 1);
  const out = new Uint8Array(rows * n);
  for (let r = 0; r < rows; r++) for (let j = 0; j < n; j++) out[r * n + j] = (bytes[r * rb + (j >>> 3)]! >>> (j & 7)) & 1;
  return out;
}

function blobs(outDim: number, inDim: number, p: BinaryParams): Record<string, BlobSpec> {
  const rb = bitstreamBytes(inDim, 1);
  const specs: Record<string, BlobSpec> = {
    signs: { dtype: 'U8', shape: [outDim, rb] },
    split: { dtype: 'U8', shape: [outDim, rb] },
    salient: { dtype: 'U8', shape: [rb] },
    scales: { dtype: 'F16', shape: [outDim, blockCount(inDim, p.blockSize), NS] },
  };
  // no zero-length blob when no column is salient
  if (p.salientColumns > 0) specs.residual = { dtype: 'U8', shape: [outDim, bitstreamBytes(p.salientColumns, 1)] };
  return specs;
}

/** Why `p` cannot be stored exactly, or null. */
function misfit(p: BinaryQuantized): string | null {
  const { outDim, inDim, blockSize } = p;
  if (!(Number.isInteger(blockSize) && blockSize >= 8 && blockSize % 8 === 0)) return `blockSize ${blockSize} is not a positive multiple of 8`;
  const nSal = salientCount(p.salient);
  const n = outDim * inDim;
  if (p.signs.length !== n || p.split.length !== n || p.salient.length !== inDim || p.residual.length !== outDim * nSal) {
    return 'array lengths do not match outDim, inDim and the salient count';
  }
  if (p.scales.length !== outDim * blockCount(inDim, blockSize) * NS) return 'scales length does not match outDim × blocks × 7';
  for (const a of [p.signs, p.salient, p.split, p.residual]) if (a.some((v) => v > 1)) return 'a bit array holds a value other than 0 or 1';
  for (let i = 0; i < n; i++) if (p.split[i] && p.salient[i % inDim]) return `split bit set on salient column ${i % inDim}`;
  for (let i = 0; i < p.scales.length; i++) {
    if (roundToF16(p.scales[i]!) !== p.scales[i]) return `scales[${i}] = ${p.scales[i]} is not a float16 value`;
  }
  return null;
}

export const binaryFormat: WeightFormat<BinaryParams, BinaryQuantized> = {
  id: 'binary-billm',
  family: 'binary',
  summary: 'sign bit-planes, salient-column and split masks, 7 float16 scales per row and block (BiLLM/DBellQuant)',
  block: () => ({ weights: 8, bytes: 1 }),

  parseParams(raw, _outDim, inDim) {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'params is not an object';
    const { blockSize, salientColumns, ...rest } = raw as Record<string, unknown>;
    const extra = Object.keys(rest);
    if (extra.length > 0) return `unknown params ${extra.join(', ')}`;
    if (typeof blockSize !== 'number' || !Number.isInteger(blockSize) || blockSize < 8 || blockSize % 8 !== 0 || blockSize > 1 << 16) {
      return `blockSize ${JSON.stringify(blockSize)} is not a multiple of 8 in [8, 65536]`;
    }
    if (typeof salientColumns !== 'number' || !Number.isInteger(salientColumns) || salientColumns < 0 || salientColumns > inDim) {
      return `salientColumns ${JSON.stringify(salientColumns)} is not an integer in [0, ${inDim}]`;
    }
    return { blockSize, salientColumns };
  },

  blobs,

  validate(t) {
    const salient = unpackPlane(t.blobs.salient!.bytes, 1, t.inDim);
    const rb = bitstreamBytes(t.inDim, 1);
    // bits past the last column must be zero, or popcounts and kernels could disagree
    const tail = t.inDim % 8 === 0 ? 0 : t.blobs.salient!.bytes[rb - 1]! >>> (t.inDim % 8);
    if (tail !== 0) return 'salient mask has bits set past the last column';
    if (salientCount(salient) !== t.params.salientColumns) return `salient mask marks ${salientCount(salient)} columns, the header says ${t.params.salientColumns}`;
    const split = t.blobs.split!.bytes;
    const salBytes = t.blobs.salient!.bytes;
    for (let r = 0; r < t.outDim; r++) {
      for (let b = 0; b < rb; b++) if (split[r * rb + b]! & salBytes[b]!) return `row ${r}: split bit set on a salient column`;
    }
    const scales = decodeF16(t.blobs.scales!.bytes);
    const bad = scales.findIndex((s) => !Number.isFinite(s));
    return bad >= 0 ? `scales[${bad}] is not finite` : null;
  },

  pack(p) {
    const why = misfit(p);
    if (why !== null) throw new RangeError(`binary-billm: cannot store this tensor: ${why}`);
    const { outDim, inDim } = p;
    const params: BinaryParams = { blockSize: p.blockSize, salientColumns: salientCount(p.salient) };
    const specs = blobs(outDim, inDim, params);
    const out: Record<string, Blob> = {
      signs: { ...specs.signs!, bytes: packPlane(p.signs, outDim, inDim) },
      split: { ...specs.split!, bytes: packPlane(p.split, outDim, inDim) },
      salient: { ...specs.salient!, bytes: packPlane(p.salient, 1, inDim) },
      scales: { ...specs.scales!, bytes: encodeF16(p.scales, 'scales') },
    };
    if (specs.residual) out.residual = { ...specs.residual, bytes: packPlane(p.residual, outDim, params.salientColumns) };
    return { format: 'binary-billm', outDim, inDim, params, blobs: out };
  },

  unpack(t) {
    const { outDim, inDim, params: p } = t;
    return {
      outDim,
      inDim,
      blockSize: p.blockSize,
      signs: unpackPlane(t.blobs.signs!.bytes, outDim, inDim),
      salient: unpackPlane(t.blobs.salient!.bytes, 1, inDim),
      split: unpackPlane(t.blobs.split!.bytes, outDim, inDim),
      residual: p.salientColumns > 0 ? unpackPlane(t.blobs.residual!.bytes, outDim, p.salientColumns) : new Uint8Array(0),
      scales: decodeF16(t.blobs.scales!.bytes),
    };
  },

  payloadWeights: dequantizeBinary,

  dequantize(t) {
    return dequantizeBinary(this.unpack(t));
  },

  makeLinear: (t: PackedTensor<BinaryParams>, backend: Backend) => new BinaryLinear(t, backend),

  examples() {
    return [
      { outDim: 7, inDim: 64, params: { blockSize: 32, salientColumns: 5 } },
      { outDim: 5, inDim: 172, params: { blockSize: 64, salientColumns: 9 } }, // partial last block, partial byte
      { outDim: 6, inDim: 100, params: { blockSize: 128, salientColumns: 0 } }, // one partial block, no salient
      { outDim: 3, inDim: 256, params: { blockSize: 128, salientColumns: 40 } },
      // the wasm kernels' stream layout: rows of several 128-column words with a partial last
      // word and block, an odd row count for the thread split, salient streams over a word
      { outDim: 37, inDim: 520, params: { blockSize: 128, salientColumns: 60 } },
      { outDim: 11, inDim: 384, params: { blockSize: 128, salientColumns: 200 } },
      { outDim: 16, inDim: 136, params: { blockSize: 8, salientColumns: 30 } }, // 17 blocks of 8
      { outDim: 5, inDim: 70, params: { blockSize: 32, salientColumns: 7 } }, // in not a multiple of 4
      // native kernels (native/binary.c): 256-column blocks of two int8 activation blocks, a row
      // ending inside a 64-column word, rows split over the pool's threads
      { outDim: 130, inDim: 2100, params: { blockSize: 256, salientColumns: 90 } },
    ];
  },

  randomPayload(outDim, inDim, p, rand) {
    const salient = new Uint8Array(inDim);
    for (let k = 0; k < p.salientColumns; ) {
      const j = Math.floor(rand() * inDim);
      if (!salient[j]) {
        salient[j] = 1;
        k++;
      }
    }
    const n = outDim * inDim;
    const signs = Uint8Array.from({ length: n }, () => (rand() < 0.5 ? 1 : 0));
    const split = Uint8Array.from({ length: n }, (_, i) => (!salient[i % inDim] && rand() < 0.3 ? 1 : 0));
    const residual = Uint8Array.from({ length: outDim * p.salientColumns }, () => (rand() < 0.5 ? 1 : 0));
    const nB = blockCount(inDim, p.blockSize);
    // scales like real ones: α of order 0.05, |μ| a small fraction of α (so |ŵ| is never near 0)
    const scales = Float32Array.from({ length: outDim * nB * NS }, (_, i) => {
      const mean = [MC, MS, MSAL].includes(i % NS as 1 | 3 | 6);
      return roundToF16(mean ? 0.01 * (rand() - 0.5) : 0.02 + 0.08 * rand());
    });
    return { outDim, inDim, blockSize: p.blockSize, signs, salient, split, residual, scales };
  },
};
