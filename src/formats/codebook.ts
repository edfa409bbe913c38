/**
 * The additive-codebook format of AQLM (Egiazarian et al. 2024, arXiv:2401.06118, §3): every
 * tile of og rows × g consecutive columns (one "output group" o of og rows, input group j) is
 * the sum of M codewords, one from each of M codebooks of 2^B tiles [og, g], times a scale per
 * output group:
 *   ŵ[row(o, a), j·g + t] = s_o · Σ_m C_m[b_{o,j,m}][a, t]
 * og = 1 (1x16, 2x8: codewords along one row) is the common case and every file before og
 * existed; og > 1 is AQLM's out_group_size. row(o, a) places member a of group o (codebook.ts
 * `codebookRow`): consecutive rows, or with il = 2 the groups of a pair interleaved row by row,
 * which is where Hugging Face's rotate-half q/k rows land in bitcrush's interleaved RoPE order.
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
  /** Input group size: columns per codeword. inDim is a multiple of g. */
  g: number;
  /** Output group size: rows per codeword (absent = 1). outDim is a multiple of og·il. */
  og?: number;
  /** Row interleave of the output groups (absent = 1; see codebookRow). Only with og > 1. */
  il?: number;
  /** [outDim/og, inDim/g, M] code of each (output group, input group) in each codebook. */
  codes: Uint16Array;
  /** [M, 2^B, og, g] codewords, each value a float16. */
  codebooks: Float32Array;
  /** [outDim/og] scale per output group, each a float16. */
  scale: Float32Array;
}

/** og and il are absent when 1, so files and payloads of og = 1 are those of before og existed. */
export type CodebookParams = { M: number; B: number; g: number; og?: number; il?: number };

/** Limits that keep every size sane in a header: codes fit U16, a codebook stays ≤ 2^16 × 64 floats. */
export const CODEBOOK_LIMITS = { maxM: 16, maxB: 16, maxG: 64, maxOg: 64, maxIl: 2 } as const;

/** The output group size and row interleave of params or a payload (1 when absent). */
export function groupShape(p: { og?: number; il?: number }): { og: number; il: number } {
  return { og: p.og ?? 1, il: p.il ?? 1 };
}

/**
 * The row of member a (0 ≤ a < og) of output group o: groups come in blocks of il, and the og·il
 * rows of a block hold member a of its group b at a·il + b. il = 1: row o·og + a.
 */
export function codebookRow(o: number, a: number, og: number, il: number): number {
  const b = o % il;
  return (o - b) * og + a * il + b;
}

/** Codes of B ≤ 8 bits are a bitstream per output group; wider codes are U16 [out/og, nG·M]. */
function codesSpec(outDim: number, inDim: number, p: CodebookParams): BlobSpec {
  const perRow = (inDim / p.g) * p.M;
  const nO = outDim / groupShape(p).og;
  return p.B <= 8 ? { dtype: 'U8', shape: [nO, bitstreamBytes(perRow, p.B)] } : { dtype: 'U16', shape: [nO, perRow] };
}

/** F16 codebooks: [M, 2^B, g] for og = 1 (as files always had), else [M, 2^B, og, g]. */
function codebooksShape(p: CodebookParams): number[] {
  const { og } = groupShape(p);
  return og === 1 ? [p.M, 2 ** p.B, p.g] : [p.M, 2 ** p.B, og, p.g];
}

/** Reference dequantization of a payload: [outDim, inDim] float32. */
export function dequantizeCodebook(q: CodebookQuantized): Float32Array {
  const { outDim, inDim, M, B, g, codes, codebooks, scale } = q;
  const { og, il } = groupShape(q);
  const K = 2 ** B;
  const nG = inDim / g;
  const tile = og * g; // one codeword
  const w = new Float32Array(outDim * inDim);
  const acc = new Float32Array(tile);
  for (let o = 0; o < outDim / og; o++) {
    const s = scale[o]!;
    for (let j = 0; j < nG; j++) {
      acc.fill(0);
      for (let m = 0; m < M; m++) {
        const c = (m * K + codes[(o * nG + j) * M + m]!) * tile;
        for (let t = 0; t < tile; t++) acc[t] = acc[t]! + codebooks[c + t]!; // float32 accumulation
      }
      for (let a = 0; a < og; a++) {
        const at = codebookRow(o, a, og, il) * inDim + j * g;
        for (let t = 0; t < g; t++) w[at + t] = s * acc[a * g + t]!; // rounded to float32 on store
      }
    }
  }
  return w;
}

