/**
 * The Llama forward pass over a chunk of T tokens, after llama2.c `run.c`: RMSNorm,
 * interleaved RoPE, grouped-query causal attention over a KV cache, SwiGLU MLP. Every weight
 * matrix is a `Linear`, so dense and packed low-bit weights share this code. T > 1 (prefill,
 * evaluation) multiplies all rows at once; T = 1 (decode) uses matrix-vector products.
 */
import { headSize as headSizeOf, kvDim as kvDimOf, qDim as qDimOf, type LlamaConfig } from '../model/config.js';
import type { Backend } from '../backend/types.js';
import { attention } from './attention.js';
import type { Linear } from './linear.js';
import type { LayerWeights, LlamaWeights } from './model.js';
import { layerOpsOf, referenceLayerOps, rmsnorm } from './layer-ops.js';
import { growScratch, type Scratch } from './scratch.js';
import type { LinearName } from '../model/weights.js';

export { rmsnorm } from './layer-ops.js';

/** Which logits a forward call computes: the last token's (generation) or every token's (evaluation). */
export type LogitsWanted = 'last' | 'all';

export function forward(
  backend: Backend,
  c: LlamaConfig,
  w: LlamaWeights,
  s: Scratch,
  tokens: ArrayLike<number>, // [T]
  startPos: number,
  wanted: LogitsWanted,
): Float32Array {
  const T = tokens.length;
  const { dim, vocabSize: vocab, seqLen } = c;
  if (T < 1 || T > s.maxRows) throw new RangeError(`forward takes 1..${s.maxRows} tokens, got ${T}`);
  if (!Number.isInteger(startPos) || startPos < 0 || startPos + T > seqLen) {
    throw new RangeError(`positions ${startPos}..${startPos + T - 1} exceed the model's context length ${seqLen}`);
  }
  const x = s.x.subarray(0, T * dim);
  const xb = s.xb.subarray(0, T * dim);

  // token embeddings into the residual stream
  for (let t = 0; t < T; t++) {
    const token = tokens[t];
    if (!Number.isInteger(token) || token < 0 || token >= vocab) throw new RangeError(`token id ${token} outside 0..${vocab - 1}`);
    w.embedding.row(x.subarray(t * dim, (t + 1) * dim), token);
  }

  for (let l = 0; l < c.nLayers; l++) layerForward(backend, c, w.layers[l]!, s, l, T, startPos);

  // final RMSNorm and classifier, for the rows whose logits are wanted
  if (wanted === 'last') {
    const last = xb.subarray(0, dim);
    rmsnorm(last, x.subarray((T - 1) * dim), w.finalNorm, 1, dim, c.normEps);
    const logits = s.logits.subarray(0, vocab);
    w.classifier.matvec(logits, last);
    return logits;
  }
  rmsnorm(xb, x, w.finalNorm, T, dim, c.normEps);
  const logits = s.logits.subarray(0, T * vocab);
  apply(w.classifier, logits, xb, T);
  return logits;
}

/**
 * Sees the input of each linear of a block just before it is applied (calibration: Hessian
 * statistics, captured inputs). q/k/v share one input and so do gate/up: the hook is called
 * once per linear all the same, with the same array. `x` is scratch: read it, do not keep it.
 * A hook may rewrite it in place (calibration on quantized activations): the linears read what it wrote.
 */
export type LinearInputHook = (linear: LinearName, x: Float32Array /* [rows, in] */, rows: number) => void;

/**
 * One transformer block on the residual stream s.x [T, dim] (updated in place) at positions
 * startPos..startPos+T-1, using and filling layer `l` of the KV cache. `forward` runs every
 * block through this; the quantization pipeline runs one block at a time with `hook`.
 */
