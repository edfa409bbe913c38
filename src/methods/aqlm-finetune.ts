/**
 * AQLM block fine-tuning (Egiazarian et al. 2024, §3.4 "Fine-tuning for intra-layer
 * cohesion"): after every linear of a block is quantized, the codes stay fixed and the block's
 * continuous parameters — every linear's codebooks C_m and per-row scales s, and the two RMSNorm
 * weights — are trained with Adam to make the quantized block's output match the float block's
 * output on the calibration windows (MSE), with early stopping on held-out calibration windows.
 *
 * The gradient w.r.t. a linear's weights, dŴ, comes from the autograd block backward; it is
 * chained through ŵ[r, group j] = s_r · Σ_m C_m[b_{r,j,m}]:
 *   dC_m[k]  = Σ_{(r,j): b_{r,j,m} = k} s_r · dŴ[r, j]      (scatter-add by codes)
 *   ds_r     = Σ_j dŴ[r, j] · Σ_m C_m[b_{r,j,m}]            (= dŴ_r · (Ŵ_r / s_r))
 * The norms' gradients come straight from the block backward; the trained norms go to the
 * pipeline (ctx.setNorms), which runs the following blocks with them and stores them in the
 * packed file (float32, as the source's). A caller without setNorms gets the norms untrained.
 *
 * Held-out MSE is measured with float16-rounded codebooks and scales (what the file stores), and
 * the best such parameters are kept, so the result never ends worse on held-out windows than
 * AQLM's layer-wise result, and its dequantization is exactly the packed format's.
 */
import { blockBackward, blockForward, type BlockParams } from '../autograd/block.js';
import { BlockKernels } from '../autograd/kernels.js';
import { Adam } from '../autograd/optim.js';
import type { CodebookQuantized } from '../formats/codebook.js';
import { roundToF16 } from '../formats/quantized.js';
import type { BlockRefineContext, LayerResult } from '../quant/method.js';
import { reconstruct } from './aqlm-beam.js';

export interface AqlmFinetuneOptions {
  /** Passes over the training windows at most; 0 turns fine-tuning off. */
  finetuneEpochs: number;
  /** Adam learning rate of codebooks and scales (default 1e-3: the paper's 1e-5 barely moves these tiny models in a few epochs, see docs/aqlm.md). */
  finetuneLr: number;
  /** Fraction of calibration windows held out for early stopping (at least one when ≥ 2 windows). */
  finetuneHoldout: number;
  /** Fine-tune on the first this many calibration windows only (0 = all): a time knob for wide models. */
  finetuneWindows: number;
}

/** Official AQLM fine-tuning's Adam betas (finetune_adam_beta1/2). */
const BETAS = { beta1: 0.9, beta2: 0.95 };

const FIELDS: ReadonlyArray<[string, keyof BlockParams]> = [
  ['self_attn.q_proj', 'wq'], ['self_attn.k_proj', 'wk'], ['self_attn.v_proj', 'wv'], ['self_attn.o_proj', 'wo'],
  ['mlp.gate_proj', 'w1'], ['mlp.down_proj', 'w2'], ['mlp.up_proj', 'w3'],
];

/** One linear's trainable copy: float32 master codebooks and scales, fixed codes. */
export class Trainable {
  readonly codebooks: Float32Array; // [M, K, g]
  readonly scale: Float32Array; // [out]
  readonly dC: Float32Array;
  readonly dS: Float32Array;
  readonly K: number;
  readonly nG: number;

  constructor(readonly q: CodebookQuantized) {
    // the gradients below index codewords along one row: the method writes og = 1 only
    if (q.og !== undefined) throw new RangeError(`fine-tuning: codebooks of ${q.og} rows per codeword are not trained here (og = 1 only)`);
    this.codebooks = q.codebooks.slice();
    this.scale = q.scale.slice();
    this.dC = new Float32Array(this.codebooks.length);
    this.dS = new Float32Array(this.scale.length);
    this.K = 2 ** q.B;
    this.nG = q.inDim / q.g;
  }

