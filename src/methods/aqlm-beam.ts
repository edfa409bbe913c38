/**
 * AQLM's code update (Egiazarian et al. 2024, §3.2 "beam search"; beam_search_xtx.py): with
 * codebooks and scales fixed, re-choose the codes b[r, j, m] to minimise
 *   L = Σ_r (w_r − ŵ_r) H (w_r − ŵ_r)ᵀ,   H ∝ XᵀX.
 * Rows are independent, so every row keeps its own beam of `beamSize` full code assignments.
 * The search walks input groups j (outer loop) and codebooks m (inner loop); at each (j, m)
 * every hypothesis tries every codeword k and each row keeps its beamSize best results.
 *
 * Closed-form change of L (why this is cheap): let e = w − ŵ be a hypothesis' residual and
 * c_old = C_m[b] its current codeword in group j. Removing s·c_old from ŵ gives the residual
 * e' = e + s·c_old on slice j, with u = (e' H)_j = (e H)_j + s·H_jj·c_old (g values). Putting
 * codeword k there instead gives
 *   L(k) = L(e') − 2 s·C_m[k]·u + s²·C_m[k]ᵀ H_jj C_m[k],
 * so per (j, m) the work is two matrix products on the backend: (e H)_j for every row and
 * hypothesis ([beam·out, in] × [in, g]) and the scores u · C_mᵀ ([rows, g] × [g, 2^B]).
 */
import type { Backend } from '../backend/types.js';

export interface BeamSearchProblem {
  backend: Backend;
  outDim: number;
  inDim: number;
  M: number;
  /** Codewords per codebook (2^B). */
  K: number;
  g: number;
  /** [out, in] the target weights. */
  W: Float32Array;
  /** [in, in] symmetric, ∝ XᵀX. */
  H: Float32Array;
  /** [M, K, g] */
  codebooks: Float32Array;
  /** [out] */
  scale: Float32Array;
  /** [out, in/g, M] on entry the current codes; on return the best codes found. */
  codes: Uint16Array;
  beamSize: number;
}

/** Floats in the score buffer [rows·beam, K] per chunk (16 MB). */
const SCORE_FLOATS = 1 << 22;

/** Reconstructs ŵ = s_r · Σ_m C_m[b] into w [out, in] (the reference float32 arithmetic). */
export function reconstruct(
  w: Float32Array, codes: Uint16Array, codebooks: Float32Array, scale: Float32Array, outDim: number, inDim: number, M: number, K: number, g: number,
): void {
  const nG = inDim / g;
  const acc = new Float32Array(g);
  for (let r = 0; r < outDim; r++) {
    const s = scale[r]!;
    for (let j = 0; j < nG; j++) {
      acc.fill(0);
      for (let m = 0; m < M; m++) {
        const c = (m * K + codes[(r * nG + j) * M + m]!) * g;
        for (let t = 0; t < g; t++) acc[t] = acc[t]! + codebooks[c + t]!;
      }
      const o = r * inDim + j * g;
      for (let t = 0; t < g; t++) w[o + t] = s * acc[t]!;
    }
  }
}

/** Per-row loss e_r H e_rᵀ of residuals E [rows, in], using scratch G [rows, in]. */
export function rowLosses(backend: Backend, E: Float32Array, H: Float32Array, G: Float32Array, rows: number, inDim: number, out: Float64Array): void {
  backend.matmul(G, E, H, rows, inDim, inDim); // G = E·Hᵀ = E·H
  for (let r = 0; r < rows; r++) {
    let s = 0;
    const o = r * inDim;
    for (let c = 0; c < inDim; c++) s += E[o + c]! * G[o + c]!;
    out[r] = s;
  }
}

