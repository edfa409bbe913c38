/**
 * The additive-codebook format of AQLM (Egiazarian et al. 2024, arXiv:2401.06118, §3): every
 * group of g consecutive weights of a row is the sum of M codewords, one from each of M
 * codebooks of 2^B vectors of length g, times a per-row scale:
 *   ŵ[r, j·g : j·g + g] = s_r · Σ_m C_m[b_{r,j,m}]
 * The byte layout is documented where the format is registered (registry.ts); this file
 * implements it. Codebooks and scales are float16 values, so the float32 arithmetic below
 * (sum over m in order, then times s_r, each step rounded to float32) is THE dequantization
 * every kernel and the method reproduce.
 */
import type { Backend } from '../backend/types.js';
import { copyToArrayBuffer } from '../io/bytes.js';
import { bitstreamBytes, decodeF16, encodeF16, littleEndianBytes, packBits, unpackBits } from './bitpack.js';
import { roundToF16 } from './quantized.js';
import type { Blob, BlobSpec, PackedTensor, WeightFormat } from './types.js';
import { CodebookLinear } from './codebook-linear.js';

/** What AQLM hands to the formats. */
export interface CodebookQuantized {
  outDim: number;
  inDim: number;
  /** Codebooks (additive terms per group). */
  M: number;
  /** Bits per code: each codebook has 2^B codewords. */
  B: number;
  /** Input group size: weights per codeword. inDim is a multiple of g. */
  g: number;
  /** [outDim, inDim/g, M] code of each group in each codebook. */
  codes: Uint16Array;
  /** [M, 2^B, g] codewords, each value a float16. */
  codebooks: Float32Array;
  /** [outDim] per-row scale, each a float16. */
  scale: Float32Array;
}

export type CodebookParams = { M: number; B: number; g: number };

/** Limits that keep every size sane in a header: codes fit U16, a codebook stays ≤ 2^16 × 64 floats. */
export const CODEBOOK_LIMITS = { maxM: 16, maxB: 16, maxG: 64 } as const;

/** Codes of B ≤ 8 bits are a bitstream per row; wider codes are U16 [out, nG·M]. */
function codesSpec(outDim: number, inDim: number, p: CodebookParams): BlobSpec {
  const perRow = (inDim / p.g) * p.M;
  return p.B <= 8 ? { dtype: 'U8', shape: [outDim, bitstreamBytes(perRow, p.B)] } : { dtype: 'U16', shape: [outDim, perRow] };
}

/** Reference dequantization of a payload: [outDim, inDim] float32. */
export function dequantizeCodebook(q: CodebookQuantized): Float32Array {
  const { outDim, inDim, M, B, g, codes, codebooks, scale } = q;
  const K = 2 ** B;
  const nG = inDim / g;
  const w = new Float32Array(outDim * inDim);
  const acc = new Float32Array(g);
  for (let r = 0; r < outDim; r++) {
    const s = scale[r]!;
    for (let j = 0; j < nG; j++) {
      acc.fill(0);
      for (let m = 0; m < M; m++) {
        const c = (m * K + codes[(r * nG + j) * M + m]!) * g;
        for (let t = 0; t < g; t++) acc[t] = acc[t]! + codebooks[c + t]!; // float32 accumulation
      }
      const o = r * inDim + j * g;
      for (let t = 0; t < g; t++) w[o + t] = s * acc[t]!; // rounded to float32 on store
    }
  }
  return w;
}

function misfit(q: CodebookQuantized): string | null {
  const { outDim, inDim, M, B, g } = q;
  const why = checkParams({ M, B, g }, inDim);
  if (why !== null) return why;
  const K = 2 ** B;
  if (q.codes.length !== outDim * (inDim / g) * M || q.codebooks.length !== M * K * g || q.scale.length !== outDim) {
    return 'array lengths do not match outDim, inDim, M, B and g';
  }
  for (let i = 0; i < q.codes.length; i++) if (q.codes[i]! >= K) return `code ${i} = ${q.codes[i]} exceeds ${K - 1}`;
  for (let i = 0; i < q.codebooks.length; i++) {
    if (roundToF16(q.codebooks[i]!) !== q.codebooks[i]) return `codebooks[${i}] = ${q.codebooks[i]} is not a float16 value`;
  }
  for (let i = 0; i < outDim; i++) if (roundToF16(q.scale[i]!) !== q.scale[i]) return `scale[${i}] = ${q.scale[i]} is not a float16 value`;
  return null;
}

