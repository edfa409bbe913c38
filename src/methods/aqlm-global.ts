/**
 * AQLM global fine-tuning (Egiazarian et al. 2024, §3.4 and the README's fine-tuning step,
 * finetune.py): after every block is quantized, the codes stay fixed and the continuous
 * parameters — every block linear's codebooks C_m and per-row scales s, every block's two RMSNorm
 * weights and the final norm — are trained end to end with Adam (β = (0.9, 0.95), one window per
 * step as finetune.py's batch 1) to minimise the KL divergence from the float model's next-token
 * distribution to the quantized model's, per token, on the calibration windows:
 *   KL = (1/T) Σ_t Σ_v p_t[v] (log p_t[v] − log q_t[v]),   p = softmax(float logits), q = softmax(student logits)
 *   dKL/dz_t = (q_t − p_t) / T                              (z: the student's logits)
 * The embedding and the head are NOT trained (official finetune.py trains every float parameter,
 * lm_head included): here they are whatever the file stores (quantized or float), fixed, so the
 * file's other tensors keep their own formats and sizes.
 *
 * Memory: the teacher is the float model's final-norm output per window [windows, T, dim]
 * (finetune.py's cache_hiddens), its logits recomputed per step with the float head [T, vocab];
 * the student keeps one set of block activations per block (one BlockKernels each) for the backward.
 * Held-out windows (the last finetuneHoldout fraction) are scored after each epoch with
 * float16-rounded codebooks and scales (what the file stores); the best such parameters are kept,
 * never worse than the block-wise result.
 */
import { blockBackward, blockForward, type BlockActs, type BlockParams } from '../autograd/block.js';
import { BlockKernels } from '../autograd/kernels.js';
import * as op from '../autograd/ops.js';
import { Adam } from '../autograd/optim.js';
import { codebookFormat, type CodebookQuantized } from '../formats/codebook.js';
import { getFormat } from '../formats/registry.js';
import type { PackedTensor } from '../formats/types.js';
import type { LlamaConfig } from '../model/config.js';
import { BIASED, EMBED, FINAL_NORM, layerBias, layerTensor, LM_HEAD, type LinearName, type ModelSource } from '../model/weights.js';
import type { ModelRefineContext, ModelRefineResult } from '../quant/method.js';
import { Trainable } from './aqlm-finetune.js';

export interface AqlmGlobalOptions {
  /** Passes over the training windows at most; 0 turns global fine-tuning off. */
  globalFinetuneEpochs: number;
  /** Adam learning rate of codebooks, scales and norms. */
  globalFinetuneLr: number;
  /** Fraction of the calibration windows held out for early stopping (at least one when ≥ 2 windows). */
  finetuneHoldout: number;
}

const BETAS = { beta1: 0.9, beta2: 0.95 };
const FIELDS: ReadonlyArray<[LinearName, 'wq' | 'wk' | 'wv' | 'wo' | 'w1' | 'w2' | 'w3']> = [
  ['self_attn.q_proj', 'wq'], ['self_attn.k_proj', 'wk'], ['self_attn.v_proj', 'wv'], ['self_attn.o_proj', 'wo'],
  ['mlp.gate_proj', 'w1'], ['mlp.down_proj', 'w2'], ['mlp.up_proj', 'w3'],
];
const BIAS_FIELD = { 'self_attn.q_proj': 'bq', 'self_attn.k_proj': 'bk', 'self_attn.v_proj': 'bv', 'self_attn.o_proj': 'bo' } as const;

/** Dense weights [out, in] of a tensor: the packed file's dequantization when it is packed, else the source's float32. */
function weightOf(name: string, packed: ReadonlyMap<string, PackedTensor>, src: ModelSource): Float32Array {
  const t = packed.get(name);
  if (t === undefined) return src.load(name === LM_HEAD && src.config.tiedEmbeddings ? EMBED : name);
  if (t.format !== 'aqlm') throw new RangeError(`global fine-tuning: ${name} is ${t.format}, only aqlm block linears are trained`);
  return codebookFormat.dequantize(t as PackedTensor<never>);
}

