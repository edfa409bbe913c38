/**
 * Hugging Face GPTQ tensors (AutoGPTQ / GPTQModel / Optimum checkpoints) ↔ bitcrush's grid
 * payload (formats/quantized.ts), exactly, in both directions. One linear W [out, in] is
 *   qweight int32 [in·bits/32, out]    column o: the levels q[0..in) of W's column-major view,
 *                                      as one little-endian bitstream of 32-bit words (value k at
 *                                      bit k·bits; 3-bit values cross word boundaries: the
 *                                      packers' 10 + ⅔ + 10 + ⅓ + 10 per 3 words is that stream)
 *   qzeros  int32 [groups, out·bits/32] row g: the zero points of group g over the outputs, same stream
 *   scales  fp16  [groups, out]
 *   g_idx   int32 [in]                 the group of each input column
 * and W[o, i] = scales[g, o] · (q[i, o] − z[g, o]) with g = g_idx[i], z = stored zero + 1 in the
 * v1 format (`checkpoint_format` "gptq", AutoGPTQ's `zeros -= 1` before packing) and z = stored
 * zero in GPTQModel's v2 ("gptq_v2").
 *
 * bitcrush groups consecutive *stored* columns and keeps act-order as a permutation of the input
 * columns (perm: stored → original). A g_idx is therefore stored exactly when each group holds
 * exactly group_size columns (the last one the rest): sorting the columns by g_idx (stable) is
 * then the permutation, and the numbers are unchanged. That is what GPTQ's act-order writes
 * (g_idx[perm[j]] = j / group_size). Any other g_idx (groups of other sizes) would need a
 * group map per column, which no bitcrush format stores: it is refused with the reason, never
 * approximated. Within a group the column order is immaterial to the weights, so the importer
 * sorts it ascending.
 */
import type { GroupQuantized } from '../formats/quantized.js';
import { groupCount } from '../formats/quantized.js';
import { f16BitsToNumber, numberToF16Bits } from '../io/safetensors.js';

export const GPTQ_BITS: readonly number[] = [2, 3, 4, 8];
export type GptqCheckpointFormat = 'gptq' | 'gptq_v2';
export const GPTQ_CHECKPOINT_FORMATS: readonly GptqCheckpointFormat[] = ['gptq', 'gptq_v2'];

export interface GptqLayout {
  bits: number;
  outDim: number;
  inDim: number;
  /** Columns per group (a config's -1 = inDim). */
  groupSize: number;
  checkpointFormat: GptqCheckpointFormat;
}

export interface GptqTensors {
  qweight: Int32Array; // [inDim·bits/32, outDim]
  qzeros: Int32Array; // [nGroups, outDim·bits/32]
  scales: Uint16Array; // [nGroups, outDim] float16 bits
  gIdx: Int32Array; // [inDim]
}

/** A tensor that cannot be read or written exactly: the message says why (callers add the file). */
export class GptqLayoutError extends Error {}

/** The shapes a layout's tensors must have; throws when the dimensions do not pack into int32 words. */
export function gptqShapes(l: GptqLayout): { qweight: number[]; qzeros: number[]; scales: number[]; g_idx: number[] } {
  if (!GPTQ_BITS.includes(l.bits)) throw new GptqLayoutError(`bits ${l.bits} is not one of ${GPTQ_BITS.join(', ')}`);
  if (l.inDim % 32 !== 0 || l.outDim % 32 !== 0) {
    throw new GptqLayoutError(`[${l.outDim}, ${l.inDim}] does not pack: GPTQ needs both dimensions a multiple of 32`);
  }
  const g = groupCount(l.inDim, l.groupSize);
  return { qweight: [(l.inDim / 32) * l.bits, l.outDim], qzeros: [g, (l.outDim / 32) * l.bits], scales: [g, l.outDim], g_idx: [l.inDim] };
}