/** The params of a payload, og and il present only when not 1. */
export function codebookParams(q: CodebookQuantized): CodebookParams {
  const { og, il } = groupShape(q);
  const p: CodebookParams = { M: q.M, B: q.B, g: q.g };
  if (og !== 1) p.og = og;
  if (il !== 1) p.il = il;
  return p;
}

function misfit(q: CodebookQuantized): string | null {
  const { outDim, inDim, M, B, g } = q;
  if ((q.og !== undefined && q.og === 1) || (q.il !== undefined && q.il === 1)) return 'og and il are absent when 1';
  const why = checkParams(codebookParams(q), outDim, inDim);
  if (why !== null) return why;
  const K = 2 ** B;
  const { og } = groupShape(q);
  const nO = outDim / og;
  if (q.codes.length !== nO * (inDim / g) * M || q.codebooks.length !== M * K * og * g || q.scale.length !== nO) {
    return 'array lengths do not match outDim, inDim, M, B, g and og';
  }
  for (let i = 0; i < q.codes.length; i++) if (q.codes[i]! >= K) return `code ${i} = ${q.codes[i]} exceeds ${K - 1}`;
  for (let i = 0; i < q.codebooks.length; i++) {
    if (roundToF16(q.codebooks[i]!) !== q.codebooks[i]) return `codebooks[${i}] = ${q.codebooks[i]} is not a float16 value`;
  }
  for (let i = 0; i < nO; i++) if (roundToF16(q.scale[i]!) !== q.scale[i]) return `scale[${i}] = ${q.scale[i]} is not a float16 value`;
  return null;
}

function checkParams(p: CodebookParams, outDim: number, inDim: number): string | null {
  const { M, B, g } = p;
  const int = (v: unknown, lo: number, hi: number) => typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi;
  if (!int(M, 1, CODEBOOK_LIMITS.maxM)) return `M ${JSON.stringify(M)} is not an integer in [1, ${CODEBOOK_LIMITS.maxM}]`;
  if (!int(B, 1, CODEBOOK_LIMITS.maxB)) return `B ${JSON.stringify(B)} is not an integer in [1, ${CODEBOOK_LIMITS.maxB}]`;
  if (!int(g, 1, CODEBOOK_LIMITS.maxG)) return `g ${JSON.stringify(g)} is not an integer in [1, ${CODEBOOK_LIMITS.maxG}]`;
  if (inDim % g !== 0) return `g ${g} does not divide the ${inDim} input columns`;
  // absent means 1; a stored 1 would give the same tensor two headers
  if (p.og !== undefined && !int(p.og, 2, CODEBOOK_LIMITS.maxOg)) return `og ${JSON.stringify(p.og)} is not an integer in [2, ${CODEBOOK_LIMITS.maxOg}] (absent for 1)`;
  if (p.il !== undefined && (!int(p.il, 2, CODEBOOK_LIMITS.maxIl) || p.og === undefined)) return `il ${JSON.stringify(p.il)} is not 2 with og > 1 (absent for 1)`;
  const { og, il } = groupShape(p);
  if (outDim % (og * il) !== 0) return `og ${og} × il ${il} does not divide the ${outDim} output rows`;
  return null;
}

function unpackCodes(t: PackedTensor<CodebookParams>): Uint16Array {
  const { inDim, params: p } = t;
  const outDim = t.outDim / groupShape(p).og; // code rows: output groups
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
    ...(p.og === undefined ? {} : { og: p.og }),
    ...(p.il === undefined ? {} : { il: p.il }),
    codes: unpackCodes(t),
    codebooks: decodeF16(t.blobs.codebooks!.bytes),
    scale: decodeF16(t.blobs.scale!.bytes),
  };
}