/** A float tensor of the file: the registry's dequantization when packed (embedding, head), else the source's. */
function denseOf(name: string, packed: ReadonlyMap<string, PackedTensor>, src: ModelSource): Float32Array {
  const t = packed.get(name);
  if (t === undefined) return src.load(name === LM_HEAD && src.config.tiedEmbeddings ? EMBED : name);
  return getFormat(t.format).dequantize(t);
}

/** A model as block parameters plus the tensors around the blocks. */
interface Net {
  emb: Float32Array; // [vocab, dim]
  blocks: BlockParams[];
  finalNorm: Float32Array; // [dim]
  head: Float32Array; // [vocab, dim]
}

/** Forward of one window through every block; returns the activations per block and the final-norm output. */
function forward(c: LlamaConfig, net: Net, tok: ArrayLike<number>, T: number, kernels: BlockKernels[], scratch: { x0: Float32Array; xn: Float32Array; rstd: Float32Array }) {
  const { dim } = c;
  for (let t = 0; t < T; t++) scratch.x0.set(net.emb.subarray(tok[t]! * dim, (tok[t]! + 1) * dim), t * dim);
  const acts: BlockActs[] = [];
  let x: Float32Array = scratch.x0;
  for (let l = 0; l < c.nLayers; l++) {
    const a = blockForward(c, net.blocks[l]!, x, T, kernels[l]);
    acts.push(a);
    x = a.out as Float32Array;
  }
  op.rmsnormForward(scratch.xn, scratch.rstd, x, net.finalNorm, T, dim, c.normEps);
  return { acts, last: x };
}

/** log-softmax of logits [T, V] in place; returns the array. */
function logSoftmax(z: Float32Array, T: number, V: number): Float32Array {
  for (let t = 0; t < T; t++) {
    const o = t * V;
    let max = -Infinity;
    for (let v = 0; v < V; v++) if (z[o + v]! > max) max = z[o + v]!;
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(z[o + v]! - max);
    const lse = max + Math.log(s);
    for (let v = 0; v < V; v++) z[o + v] = z[o + v]! - lse;
  }
  return z;
}

/** Mean per-token KL(p ‖ q) from log-probabilities [T, V]; writes dKL/dz_student = (q − p)/T into dz when given. */
export function klAndGrad(lp: Float32Array, lq: Float32Array, T: number, V: number, dz?: Float32Array): number {
  let kl = 0;
  for (let i = 0; i < T * V; i++) {
    const p = Math.exp(lp[i]!);
    kl += p * (lp[i]! - lq[i]!);
    if (dz) dz[i] = (Math.exp(lq[i]!) - p) / T;
  }
  return kl / T;
}

/**
 * The fine-tuning problem: the teacher's cached hidden states, the student's trainable parameters
 * (float32 masters) and their gradient arrays, and the KL of one window (`grad` fills the
 * gradients). Exposed for the gradient checks; dispose() frees the backend buffers.
 */
