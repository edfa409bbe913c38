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
  /**
   * Order in which the search visits the positions: natural (groups 0..nG-1, codebooks 0..M-1 inside) when
   * absent; otherwise `rand` shuffles the group order once and the codebook order anew for every group, as
   * beam_search_xtx.py does with its `dim_rng` (the official engine passes a fresh seed every epoch).
   */
  rand?: () => number;
}

/** 0..n-1, Fisher–Yates shuffled by rand when given. */
function visitOrder(n: number, rand: (() => number) | undefined): Int32Array {
  const o = Int32Array.from({ length: n }, (_, i) => i);
  if (rand === undefined) return o;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [o[i], o[j]] = [o[j]!, o[i]!];
  }
  return o;
}

/** Floats in the score buffer [rows·beam, K] per chunk (16 MB). */
const SCORE_FLOATS = 1 << 22;

/**
 * Â = Σ_m C_m[b] per group into a [out, in] (no scale), summed in float32 in codebook order:
 * the format's dequantization (codebook.ts) before its per-row scale.
 */
export function sumCodewords(a: Float32Array, codes: Uint16Array, codebooks: Float32Array, outDim: number, inDim: number, M: number, K: number, g: number): void {
  const nG = inDim / g;
  for (let r = 0; r < outDim; r++) {
    for (let j = 0; j < nG; j++) {
      const o = r * inDim + j * g;
      const b = (r * nG + j) * M;
      // 0 + c as the format's zeroed accumulator does (−0 becomes +0); a's stores round to float32
      let c = codes[b]! * g;
      for (let t = 0; t < g; t++) a[o + t] = 0 + codebooks[c + t]!;
      for (let m = 1; m < M; m++) {
        c = (m * K + codes[b + m]!) * g;
        for (let t = 0; t < g; t++) a[o + t] = a[o + t]! + codebooks[c + t]!;
      }
    }
  }
}

/** Reconstructs ŵ = s_r · Σ_m C_m[b] into w [out, in] (the format's float32 arithmetic). */
export function reconstruct(
  w: Float32Array, codes: Uint16Array, codebooks: Float32Array, scale: Float32Array, outDim: number, inDim: number, M: number, K: number, g: number,
): void {
  sumCodewords(w, codes, codebooks, outDim, inDim, M, K, g);
  for (let r = 0; r < outDim; r++) {
    const s = scale[r]!;
    for (let o = r * inDim; o < (r + 1) * inDim; o++) w[o] = s * w[o]!;
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
  // hypotheses: residual e = w − ŵ, codes, loss; re-parented in place (see reparent)
  const R = backend.alloc(bs * out * inDim); // [beam, out, in]
  const C = new Uint16Array(bs * out * perRow); // [beam, out, nG·M]
  const loss = new Float64Array(bs * out); // [beam, out]
  const P = backend.alloc(bs * out * g); // [beam·out, g] (e H)_j
  const G = backend.alloc(out * inDim);
  const chunkRows = Math.max(1, Math.min(out, Math.floor(SCORE_FLOATS / (bs * K))));
  const U = backend.alloc(chunkRows * bs * g); // [chunk·beam, g]
  const S = backend.alloc(chunkRows * bs * K); // [chunk·beam, K]
  const CH = new Float32Array(K * g); // C_m · H_jj
  const nrm = new Float64Array(K); // C_m[k]ᵀ H_jj C_m[k]
  const ssn = new Float64Array(K); // s²·nrm[k] of the row being scanned
  // each row's best children: value, parent hypothesis, codeword (sorted ascending, ≤ bs)
  const top = { v: new Float64Array(bs), b: new Int32Array(bs), k: new Int32Array(bs) };
  const next = { v: new Float64Array(out * bs), b: new Int32Array(out * bs), k: new Int32Array(out * bs) };
  const stash = { R: new Float32Array(bs * inDim), C: new Uint16Array(bs * perRow), used: new Uint8Array(bs) };

  try {
    reconstruct(R, codes, codebooks, scale, out, inDim, M, K, g);
    for (let i = 0; i < out * inDim; i++) R[i] = W[i]! - R[i]!;
    C.set(codes);
    rowLosses(backend, R, H, G, out, inDim, loss);
    let nb = 1; // hypotheses per row so far

    for (const j of visitOrder(nG, p.rand)) {
      const x0 = j * g;
      for (const m of visitOrder(M, p.rand)) {
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
            const s2 = 2 * s;
            for (let k = 0; k < K; k++) ssn[k] = s * s * nrm[k]!;
            let have = 0;
            for (let b = 0; b < nb; b++) {
              const srow = ((r - r0) * nb + b) * K;
              const old = C[(b * out + r) * perRow + slot]!;
              // L(k) − L(old) from the closed form; the base is the hypothesis' current loss
              const base = loss[b * out + r]! - (-2 * s * S[srow + old]! + ssn[old]!);
              for (let k = 0; k < K; k++) {
                const v = base - s2 * S[srow + k]! + ssn[k]!;
                if (have === bs && v >= top.v[bs - 1]!) continue;
                // insertion into the sorted top list
                let i = have < bs ? have++ : bs - 1;
                while (i > 0 && top.v[i - 1]! > v) {
                  top.v[i] = top.v[i - 1]!; top.b[i] = top.b[i - 1]!; top.k[i] = top.k[i - 1]!;
                  i--;
                }
                top.v[i] = v; top.b[i] = b; top.k[i] = k;
              }
            }
            next.v.set(top.v.subarray(0, have), r * bs);
            next.b.set(top.b.subarray(0, have), r * bs);
            next.k.set(top.k.subarray(0, have), r * bs);
          }
        }
        nb = Math.min(bs, nb * K);
        reparent(R, C, loss, next, stash, { out, inDim, perRow, bs, nb, slot, x0, g }, scale, cm);
      }
    }
    // hypothesis 0 is each row's best (lists are sorted)
    codes.set(C.subarray(0, out * perRow));
    let total = 0;
    for (let r = 0; r < out; r++) total += loss[r]!;
    return total;
  } finally {
    for (const buf of [R, P, G, U, S]) backend.free?.(buf);
  }
}