/** Value k of the bitstream held in words[base + w·stride], w = 0, 1, … */
function readStream(words: Int32Array, base: number, stride: number, k: number, bits: number): number {
  const p = k * bits;
  const w = p >>> 5;
  const shift = p & 31;
  let v = words[base + w * stride]! >>> shift;
  if (shift + bits > 32) v |= words[base + (w + 1) * stride]! << (32 - shift);
  return v & ((1 << bits) - 1);
}

function writeStream(words: Int32Array, base: number, stride: number, k: number, bits: number, v: number): void {
  const p = k * bits;
  const w = p >>> 5;
  const shift = p & 31;
  words[base + w * stride]! |= v << shift;
  if (shift + bits > 32) words[base + (w + 1) * stride]! |= v >>> (32 - shift);
}

/** GPTQ tensors → grid payload in bitcrush's layout (rows = outputs in the checkpoint's order). */
export function gptqToGroups(t: GptqTensors, l: GptqLayout): GroupQuantized {
  const shapes = gptqShapes(l);
  const { bits, outDim, inDim, groupSize } = l;
  const nGroups = shapes.scales[0]!;
  const sizes: Array<[string, number, number]> = [
    ['qweight', t.qweight.length, shapes.qweight[0]! * shapes.qweight[1]!],
    ['qzeros', t.qzeros.length, shapes.qzeros[0]! * shapes.qzeros[1]!],
    ['scales', t.scales.length, nGroups * outDim],
    ['g_idx', t.gIdx.length, inDim],
  ];
  for (const [name, have, want] of sizes) if (have !== want) throw new GptqLayoutError(`${name} has ${have} values, expected ${want}`);

  // g_idx → perm (stored j → original column), a stable counting sort by group
  const count = new Int32Array(nGroups);
  for (let i = 0; i < inDim; i++) {
    const g = t.gIdx[i]!;
    if (!(g >= 0 && g < nGroups)) throw new GptqLayoutError(`g_idx[${i}] = ${g} is outside 0..${nGroups - 1}`);
    count[g]!++;
  }
  for (let g = 0; g < nGroups; g++) {
    const want = Math.min(groupSize, inDim - g * groupSize);
    if (count[g] !== want) {
      throw new GptqLayoutError(`g_idx puts ${count[g]} columns in group ${g}, not ${want}: only groups of group_size columns (any order, act-order included) are stored exactly`);
    }
  }
  const perm = new Int32Array(inDim);
  const next = Int32Array.from({ length: nGroups }, (_, g) => g * groupSize);
  for (let i = 0; i < inDim; i++) perm[next[t.gIdx[i]!]!++] = i;
  const identity = perm.every((c, j) => c === j);

  const q = new Uint8Array(outDim * inDim); // [out, in] stored column order
  for (let j = 0; j < inDim; j++) {
    const i = perm[j]!;
    for (let o = 0; o < outDim; o++) q[o * inDim + j] = readStream(t.qweight, o, outDim, i, bits);
  }
  const offset = l.checkpointFormat === 'gptq' ? 1 : 0;
  const scale = new Float32Array(outDim * nGroups);
  const zero = new Float32Array(outDim * nGroups);
  const zStride = shapes.qzeros[1]!;
  for (let g = 0; g < nGroups; g++) {
    for (let o = 0; o < outDim; o++) {
      scale[o * nGroups + g] = f16BitsToNumber(t.scales[g * outDim + o]!);
      zero[o * nGroups + g] = readStream(t.qzeros, g * zStride, 1, o, bits) + offset;
    }
  }
  return { outDim, inDim, groupSize, bits: new Uint8Array(nGroups).fill(bits), q, scale, zero, perm: identity ? null : perm };
}

