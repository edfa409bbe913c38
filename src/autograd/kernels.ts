/**
 * The hot ops of a Llama block (linear layers and attention, forward and backward) in float32
 * on a Backend's matmul (c = a·bᵀ: OpenBLAS natively, SIMD WebAssembly on a worker pool), for
 * block-wise training (SliM-LLM+, AQLM fine-tuning). ops.ts keeps the plain loops: they serve
 * Float64Array (the numerical gradient checks) and are the oracle these are tested against.
 *
 * The backend only multiplies by a transposed right operand, so each product is arranged as one:
 *   linear forward   out[T,O]  = inp[T,I] · W[O,I]ᵀ             (as stored)
 *   linear backward  dinp[T,I] = dout[T,O] · (Wᵀ)[I,O]ᵀ          (W transposed, O·I moves)
 *                    dW[O,I]   = (doutᵀ)[O,T] · (inpᵀ)[I,T]ᵀ     (both transposed, T·(O+I) moves)
 * The transposes cost a 1/T (or 1/O, 1/I) fraction of the product. Backward results land in
 * scratch and are added (+=) to the gradients, keeping ops.ts's accumulate semantics.
 *
 * Every buffer here comes from `backend.alloc` (the WebAssembly memory for `wasm`), so the wasm
 * kernels read scratch and activations without staging copies; callers that keep weights in
 * `alloc`ed buffers too get zero-copy products. Buffers live until dispose().
 */
import type { Backend } from '../backend/types.js';
import type { AttentionShape } from './ops.js';

type F32 = Float32Array;

/** t[c, r] = m[r, c] for an [rows, cols] matrix m. */
function transpose(t: F32, m: F32, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) t[c * rows + r] = m[o + c]!;
  }
}

/** dst[i] += src[i] for i < n. */
function addInto(dst: F32, src: F32, n: number): void {
  for (let i = 0; i < n; i++) dst[i]! += src[i]!;
}

/** Copies head columns [off, off+hs) of x [T, width] into h [T, hs]. */
function gatherHead(h: F32, x: F32, T: number, width: number, off: number, hs: number): void {
  for (let t = 0; t < T; t++) for (let i = 0; i < hs; i++) h[t * hs + i] = x[t * width + off + i]!;
}

/** Adds h [T, hs] into head columns [off, off+hs) of x [T, width]. */
function scatterAddHead(x: F32, h: F32, T: number, width: number, off: number, hs: number): void {
  for (let t = 0; t < T; t++) for (let i = 0; i < hs; i++) x[t * width + off + i]! += h[t * hs + i]!;
}

export class BlockKernels {
  private readonly slots = new Map<string, F32>();

  constructor(readonly backend: Backend) {}

  /**
   * A named float32 buffer of at least n values in the backend's memory, reused across calls
   * (contents unspecified: callers overwrite or zero it). Growing replaces the buffer.
   */
  slot(name: string, n: number): F32 {
    const have = this.slots.get(name);
    if (have !== undefined && have.length >= n) return have.length === n ? have : have.subarray(0, n);
    if (have !== undefined) this.backend.free?.(have);
    const b = this.backend.alloc(n);
    this.slots.set(name, b);
    return b;
  }

  /** Returns every buffer to the backend; the kernels (and activations they returned) are unusable afterwards. */
  dispose(): void {
    for (const b of this.slots.values()) this.backend.free?.(b);
    this.slots.clear();
  }

  /** out[T, O] = inp[T, I] · wᵀ, w [O, I]. */
  matmulForward(out: F32, inp: F32, w: F32, T: number, I: number, O: number): void {
    this.backend.matmul(out, inp, w, T, O, I);
  }

  /** dinp[T, I] += dout · w, dw[O, I] += doutᵀ · inp (either may be null). */
  matmulBackward(dinp: F32 | null, dw: F32 | null, dout: F32, inp: F32, w: F32, T: number, I: number, O: number): void {
    if (dinp) {
      const wT = this.slot('mm.wT', I * O);
      transpose(wT, w, O, I);
      const acc = this.slot('mm.acc', T * I);
      this.backend.matmul(acc, dout, wT, T, I, O);
      addInto(dinp, acc, T * I);
    }
    if (dw) {
      const doutT = this.slot('mm.doutT', O * T);
      const inpT = this.slot('mm.inpT', I * T);
      transpose(doutT, dout, T, O);
      transpose(inpT, inp, T, I);
      const acc = this.slot('mm.accW', O * I);
      this.backend.matmul(acc, doutT, inpT, O, I, T);
      addInto(dw, acc, O * I);
    }
  }

