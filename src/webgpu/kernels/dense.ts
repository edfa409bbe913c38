/** WGSL kernel of a float32 weight matrix [out, in] (tensors a packed file keeps unquantized). */
import type { LinearKernel } from '../linear.js';

export function denseKernel(w: Float32Array, outDim: number, inDim: number, label: string): LinearKernel {
  if (w.length !== outDim * inDim) throw new RangeError(`${label}: ${w.length} values, expected ${outDim}×${inDim}`);
  const wgsl = `
@group(0) @binding(5) var<storage, read> w: array<f32>;
fn partial(r: u32, xo: u32, lane: u32) -> f32 {
  let base = r * lin.inDim;
  var acc = 0.0;
  for (var j = lane; j < lin.inDim; j = j + LANES) { acc = acc + w[base + j] * x[xo + j]; }
  return acc;
}`;
  return { label: `f32 ${label} [${outDim}, ${inDim}]`, wgsl, buffers: [{ bytes: new Uint8Array(w.buffer, w.byteOffset, w.byteLength), perRow: true }], params: [] };
}
