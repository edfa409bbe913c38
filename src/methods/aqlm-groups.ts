/**
 * AQLM with output groups (og rows per codeword and scale, AQLM's out_group_size) as the og = 1
 * problem on virtual rows: output group o's og rows, column group by column group, make one
 * row of og·in weights
 *   v_o[(j·og + a)·g + t] = w[row(o, a), j·g + t]          (row(o, a): codebook.ts codebookRow)
 * so a virtual group of og·g weights is exactly one codeword tile [og, g], and the loss
 *   Σ_a (ŵ_a − w_a) H (ŵ_a − w_a)ᵀ = (v̂_o − v_o) H' (v̂_o − v_o)ᵀ,   H' = H on each member, 0 across
 * with H'[(j·og + a)·g + t, (j'·og + a')·g + t'] = δ_aa' · H[j·g + t, j'·g + t']. The og = 1
 * method (k-means, Adam, beam search) then fits codes [out/og, nG, M], codebooks [M, 2^B, og·g]
 * = [M, 2^B, og, g] and one scale per group (initialised to the group's norm, as AQLM's
 * scales) unchanged. The cost: H' is (og·in)², og² times H, mostly zeros the og = 1 kernels
 * multiply anyway; fine for small models, heavy for 4096-wide layers.
 */
import { codebookRow } from '../formats/codebook.js';

/** W [out, in] and H [in, in] as the virtual problem: W' [out/og, og·in], H' [og·in, og·in]. */
export function virtualRows(W: Float32Array, H: Float64Array, outDim: number, inDim: number, g: number, og: number, il: number): { W: Float32Array; H: Float64Array } {
  const nO = outDim / og;
  const nG = inDim / g;
  const vin = og * inDim;
  const Wv = new Float32Array(nO * vin);
  for (let o = 0; o < nO; o++) {
    for (let a = 0; a < og; a++) {
      const r = codebookRow(o, a, og, il);
      for (let j = 0; j < nG; j++) Wv.set(W.subarray(r * inDim + j * g, r * inDim + j * g + g), o * vin + (j * og + a) * g);
    }
  }
  const Hv = new Float64Array(vin * vin);
  for (let j = 0; j < nG; j++) {
    for (let t = 0; t < g; t++) {
      const src = (j * g + t) * inDim;
      for (let a = 0; a < og; a++) {
        const dst = ((j * og + a) * g + t) * vin;
        for (let j2 = 0; j2 < nG; j2++) Hv.set(H.subarray(src + j2 * g, src + j2 * g + g), dst + (j2 * og + a) * g);
      }
    }
  }
  return { W: Wv, H: Hv };
}

/** A virtual [out/og, og·in] matrix back to the rows of W [out, in]. */
export function realRows(Wv: Float32Array, outDim: number, inDim: number, g: number, og: number, il: number): Float32Array {
  const nO = outDim / og;
  const nG = inDim / g;
  const vin = og * inDim;
  const W = new Float32Array(outDim * inDim);
  for (let o = 0; o < nO; o++) {
    for (let a = 0; a < og; a++) {
      const r = codebookRow(o, a, og, il);
      for (let j = 0; j < nG; j++) W.set(Wv.subarray(o * vin + (j * og + a) * g, o * vin + (j * og + a) * g + g), r * inDim + j * g);
    }
  }
  return W;
}