export function globalKlProblem(ctx: ModelRefineContext, holdout: number) {
  const { backend, float, student, packed, seqLen: T } = ctx;
  const c = float.config;
  const { dim, vocabSize: V } = c;
  const W = ctx.windows;
  const held = W >= 2 ? Math.min(W - 1, Math.max(1, Math.round(W * holdout))) : 0;
  const train = W - held;
  const [evalFrom, evalTo] = held > 0 ? [train, W] : [0, W];
  const tokensOf = (s: number) => Array.prototype.slice.call(ctx.tokens, s * T, (s + 1) * T) as number[];

  const biases = (l: number) => {
    const b: Partial<BlockParams> = {};
    for (const proj of c.attentionBias ? BIASED[c.attentionBias] : []) b[BIAS_FIELD[proj]] = float.load(layerBias(l, proj));
    return b;
  };
  // the teacher
  const teacher: Net = {
    emb: float.load(EMBED),
    blocks: [],
    finalNorm: float.load(FINAL_NORM),
    head: float.load(c.tiedEmbeddings ? EMBED : LM_HEAD),
  };
  // the student: trainable copies of every codebook linear
  const lin = new Map<string, Trainable>();
  const studentNet: Net = {
    emb: denseOf(EMBED, packed, student),
    blocks: [],
    finalNorm: student.load(FINAL_NORM).slice(),
    head: denseOf(ctx.headTensor, packed, student),
  };
  for (let l = 0; l < c.nLayers; l++) {
    const f = { ...biases(l), attnNorm: float.load(layerTensor(l, 'input_layernorm')), ffnNorm: float.load(layerTensor(l, 'post_attention_layernorm')) } as BlockParams;
    const s = { ...biases(l), attnNorm: student.load(layerTensor(l, 'input_layernorm')).slice(), ffnNorm: student.load(layerTensor(l, 'post_attention_layernorm')).slice() } as BlockParams;
    for (const [linear, field] of FIELDS) {
      const name = layerTensor(l, linear);
      f[field] = float.load(name);
      const t = packed.get(name);
      if (t === undefined || t.format !== 'aqlm') throw new RangeError(`global fine-tuning: ${name} is not an aqlm tensor`);
      const x = new Trainable(codebookFormat.unpack(t as PackedTensor<never>) as CodebookQuantized);
      lin.set(name, x);
      s[field] = weightOf(name, packed, student);
    }
    teacher.blocks.push(f);
    studentNet.blocks.push(s);
  }

  const kernels = Array.from({ length: c.nLayers }, () => new BlockKernels(backend));
  const scratch = { x0: new Float32Array(T * dim), xn: new Float32Array(T * dim), rstd: new Float32Array(T) };
  const logits = backend.alloc(T * V); // [T, V]
  const lp = new Float32Array(T * V);
  const dz = backend.alloc(T * V);
  {
    // teacher: final-norm outputs of every window, [W, T, dim]
    const hidden = new Float32Array(W * T * dim);
    for (let s = 0; s < W; s++) {
      forward(c, teacher, tokensOf(s), T, kernels, scratch);
      hidden.set(scratch.xn, s * T * dim);
      ctx.onProgress?.(0, 0, 1, `teacher window ${s + 1}/${W}`);
    }
    const teacherLogProbs = (s: number) => {
      backend.matmul(lp, hidden.subarray(s * T * dim, (s + 1) * T * dim), teacher.head, T, V, dim);
      return logSoftmax(lp, T, V);
    };
    const studentLogProbs = (tok: number[]) => {
      const f = forward(c, studentNet, tok, T, kernels, scratch);
      backend.matmul(logits, scratch.xn, studentNet.head, T, V, dim);
      return { f, lq: logSoftmax(logits, T, V) };
    };
    const L = [...lin.entries()];
    const setWeights = (rounded: boolean) => {
      let i = 0;
      for (let l = 0; l < c.nLayers; l++) {
        for (const [, field] of FIELDS) {
          const x = L[i++]![1];
          if (rounded) {
            const r = x.rounded();
            x.weights(studentNet.blocks[l]![field] as Float32Array, r.codebooks, r.scale);
          } else x.weights(studentNet.blocks[l]![field] as Float32Array);
        }
      }
    };
    const heldKl = () => {
      setWeights(true);
      let sum = 0;
      for (let s = evalFrom; s < evalTo; s++) {
        const tl = teacherLogProbs(s);
        sum += klAndGrad(tl, studentLogProbs(tokensOf(s)).lq, T, V);
      }
      return sum / (evalTo - evalFrom);
    };

    const norms = studentNet.blocks.flatMap((b) => [b.attnNorm as Float32Array, b.ffnNorm as Float32Array]);
    const params = [...L.flatMap(([, x]) => [x.codebooks, x.scale]), ...norms, studentNet.finalNorm];
    const trained = params.reduce((a, p) => a + p.length, 0);
    const normGrads = norms.map((n) => new Float32Array(n.length));
    const dFinal = new Float32Array(dim);
    const grads = [...L.flatMap(([, x]) => [x.dC, x.dS]), ...normGrads, dFinal];
    const dW = studentNet.blocks.map((b) => Object.fromEntries(FIELDS.map(([, f]) => [f, new Float32Array((b[f] as Float32Array).length)])) as Record<string, Float32Array>);
    const dxn = new Float32Array(T * dim);
    const dx = new Float32Array(T * dim);
    /** KL of training window s with the float32 masters; with grad, every gradient array holds dKL/dθ afterwards. */
    const windowKl = (s: number, grad: boolean): number => {
      setWeights(false);
      const tl = teacherLogProbs(s);
      const { f, lq } = studentLogProbs(tokensOf(s));
      const kl = klAndGrad(tl, lq, T, V, grad ? dz : undefined);
      if (!grad) return kl;
      for (const g of grads) g.fill(0);
      // logits = xn · headᵀ → dxn = dz · head; the final norm; then the blocks in reverse
      dxn.fill(0);
      kernels[0]!.matmulBackward(dxn, null, dz, scratch.xn, studentNet.head, T, dim, V);
      dx.fill(0);
      op.rmsnormBackward(dx, dFinal, dxn, f.last, studentNet.finalNorm, scratch.rstd, T, dim);
      let d: Float32Array = dx;
      for (let l = c.nLayers - 1; l >= 0; l--) {
        const g = dW[l]!;
        for (const a of Object.values(g)) a.fill(0);
        const blockGrads = { ...g, attnNorm: normGrads[2 * l]!, ffnNorm: normGrads[2 * l + 1]! };
        d = blockBackward(c, studentNet.blocks[l]!, f.acts[l]!, d, blockGrads, kernels[l]) as Float32Array;
        for (const [linear, field] of FIELDS) lin.get(layerTensor(l, linear))!.backward(g[field]!);
      }
      return kl;
    };
    const dispose = () => {
      for (const k of kernels) k.dispose();
      backend.free?.(logits);
      backend.free?.(dz);
    };
    return { c, train, linears: L, norms, finalNorm: studentNet.finalNorm, params, grads, trained, windowKl, heldKl, dispose };
  }
}

