/**
 * Hugging Face AQLM tensors (transformers' `aqlm` integration, Vahe1994/AQLM's inference
 * QuantizedLinear) ↔ bitcrush's codebook format (formats/codebook.ts), exactly. One linear
 * W [out, in] is
 *   codes     int8 (nbits ≤ 8) / int16 (≤ 16)  [out/out_group, in/in_group, num_codebooks]
 *             two's complement of the code (AQLM's pack_int_data: codes ≥ 2^(b−1) stored minus 2^b)
 *   codebooks fp16 [num_codebooks, 2^nbits, out_group, in_group]
 *   scales    fp16 [out/out_group, 1, 1, 1]
 * and (AQLM's _dequantize_weight: an embedding-bag sum of the M codewords of each tile, times
 * the tile's out-group scale, tiles [out_group, in_group] laid out row-major)
 *   W[o·og + a, j·g + t] = scales[o] · Σ_m codebooks[m, codes[o, j, m], a, t]
 * which is bitcrush's codebook format with M = num_codebooks, B = nbits, g = in_group,
 * og = out_group (the memory orders coincide). q/k rows move to bitcrush's interleaved RoPE
 * order: one row each for og = 1; for og > 1 whole groups move, a pair of them sharing 2·og
 * rows (il = 2), which needs og to divide half the head size.
 */
import { copyToArrayBuffer } from '../io/bytes.js';
import { check } from '../io/errors.js';
import { CODEBOOK_LIMITS, codebookFormat, codebookRow, groupShape, type CodebookParams, type CodebookQuantized } from '../formats/codebook.js';
import { decodeF16 } from '../formats/bitpack.js';
import { ImportError, type LinearImporter } from './quantized-source.js';

export interface AqlmConfig {
  inGroupSize: number;
  outGroupSize: number;
  numCodebooks: number;
  nbitsPerCodebook: number;
}

export function parseAqlmConfig(file: string, qc: Record<string, unknown>): AqlmConfig {
  const int = (key: string, lo: number, hi: number): number => {
    const v = qc[key];
    check(Number.isSafeInteger(v) && (v as number) >= lo && (v as number) <= hi, file, `quantization_config.${key} ${JSON.stringify(v)} is not supported (an integer in [${lo}, ${hi}])`);
    return v as number;
  };
  const outGroupSize = int('out_group_size', 1, CODEBOOK_LIMITS.maxOg);
  return {
    inGroupSize: int('in_group_size', 1, CODEBOOK_LIMITS.maxG),
    outGroupSize,
    numCodebooks: int('num_codebooks', 1, CODEBOOK_LIMITS.maxM),
    nbitsPerCodebook: int('nbits_per_codebook', 1, CODEBOOK_LIMITS.maxB),
  };
}

export function aqlmShapes(c: AqlmConfig, outDim: number, inDim: number): Record<'codes' | 'codebooks' | 'scales', { dtype: string; shape: number[] }> | string {
  if (inDim % c.inGroupSize !== 0) return `in_group_size ${c.inGroupSize} does not divide the ${inDim} input columns`;
  if (outDim % c.outGroupSize !== 0) return `out_group_size ${c.outGroupSize} does not divide the ${outDim} output rows`;
  const nO = outDim / c.outGroupSize;
  return {
    codes: { dtype: c.nbitsPerCodebook <= 8 ? 'I8' : 'I16', shape: [nO, inDim / c.inGroupSize, c.numCodebooks] },
    codebooks: { dtype: 'F16', shape: [c.numCodebooks, 2 ** c.nbitsPerCodebook, c.outGroupSize, c.inGroupSize] },
    scales: { dtype: 'F16', shape: [nO, 1, 1, 1] },
  };
}

