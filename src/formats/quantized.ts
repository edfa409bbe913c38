/**
 * What a grid-based method (RTN, GPTQ, SliM-LLM) hands to the formats: integer levels on
 * per-(row, column-group) affine grids, ŵ[r, c] = scale[r, g] · (q[r, j] − zero[r, g]) where
 * stored column j holds original column c = perm[j] and g = floor(j / groupSize).
 *
 * Invariants (so a packed file dequantizes to exactly the fake-quantized weights):
 * - scale values are exactly representable in float16 (the quantizer rounds them);
 * - zero values are integers in [0, 2^bits − 1] for every group of bits ≥ 2; 1-bit groups
 *   (SliM-LLM) may use any float16-representable zero;
 * - q[r, j] < 2^bits[group of j].
 */
export interface GroupQuantized {
  outDim: number;
  inDim: number;
  /** Columns per group; the last group of a row may be partial. Per-channel: groupSize = inDim. */
  groupSize: number;
  /** [nGroups] bit-width of each column group (equal everywhere for uniform methods). */
  bits: Uint8Array;
  /** [outDim, inDim] levels, stored column order. */
  q: Uint8Array;
  /** [outDim, nGroups] */
  scale: Float32Array;
  /** [outDim, nGroups] */
  zero: Float32Array;
  /** [inDim] stored column j is original column perm[j] (act-order); null = identity. */
  perm: Int32Array | null;
}

export function groupCount(inDim: number, groupSize: number): number {
  return Math.ceil(inDim / groupSize);
}

/** Dequantize to [outDim, inDim] float32 in original column order (the reference). */
export function dequantizeGroups(t: GroupQuantized): Float32Array {
  const { outDim, inDim, groupSize, q, scale, zero, perm } = t;
  const nGroups = groupCount(inDim, groupSize);
  const w = new Float32Array(outDim * inDim);
  for (let r = 0; r < outDim; r++) {
    for (let j = 0; j < inDim; j++) {
      const g = Math.floor(j / groupSize);
      const c = perm ? perm[j] : j;
      w[r * inDim + c] = scale[r * nGroups + g] * (q[r * inDim + j] - zero[r * nGroups + g]);
    }
  }
  return w;
}

const f16Buf = new Float32Array(1);
const f16Int = new Uint32Array(f16Buf.buffer);

/** Round a float32 to the nearest float16 value (ties to even), returned as a number. */
export function roundToF16(x: number): number {
  f16Buf[0] = x;
  const bits = f16Int[0];
  const exp = (bits >>> 23) & 0xff;
  if (exp === 0xff) return x; // inf / nan
  const e = exp - 127;
  if (e > 15) return Math.sign(x) * Infinity;
  // spacing of float16 values at this magnitude: 2^(e-10) for normals, 2^-24 for subnormals
  const ulp = e < -14 ? 2 ** -24 : 2 ** (e - 10);
  const r = Math.round(Math.abs(x) / ulp);
  // Math.round rounds half up; make ties go to even
  const tie = Math.abs(Math.abs(x) / ulp - (r - 0.5)) === 0 && r % 2 === 1 ? r - 1 : r;
  const v = Math.sign(x) * tie * ulp;
  return Math.abs(v) > 65504 ? Math.sign(x) * Infinity : v;
}