export function globalFinetune(ctx: ModelRefineContext, opts: AqlmGlobalOptions): ModelRefineResult | null {
  if (opts.globalFinetuneEpochs <= 0) return null;
  const t0 = performance.now();
  const P = globalKlProblem(ctx, opts.finetuneHoldout);
  const { c, train, linears: L, norms, params, grads, trained, windowKl, heldKl } = P;
  try {
    const opt = new Adam(params, { lr: opts.globalFinetuneLr, ...BETAS });

    const before = heldKl();
    let best = before;
    let bestState: { linears: Map<string, { codebooks: Float32Array; scale: Float32Array }>; norms: Float32Array[]; finalNorm: Float32Array } | null = null;
    let epochs = 0;
    let trainFirst = NaN;
    let trainLast = NaN;
    for (let e = 0; e < opts.globalFinetuneEpochs; e++) {
      let sum = 0;
      for (let s = 0; s < train; s++) {
        sum += windowKl(s, true);
        opt.step(grads);
        ctx.onProgress?.(e, e * train + s + 1, opts.globalFinetuneEpochs * train, `epoch ${e + 1}/${opts.globalFinetuneEpochs}, train KL ${(sum / (s + 1)).toFixed(4)}`);
      }
      epochs++;
      trainLast = sum / train;
      if (e === 0) trainFirst = trainLast;
      const kl = heldKl();
      ctx.onProgress?.(e, (e + 1) * train, opts.globalFinetuneEpochs * train, `epoch ${e + 1}: held-out KL ${kl.toFixed(4)} (before ${before.toFixed(4)})`);
      if (!(kl < best)) break;
      best = kl;
      bestState = {
        linears: new Map(L.map(([name, x]) => [name, x.rounded()])),
        norms: norms.map((n) => n.slice()),
        finalNorm: P.finalNorm.slice(),
      };
    }
    const stats = { heldKlBefore: before, heldKlAfter: best, trainKlFirst: trainFirst, trainKlLast: trainLast, epochs, seconds: (performance.now() - t0) / 1000, trained };
    const out: ModelRefineResult = { packed: new Map(), dense: new Map(), stats };
    if (bestState === null) return out;
    for (const [name, x] of L) {
      const { codebooks, scale } = bestState.linears.get(name)!;
      out.packed.set(name, codebookFormat.pack({ ...x.q, codebooks, scale }));
    }
    for (let l = 0; l < c.nLayers; l++) {
      out.dense.set(layerTensor(l, 'input_layernorm'), bestState.norms[2 * l]!);
      out.dense.set(layerTensor(l, 'post_attention_layernorm'), bestState.norms[2 * l + 1]!);
    }
    out.dense.set(FINAL_NORM, bestState.finalNorm);
    return out;
  } finally {
    P.dispose();
  }
}
