/**
 * WGSL building blocks shared by the kernels: packed bytes are bound as array<u32> words, so a
 * b-bit field at any bit position (rows start on byte boundaries, not words) is read by
 * `bits_NAME`, and a float16 by `f16_NAME` (unpack2x16float: no shader-f16 feature needed).
 */

/** `fn bits_NAME(bit, n) -> u32`: n ≤ 16 bits of the little-endian bitstream NAME from bit `bit`. */
export function bitReader(name: string): string {
  return `
fn bits_${name}(bit: u32, n: u32) -> u32 {
  let w = bit >> 5u;
  let s = bit & 31u;
  var v = ${name}[w] >> s;
  if (s + n > 32u) { v = v | (${name}[w + 1u] << (32u - s)); }
  return v & ((1u << n) - 1u);
}`;
}

/** `fn f16_NAME(i) -> f32`: element i of the float16 array NAME. */
export function f16Reader(name: string): string {
  return `
fn f16_${name}(i: u32) -> f32 {
  return unpack2x16float(${name}[i >> 1u])[i & 1u];
}`;
}

/** The per-call uniform every kernel reads: rows (tokens) of this call and the first position. */
export const STEP_STRUCT = `
struct Step { T: u32, startPos: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> step: Step;`;

/** A workgroup sum of `v` over 64 invocations (all must call it); the total is returned to every invocation. */
export const REDUCE_64 = `
var<workgroup> red: array<f32, 64>;
fn reduceSum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}
fn reduceMax(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}`;

/** f32 bits as a u32, for f32 fields of a uniform written as words. */
export function f32Bits(v: number): number {
  return new Uint32Array(new Float32Array([v]).buffer)[0]!;
}