  /**
   * Causal grouped-query attention as ops.attentionForward (same arguments, same saved att
   * [nHeads, T, T], zero above the diagonal), per head: S = Q_h·K_hᵀ, P = softmax(S/√hs) by row
   * over s ≤ t, O_h = P·V_h. The products cover the full T×T square (twice the causal work) because
   * a whole-matrix product on the backend is still far cheaper than the triangular loop.
   */
  attentionForward(out: F32, att: F32, q: F32, k: F32, v: F32, a: AttentionShape): void {
    const { T, nHeads, headSize: hs } = a;
    const dim = nHeads * hs;
    const kvDim = a.nKvHeads * hs;
    const group = nHeads / a.nKvHeads;
    const scale = 1 / Math.sqrt(hs);
    const Qh = this.slot('at.q', T * hs);
    const Kh = this.slot('at.k', T * hs);
    const VhT = this.slot('at.vT', hs * T);
    const Vh = this.slot('at.v', T * hs);
    const Oh = this.slot('at.o', T * hs);
    let kvLoaded = -1;
    for (let h = 0; h < nHeads; h++) {
      const kv = Math.floor(h / group);
      if (kv !== kvLoaded) {
        gatherHead(Kh, k, T, kvDim, kv * hs, hs);
        gatherHead(Vh, v, T, kvDim, kv * hs, hs);
        transpose(VhT, Vh, T, hs);
        kvLoaded = kv;
      }
      gatherHead(Qh, q, T, dim, h * hs, hs);
      const P = att.subarray(h * T * T, (h + 1) * T * T);
      this.backend.matmul(P, Qh, Kh, T, T, hs);
      for (let t = 0; t < T; t++) {
        const row = t * T;
        let max = -Infinity;
        for (let s = 0; s <= t; s++) {
          const z = P[row + s]! * scale;
          P[row + s] = z;
          if (z > max) max = z;
        }
        let sum = 0;
        for (let s = 0; s <= t; s++) {
          const e = Math.exp(P[row + s]! - max);
          P[row + s] = e;
          sum += e;
        }
        const inv = 1 / sum;
        for (let s = 0; s <= t; s++) P[row + s]! *= inv;
        P.fill(0, row + t + 1, row + T);
      }
      this.backend.matmul(Oh, P, VhT, T, hs, T);
      for (let t = 0; t < T; t++) for (let i = 0; i < hs; i++) out[t * dim + h * hs + i] = Oh[t * hs + i]!;
    }
  }

  /**
   * dq, dk, dv += the gradients of attentionForward, per head:
   *   dP = dO·V_hᵀ,  dS = P ⊙ (dP − rowsum(P ⊙ dP)) / √hs,  dQ_h = dS·K_h,  dK_h = dSᵀ·Q_h,  dV_h = Pᵀ·dO.
   */
  attentionBackward(dq: F32, dk: F32, dv: F32, dout: F32, att: F32, q: F32, k: F32, v: F32, a: AttentionShape): void {
    const { T, nHeads, headSize: hs } = a;
    const dim = nHeads * hs;
    const kvDim = a.nKvHeads * hs;
    const group = nHeads / a.nKvHeads;
    const scale = 1 / Math.sqrt(hs);
    const [dOh, dOhT, Vh, KhT, QhT, tmp, tmpT] = ['ab.do', 'ab.doT', 'ab.v', 'ab.kT', 'ab.qT', 'ab.tmp', 'ab.tmpT'].map((n) => this.slot(n, T * hs)) as [F32, F32, F32, F32, F32, F32, F32];
    const dS = this.slot('ab.dS', T * T);
    const sqT = this.slot('ab.sqT', T * T); // Pᵀ, then dSᵀ
    let kvLoaded = -1;
    for (let h = 0; h < nHeads; h++) {
      const kv = Math.floor(h / group);
      if (kv !== kvLoaded) {
        gatherHead(Vh, v, T, kvDim, kv * hs, hs);
        gatherHead(tmp, k, T, kvDim, kv * hs, hs);
        transpose(KhT, tmp, T, hs);
        kvLoaded = kv;
      }
      gatherHead(tmp, q, T, dim, h * hs, hs);
      transpose(QhT, tmp, T, hs);
      gatherHead(dOh, dout, T, dim, h * hs, hs);
      transpose(dOhT, dOh, T, hs);
      const P = att.subarray(h * T * T, (h + 1) * T * T);
      // dV_h = Pᵀ·dO
      transpose(sqT, P, T, T);
      this.backend.matmul(tmp, sqT, dOhT, T, hs, T);
      scatterAddHead(dv, tmp, T, kvDim, kv * hs, hs);
      // dP, then dS in place through the softmax and the 1/√hs
      this.backend.matmul(dS, dOh, Vh, T, T, hs);
      for (let t = 0; t < T; t++) {
        const row = t * T;
        let dot = 0;
        for (let s = 0; s <= t; s++) dot += P[row + s]! * dS[row + s]!;
        for (let s = 0; s <= t; s++) dS[row + s] = P[row + s]! * (dS[row + s]! - dot) * scale;
        dS.fill(0, row + t + 1, row + T);
      }
      this.backend.matmul(tmp, dS, KhT, T, hs, T);
      scatterAddHead(dq, tmp, T, dim, h * hs, hs);
      transpose(sqT, dS, T, T);
      this.backend.matmul(tmpT, sqT, QhT, T, hs, T);
      scatterAddHead(dk, tmpT, T, kvDim, kv * hs, hs);
    }
  }
}
