/**
 * One Llama transformer block with gradients, for block-wise calibration (SliM-LLM+'s learnable
 * clipping, AQLM's fine-tuning, DBellQuant): the same computation as runtime/forward.ts's
 * layerForward for one sequence at positions 0..T-1, written as a chain of autograd ops.
 *
 *   xn1 = rmsnorm(x, attnNorm);  q, k, v = xn1·Wqᵀ (+ bq), xn1·Wkᵀ (+ bk), xn1·Wvᵀ (+ bv);  rope(q), rope(k)
 *   a = attention(q, k, v);  x2 = x + a·Woᵀ (+ bo)
 *   xn2 = rmsnorm(x2, ffnNorm);  g, u = xn2·W1ᵀ, xn2·W3ᵀ;  h = silu(g)⊙u;  out = x2 + h·W2ᵀ
 *
 * The biases, when the architecture has them, are constants here (no method trains them, and a
 * bias adds nothing to the gradients of the inputs or the weights).
 *
 * Parameters are exposed as plain arrays (BlockParams), their gradients have the same shapes
 * (blockGrads), so a caller differentiates with respect to any of them — or, through dW, with
 * respect to whatever produced the weights (quantizer parameters).
 *
 * Speed: given BlockKernels and Float32Array data, the linear layers and attention run on the
 * kernels' backend (BLAS / WebAssembly); otherwise everything runs as ops.ts's plain loops (the
 * path of Float64Array data, used by the numerical gradient checks). With kernels, the
 * activations and the returned dx live in the kernels' reusable buffers: the next blockForward
 * (or blockBackward) on the same kernels overwrites them, so copy what must outlive that call.
 */
import { headSize, kvDim, qDim, type LlamaConfig } from '../model/config.js';
import { ropeInvFrequencies } from '../model/rope.js';
import type { BlockKernels } from './kernels.js';
import * as op from './ops.js';
import type { Arr, AttentionShape } from './ops.js';

export interface BlockParams {
  attnNorm: Arr; // [dim]
  wq: Arr; // [qDim, dim]
  wk: Arr; // [kvDim, dim]
  wv: Arr; // [kvDim, dim]
  wo: Arr; // [dim, qDim]
  ffnNorm: Arr; // [dim]
  w1: Arr; // gate [hidden, dim]
  w2: Arr; // down [dim, hidden]
  w3: Arr; // up [hidden, dim]
  /** Constant projection biases (config.attentionBias); not in BLOCK_PARAMS, never differentiated. */
  bq?: Arr; // [qDim]
  bk?: Arr; // [kvDim]
  bv?: Arr; // [kvDim]
  bo?: Arr; // [dim]
}

export type BlockParamName = Exclude<keyof BlockParams, 'bq' | 'bk' | 'bv' | 'bo'>;
export const BLOCK_PARAMS: readonly BlockParamName[] = ['attnNorm', 'wq', 'wk', 'wv', 'wo', 'ffnNorm', 'w1', 'w2', 'w3'];

