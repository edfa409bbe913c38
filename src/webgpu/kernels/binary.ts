/**
 * WGSL kernel of the binary format of BiLLM / DBellQuant (binary-billm; layout in
 * formats/registry.ts), reading signs, split, residual and scales as stored. The salient mask
 * is the same for every row: it becomes a per-column table once (the column's index among the
 * salient columns, or 0xffffffff), which the residual plane needs.
 *   ŵ = α1·s + α2·s2 + μsal (salient) | αs·s + μs (split) | αc·s + μc (other)
 */
import { bitstreamBytes } from '../../formats/bitpack.js';
import { blockCount, type BinaryParams } from '../../formats/binary.js';
import type { PackedTensor } from '../../formats/types.js';
import type { LinearKernel } from '../linear.js';
import { bitReader, f16Reader } from '../wgsl.js';

export function binaryKernel(t: PackedTensor): LinearKernel {
  const p = t.params as BinaryParams;
  const mask = t.blobs.salient!.bytes;
  const rank = new Uint32Array(t.inDim);
  let k = 0;
  for (let j = 0; j < t.inDim; j++) rank[j] = (mask[j >>> 3]! >>> (j & 7)) & 1 ? k++ : 0xffffffff;
  const empty = new Uint8Array(4);
  const wgsl = `
@group(0) @binding(5) var<storage, read> signs: array<u32>;
@group(0) @binding(6) var<storage, read> split: array<u32>;
@group(0) @binding(7) var<storage, read> residual: array<u32>;
@group(0) @binding(8) var<storage, read> scales: array<u32>;
@group(0) @binding(9) var<storage, read> rank: array<u32>;
${bitReader('signs')}${bitReader('split')}${bitReader('residual')}${f16Reader('scales')}
// p0: blockSize, nB, planeRowBytes, residualRowBytes
fn partial(r: u32, xo: u32, lane: u32) -> f32 {
  let bs = lin.p0.x;
  let nB = lin.p0.y;
  let plane = r * lin.p0.z * 8u;
  var acc = 0.0;
  for (var j = lane; j < lin.inDim; j = j + LANES) {
    let sc = (r * nB + j / bs) * 7u;
    let s = f32(bits_signs(plane + j, 1u)) * 2.0 - 1.0;
    let k = rank[j];
    var w: f32;
    if (k != 0xffffffffu) {
      let s2 = f32(bits_residual(r * lin.p0.w * 8u + k, 1u)) * 2.0 - 1.0;
      w = f16_scales(sc + 4u) * s + f16_scales(sc + 5u) * s2 + f16_scales(sc + 6u);
    } else if (bits_split(plane + j, 1u) != 0u) {
      w = f16_scales(sc + 2u) * s + f16_scales(sc + 3u);
    } else {
      w = f16_scales(sc) * s + f16_scales(sc + 1u);
    }
    acc = acc + w * x[xo + j];
  }
  return acc;
}`;
  return {
    label: `binary-billm b${p.blockSize} [${t.outDim}, ${t.inDim}]`,
    wgsl,
    buffers: [
      { bytes: t.blobs.signs!.bytes, perRow: true },
      { bytes: t.blobs.split!.bytes, perRow: true },
      t.blobs.residual ? { bytes: t.blobs.residual.bytes, perRow: true } : { bytes: empty, perRow: false },
      { bytes: t.blobs.scales!.bytes, perRow: true },
      { bytes: new Uint8Array(rank.buffer), perRow: false },
    ],
    params: [p.blockSize, blockCount(t.inDim, p.blockSize), bitstreamBytes(t.inDim, 1), p.salientColumns > 0 ? bitstreamBytes(p.salientColumns, 1) : 0],
  };
}