/** Grid payload (one bit-width, integer zeros) → GPTQ tensors; throws GptqLayoutError when it is not representable. */
export function groupsToGptq(g: GroupQuantized, checkpointFormat: GptqCheckpointFormat): { tensors: GptqTensors; layout: GptqLayout } {
  const bits = g.bits[0] ?? 0;
  if (!g.bits.every((b) => b === bits)) throw new GptqLayoutError('its column groups have different bit-widths (mixed precision): GPTQ has one width per tensor');
  const layout: GptqLayout = { bits, outDim: g.outDim, inDim: g.inDim, groupSize: g.groupSize, checkpointFormat };
  const shapes = gptqShapes(layout);
  const { outDim, inDim, groupSize } = g;
  const nGroups = shapes.scales[0]!;
  const maxq = 2 ** bits - 1;
  const offset = checkpointFormat === 'gptq' ? 1 : 0;

  const scales = new Uint16Array(nGroups * outDim);
  const qzeros = new Int32Array(nGroups * shapes.qzeros[1]!);
  for (let o = 0; o < outDim; o++) {
    for (let k = 0; k < nGroups; k++) {
      const s = g.scale[o * nGroups + k]!;
      const bitsF16 = numberToF16Bits(s);
      if (f16BitsToNumber(bitsF16) !== s) throw new GptqLayoutError(`scale ${s} (row ${o}, group ${k}) is not a float16 value`);
      scales[k * outDim + o] = bitsF16;
      const z = g.zero[o * nGroups + k]!;
      if (!(Number.isInteger(z) && z >= 0 && z <= maxq)) throw new GptqLayoutError(`zero ${z} (row ${o}, group ${k}) is not an integer in [0, ${maxq}]`);
      if (z - offset < 0) throw new GptqLayoutError(`zero point 0 (row ${o}, group ${k}) cannot be written in the v1 format (it stores zero − 1): use --checkpoint-format gptq_v2`);
      writeStream(qzeros, k * shapes.qzeros[1]!, 1, o, bits, z - offset);
    }
  }
  const qweight = new Int32Array(shapes.qweight[0]! * outDim);
  const gIdx = new Int32Array(inDim);
  for (let j = 0; j < inDim; j++) {
    const i = g.perm ? g.perm[j]! : j;
    gIdx[i] = Math.floor(j / groupSize);
    for (let o = 0; o < outDim; o++) writeStream(qweight, o, outDim, i, bits, g.q[o * inDim + j]!);
  }
  return { tensors: { qweight, qzeros, scales, gIdx }, layout };
}

/**
 * For q_proj/k_proj: bitcrush's interleaved RoPE row of each HF rotate-half row (hf.ts's
 * unpermuteRope as an index map): canonical row map[r] is HF row r.
 */
export function ropeRowMap(nHeads: number, headSize: number): Int32Array {
  const map = new Int32Array(nHeads * headSize);
  const half = headSize / 2;
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) for (let p = 0; p < 2; p++) map[h * headSize + p * half + i] = h * headSize + 2 * i + p;
  }
  return map;
}

/** The payload with its rows moved: row r of `g` becomes row to[r]. */
export function moveRows(g: GroupQuantized, to: Int32Array): GroupQuantized {
  const { outDim, inDim } = g;
  const nGroups = groupCount(inDim, g.groupSize);
  const q = new Uint8Array(g.q.length);
  const scale = new Float32Array(g.scale.length);
  const zero = new Float32Array(g.zero.length);
  for (let r = 0; r < outDim; r++) {
    const d = to[r]!;
    q.set(g.q.subarray(r * inDim, (r + 1) * inDim), d * inDim);
    scale.set(g.scale.subarray(r * nGroups, (r + 1) * nGroups), d * nGroups);
    zero.set(g.zero.subarray(r * nGroups, (r + 1) * nGroups), d * nGroups);
  }
  return { ...g, q, scale, zero };
}

/** The inverse of a row map. */
export function invertMap(map: Int32Array): Int32Array {
  const inv = new Int32Array(map.length);
  for (let r = 0; r < map.length; r++) inv[map[r]!] = r;
  return inv;
}