/** Activations of one forward pass, everything the backward reads. */
export interface BlockActs {
  T: number;
  x: Arr; // [T, dim] input (a reference, not copied)
  xn1: Arr; rstd1: Arr; // [T, dim], [T]
  q: Arr; k: Arr; v: Arr; // [T, qDim], [T, kvDim] ×2 (q, k after RoPE)
  att: Arr; // [nHeads, T, T]
  a: Arr; // [T, qDim] attention output
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

/** The ops a pass runs: loops (ops.ts) or the kernels' backend, with matching buffer allocation. */
interface Engine {
  buf(name: string, n: number): Arr; // zeroed
  mm(out: Arr, inp: Arr, w: Arr, T: number, I: number, O: number): void;
  mmBack(dinp: Arr | null, dw: Arr | null, dout: Arr, inp: Arr, w: Arr, T: number, I: number, O: number): void;
  attn(out: Arr, att: Arr, q: Arr, k: Arr, v: Arr, a: AttentionShape): void;
  attnBack(dq: Arr, dk: Arr, dv: Arr, dout: Arr, att: Arr, q: Arr, k: Arr, v: Arr, a: AttentionShape): void;
}

function engine(x: Arr, kernels: BlockKernels | undefined): Engine {
  if (kernels === undefined || !(x instanceof Float32Array)) {
    return {
      buf: (_name, n) => like(x, n),
      mm: op.matmulForward, mmBack: op.matmulBackward, attn: op.attentionForward, attnBack: op.attentionBackward,
    };
  }
  const k = kernels;
  const f = (a: Arr) => a as Float32Array; // the caller's data is Float32Array on this path
  return {
    buf: (name, n) => k.slot(name, n).fill(0),
    mm: (out, inp, w, T, I, O) => k.matmulForward(f(out), f(inp), f(w), T, I, O),
    mmBack: (dinp, dw, dout, inp, w, T, I, O) => k.matmulBackward(dinp && f(dinp), dw && f(dw), f(dout), f(inp), f(w), T, I, O),
    attn: (out, att, q, kk, v, a) => k.attentionForward(f(out), f(att), f(q), f(kk), f(v), a),
    attnBack: (dq, dk, dv, dout, att, q, kk, v, a) => k.attentionBackward(f(dq), f(dk), f(dv), f(dout), f(att), f(q), f(kk), f(v), a),
  };
}

const tables = new Map<string, ReturnType<typeof op.ropeTables>>();
function ropeOf(c: LlamaConfig, T: number) {
  const key = `${T},${headSize(c)},${c.ropeTheta},${JSON.stringify(c.ropeScaling ?? null)}`;
  let t = tables.get(key);
  if (t === undefined) {
    t = op.ropeTables(T, ropeInvFrequencies(c));
    tables.set(key, t);
  }
  return t;
}

/** The block on x [T, dim] (one sequence, positions 0..T-1); `kernels`: see the file comment. */
export function blockForward(c: LlamaConfig, p: BlockParams, x: Arr, T: number, kernels?: BlockKernels): BlockActs {
  const { dim, hiddenDim: hid, normEps: eps } = c;
  const kd = kvDim(c);
  const qd = qDim(c);
  const hs = headSize(c);
  const E = engine(x, kernels);
  const b = (name: string, n: number) => E.buf(`fwd.${name}`, n);
  const A: BlockActs = {
    T, x,
    xn1: b('xn1', T * dim), rstd1: b('rstd1', T),
    q: b('q', T * qd), k: b('k', T * kd), v: b('v', T * kd),
    att: b('att', c.nHeads * T * T), a: b('a', T * qd), x2: b('x2', T * dim),
    xn2: b('xn2', T * dim), rstd2: b('rstd2', T),
    g: b('g', T * hid), u: b('u', T * hid), h: b('h', T * hid), out: b('out', T * dim),
  };
  const tab = ropeOf(c, T);
  op.rmsnormForward(A.xn1, A.rstd1, x, p.attnNorm, T, dim, eps);
  E.mm(A.q, A.xn1, p.wq, T, dim, qd);
  E.mm(A.k, A.xn1, p.wk, T, dim, kd);
  E.mm(A.v, A.xn1, p.wv, T, dim, kd);
  addBias(A.q, p.bq, T, qd);
  addBias(A.k, p.bk, T, kd);
  addBias(A.v, p.bv, T, kd);
  op.ropeForward(A.q, tab, T, qd, hs);
  op.ropeForward(A.k, tab, T, kd, hs);
  E.attn(A.a, A.att, A.q, A.k, A.v, { T, nHeads: c.nHeads, nKvHeads: c.nKvHeads, headSize: hs });
  E.mm(A.x2, A.a, p.wo, T, qd, dim);
  addBias(A.x2, p.bo, T, dim);
  for (let i = 0; i < T * dim; i++) A.x2[i]! += x[i]!;
  op.rmsnormForward(A.xn2, A.rstd2, A.x2, p.ffnNorm, T, dim, eps);
  E.mm(A.g, A.xn2, p.w1, T, dim, hid);
  E.mm(A.u, A.xn2, p.w3, T, dim, hid);
  op.swigluForward(A.h, A.g, A.u, T * hid);
  E.mm(A.out, A.h, p.w2, T, hid, dim);
  for (let i = 0; i < T * dim; i++) A.out[i]! += A.x2[i]!;
  return A;
}

/**
 * Backward of blockForward: accumulates into `grads` (any member may be null: not wanted) and
 * returns dx [T, dim], the gradient of the block input. Pass the kernels the forward used.
 */
export function blockBackward(c: LlamaConfig, p: BlockParams, A: BlockActs, dout: Arr, grads: Partial<Record<BlockParamName, Arr | null>>, kernels?: BlockKernels): Arr {
  const { dim, hiddenDim: hid } = c;
  const { T, x } = A;
  const kd = kvDim(c);
  const qd = qDim(c);
  const hs = headSize(c);
  const tab = ropeOf(c, T);
  const g = (k: BlockParamName) => grads[k] ?? null;
  const E = engine(x, kernels);
  const buf = (name: string, n: number) => E.buf(`bwd.${name}`, n);
  // out = x2 + h·W2ᵀ
  const dx2 = buf('dx2', T * dim);
  dx2.set(dout);
  const dh = buf('dh', T * hid);
  E.mmBack(dh, g('w2'), dout, A.h, p.w2, T, hid, dim);
  const dg = buf('dg', T * hid);
  const du = buf('du', T * hid);
  op.swigluBackward(dg, du, dh, A.g, A.u, T * hid);
  const dxn2 = buf('dxn2', T * dim);
  E.mmBack(dxn2, g('w1'), dg, A.xn2, p.w1, T, dim, hid);
  E.mmBack(dxn2, g('w3'), du, A.xn2, p.w3, T, dim, hid);
  op.rmsnormBackward(dx2, g('ffnNorm'), dxn2, A.x2, p.ffnNorm, A.rstd2, T, dim);
  // x2 = x + a·Woᵀ
  const dx = buf('dx', T * dim);
  dx.set(dx2);
  const da = buf('da', T * qd);
  E.mmBack(da, g('wo'), dx2, A.a, p.wo, T, qd, dim);
  const dq = buf('dq', T * qd);
  const dk = buf('dk', T * kd);
  const dv = buf('dv', T * kd);
  E.attnBack(dq, dk, dv, da, A.att, A.q, A.k, A.v, { T, nHeads: c.nHeads, nKvHeads: c.nKvHeads, headSize: hs });
  op.ropeBackward(dq, tab, T, qd, hs);
  op.ropeBackward(dk, tab, T, kd, hs);
  const dxn1 = buf('dxn1', T * dim);
  E.mmBack(dxn1, g('wq'), dq, A.xn1, p.wq, T, dim, qd);
  E.mmBack(dxn1, g('wk'), dk, A.xn1, p.wk, T, dim, kd);
  E.mmBack(dxn1, g('wv'), dv, A.xn1, p.wv, T, dim, kd);
  op.rmsnormBackward(dx, g('attnNorm'), dxn1, x, p.attnNorm, A.rstd1, T, dim);
  return dx;
}

/** y[t] += bias for each of the T rows of y [T, n]; nothing without a bias. */
function addBias(y: Arr, bias: Arr | undefined, T: number, n: number): void {
  if (bias === undefined) return;
  for (let t = 0; t < T; t++) for (let i = 0; i < n; i++) y[t * n + i]! += bias[i]!;
}