export const codebookFormat: WeightFormat<CodebookParams, CodebookQuantized> = {
  id: 'aqlm',
  family: 'codebook',
  summary: 'AQLM additive codebooks: M codes of B bits per tile of og rows × g weights, float16 codebooks, float16 scale per og rows',

  block(p) {
    // smallest whole number of groups whose codes fill whole bytes
    let groups = 1;
    while ((groups * p.M * p.B) % 8 !== 0) groups++;
    return { weights: groups * p.g * groupShape(p).og, bytes: (groups * p.M * p.B) / 8 };
  },

  parseParams(raw, outDim, inDim) {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'params is not an object';
    const { M, B, g, og, il, ...rest } = raw as Record<string, unknown>;
    const extra = Object.keys(rest);
    if (extra.length > 0) return `unknown params ${extra.join(', ')}`;
    const p = { M, B, g } as CodebookParams;
    if (og !== undefined) p.og = og as number;
    if (il !== undefined) p.il = il as number;
    return checkParams(p, outDim, inDim) ?? p;
  },

  blobs: (outDim, inDim, p) => ({
    codes: codesSpec(outDim, inDim, p),
    codebooks: { dtype: 'F16', shape: codebooksShape(p) },
    scale: { dtype: 'F16', shape: [outDim / groupShape(p).og] },
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
    const p = codebookParams(q);
    const nO = outDim / groupShape(p).og;
    const spec = codesSpec(outDim, inDim, p);
    let codeBytes: Uint8Array;
    if (B > 8) codeBytes = new Uint8Array(littleEndianBytes(q.codes.slice()));
    else {
      const perRow = (inDim / g) * M;
      const rowBytes = bitstreamBytes(perRow, B);
      codeBytes = new Uint8Array(nO * rowBytes);
      for (let r = 0; r < nO; r++) packBits(codeBytes, r * rowBytes, q.codes.subarray(r * perRow, (r + 1) * perRow), perRow, B);
    }
    const blobs: Record<string, Blob> = {
      codes: { ...spec, bytes: codeBytes },
      codebooks: { dtype: 'F16', shape: codebooksShape(p), bytes: encodeF16(q.codebooks, 'codebooks') },
      scale: { dtype: 'F16', shape: [nO], bytes: encodeF16(q.scale, 'scale') },
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
      // output groups (AQLM out_group_size): og rows per codeword and scale; il = 2 interleaves the
      // rows of group pairs (imported q/k). Lookup table and direct paths of every backend (the wasm
      // and native og = 1 kernels run once per member row of a group, codebook-split.ts)
      { outDim: 264, inDim: 32, params: { M: 2, B: 8, g: 8, og: 2 } }, // lookup table
      { outDim: 12, inDim: 24, params: { M: 2, B: 4, g: 4, og: 4 } }, // direct, few rows
      { outDim: 16, inDim: 16, params: { M: 1, B: 3, g: 2, og: 4, il: 2 } }, // interleaved rows, codes straddling bytes, direct
      { outDim: 64, inDim: 16, params: { M: 1, B: 4, g: 8, og: 2, il: 2 } }, // interleaved rows, lookup table
      { outDim: 6, inDim: 16, params: { M: 1, B: 12, g: 8, og: 3 } }, // U16 codes, odd og
      { outDim: 48, inDim: 2048, params: { M: 2, B: 8, g: 8, og: 8 } }, // the native kernels' several lookup passes
    ];
  },

  randomPayload(outDim, inDim, p, rand) {
    const K = 2 ** p.B;
    const { og } = groupShape(p);
    const codes = Uint16Array.from({ length: (outDim / og) * (inDim / p.g) * p.M }, () => Math.floor(rand() * K));
    const codebooks = Float32Array.from({ length: p.M * K * og * p.g }, () => roundToF16((rand() * 2 - 1) * 0.3));
    const scale = Float32Array.from({ length: outDim / og }, () => roundToF16((rand() < 0.1 ? -1 : 1) * (0.05 + rand())));
    return { outDim, inDim, ...p, codes, codebooks, scale };
  },
};
