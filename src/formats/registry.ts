/**
 * THE registry of packed weight formats (ggml's type-traits table). Each format is registered
 * here exactly once, and its byte-layout comment below is its specification. Everything generic
 * (the packed file writer and reader, bits-per-weight accounting, the format test) reads only
 * this table.
 *
 * Conventions shared by all layouts: W is [out, in]; "bitstream" is bitpack.ts's little-endian
 * packing (value i at bits [i·b, i·b + b), 3-bit dense: 8 values in 3 bytes), each row starting
 * on a byte boundary; F16 is IEEE half; all multi-byte values little-endian. A blob's dtype and
 * shape follow from (out, in, params), so a header alone fixes every size and the bpw.
 *
 * How the later methods fit (each is one new `register` call plus its own file):
 * - SliM-LLM (family 'mixed'): payload GroupQuantized with per-group `bits` (1..4); blobs
 *   `widths` (U8 bitstream of 2-bit codes, one per column group), `q` (each row = the groups
 *   packed at their own widths, concatenated), `scale` F16 [out, nG], `zero` (b-bit integer per
 *   group, F16 for 1-bit groups); params carry the count of groups per width so `blobs` can size
 *   `q` and `zero` from the header; `accepts` takes mixed-width GroupQuantized, so the writer
 *   picks it automatically.
 * - AQLM (family 'codebook'): params {M, B, g, og}; blobs `codes` [out/og, in/g, M] of B bits,
 *   `codebooks` F16 [M, 2^B, og, g], `scale` F16 [out/og]; makeLinear builds the lookup-table kernel.
 * - BiLLM / DBellQuant (family 'binary'): params {blockSize, salient counts}; blobs `signs`
 *   (1-bit planes), `salientMask`, `splitMask`, per-row `alpha`/`mean` F16 for each part.
 */
import type { GroupQuantized } from './quantized.js';
import { blobBytes, type FormatParams, type PackedTensor, type WeightFormat } from './types.js';
import { codebookFormat } from './codebook.js';
import { uniformFormat } from './uniform.js';
import { mixedFormat } from './mixed.js';
import { binaryFormat } from './binary.js';

// the table holds formats of every params and payload type
type AnyFormat = WeightFormat<any, any>;

const table = new Map<string, AnyFormat>();

function register(f: AnyFormat): void {
  if (table.has(f.id)) throw new Error(`format ${f.id} registered twice`);
  table.set(f.id, f);
}

/**
 * uniform-asym — GPTQ/RTN asymmetric grid. params { bits: 2|3|4|8, groupSize: 1..in, actOrder }
 *   nG = ceil(in / groupSize); the last group of a row may be partial; groupSize = in is per-channel.
 *   q      U8  [out, ceil(in·b/8)]   row r: bitstream of the b-bit levels of stored columns 0..in-1
 *   scale  F16 [out, nG]
 *   zero   U8  [out, ceil(nG·b/8)]   row r: bitstream of the b-bit integer zero of each group
 *   perm   I16 [in] (in ≤ 32768) or I32 [in]; only when actOrder: stored column j is column perm[j]
 *   block: 8 levels in b bytes.   ŵ[r, perm[j]] = scale[r, j/groupSize] · (q[r, j] − zero[r, j/groupSize])
 *   bpw = b + (16 + b) / groupSize (+ 16 or 32 / out with act-order), plus row padding to whole bytes.
 */
register(uniformFormat('uniform-asym', false, 'b-bit levels, float16 scale and b-bit zero per group (GPTQ qzeros)'));

/**
 * uniform-sym — GPTQ symmetric grid: uniform-asym without the zero blob; every zero is the
 *   midpoint 2^(b−1). params, q, scale, perm and block exactly as uniform-asym.
 *   ŵ[r, perm[j]] = scale[r, j/groupSize] · (q[r, j] − 2^(b−1));   bpw = b + 16 / groupSize (+ perm).
 */
register(uniformFormat('uniform-sym', true, 'b-bit levels, float16 scale per group, zero at the grid midpoint'));

/**
 * aqlm — AQLM additive codebooks (codebook.ts). params { M: 1..16, B: 1..16, g: 1..64, og: 2..64, il: 2 },
 *   og and il absent when 1 (every file before they existed); g | in, og·il | out, nG = in / g, nO = out / og.
 *   codes      B ≤ 8: U8 [nO, ceil(nG·M·B/8)]  row o: bitstream of codes b[o, j, m] in order (j, m)
 *              B > 8: U16 [nO, nG·M]             the same codes, one per element
 *   codebooks  F16 [M, 2^B, g] (og = 1) or [M, 2^B, og, g]
 *   scale      F16 [nO]
 *   ŵ[row(o, a), j·g + t] = scale[o] · Σ_m codebooks[m, b[o, j, m], a, t]   (sum over m in order, float32)
 *   row(o, a) = (o − o mod il)·og + a·il + o mod il: output group o holds rows o·og … o·og + og − 1
 *   (il = 1), or with il = 2 the groups 2p and 2p + 1 interleave rows 2p·og … 2p·og + 2·og − 1
 *   (Hugging Face q/k groups in bitcrush's interleaved RoPE row order, interop/aqlm.ts).
 *   bpw = M·B/(g·og) (codes) + 16·M·2^B·og·g / (out·in) (codebooks) + 16 / (og·in) (scales), plus padding.
 */
