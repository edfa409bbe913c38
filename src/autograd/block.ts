/**
 * One Llama transformer block with gradients, for block-wise calibration (SliM-LLM+'s learnable
 * clipping, AQLM's fine-tuning, DBellQuant): the same computation as runtime/forward.ts's
 * layerForward for one sequence at positions 0..T-1, written as a chain of autograd ops.
 *
 *   xn1 = rmsnorm(x, attnNorm);  q, k, v = xn1·Wqᵀ, xn1·Wkᵀ, xn1·Wvᵀ;  rope(q), rope(k)
 *   a = attention(q, k, v);  x2 = x + a·Woᵀ
 *   xn2 = rmsnorm(x2, ffnNorm);  g, u = xn2·W1ᵀ, xn2·W3ᵀ;  h = silu(g)⊙u;  out = x2 + h·W2ᵀ
 *
 * Parameters are exposed as plain arrays (BlockParams), their gradients have the same shapes
 * (blockGrads), so a caller differentiates with respect to any of them — or, through dW, with
 * respect to whatever produced the weights (quantizer parameters).
 */
import { headSize, kvDim, type LlamaConfig } from '../model/config.js';
import * as op from './ops.js';
import type { Arr } from './ops.js';

export interface BlockParams {
  attnNorm: Arr; // [dim]
  wq: Arr; // [dim, dim]
  wk: Arr; // [kvDim, dim]
  wv: Arr; // [kvDim, dim]
  wo: Arr; // [dim, dim]
  ffnNorm: Arr; // [dim]
  w1: Arr; // gate [hidden, dim]
  w2: Arr; // down [dim, hidden]
  w3: Arr; // up [hidden, dim]
}

export type BlockParamName = keyof BlockParams;
export const BLOCK_PARAMS: readonly BlockParamName[] = ['attnNorm', 'wq', 'wk', 'wv', 'wo', 'ffnNorm', 'w1', 'w2', 'w3'];

/** Activations of one forward pass, everything the backward reads. */
export interface BlockActs {
  T: number;
  x: Arr; // [T, dim] input (a reference, not copied)
  xn1: Arr; rstd1: Arr; // [T, dim], [T]
  q: Arr; k: Arr; v: Arr; // [T, dim], [T, kvDim] ×2 (q, k after RoPE)
  att: Arr; // [nHeads, T, T]
  a: Arr; // [T, dim] attention output
  x2: Arr; // [T, dim] residual after attention
  xn2: Arr; rstd2: Arr;
  g: Arr; u: Arr; h: Arr; // [T, hidden]
  out: Arr; // [T, dim]
}

function like(x: Arr, n: number): Arr {
  return x instanceof Float64Array ? new Float64Array(n) : new Float32Array(n);
}

/** Gradients shaped like `p`, zeroed. */
export function blockGrads(p: BlockParams): BlockParams {
  const g = {} as BlockParams;
  for (const k of BLOCK_PARAMS) g[k] = like(p[k], p[k].length);
  return g;
}

const tables = new Map<string, ReturnType<typeof op.ropeTables>>();
function ropeOf(c: LlamaConfig, T: number) {
  const key = `${T},${headSize(c)},${c.ropeTheta}`;
  let t = tables.get(key);
  if (t === undefined) {
    t = op.ropeTables(T, headSize(c), c.ropeTheta);
    tables.set(key, t);
  }
  return t;
}

