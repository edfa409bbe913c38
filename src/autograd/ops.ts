/**
 * Forward/backward pairs of the ops of a Llama block, after llm.c `train_gpt2.c`: every op has
 * `x_forward` and `x_backward`, gradients are prefixed `d`, forward saves what backward needs,
 * and backward ACCUMULATES (+=) into the gradients of its inputs and parameters (so a tensor
 * read twice, like the residual stream, sums its gradients without extra code). Callers zero
 * gradients before a backward pass.
 *
 * Arrays are row-major, T rows (tokens) of C features. Every op accepts Float32Array (training)
 * and Float64Array (the numerical gradient checks in test/autograd.test.ts).
 */
export type Arr = Float32Array | Float64Array;

/** out[T, O] = inp[T, I] · wᵀ, w [O, I] (a linear layer as the runtime stores it). */
export function matmulForward(out: Arr, inp: Arr, w: Arr, T: number, I: number, O: number): void {
  for (let t = 0; t < T; t++) {
    const x = t * I;
    for (let o = 0; o < O; o++) {
      const r = o * I;
      let s = 0;
      for (let i = 0; i < I; i++) s += inp[x + i]! * w[r + i]!;
      out[t * O + o] = s;
    }
  }
}

/** dinp += dout · w, dw += doutᵀ · inp (either may be null when not wanted). */
export function matmulBackward(dinp: Arr | null, dw: Arr | null, dout: Arr, inp: Arr, w: Arr, T: number, I: number, O: number): void {
  for (let t = 0; t < T; t++) {
    const x = t * I;
    for (let o = 0; o < O; o++) {
      const d = dout[t * O + o]!;
      if (d === 0) continue;
      const r = o * I;
      if (dinp) for (let i = 0; i < I; i++) dinp[x + i]! += d * w[r + i]!;
      if (dw) for (let i = 0; i < I; i++) dw[r + i]! += d * inp[x + i]!;
    }
  }
}

/** out = w ⊙ x / rms(x) per row; saves rstd [T] = 1/√(mean x² + eps). */
export function rmsnormForward(out: Arr, rstd: Arr, inp: Arr, w: Arr, T: number, C: number, eps: number): void {
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let i = 0; i < C; i++) ss += inp[t * C + i]! ** 2;
    const r = 1 / Math.sqrt(ss / C + eps);
    rstd[t] = r;
    for (let i = 0; i < C; i++) out[t * C + i] = w[i]! * inp[t * C + i]! * r;
  }
}

/** dx = r·(w⊙dy) − r³/C · x · Σ(w⊙dy⊙x); dw += Σ_t dy ⊙ x·r. */
export function rmsnormBackward(dinp: Arr, dw: Arr | null, dout: Arr, inp: Arr, w: Arr, rstd: Arr, T: number, C: number): void {
  for (let t = 0; t < T; t++) {
    const r = rstd[t]!;
    let dot = 0;
    for (let i = 0; i < C; i++) dot += w[i]! * dout[t * C + i]! * inp[t * C + i]!;
    const k = (r * r * r * dot) / C;
    for (let i = 0; i < C; i++) {
      const j = t * C + i;
      dinp[j]! += r * w[i]! * dout[j]! - k * inp[j]!;
      if (dw) dw[i]! += dout[j]! * inp[j]! * r;
    }
  }
}

/** cos/sin [T, hs/2] of interleaved RoPE at positions 0..T-1 (as the runtime's tables); invFreq [hs/2] from model/rope.ts. */
export function ropeTables(T: number, invFreq: Float64Array): { cos: Float64Array; sin: Float64Array } {
  const half = invFreq.length;
  const cos = new Float64Array(T * half);
  const sin = new Float64Array(T * half);
  for (let p = 0; p < T; p++) {
    for (let i = 0; i < half; i++) {
      const a = p * invFreq[i]!;
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  }
  return { cos, sin };
}

/** Rotates pairs (2i, 2i+1) of every head of x [T, width] in place; dir −1 rotates back (the backward). */
function rotate(x: Arr, tab: { cos: Float64Array; sin: Float64Array }, T: number, width: number, headSize: number, dir: 1 | -1): void {
  const half = headSize / 2;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < width; h += headSize) {
      const b = t * width + h;
      for (let i = 0; i < half; i++) {
        const c = tab.cos[t * half + i]!;
        const s = dir * tab.sin[t * half + i]!;
        const x0 = x[b + 2 * i]!;
        const x1 = x[b + 2 * i + 1]!;
        x[b + 2 * i] = x0 * c - x1 * s;
        x[b + 2 * i + 1] = x0 * s + x1 * c;
      }
    }
  }
}