/**
 * Hypothesis i of row r becomes its parent next.b with codeword next.k at the current slot. In
 * place: a child whose parent sits in another slot copies the parent's residual and codes from a
 * stash taken before any slot is written; a child of its own slot only updates one group, so
 * the beam costs a copy per re-parented hypothesis, not per hypothesis.
 */
function reparent(
  R: Float32Array, // [beam, out, in]
  C: Uint16Array, // [beam, out, nG·M]
  loss: Float64Array, // [beam, out]
  next: { v: Float64Array; b: Int32Array; k: Int32Array }, // [out, bs]
  stash: { R: Float32Array; C: Uint16Array; used: Uint8Array },
  d: { out: number; inDim: number; perRow: number; bs: number; nb: number; slot: number; x0: number; g: number },
  scale: Float32Array,
  cm: Float32Array, // [K, g]
): void {
  const { out, inDim, perRow, bs, nb, slot, x0, g } = d;
  for (let r = 0; r < out; r++) {
    stash.used.fill(0);
    for (let i = 0; i < nb; i++) {
      const b = next.b[r * bs + i]!;
      if (b === i || stash.used[b]) continue;
      const src = b * out + r;
      stash.R.set(R.subarray(src * inDim, (src + 1) * inDim), b * inDim);
      stash.C.set(C.subarray(src * perRow, (src + 1) * perRow), b * perRow);
      stash.used[b] = 1;
    }
    const s = scale[r]!;
    for (let i = 0; i < nb; i++) {
      const b = next.b[r * bs + i]!;
      const k = next.k[r * bs + i]!;
      const dst = i * out + r;
      if (b !== i) {
        R.set(stash.R.subarray(b * inDim, (b + 1) * inDim), dst * inDim);
        C.set(stash.C.subarray(b * perRow, (b + 1) * perRow), dst * perRow);
      }
      const old = C[dst * perRow + slot]!;
      const e = dst * inDim + x0;
      for (let t = 0; t < g; t++) R[e + t] = R[e + t]! - s * (cm[k * g + t]! - cm[old * g + t]!);
      C[dst * perRow + slot] = k;
      loss[dst] = next.v[r * bs + i]!;
    }
  }
}