/** The block on x [T, dim] (one sequence, positions 0..T-1). */
export function blockForward(c: LlamaConfig, p: BlockParams, x: Arr, T: number): BlockActs {
  const { dim, hiddenDim: hid, normEps: eps } = c;
  const kd = kvDim(c);
  const hs = headSize(c);
  const A: BlockActs = {
    T, x,
    xn1: like(x, T * dim), rstd1: like(x, T),
    q: like(x, T * dim), k: like(x, T * kd), v: like(x, T * kd),
    att: like(x, c.nHeads * T * T), a: like(x, T * dim), x2: like(x, T * dim),
    xn2: like(x, T * dim), rstd2: like(x, T),
    g: like(x, T * hid), u: like(x, T * hid), h: like(x, T * hid), out: like(x, T * dim),
  };
  const tab = ropeOf(c, T);
  op.rmsnormForward(A.xn1, A.rstd1, x, p.attnNorm, T, dim, eps);
  op.matmulForward(A.q, A.xn1, p.wq, T, dim, dim);
  op.matmulForward(A.k, A.xn1, p.wk, T, dim, kd);
  op.matmulForward(A.v, A.xn1, p.wv, T, dim, kd);
  op.ropeForward(A.q, tab, T, dim, hs);
  op.ropeForward(A.k, tab, T, kd, hs);
  op.attentionForward(A.a, A.att, A.q, A.k, A.v, { T, nHeads: c.nHeads, nKvHeads: c.nKvHeads, headSize: hs });
  op.matmulForward(A.x2, A.a, p.wo, T, dim, dim);
  for (let i = 0; i < T * dim; i++) A.x2[i]! += x[i]!;
  op.rmsnormForward(A.xn2, A.rstd2, A.x2, p.ffnNorm, T, dim, eps);
  op.matmulForward(A.g, A.xn2, p.w1, T, dim, hid);
  op.matmulForward(A.u, A.xn2, p.w3, T, dim, hid);
  op.swigluForward(A.h, A.g, A.u, T * hid);
  op.matmulForward(A.out, A.h, p.w2, T, hid, dim);
  for (let i = 0; i < T * dim; i++) A.out[i]! += A.x2[i]!;
  return A;
}

/**
 * Backward of blockForward: accumulates into `grads` (any member may be null: not wanted) and
 * returns dx [T, dim], the gradient of the block input.
 */
export function blockBackward(c: LlamaConfig, p: BlockParams, A: BlockActs, dout: Arr, grads: Partial<Record<BlockParamName, Arr | null>>): Arr {
  const { dim, hiddenDim: hid } = c;
  const { T, x } = A;
  const kd = kvDim(c);
  const hs = headSize(c);
  const tab = ropeOf(c, T);
  const g = (k: BlockParamName) => grads[k] ?? null;
  // out = x2 + h·W2ᵀ
  const dx2 = like(x, T * dim);
  dx2.set(dout);
  const dh = like(x, T * hid);
  op.matmulBackward(dh, g('w2'), dout, A.h, p.w2, T, hid, dim);
  const dg = like(x, T * hid);
  const du = like(x, T * hid);
  op.swigluBackward(dg, du, dh, A.g, A.u, T * hid);
  const dxn2 = like(x, T * dim);
  op.matmulBackward(dxn2, g('w1'), dg, A.xn2, p.w1, T, dim, hid);
  op.matmulBackward(dxn2, g('w3'), du, A.xn2, p.w3, T, dim, hid);
  op.rmsnormBackward(dx2, g('ffnNorm'), dxn2, A.x2, p.ffnNorm, A.rstd2, T, dim);
  // x2 = x + a·Woᵀ
  const dx = like(x, T * dim);
  dx.set(dx2);
  const da = like(x, T * dim);
  op.matmulBackward(da, g('wo'), dx2, A.a, p.wo, T, dim, dim);
  const dq = like(x, T * dim);
  const dk = like(x, T * kd);
  const dv = like(x, T * kd);
  op.attentionBackward(dq, dk, dv, da, A.att, A.q, A.k, A.v, { T, nHeads: c.nHeads, nKvHeads: c.nKvHeads, headSize: hs });
  op.ropeBackward(dq, tab, T, dim, hs);
  op.ropeBackward(dk, tab, T, kd, hs);
  const dxn1 = like(x, T * dim);
  op.matmulBackward(dxn1, g('wq'), dq, A.xn1, p.wq, T, dim, dim);
  op.matmulBackward(dxn1, g('wk'), dk, A.xn1, p.wk, T, dim, kd);
  op.matmulBackward(dxn1, g('wv'), dv, A.xn1, p.wv, T, dim, kd);
  op.rmsnormBackward(dx, g('attnNorm'), dxn1, x, p.attnNorm, A.rstd1, T, dim);
  return dx;
}