/** x [T, width] ← RoPE(x) in place (a rotation needs nothing saved). */
export function ropeForward(x: Arr, tab: { cos: Float64Array; sin: Float64Array }, T: number, width: number, headSize: number): void {
  rotate(x, tab, T, width, headSize, 1);
}

/** dx ← Rᵀ·dx in place: the gradient through a rotation is the inverse rotation. */
export function ropeBackward(dx: Arr, tab: { cos: Float64Array; sin: Float64Array }, T: number, width: number, headSize: number): void {
  rotate(dx, tab, T, width, headSize, -1);
}

export interface AttentionShape {
  T: number;
  nHeads: number;
  nKvHeads: number;
  headSize: number;
}

/**
 * Causal grouped-query attention: out[t, h] = Σ_{s ≤ t} softmax_s(q[t,h]·k[s,g] / √hs) · v[s,g],
 * g = ⌊h / (nHeads / nKvHeads)⌋. q, out [T, nHeads·hs]; k, v [T, nKvHeads·hs]; saves the
 * probabilities att [nHeads, T, T] (zero above the diagonal).
 */
export function attentionForward(out: Arr, att: Arr, q: Arr, k: Arr, v: Arr, a: AttentionShape): void {
  const { T, nHeads, headSize: hs } = a;
  const dim = nHeads * hs;
  const kvDim = a.nKvHeads * hs;
  const group = nHeads / a.nKvHeads;
  const scale = 1 / Math.sqrt(hs);
  for (let h = 0; h < nHeads; h++) {
    const kv = Math.floor(h / group) * hs;
    for (let t = 0; t < T; t++) {
      const row = (h * T + t) * T;
      let max = -Infinity;
      for (let s = 0; s <= t; s++) {
        let d = 0;
        for (let i = 0; i < hs; i++) d += q[t * dim + h * hs + i]! * k[s * kvDim + kv + i]!;
        att[row + s] = d * scale;
        if (d * scale > max) max = d * scale;
      }
      let sum = 0;
      for (let s = 0; s <= t; s++) {
        const e = Math.exp(att[row + s]! - max);
        att[row + s] = e;
        sum += e;
      }
      for (let s = 0; s <= t; s++) att[row + s]! /= sum;
      for (let s = t + 1; s < T; s++) att[row + s] = 0;
      for (let i = 0; i < hs; i++) {
        let o = 0;
        for (let s = 0; s <= t; s++) o += att[row + s]! * v[s * kvDim + kv + i]!;
        out[t * dim + h * hs + i] = o;
      }
    }
  }
}

/** dq, dk, dv += the gradients of attentionForward given dout. */
export function attentionBackward(dq: Arr, dk: Arr, dv: Arr, dout: Arr, att: Arr, q: Arr, k: Arr, v: Arr, a: AttentionShape): void {
  const { T, nHeads, headSize: hs } = a;
  const dim = nHeads * hs;
  const kvDim = a.nKvHeads * hs;
  const group = nHeads / a.nKvHeads;
  const scale = 1 / Math.sqrt(hs);
  const datt = new Float64Array(T);
  for (let h = 0; h < nHeads; h++) {
    const kv = Math.floor(h / group) * hs;
    for (let t = 0; t < T; t++) {
      const row = (h * T + t) * T;
      const od = t * dim + h * hs;
      // through the weighted sum of values
      let dotPd = 0;
      for (let s = 0; s <= t; s++) {
        let d = 0;
        for (let i = 0; i < hs; i++) {
          d += dout[od + i]! * v[s * kvDim + kv + i]!;
          dv[s * kvDim + kv + i]! += att[row + s]! * dout[od + i]!;
        }
        datt[s] = d;
        dotPd += att[row + s]! * d;
      }
      // through the softmax, then the scaled dot products
      for (let s = 0; s <= t; s++) {
        const dpre = att[row + s]! * (datt[s]! - dotPd) * scale;
        if (dpre === 0) continue;
        for (let i = 0; i < hs; i++) {
          dq[od + i]! += dpre * k[s * kvDim + kv + i]!;
          dk[s * kvDim + kv + i]! += dpre * q[od + i]!;
        }
      }
    }
  }
}

/** out = silu(gate) ⊙ up (SwiGLU), elementwise over n values. */
export function swigluForward(out: Arr, gate: Arr, up: Arr, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i]!;
    out[i] = (g / (1 + Math.exp(-g))) * up[i]!;
  }
}

export function swigluBackward(dgate: Arr, dup: Arr, dout: Arr, gate: Arr, up: Arr, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i]!;
    const sig = 1 / (1 + Math.exp(-g));
    dgate[i]! += dout[i]! * up[i]! * sig * (1 + g * (1 - sig));
    dup[i]! += dout[i]! * g * sig;
  }
}
