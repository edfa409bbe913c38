/**
 * WGSL kernel of the mixed-precision group format of SliM-LLM (mixed-asym; layout in
 * formats/registry.ts), reading q, scale, zero and zero1 as stored. The per-group table
 * (byte offset of the group in a row of q, bit offset of its integer zero or index of its
 * float16 zero, width) is the same for every row: it is derived once from the `widths` blob.
 *   ŵ[r, c] = scale[r, g] · (q[r, c] − zero[r, g]),  g = c / groupSize
 */
import { bitstreamBytes, unpackBits } from '../../formats/bitpack.js';
import { groupCount } from '../../formats/quantized.js';
import type { MixedParams } from '../../formats/mixed.js';
import type { PackedTensor } from '../../formats/types.js';
import type { LinearKernel } from '../linear.js';
import { bitReader, f16Reader } from '../wgsl.js';

export function mixedKernel(t: PackedTensor): LinearKernel {
  const p = t.params as MixedParams;
  const nG = groupCount(t.inDim, p.groupSize);
  const codes = new Uint8Array(nG);
  unpackBits(t.blobs.widths!.bytes, 0, codes, nG, 2);
  const table = new Uint32Array(nG * 4); // [groupByte, zero bit offset | zero1 index, width, 0]
  let byte = 0;
  let zbit = 0;
  let k1 = 0;
  for (let g = 0; g < nG; g++) {
    const b = codes[g]! + 1;
    const len = Math.min(p.groupSize, t.inDim - g * p.groupSize);
    table[g * 4] = byte;
    table[g * 4 + 2] = b;
    if (b === 1) table[g * 4 + 1] = k1++;
    else {
      table[g * 4 + 1] = zbit;
      zbit += b;
    }
    byte += bitstreamBytes(len, b);
  }
  const rowBytes = byte;
  const zeroBytes = Math.ceil(zbit / 8);
  const empty = new Uint8Array(4);
  const wgsl = `
@group(0) @binding(5) var<storage, read> q: array<u32>;
@group(0) @binding(6) var<storage, read> scale: array<u32>;
@group(0) @binding(7) var<storage, read> zero: array<u32>;
@group(0) @binding(8) var<storage, read> zero1: array<u32>;
@group(0) @binding(9) var<storage, read> groups: array<vec4<u32>>;
${bitReader('q')}${bitReader('zero')}${f16Reader('scale')}${f16Reader('zero1')}
// p0: groupSize, nG, rowBytes, zeroRowBytes; p1: n1 (1-bit groups per row)
fn partial(r: u32, xo: u32, lane: u32) -> f32 {
  let gs = lin.p0.x;
  let nG = lin.p0.y;
  var acc = 0.0;
  for (var j = lane; j < lin.inDim; j = j + LANES) {
    let g = j / gs;
    let e = groups[g];
    let b = e.z;
    let lv = f32(bits_q((r * lin.p0.z + e.x) * 8u + (j - g * gs) * b, b));
    var z: f32;
    if (b == 1u) { z = f16_zero1(r * lin.p1.x + e.y); } else { z = f32(bits_zero(r * lin.p0.w * 8u + e.y, b)); }
    acc = acc + f16_scale(r * nG + g) * (lv - z) * x[xo + j];
  }
  return acc;
}`;
  return {
    label: `${t.format} g${p.groupSize} [${t.outDim}, ${t.inDim}]`,
    wgsl,
    buffers: [
      { bytes: t.blobs.q!.bytes, perRow: true },
      { bytes: t.blobs.scale!.bytes, perRow: true },
      t.blobs.zero ? { bytes: t.blobs.zero.bytes, perRow: true } : { bytes: empty, perRow: false },
      t.blobs.zero1 ? { bytes: t.blobs.zero1.bytes, perRow: true } : { bytes: empty, perRow: false },
      { bytes: new Uint8Array(table.buffer), perRow: false },
    ],
    params: [p.groupSize, nG, rowBytes, zeroBytes, p.groups[0]!],
  };
}