/** AQLM tensors → codebook payload (rows in the checkpoint's order). */
export function aqlmToCodebook(codesRaw: Uint8Array, codebooks: Uint16Array, scales: Uint16Array, c: AqlmConfig, outDim: number, inDim: number): CodebookQuantized {
  const B = c.nbitsPerCodebook;
  const mask = 2 ** B - 1;
  const n = (outDim / c.outGroupSize) * (inDim / c.inGroupSize) * c.numCodebooks;
  const stored = B <= 8 ? codesRaw : new Uint16Array(copyToArrayBuffer(codesRaw));
  if (stored.length !== n) throw new ImportError(`codes has ${stored.length} values, expected ${n}`);
  const codes = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const v = stored[i]!; // the two's-complement bits; the code is their value mod 2^B
    const width = B <= 8 ? 8 : 16;
    const signedHigh = v >= 2 ** (width - 1) ? v - 2 ** width : v;
    if (signedHigh < -(2 ** (B - 1)) || signedHigh > mask) throw new ImportError(`codes[${i}] = ${signedHigh} is not a ${B}-bit code`);
    codes[i] = v & mask;
  }
  const og = c.outGroupSize === 1 ? {} : { og: c.outGroupSize };
  return { outDim, inDim, M: c.numCodebooks, B, g: c.inGroupSize, ...og, codes, codebooks: decodeF16(new Uint8Array(codebooks.buffer, codebooks.byteOffset, codebooks.byteLength)), scale: decodeF16(new Uint8Array(scales.buffer, scales.byteOffset, scales.byteLength)) };
}

/** Codebook payload → AQLM tensors (codes as AQLM packs them). */
export function codebookToAqlm(q: CodebookQuantized): { codes: Int8Array | Int16Array; config: AqlmConfig } {
  const B = q.B;
  const signed = Int32Array.from(q.codes, (v) => (v >= 2 ** (B - 1) ? v - 2 ** B : v));
  return {
    codes: B <= 8 ? Int8Array.from(signed) : Int16Array.from(signed),
    config: { inGroupSize: q.g, outGroupSize: groupShape(q).og, numCodebooks: q.M, nbitsPerCodebook: B },
  };
}

/**
 * The payload with its rows moved (row r becomes row to[r]) into row interleave `il`: codes and
 * scales are per output group, so each group moves whole, to the group of the new layout whose
 * member a is the moved row of member a. A string says why the rows cannot be such groups.
 */
export function moveCodebookRows(q: CodebookQuantized, to: Int32Array, il = 1): CodebookQuantized | string {
  const { og, il: from } = groupShape(q);
  if (og === 1) il = 1;
  const per = (q.inDim / q.g) * q.M;
  const codes = new Uint16Array(q.codes.length);
  const scale = new Float32Array(q.scale.length);
  for (let o = 0; o < q.outDim / og; o++) {
    // member 0 fixes the new group: row (p − b)·og + b with b = p mod il (codebookRow)
    const r0 = to[codebookRow(o, 0, og, from)]!;
    const b = r0 % il;
    const p = (r0 - b) % (og * il) === 0 ? (r0 - b) / og + b : -1;
    for (let a = 0; a < og && p >= 0; a++) {
      if (to[codebookRow(o, a, og, from)] !== codebookRow(p, a, og, il)) return `the ${og} rows of output group ${o} do not stay one group in the new row order`;
    }
    if (p < 0) return `the ${og} rows of output group ${o} do not stay one group in the new row order`;
    codes.set(q.codes.subarray(o * per, (o + 1) * per), p * per);
    scale[p] = q.scale[o]!;
  }
  const { il: _il, ...rest } = q;
  return { ...rest, ...(il === 1 ? {} : { il }), codes, scale };
}

export function aqlmImporter(c: AqlmConfig): LinearImporter {
  return {
    parts: ['codes', 'codebooks', 'scales'],
    specs: (outDim, inDim) => aqlmShapes(c, outDim, inDim),
    toPacked(raw, outDim, inDim, rows) {
      const f16 = (p: string) => new Uint16Array(copyToArrayBuffer(raw(p)));
      let q = aqlmToCodebook(raw('codes'), f16('codebooks'), f16('scales'), c, outDim, inDim);
      if (q.scale.some((s) => !Number.isFinite(s)) || q.codebooks.some((v) => !Number.isFinite(v))) throw new ImportError('scales or codebooks hold a non-finite value');
      if (rows !== null) {
        // q/k: og > 1 groups pair up in the interleaved RoPE order (il = 2)
        const moved = moveCodebookRows(q, rows, c.outGroupSize > 1 ? 2 : 1);
        if (typeof moved === 'string') throw new ImportError(`${moved} (bitcrush's interleaved RoPE rows: out_group_size ${c.outGroupSize} must divide half the head size)`);
        q = moved;
      }
      return codebookFormat.pack(q);
    },
  };
}

export type { CodebookParams };