function checkParams(p: CodebookParams, inDim: number): string | null {
  const { M, B, g } = p;
  const int = (v: unknown, lo: number, hi: number) => typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi;
  if (!int(M, 1, CODEBOOK_LIMITS.maxM)) return `M ${JSON.stringify(M)} is not an integer in [1, ${CODEBOOK_LIMITS.maxM}]`;
  if (!int(B, 1, CODEBOOK_LIMITS.maxB)) return `B ${JSON.stringify(B)} is not an integer in [1, ${CODEBOOK_LIMITS.maxB}]`;
  if (!int(g, 1, CODEBOOK_LIMITS.maxG)) return `g ${JSON.stringify(g)} is not an integer in [1, ${CODEBOOK_LIMITS.maxG}]`;
  if (inDim % g !== 0) return `g ${g} does not divide the ${inDim} input columns`;
  return null;
}

function unpackCodes(t: PackedTensor<CodebookParams>): Uint16Array {
  const { outDim, inDim, params: p } = t;
  const perRow = (inDim / p.g) * p.M;
  const bytes = t.blobs.codes!.bytes;
  if (p.B > 8) return new Uint16Array(copyToArrayBuffer(bytes));
  const codes = new Uint16Array(outDim * perRow);
  const row = new Uint8Array(perRow);
  const rowBytes = bitstreamBytes(perRow, p.B);
  for (let r = 0; r < outDim; r++) {
    unpackBits(bytes, r * rowBytes, row, perRow, p.B);
    codes.set(row, r * perRow);
  }
  return codes;
}

function unpack(t: PackedTensor<CodebookParams>): CodebookQuantized {
  const { outDim, inDim, params: p } = t;
  return {
    outDim, inDim, M: p.M, B: p.B, g: p.g,
    codes: unpackCodes(t),
    codebooks: decodeF16(t.blobs.codebooks!.bytes),
    scale: decodeF16(t.blobs.scale!.bytes),
  };
}

