/**
 * WGSL kernel of the AQLM additive-codebook format (aqlm; layout in formats/registry.ts),
 * reading codes (B-bit bitstream, or U16 for B > 8), codebooks and scale as stored:
 *   y[r] = scale[r] · Σ_j Σ_t (Σ_m codebooks[m, code(r, j, m), t]) · x[j·g + t]
 * Each lane takes whole groups j = lane, lane + LANES, …
 * Output groups (og > 1): row r is member a of group o (codebook.ts codebookRow), its codes and
 * scale those of group o, its codeword values row a of each [og, g] codeword. The code and scale
 * blobs then hold a row per group, not per output row: they are bound whole to every part (row
 * ranges split only the per-row blobs), and the kernel indexes them by the absolute row.
 */
import { bitstreamBytes } from '../../formats/bitpack.js';
import { groupShape, type CodebookParams } from '../../formats/codebook.js';
import type { PackedTensor } from '../../formats/types.js';
import type { LinearKernel } from '../linear.js';
import { bitReader, f16Reader } from '../wgsl.js';

export function codebookKernel(t: PackedTensor): LinearKernel {
  const p = t.params as CodebookParams;
  const nG = t.inDim / p.g;
  const perRow = nG * p.M;
  // bits of one row's codes: a bitstream of B-bit codes, or U16 elements
  const rowBits = p.B <= 8 ? bitstreamBytes(perRow, p.B) * 8 : perRow * 16;
  const wgsl = `
@group(0) @binding(5) var<storage, read> codes: array<u32>;
@group(0) @binding(6) var<storage, read> codebooks: array<u32>;
@group(0) @binding(7) var<storage, read> scale: array<u32>;
${bitReader('codes')}${f16Reader('codebooks')}${f16Reader('scale')}
// p0: M, B (or 16 when stored as U16), g, rowBits; p1: nG
fn partial(r: u32, xo: u32, lane: u32) -> f32 {
  let M = lin.p0.x;
  let B = lin.p0.y;
  let g = lin.p0.z;
  let K = 1u << B;
  let nG = lin.p1.x;
  var acc = 0.0;
  for (var j = lane; j < nG; j = j + LANES) {
    var base: array<u32, 16>;
    for (var m = 0u; m < M; m = m + 1u) {
      base[m] = (m * K + bits_codes(r * lin.p0.w + (j * M + m) * B, B)) * g;
    }
    for (var i = 0u; i < g; i = i + 1u) {
      var w = 0.0;
      for (var m = 0u; m < M; m = m + 1u) { w = w + f16_codebooks(base[m] + i); }
      acc = acc + w * x[xo + j * g + i];
    }
  }
  return acc * f16_scale(r);
}`;
  const { og, il } = groupShape(p);
  const src = og === 1 ? wgsl : groupedWgsl(wgsl);
  // U16 codes read as 16-bit fields: codeword ids < 2^16, and K = 2^B indexes the codebooks
  return {
    label: `aqlm ${p.M}x${p.B} g${p.g}${og === 1 ? '' : ` og${og}${il === 1 ? '' : ` il${il}`}`} [${t.outDim}, ${t.inDim}]`,
    wgsl: p.B <= 8 ? src : src.replace('bits_codes(o * lin.p0.w + (j * M + m) * B, B)', 'bits_codes(o * lin.p0.w + (j * M + m) * 16u, 16u)').replace('bits_codes(r * lin.p0.w + (j * M + m) * B, B)', 'bits_codes(r * lin.p0.w + (j * M + m) * 16u, 16u)'),
    buffers: [
      { bytes: t.blobs.codes!.bytes, perRow: og === 1 },
      { bytes: t.blobs.codebooks!.bytes, perRow: false },
      { bytes: t.blobs.scale!.bytes, perRow: og === 1 },
    ],
    params: [p.M, p.B, p.g, rowBits, nG, og, il],
  };
}

/** The og = 1 kernel with row r read as member a of output group o (p1.y = og, p1.z = il). */
function groupedWgsl(wgsl: string): string {
  const out = wgsl
    .replace('  var acc = 0.0;\n', `  let og = lin.p1.y;
  let il = lin.p1.z;
  let rr = lin.rowOff + r;
  let within = rr % (og * il);
  let a = within / il;
  let o = (rr - within) / og + within % il;
  var acc = 0.0;
`)
    .replace('base[m] = (m * K + bits_codes(r * lin.p0.w + (j * M + m) * B, B)) * g;', 'base[m] = ((m * K + bits_codes(o * lin.p0.w + (j * M + m) * B, B)) * og + a) * g;')
    .replace('return acc * f16_scale(r);', 'return acc * f16_scale(o);');
  if (out === wgsl || out.includes('f16_scale(r)') || !out.includes('* og + a) * g')) throw new Error('codebook WGSL: the output-group rewrite did not apply');
  return out;
}