export function layerForward(
  backend: Backend,
  c: LlamaConfig,
  L: LayerWeights,
  s: Scratch,
  l: number,
  T: number,
  startPos: number,
  hook?: LinearInputHook,
  /**
   * Return right after the hook has seen this linear's input (a capture pass that only needs
   * the inputs: the rest of the block, and the residual stream s.x, are left undone).
   */
  stopAfter?: LinearName,
): void {
  const { dim, hiddenDim: hidden } = c;
  const kvDim = kvDimOf(c);
  const qDim = qDimOf(c);
  growScratch(s, c, backend, startPos + T); // no-op unless the sequence outgrew the cache
  const x = s.x.subarray(0, T * dim);
  const xb = s.xb.subarray(0, T * dim);
  const att = s.xb.subarray(0, T * qDim); // attention output (wider than dim when head_dim says so)
  const xb2 = s.xb2.subarray(0, T * dim);
  const q = s.q.subarray(0, T * qDim);
  const hb = s.hb.subarray(0, T * hidden);
  const hb2 = s.hb2.subarray(0, T * hidden);
  // this chunk's rows of the layer's KV cache: k and v are written straight into it
  const cacheRows = (l * s.positions + startPos) * kvDim;
  const k = s.keyCache.subarray(cacheRows, cacheRows + T * kvDim);
  const v = s.valueCache.subarray(cacheRows, cacheRows + T * kvDim);

  // the backend's own layer ops for decode; chunks (prefill, evaluation, calibration through the
  // hook) keep the reference arithmetic, so quantization statistics do not change with the backend
  const ops = T === 1 ? layerOpsOf(backend) : referenceLayerOps;
  // attention RMSNorm
  for (let t = 0; t < T; t++) ops.addRmsnorm(xb.subarray(t * dim, (t + 1) * dim), x.subarray(t * dim, (t + 1) * dim), null, L.attnNorm, dim, c.normEps);
  // q, k, v projections
  hook?.('self_attn.q_proj', xb, T);
  hook?.('self_attn.k_proj', xb, T);
  hook?.('self_attn.v_proj', xb, T);
  if (stopAfter === 'self_attn.q_proj' || stopAfter === 'self_attn.k_proj' || stopAfter === 'self_attn.v_proj') return;
  apply(L.wq, q, xb, T, L.bq);
  apply(L.wk, k, xb, T, L.bk);
  apply(L.wv, v, xb, T, L.bv);
  // rotary position embedding of q and k
  rope(q, s, c, T, startPos, qDim);
  rope(k, s, c, T, startPos, kvDim);
  // causal multi-head attention over the cache (positions 0..pos of each row)
  attention(backend, att, q, s, c, l, T, startPos);
  // output projection, then residual
  hook?.('self_attn.o_proj', att, T);
  if (stopAfter === 'self_attn.o_proj') return;
  apply(L.wo, xb2, att, T, L.bo);
  // residual, then the MLP RMSNorm
  for (let t = 0; t < T; t++) {
    const row = (a: Float32Array) => a.subarray(t * dim, (t + 1) * dim);
    ops.addRmsnorm(row(xb), row(x), row(xb2), L.ffnNorm, dim, c.normEps);
  }
  // gate (w1) and up (w3) projections
  hook?.('mlp.gate_proj', xb, T);
  hook?.('mlp.up_proj', xb, T);
  if (stopAfter === 'mlp.gate_proj' || stopAfter === 'mlp.up_proj') return;
  apply(L.w1, hb, xb, T);
  apply(L.w3, hb2, xb, T);
  // SwiGLU: silu(gate) * up
  ops.siluMul(hb, hb2, hb.length);
  // down projection (w2), then residual
  hook?.('mlp.down_proj', hb, T);
  if (stopAfter === 'mlp.down_proj') return;
  apply(L.w2, xb2, hb, T);
  for (let i = 0; i < x.length; i++) x[i] += xb2[i];
}

/** y[rows, out] = x[rows, in] · Wᵀ (+ bias [out] on every row); one row goes through the matrix-vector kernel. */
function apply(lin: Linear, y: Float32Array, x: Float32Array, rows: number, bias?: Float32Array): void {
  if (rows === 1) lin.matvec(y.subarray(0, lin.outDim), x.subarray(0, lin.inDim));
  else lin.matmul(y.subarray(0, rows * lin.outDim), x.subarray(0, rows * lin.inDim), rows);
  if (bias === undefined) return;
  for (let r = 0; r < rows; r++) {
    const off = r * lin.outDim;
    for (let i = 0; i < lin.outDim; i++) y[off + i] += bias[i];
  }
}

/** Rotates pairs (2i, 2i+1) of every head of rows at positions startPos.. (llama2.c layout). */
function rope(v: Float32Array, s: Scratch, c: LlamaConfig, rows: number, startPos: number, width: number): void {
  const hs = headSizeOf(c);
  const half = hs / 2;
  for (let r = 0; r < rows; r++) {
    const table = (startPos + r) * half;
    for (let h = 0; h < width; h += hs) {
      const base = r * width + h;
      for (let i = 0; i < half; i++) {
        const cos = s.ropeCos[table + i];
        const sin = s.ropeSin[table + i];
        const a = v[base + 2 * i];
        const b = v[base + 2 * i + 1];
        v[base + 2 * i] = a * cos - b * sin;
        v[base + 2 * i + 1] = a * sin + b * cos;
      }
    }
  }
}
