/**
 * WGSL kernel of the uniform group formats (uniform-asym, uniform-sym; layout in
 * formats/registry.ts), reading the q, scale, zero and perm blobs as stored:
 *   ŵ[r, j] = scale[r, j / gs] · (q[r, j] − zero[r, j / gs]), input column perm[j] (act-order).
 * Rows of 1/2/4/8-bit fields that fill whole words, with groups of whole words, are read a word
 * at a time (the common 2- and 4-bit files); other shapes field by field.
 */
import { bitstreamBytes } from '../../formats/bitpack.js';
import { groupCount } from '../../formats/quantized.js';
import type { PackedTensor } from '../../formats/types.js';
import type { UniformParams } from '../../formats/uniform.js';
import type { LinearKernel } from '../linear.js';
import { bitReader, f16Reader } from '../wgsl.js';

export function uniformKernel(t: PackedTensor): LinearKernel {
  const p = t.params as UniformParams;
  const nG = groupCount(t.inDim, p.groupSize);
  const sym = t.blobs.zero === undefined;
  const perm = t.blobs.perm;
  const empty = new Uint8Array(4);
  const rowBits = t.inDim * p.bits;
  // whole 32-bit words of one group each: a lane decodes a word at a time (one load, one scale
  // and zero per word instead of per weight); other shapes, and act-order, read field by field
  const words = perm === undefined && 32 % p.bits === 0 && rowBits % 32 === 0 && p.groupSize % (32 / p.bits) === 0;
  const head = `
@group(0) @binding(5) var<storage, read> q: array<u32>;
@group(0) @binding(6) var<storage, read> scale: array<u32>;
@group(0) @binding(7) var<storage, read> zero: array<u32>;
@group(0) @binding(8) var<storage, read> perm: array<u32>;
${bitReader('q')}${bitReader('zero')}${bitReader('perm')}${f16Reader('scale')}`;
  const wgsl = words
    ? `${head}
// p0: bits, groupSize, nG, rowBytes; p1: zeroRowBytes, symmetric
const B: u32 = ${p.bits}u;
const PER: u32 = ${32 / p.bits}u;
fn partial(r: u32, xo: u32, lane: u32) -> f32 {
  let gs = lin.p0.y;
  let nG = lin.p0.z;
  let rowWords = lin.p0.w / 4u;
  let zRow = r * lin.p1.x * 8u;
  let mask = (1u << B) - 1u;
  _ = perm[0]; // bound for the shared layout, unused without act-order
  var acc = 0.0;
  for (var w = lane; w < rowWords; w = w + LANES) {
    let word = q[r * rowWords + w];
    let j0 = w * PER;
    let g = j0 / gs;
    var z = f32(1u << (B - 1u));
    if (lin.p1.y == 0u) { z = f32(bits_zero(zRow + g * B, B)); }
    var s = 0.0;
    for (var k = 0u; k < PER; k = k + 1u) { s = s + (f32((word >> (k * B)) & mask) - z) * x[xo + j0 + k]; }
    acc = acc + f16_scale(r * nG + g) * s;
  }
  return acc;
}`
    : `${head}
// p0: bits, groupSize, nG, rowBytes; p1: zeroRowBytes, symmetric, permBits (0: none)
fn partial(r: u32, xo: u32, lane: u32) -> f32 {
  let b = lin.p0.x;
  let gs = lin.p0.y;
  let nG = lin.p0.z;
  let qRow = r * lin.p0.w * 8u;
  let zRow = r * lin.p1.x * 8u;
  let mid = f32(1u << (b - 1u));
  let permBits = lin.p1.z;
  var acc = 0.0;
  for (var j = lane; j < lin.inDim; j = j + LANES) {
    let g = j / gs;
    var z = mid;
    if (lin.p1.y == 0u) { z = f32(bits_zero(zRow + g * b, b)); }
    var c = j;
    if (permBits == 16u) { c = bits_perm(j * 16u, 16u); } else if (permBits == 32u) { c = perm[j]; }
    let w = f16_scale(r * nG + g) * (f32(bits_q(qRow + j * b, b)) - z);
    acc = acc + w * x[xo + c];
  }
  return acc;
}`;
  return {
    label: `${t.format} ${p.bits}-bit${words ? ' words' : ''} [${t.outDim}, ${t.inDim}]`,
    wgsl,
    buffers: [
      { bytes: t.blobs.q!.bytes, perRow: true },
      { bytes: t.blobs.scale!.bytes, perRow: true },
      sym ? { bytes: empty, perRow: false } : { bytes: t.blobs.zero!.bytes, perRow: true },
      perm ? { bytes: perm.bytes, perRow: false } : { bytes: empty, perRow: false },
    ],
    params: [p.bits, p.groupSize, nG, bitstreamBytes(t.inDim, p.bits), sym ? 0 : bitstreamBytes(nG, p.bits), sym ? 1 : 0, perm ? (perm.dtype === 'I16' ? 16 : 32) : 0],
  };
}