/** Runs one beam-search sweep over all (group, codebook) positions; returns the summed loss of the chosen codes. */
export function beamSearchCodes(p: BeamSearchProblem): number {
  const { backend, outDim: out, inDim, M, K, g, W, H, codebooks, scale, codes } = p;
  const bs = Math.max(1, Math.floor(p.beamSize));
  const nG = inDim / g;
  const perRow = nG * M;
  // hypotheses: residual e = w − ŵ, codes, loss; double-buffered when beams are re-parented
  let R = backend.alloc(bs * out * inDim); // [beam, out, in]
  let R2 = bs > 1 ? backend.alloc(bs * out * inDim) : R;
  let C = new Uint16Array(bs * out * perRow); // [beam, out, nG·M]
  let C2 = bs > 1 ? new Uint16Array(bs * out * perRow) : C;
  let loss = new Float64Array(bs * out); // [beam, out]
  let loss2 = bs > 1 ? new Float64Array(bs * out) : loss;
  const P = backend.alloc(bs * out * g); // [beam·out, g] (e H)_j
  const G = backend.alloc(out * inDim);
  const chunkRows = Math.max(1, Math.min(out, Math.floor(SCORE_FLOATS / (bs * K))));
  const U = backend.alloc(chunkRows * bs * g); // [chunk·beam, g]
  const S = backend.alloc(chunkRows * bs * K); // [chunk·beam, K]
  const CH = new Float32Array(K * g); // C_m · H_jj
  const nrm = new Float64Array(K); // C_m[k]ᵀ H_jj C_m[k]
  // best-so-far per row: value, parent beam, codeword (sorted ascending, length ≤ bs)
  const topV = new Float64Array(bs);
  const topB = new Int32Array(bs);
  const topK = new Int32Array(bs);
  const newB = new Int32Array(out * bs);
  const newK = new Int32Array(out * bs);
  const newV = new Float64Array(out * bs);

  try {
    reconstruct(R, codes, codebooks, scale, out, inDim, M, K, g);
    for (let i = 0; i < out * inDim; i++) R[i] = W[i]! - R[i]!;
    C.set(codes);
    rowLosses(backend, R, H, G, out, inDim, loss);
    let nb = 1; // hypotheses per row so far

    for (let j = 0; j < nG; j++) {
      const x0 = j * g;
      for (let m = 0; m < M; m++) {
        const cm = codebooks.subarray(m * K * g, (m + 1) * K * g); // [K, g]
        // CH = C_m H_jj and the quadratic terms
        for (let k = 0; k < K; k++) {
          let q = 0;
          for (let a = 0; a < g; a++) {
            let v = 0;
            for (let b = 0; b < g; b++) v += cm[k * g + b]! * H[(x0 + b) * inDim + x0 + a]!;
            CH[k * g + a] = v;
            q += v * cm[k * g + a]!;
          }
          nrm[k] = q;
        }
        // P = E · H[:, slice j]  (H symmetric: its rows x0..x0+g are the columns)
        backend.matmul(P, R, H.subarray(x0 * inDim, (x0 + g) * inDim), nb * out, g, inDim);
        const slot = j * M + m;
        for (let r0 = 0; r0 < out; r0 += chunkRows) {
          const rows = Math.min(chunkRows, out - r0);
          // U row (r − r0)·nb + b = u of hypothesis b of row r
          for (let r = r0; r < r0 + rows; r++) {
            const s = scale[r]!;
            for (let b = 0; b < nb; b++) {
              const old = C[(b * out + r) * perRow + slot]!;
              const u = ((r - r0) * nb + b) * g;
              const pr = (b * out + r) * g;
              for (let t = 0; t < g; t++) U[u + t] = P[pr + t]! + s * CH[old * g + t]!;
            }
          }
          backend.matmul(S, U, cm, rows * nb, K, g);
          for (let r = r0; r < r0 + rows; r++) {
            const s = scale[r]!;
            let have = 0;
            for (let b = 0; b < nb; b++) {
              const srow = ((r - r0) * nb + b) * K;
              const old = C[(b * out + r) * perRow + slot]!;
              // L(k) − L(old) from the closed form; the base is the hypothesis' current loss
              const base = loss[b * out + r]! - (-2 * s * S[srow + old]! + s * s * nrm[old]!);
              for (let k = 0; k < K; k++) {
                const v = base - 2 * s * S[srow + k]! + s * s * nrm[k]!;
                if (have === bs && v >= topV[bs - 1]!) continue;
                // insertion into the sorted top list
                let i = have < bs ? have++ : bs - 1;
                while (i > 0 && topV[i - 1]! > v) {
                  topV[i] = topV[i - 1]!; topB[i] = topB[i - 1]!; topK[i] = topK[i - 1]!;
                  i--;
                }
                topV[i] = v; topB[i] = b; topK[i] = k;
              }
            }
            for (let i = 0; i < have; i++) {
              newV[r * bs + i] = topV[i]!; newB[r * bs + i] = topB[i]!; newK[r * bs + i] = topK[i]!;
            }
          }
        }
        const nbNext = Math.min(bs, nb * K);
        // re-parent: hypothesis i of row r = parent newB with code newK at (j, m)
        for (let r = 0; r < out; r++) {
          const s = scale[r]!;
          for (let i = 0; i < nbNext; i++) {
            const b = newB[r * bs + i]!;
            const k = newK[r * bs + i]!;
            const src = (b * out + r);
            const dst = (i * out + r);
            if (R2 !== R) {
              R2.set(R.subarray(src * inDim, (src + 1) * inDim), dst * inDim);
              C2.set(C.subarray(src * perRow, (src + 1) * perRow), dst * perRow);
            }
            const old = C[src * perRow + slot]!;
            const e = dst * inDim + x0;
            for (let t = 0; t < g; t++) R2[e + t] = R2[e + t]! - s * (cm[k * g + t]! - cm[old * g + t]!);
            C2[dst * perRow + slot] = k;
            loss2[dst] = newV[r * bs + i]!;
          }
        }
        if (R2 !== R) {
          [R, R2] = [R2, R];
          [C, C2] = [C2, C];
          [loss, loss2] = [loss2, loss];
        }
        nb = nbNext;
      }
    }
    // hypothesis 0 is each row's best (lists are sorted)
    codes.set(C.subarray(0, out * perRow));
    let total = 0;
    for (let r = 0; r < out; r++) total += loss[r]!;
    return total;
  } finally {
    for (const buf of new Set([R, R2, P, G, U, S])) backend.free?.(buf);
  }
}