  /** Ŵ [out, in] of the given (master or rounded) parameters, the format's float32 arithmetic. */
  weights(w: Float32Array, codebooks = this.codebooks, scale = this.scale): void {
    const { q } = this;
    reconstruct(w, q.codes, codebooks, scale, q.outDim, q.inDim, q.M, this.K, q.g);
  }

  /** Accumulates dC, dS from dŴ [out, in] by the chain rule above. */
  backward(dW: Float32Array): void {
    const { q, K, nG, codebooks, scale, dC, dS } = this;
    const { M, g, inDim } = q;
    for (let r = 0; r < q.outDim; r++) {
      const s = scale[r]!;
      let ds = 0;
      for (let j = 0; j < nG; j++) {
        const o = r * inDim + j * g;
        for (let m = 0; m < M; m++) {
          const c = (m * K + q.codes[(r * nG + j) * M + m]!) * g;
          for (let t = 0; t < g; t++) {
            const d = dW[o + t]!;
            dC[c + t] += s * d;
            ds += d * codebooks[c + t]!;
          }
        }
      }
      dS[r] += ds;
    }
  }

  /** The parameters rounded to float16, as the packed file stores them. */
  rounded(): { codebooks: Float32Array; scale: Float32Array } {
    return { codebooks: this.codebooks.map(roundToF16), scale: this.scale.map(roundToF16) };
  }
}

/** Mean squared difference between the block's output on windows [from, to) and the float targets. */
function blockMse(ctx: BlockRefineContext, p: BlockParams, target: Float32Array, from: number, to: number, kernels: BlockKernels): number {
  const { seqLen: T } = ctx;
  const D = T * ctx.config.dim;
  let sum = 0;
  for (let s = from; s < to; s++) {
    const out = blockForward(ctx.config, p, ctx.inputs.subarray(s * D, (s + 1) * D), T, kernels).out;
    for (let i = 0; i < D; i++) sum += (out[i]! - target[s * D + i]!) ** 2;
  }
  return sum / ((to - from) * D);
}

/** The trained norm weights [dim] of a block (float32, stored as they are). */
interface Norms { attnNorm: Float32Array; ffnNorm: Float32Array }

/**
 * Fine-tunes the block's codebooks, scales and norms; returns the new results of its linears
 * (the norms go to ctx.setNorms), or an empty map when fine-tuning is off or never lowered the
 * held-out MSE (the layer-wise results and the source's norms stand).
 */
export function refineAqlmBlock(ctx: BlockRefineContext, opts: AqlmFinetuneOptions): Map<string, LayerResult> {
  if (opts.finetuneEpochs <= 0) return new Map();
  const kernels = new BlockKernels(ctx.backend);
  try {
    return finetune(ctx, opts, kernels);
  } finally {
    kernels.dispose();
  }
}