export const codebookFormat: WeightFormat<CodebookParams, CodebookQuantized> = {
  id: 'aqlm',
  family: 'codebook',
  summary: 'AQLM additive codebooks: M codes of B bits per group of g weights, float16 codebooks, float16 scale per row',

  block(p) {
    // smallest whole number of groups whose codes fill whole bytes
    let groups = 1;
    while ((groups * p.M * p.B) % 8 !== 0) groups++;
    return { weights: groups * p.g, bytes: (groups * p.M * p.B) / 8 };
  },

  parseParams(raw, _outDim, inDim) {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'params is not an object';
    const { M, B, g, ...rest } = raw as Record<string, unknown>;
    const extra = Object.keys(rest);
    if (extra.length > 0) return `unknown params ${extra.join(', ')}`;
    const p = { M, B, g } as CodebookParams;
    return checkParams(p, inDim) ?? p;
  },

  blobs: (outDim, inDim, p) => ({
    codes: codesSpec(outDim, inDim, p),
    codebooks: { dtype: 'F16', shape: [p.M, 2 ** p.B, p.g] },
    scale: { dtype: 'F16', shape: [outDim] },
  }),

  validate(t) {
    const scale = decodeF16(t.blobs.scale!.bytes);
    const bad = scale.findIndex((s) => !Number.isFinite(s));
    if (bad >= 0) return `scale[${bad}] is not finite`;
    const cb = decodeF16(t.blobs.codebooks!.bytes);
    const badC = cb.findIndex((v) => !Number.isFinite(v));
    if (badC >= 0) return `codebooks[${badC}] is not finite`;
    // U16 codes can name codewords past 2^B; bitstream codes cannot
    if (t.params.B > 8 && t.params.B < 16) {
      const K = 2 ** t.params.B;
      const codes = unpackCodes(t);
      const i = codes.findIndex((c) => c >= K);
      if (i >= 0) return `code ${i} = ${codes[i]} exceeds ${K - 1}`;
    }
    return null;
  },

  pack(q) {
    const why = misfit(q);
    if (why !== null) throw new RangeError(`aqlm: cannot store this tensor: ${why}`);
    const { outDim, inDim, M, B, g } = q;
    const p: CodebookParams = { M, B, g };
    const spec = codesSpec(outDim, inDim, p);
    let codeBytes: Uint8Array;
    if (B > 8) codeBytes = new Uint8Array(littleEndianBytes(q.codes.slice()));
    else {
      const perRow = (inDim / g) * M;
      const rowBytes = bitstreamBytes(perRow, B);
      codeBytes = new Uint8Array(outDim * rowBytes);
      for (let r = 0; r < outDim; r++) packBits(codeBytes, r * rowBytes, q.codes.subarray(r * perRow, (r + 1) * perRow), perRow, B);
    }
    const blobs: Record<string, Blob> = {
      codes: { ...spec, bytes: codeBytes },
      codebooks: { dtype: 'F16', shape: [M, 2 ** B, g], bytes: encodeF16(q.codebooks, 'codebooks') },
      scale: { dtype: 'F16', shape: [outDim], bytes: encodeF16(q.scale, 'scale') },
    };
    return { format: 'aqlm', outDim, inDim, params: p, blobs };
  },

  unpack,
  payloadWeights: dequantizeCodebook,
  dequantize: (t) => dequantizeCodebook(unpack(t)),
  makeLinear: (t, backend: Backend) => new CodebookLinear(() => unpack(t), backend, undefined, t),

  examples() {
    return [
      { outDim: 260, inDim: 16, params: { M: 2, B: 8, g: 8 } }, // 2x8, many rows: lookup table
      { outDim: 40, inDim: 64, params: { M: 2, B: 8, g: 8 } }, // 2x8, few rows: direct decode
      { outDim: 300, inDim: 48, params: { M: 1, B: 8, g: 8 } }, // 1x8, lookup table
      { outDim: 5, inDim: 32, params: { M: 4, B: 8, g: 8 } }, // 4x8, few rows: direct decode
      { outDim: 6, inDim: 24, params: { M: 1, B: 12, g: 8 } }, // U16 codes, codewords past 2^12 unused
      { outDim: 3, inDim: 16, params: { M: 1, B: 16, g: 8 } }, // 1x16
      { outDim: 9, inDim: 20, params: { M: 2, B: 4, g: 4 } }, // small-model scheme 2x4 g4
      { outDim: 7, inDim: 12, params: { M: 1, B: 3, g: 4 } }, // codes straddling bytes
      // wasm kernels (csrc/codebook.c): table rows shorter than 16 codewords, K padded to 4 (B = 1),
      // a group size that is not a multiple of 4 (lookup table and direct scalar code)
      { outDim: 201, inDim: 20, params: { M: 2, B: 4, g: 4 } }, // lookup table, 16 codewords
      { outDim: 65, inDim: 8, params: { M: 2, B: 1, g: 4 } }, // lookup table, 2 codewords
      { outDim: 301, inDim: 18, params: { M: 1, B: 8, g: 6 } }, // lookup table, g = 6
      { outDim: 5, inDim: 18, params: { M: 2, B: 8, g: 6 } }, // direct, g = 6
      // native kernels (native/codebook.c): rows of several 256-code lookup passes, the last one
      // partial (gather tails), row counts not a multiple of 4; table and lookups on the pool's threads
      { outDim: 37, inDim: 2200, params: { M: 2, B: 8, g: 8 } },
      { outDim: 261, inDim: 2048, params: { M: 2, B: 8, g: 8 } },
    ];
  },

  randomPayload(outDim, inDim, p, rand) {
    const K = 2 ** p.B;
    const codes = Uint16Array.from({ length: outDim * (inDim / p.g) * p.M }, () => Math.floor(rand() * K));
    const codebooks = Float32Array.from({ length: p.M * K * p.g }, () => roundToF16((rand() * 2 - 1) * 0.3));
    const scale = Float32Array.from({ length: outDim }, () => roundToF16((rand() < 0.1 ? -1 : 1) * (0.05 + rand())));
    return { outDim, inDim, M: p.M, B: p.B, g: p.g, codes, codebooks, scale };
  },
};
