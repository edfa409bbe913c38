/**
 * Hugging Face AQLM tensors (transformers' `aqlm` integration, Vahe1994/AQLM's inference
 * QuantizedLinear) ↔ bitcrush's codebook format (formats/codebook.ts), exactly. One linear
 * W [out, in] is
 *   codes     int8 (nbits ≤ 8) / int16 (≤ 16)  [out/out_group, in/in_group, num_codebooks]
 *             two's complement of the code (AQLM's pack_int_data: codes ≥ 2^(b−1) stored minus 2^b)
 *   codebooks fp16 [num_codebooks, 2^nbits, out_group, in_group]
 *   scales    fp16 [out/out_group, 1, 1, 1]
 * and W[o, j·g : j·g + g] = scales[o] · Σ_m codebooks[m, codes[o, j, m], 0, :] for out_group 1,
 * which is bitcrush's ŵ[r, j·g : j·g + g] = s_r · Σ_m C_m[b_{r,j,m}] with M = num_codebooks,
 * B = nbits, g = in_group (the memory orders coincide). Codewords spanning several output rows
 * (out_group > 1) are not stored by the codebook format: refused with the reason.
 */
import { copyToArrayBuffer } from '../io/bytes.js';
import { check } from '../io/errors.js';
import { CODEBOOK_LIMITS, codebookFormat, type CodebookParams, type CodebookQuantized } from '../formats/codebook.js';
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
  const outGroupSize = int('out_group_size', 1, 1 << 16);
  check(outGroupSize === 1, file, `quantization_config.out_group_size ${outGroupSize} is not supported: bitcrush's codebook format holds codewords along one row (out_group_size 1, as in 1x16 and 2x8)`);
  return {
    inGroupSize: int('in_group_size', 1, CODEBOOK_LIMITS.maxG),
    outGroupSize,
    numCodebooks: int('num_codebooks', 1, CODEBOOK_LIMITS.maxM),
    nbitsPerCodebook: int('nbits_per_codebook', 1, CODEBOOK_LIMITS.maxB),
  };
}

export function aqlmShapes(c: AqlmConfig, outDim: number, inDim: number): Record<'codes' | 'codebooks' | 'scales', { dtype: string; shape: number[] }> | string {
  if (inDim % c.inGroupSize !== 0) return `in_group_size ${c.inGroupSize} does not divide the ${inDim} input columns`;
  return {
    codes: { dtype: c.nbitsPerCodebook <= 8 ? 'I8' : 'I16', shape: [outDim, inDim / c.inGroupSize, c.numCodebooks] },
    codebooks: { dtype: 'F16', shape: [c.numCodebooks, 2 ** c.nbitsPerCodebook, 1, c.inGroupSize] },
    scales: { dtype: 'F16', shape: [outDim, 1, 1, 1] },
  };
}

/** AQLM tensors → codebook payload (rows in the checkpoint's order). */
export function aqlmToCodebook(codesRaw: Uint8Array, codebooks: Uint16Array, scales: Uint16Array, c: AqlmConfig, outDim: number, inDim: number): CodebookQuantized {
  const B = c.nbitsPerCodebook;
  const mask = 2 ** B - 1;
  const n = outDim * (inDim / c.inGroupSize) * c.numCodebooks;
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
  return { outDim, inDim, M: c.numCodebooks, B, g: c.inGroupSize, codes, codebooks: decodeF16(new Uint8Array(codebooks.buffer, codebooks.byteOffset, codebooks.byteLength)), scale: decodeF16(new Uint8Array(scales.buffer, scales.byteOffset, scales.byteLength)) };
}

/** Codebook payload → AQLM tensors (codes as AQLM packs them). */
export function codebookToAqlm(q: CodebookQuantized): { codes: Int8Array | Int16Array; config: AqlmConfig } {
  const B = q.B;
  const signed = Int32Array.from(q.codes, (v) => (v >= 2 ** (B - 1) ? v - 2 ** B : v));
  return {
    codes: B <= 8 ? Int8Array.from(signed) : Int16Array.from(signed),
    config: { inGroupSize: q.g, outGroupSize: 1, numCodebooks: q.M, nbitsPerCodebook: B },
  };
}

/** The payload with its rows moved: row r becomes row to[r] (codes and scales are per row). */
export function moveCodebookRows(q: CodebookQuantized, to: Int32Array): CodebookQuantized {
  const per = (q.inDim / q.g) * q.M;
  const codes = new Uint16Array(q.codes.length);
  const scale = new Float32Array(q.scale.length);
  for (let r = 0; r < q.outDim; r++) {
    codes.set(q.codes.subarray(r * per, (r + 1) * per), to[r]! * per);
    scale[to[r]!] = q.scale[r]!;
  }
  return { ...q, codes, scale };
}

export function aqlmImporter(c: AqlmConfig): LinearImporter {
  return {
    parts: ['codes', 'codebooks', 'scales'],
    specs: (outDim, inDim) => aqlmShapes(c, outDim, inDim),
    toPacked(raw, outDim, inDim, rows) {
      const f16 = (p: string) => new Uint16Array(copyToArrayBuffer(raw(p)));
      let q = aqlmToCodebook(raw('codes'), f16('codebooks'), f16('scales'), c, outDim, inDim);
      if (q.scale.some((s) => !Number.isFinite(s)) || q.codebooks.some((v) => !Number.isFinite(v))) throw new ImportError('scales or codebooks hold a non-finite value');
      if (rows !== null) q = moveCodebookRows(q, rows);
      return codebookFormat.pack(q);
    },
  };
}

export type { CodebookParams };