function finetune(ctx: BlockRefineContext, opts: AqlmFinetuneOptions, kernels: BlockKernels): Map<string, LayerResult> {
  const t0 = performance.now();
  const { config: c, seqLen: T } = ctx;
  const windows = opts.finetuneWindows > 0 ? Math.min(ctx.windows, opts.finetuneWindows) : ctx.windows;
  const D = T * c.dim;
  const held = windows >= 2 ? Math.min(windows - 1, Math.max(1, Math.round(windows * opts.finetuneHoldout))) : 0;
  const train = windows - held;
  // with no held-out window (a 1-window calibration) the training window decides instead
  const [evalFrom, evalTo] = held > 0 ? [train, windows] : [0, windows];

  const floatP = { ...ctx.biases, attnNorm: ctx.norms.attnNorm, ffnNorm: ctx.norms.ffnNorm } as BlockParams;
  const norms: Norms = { attnNorm: ctx.norms.attnNorm.slice(), ffnNorm: ctx.norms.ffnNorm.slice() };
  const quantP = { ...floatP, ...norms } as BlockParams;
  const grads: Partial<Record<keyof BlockParams, Float32Array>> = {
    attnNorm: new Float32Array(c.dim), ffnNorm: new Float32Array(c.dim),
  };
  const lin = new Map<string, Trainable>();
  for (const [name, field] of FIELDS) {
    const r = ctx.results.get(name)!;
    if (r.payload.format !== 'codebook') throw new RangeError(`${name}: AQLM fine-tuning needs a codebook payload, got ${r.payload.format}`);
    lin.set(name, new Trainable(r.payload.data));
    floatP[field] = ctx.weights.get(name)!.w;
    quantP[field] = r.dequantized.slice();
    grads[field] = new Float32Array(r.dequantized.length);
  }
  const target = new Float32Array(windows * D); // the float block's output on every window
  for (let s = 0; s < windows; s++) target.set(blockForward(c, floatP, ctx.inputs.subarray(s * D, (s + 1) * D), T, kernels).out, s * D);

  const before = blockMse(ctx, quantP, target, evalFrom, evalTo, kernels);
  let best = before;
  let bestParams: { linears: Map<string, { codebooks: Float32Array; scale: Float32Array }>; norms: Norms } | null = null;
  const L = [...lin.values()];
  const trainNorms = ctx.setNorms !== undefined;
  const opt = new Adam([...L.flatMap((x) => [x.codebooks, x.scale]), ...(trainNorms ? [norms.attnNorm, norms.ffnNorm] : [])], { lr: opts.finetuneLr, ...BETAS });
  const dout = new Float32Array(D);
  let epochs = 0;
  let trainFirst = NaN;
  let trainLast = NaN;
  for (let e = 0; e < opts.finetuneEpochs; e++) {
    let sum = 0;
    for (let s = 0; s < train; s++) {
      for (const [name, field] of FIELDS) lin.get(name)!.weights(quantP[field] as Float32Array);
      const acts = blockForward(c, quantP, ctx.inputs.subarray(s * D, (s + 1) * D), T, kernels);
      for (let i = 0; i < D; i++) {
        const d = acts.out[i]! - target[s * D + i]!;
        sum += d * d;
        dout[i] = (2 * d) / D;
      }
      for (const g of Object.values(grads)) g.fill(0);
      blockBackward(c, quantP, acts, dout, grads, kernels);
      for (const x of L) {
        x.dC.fill(0);
        x.dS.fill(0);
      }
      for (const [name, field] of FIELDS) lin.get(name)!.backward(grads[field]!);
      opt.step([...L.flatMap((x) => [x.dC, x.dS]), ...(trainNorms ? [grads.attnNorm!, grads.ffnNorm!] : [])]);
    }
    epochs++;
    trainLast = sum / (train * D);
    if (e === 0) trainFirst = trainLast;
    // early stopping on the held-out windows, with the float16 parameters the file would store
    const rounded = new Map([...lin].map(([name, x]) => [name, x.rounded()]));
    for (const [name, field] of FIELDS) {
      const r = rounded.get(name)!;
      lin.get(name)!.weights(quantP[field] as Float32Array, r.codebooks, r.scale);
    }
    const mse = blockMse(ctx, quantP, target, evalFrom, evalTo, kernels);
    if (!(mse < best)) break;
    best = mse;
    bestParams = { linears: rounded, norms: { attnNorm: norms.attnNorm.slice(), ffnNorm: norms.ffnNorm.slice() } };
  }
  if (bestParams === null) return new Map();

  const seconds = (performance.now() - t0) / 1000;
  const refined = new Map<string, LayerResult>();
  for (const [name] of FIELDS) {
    const x = lin.get(name)!;
    const { codebooks, scale } = bestParams.linears.get(name)!;
    const data: CodebookQuantized = { ...x.q, codebooks, scale };
    const dequantized = new Float32Array(x.q.outDim * x.q.inDim);
    x.weights(dequantized, codebooks, scale);
    const prev = ctx.results.get(name)!.stats;
    refined.set(name, {
      payload: { format: 'codebook', data },
      dequantized,
      stats: { ...prev, ftHeldMseBefore: before, ftHeldMseAfter: best, ftTrainMseFirst: trainFirst, ftTrainMseLast: trainLast, ftEpochs: epochs, ftWindows: windows, ftSeconds: seconds },
    });
  }
  if (trainNorms) ctx.setNorms!(bestParams.norms);
  return refined;
}