register(codebookFormat);

/**
 * binary-billm — BiLLM / DBellQuant binarization (binary.ts). params { blockSize: multiple of 8, salientColumns: S }
 *   nB = ceil(in / blockSize); rb = ceil(in / 8); bit j of a plane row is bit (j mod 8) of byte j/8.
 *   signs    U8  [out, rb]        1 = +1, 0 = −1 (first-order sign on salient columns)
 *   split    U8  [out, rb]        1 = sparse part (large |w|), 0 = concentrated; 0 on salient columns
 *   salient  U8  [rb]             1 = salient column (the same columns in every row)
 *   residual U8  [out, ceil(S/8)] second-order signs of the salient columns, in column order; absent when S = 0
 *   scales   F16 [out, nB, 7]     αc, μc, αs, μs, α1, α2, μsal of each row and block
 *   ŵ = α1·s + α2·s2 + μsal (salient) | αs·s + μs (split) | αc·s + μc (other), scales of the weight's block
 *   bpw = 2 (signs + split) + S/in + 1/out (mask) + 112/blockSize, plus row padding to whole bytes.
 */
register(binaryFormat);

/**
 * mixed-asym — SliM-LLM: each column group has its own width b_g ∈ 1..4, the same in every row.
 *   params { groupSize, groups: [n1, n2, n3, n4] (groups per width, sum nG), lastBits (width of the
 *   last, possibly partial, group) }; len_g = groupSize except the last group.
 *   widths U8  [ceil(nG/4)]     2-bit codes b_g − 1, bitstream over the column groups (the bit map)
 *   q      U8  [out, rowBytes]  row r: group after group, each a bitstream of its len_g b_g-bit
 *                               levels starting on a byte boundary; rowBytes = Σ_g ceil(b_g·len_g/8)
 *   scale  F16 [out, nG]
 *   zero   U8  [out, ceil(Σ_{b_g≥2} b_g / 8)]  row r: bitstream of the integer zeros of the groups
 *                               with b_g ≥ 2, in group order, each b_g bits (absent if none)
 *   zero1  F16 [out, n1]       row r: the (fractional) zeros of the 1-bit groups (absent if n1 = 0)
 *   block: one group.   ŵ[r, c] = scale[r, g]·(q[r, c] − zero[r, g]), g = c / groupSize; a 1-bit
 *   group is mean ± spread: ŵ ∈ {−s·z, s·(1 − z)}.
 *   bpw = (rowBytes + zero bytes + 2·n1 + 2·nG)·8 / in + 8·ceil(nG/4) / (out·in).
 */
register(mixedFormat('mixed-asym', 'per-group bit-widths 1-4 (SliM-LLM): bit map, levels packed at each group\'s width, float16 scales, integer or float16 zeros'));

export function formatIds(): string[] {
  return [...table.keys()];
}

/** The format, or undefined for an id this build does not know (files from a newer bitcrush). */
export function findFormat(id: string): WeightFormat | undefined {
  return table.get(id);
}

export function getFormat(id: string): WeightFormat {
  const f = table.get(id);
  if (f === undefined) throw new RangeError(`unknown packed format ${id} (known: ${formatIds().join(', ')})`);
  return f;
}

/** Bits per weight of a tensor in a format, counting every blob byte (levels, scales, zeros, maps, codebooks). */
export function bitsPerWeight(format: WeightFormat, outDim: number, inDim: number, params: FormatParams): number {
  return (packedBytes(format, outDim, inDim, params) * 8) / (outDim * inDim);
}

export function packedBytes(format: WeightFormat, outDim: number, inDim: number, params: FormatParams): number {
  return Object.values(format.blobs(outDim, inDim, params)).reduce((s, b) => s + blobBytes(b), 0);
}

export interface GroupPackOptions {
  /** Force a format; default: the smallest of the formats that store the tensor exactly. */
  format?: string;
}

/** Packs a grid method's output into the registered format that stores it exactly in the fewest bytes. */
export function packGroups(g: GroupQuantized, opts: GroupPackOptions = {}): PackedTensor {
  if (opts.format !== undefined) return getFormat(opts.format).pack(g);
  // sizes follow from the params: only the smallest candidate is packed
  let best: { f: WeightFormat; t?: PackedTensor; bytes: number } | undefined;
  for (const f of table.values()) {
    if (f.accepts === undefined || !f.accepts(g)) continue;
    const t = f.paramsFor ? undefined : (f.pack(g) as PackedTensor);
    const bytes = t ? Object.values(t.blobs).reduce((s, b) => s + b.bytes.byteLength, 0) : packedBytes(f, g.outDim, g.inDim, f.paramsFor!(g));
    if (best === undefined || bytes < best.bytes) best = { f, t, bytes };
  }
  if (best === undefined) {
    // let the most general grid format explain why it does not fit
    getFormat('uniform-asym').pack(g);
    throw new RangeError('no registered format stores this tensor');
  }
  return best.t ?? (best.f.pack(g) as PackedTensor);
}
