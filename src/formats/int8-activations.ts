/**
 * Reference of the activation quantization the native low-bit kernels apply once per matvec
 * (native/lowbit.c lb_quantize_act): x in stored column order, in blocks of 128 columns, each
 * with scale s = max|x| / 127 (float32) and levels round_half_even(x · (1/s)) in [−127, 127].
 * Returns the dequantized activations x̂ = level · s in original column order, so a test
 * compares the kernels with W·x̂ (exact up to float32 accumulation). |x − x̂| ≤ s/2 per
 * element: the kernels' deviation from W·x is at most Σ_j |w_j| · s_block(j) / 2.
 */
export const INT8_BLOCK = 128;

function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v - Math.trunc(v)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * x̂ [inDim] from x [inDim]; perm [inDim] maps stored → original column (null: identity). `block`:
 * columns per scale, the kernels' 128 unless a study asks for another (bench/int8-block.ts).
 */
export function int8Activations(x: Float32Array, inDim: number, perm: Int32Array | null, block = INT8_BLOCK): Float32Array {
  const out = new Float32Array(inDim);
  const col = (j: number) => (perm ? perm[j]! : j);
  for (let c0 = 0; c0 < inDim; c0 += block) {
    const c1 = Math.min(inDim, c0 + block);
    let amax = 0;
    for (let j = c0; j < c1; j++) amax = Math.max(amax, Math.abs(x[col(j)]!));
    const s = Math.fround(amax / 127);
    const inv = amax > 0 ? Math.fround(1 / s) : 0;
    for (let j = c0; j < c1; j++) {
      const level = Math.max(-127, Math.min(127, roundHalfEven(Math.fround(x[col(j)]! * inv))));
      out[col(j)] = level * s;
    }
  }
  return out;
}
