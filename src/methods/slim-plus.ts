/**
 * SliM-LLM+ (Huang et al. 2024, §3.4 and the official slim-llm-plus/, built on OmniQuant): the
 * bit allocation of SliM-LLM's SBA, kept fixed, with OmniQuant's learnable weight clipping (LWC,
 * Shao et al. 2024, §3.2) instead of GPTQ: every row of every group b ≥ 2 has learnable
 * clipping factors γ = σ(u), β = σ(l) on its range,
 *   h = (γ·max − β·min) / (2^b − 1),  z = clamp(round(−β·min / h), 0, 2^b − 1),
 *   ŵ = h·(clamp(⌊w/h⌉ + z, 0, 2^b − 1) − z),
 * trained block by block with AdamW to minimise the MSE between the quantized block's output and
 * the float block's output on the calibration inputs; ⌊·⌉ passes gradients straight through and
 * z is a constant for the gradient (OmniQuant's round_ste and plain round). 1-bit groups keep
 * SliM-LLM's mean ± spread grid, untrained. After training every grid is refitted with
 * `fitGrid(β·min, γ·max)` (float16 scale, integer zero) so the packed file is exact.
 */
import { blockBackward, blockForward, type BlockParams } from '../autograd/block.js';
import { BlockKernels } from '../autograd/kernels.js';
import { AdamW } from '../autograd/optim.js';
import { groupCount, type GroupQuantized } from '../formats/quantized.js';
import { dequantizeLevel, fitGrid, groupWidth, maxLevel, quantizeLevel } from '../quant/grid.js';
import { checkLayerShape, type BlockRefineContext, type LayerContext, type LayerResult, type QuantMethod } from '../quant/method.js';
import { addAbsoluteDamp, binaryGrid, groupSalience, inverseFactorDiagonal, searchBitAllocation, slim, slimDefaults, slimLevel, type SlimOptions } from './slim.js';

export interface SlimPlusOptions extends SlimOptions {
  /** Passes over the calibration windows per block (the paper: ~50). */
  epochs: number;
  lr: number;
  weightDecay: number;
  /** Initial u = l: σ(4) ≈ 0.982, OmniQuant's initialisation (clipping just inside min/max). */
  init: number;
  /**
   * What the quantized block (fed the quantized model's stream) is trained to reproduce:
   * 'quant' the float block on the same quantized stream; 'float' the float block on the float
   * model's stream (OmniQuant's target); 'both' the sum of the two MSEs (OmniQuant --aug_loss,
   * which the official SliM-LLM+ scripts use).
   */
  lossTargets: string;
}

export const slimPlusDefaults: SlimPlusOptions = { ...slimDefaults, binaryScale: 'centered', epochs: 50, lr: 1e-2, weightDecay: 0, init: 4, lossTargets: 'both' };

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const roundEven = (x: number) => {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
};

/** One linear's learnable clipping: ranges [out, nG] from the float weights, parameters u, l. */
class Lwc {
  readonly nGroups: number;
  readonly lo: Float64Array; // [out, nG] min(w, 0)
  readonly hi: Float64Array; // [out, nG] max(w, 0)
  readonly u: Float64Array;
  readonly l: Float64Array;
  readonly du: Float64Array;
  readonly dl: Float64Array;

  constructor(
    readonly W: Float32Array, // [out, in]
    readonly out: number,
    readonly inDim: number,
    readonly g: number,
    readonly widths: Uint8Array, // [nG]
    init: number,
    readonly absScale = false, // 1-bit groups' scale mean|w| (SlimOptions.binaryScale 'abs')
  ) {
    this.nGroups = groupCount(inDim, g);
    const n = out * this.nGroups;
    [this.lo, this.hi, this.u, this.l, this.du, this.dl] = [0, 0, 0, 0, 0, 0].map(() => new Float64Array(n)) as Float64Array[] as [Float64Array, Float64Array, Float64Array, Float64Array, Float64Array, Float64Array];
    this.u.fill(init);
    this.l.fill(init);
    for (let r = 0; r < out; r++) {
      for (let c = 0; c < inDim; c++) {
        const k = r * this.nGroups + Math.floor(c / g);
        const w = W[r * inDim + c]!;
        if (w < this.lo[k]!) this.lo[k] = w;
        if (w > this.hi[k]!) this.hi[k] = w;
      }
    }
  }

  /** Ŵ with the current clipping into wq [out, in]; `dwq` given: accumulate du, dl from dŴ instead. */
  apply(wq: Float32Array, dwq?: Float32Array): void {
    const { W, inDim, g, nGroups } = this;
    for (let r = 0; r < this.out; r++) {
      for (let gi = 0; gi < nGroups; gi++) {
        const c0 = gi * g;
        const n = Math.min(g, inDim - c0);
        const bits = this.widths[gi]!;
        const k = r * nGroups + gi;
        if (bits === 1) {
          if (dwq) continue;
          const b = binaryGrid(W, r * inDim + c0, n, 1, this.absScale);
          for (let c = c0; c < c0 + n; c++) wq[r * inDim + c] = dequantizeLevel(slimLevel(W[r * inDim + c]!, b.scale, b.zero, 1), b.scale, b.zero);
          continue;
        }
        const maxq = maxLevel(bits);
        const gam = sigmoid(this.u[k]!);
        const bet = sigmoid(this.l[k]!);
        const h = Math.max((gam * this.hi[k]! - bet * this.lo[k]!) / maxq, 1e-8);
        const z = Math.min(Math.max(Math.round((-bet * this.lo[k]!) / h), 0), maxq);
        let dh = 0;
        for (let c = c0; c < c0 + n; c++) {
          const v = W[r * inDim + c]! / h;
          const R = roundEven(v);
          const q = R + z;
          const qc = q < 0 ? 0 : q > maxq ? maxq : q;
          if (!dwq) wq[r * inDim + c] = h * (qc - z);
          // dŵ/dh: the rounding residual inside the range (STE), the clamped level outside it
          else dh += dwq[r * inDim + c]! * (qc === q ? R - v : qc - z);
        }
        if (dwq) {
          this.du[k]! += (dh * this.hi[k]! * gam * (1 - gam)) / maxq;
          this.dl[k]! += (dh * -this.lo[k]! * bet * (1 - bet)) / maxq;
        }
      }
    }
  }

  /** The trained grids refitted for storage: payload and its exact dequantization. */
  finish(): { payload: GroupQuantized; dequantized: Float32Array } {
    const { W, out, inDim, g, nGroups } = this;
    const scale = new Float32Array(out * nGroups);
    const zero = new Float32Array(out * nGroups);
    const q = new Uint8Array(out * inDim);
    const dequantized = new Float32Array(out * inDim);
    for (let r = 0; r < out; r++) {
      for (let gi = 0; gi < nGroups; gi++) {
        const k = r * nGroups + gi;
        const bits = this.widths[gi]!;
        const c0 = gi * g;
        const n = Math.min(g, inDim - c0);
        const grid = bits === 1 ? binaryGrid(W, r * inDim + c0, n, 1, this.absScale) : fitGrid(sigmoid(this.l[k]!) * this.lo[k]!, sigmoid(this.u[k]!) * this.hi[k]!, bits, false);
        scale[k] = grid.scale;
        zero[k] = grid.zero;
        for (let c = c0; c < c0 + n; c++) {
          const level = slimLevel(W[r * inDim + c]!, grid.scale, grid.zero, maxLevel(bits));
          q[r * inDim + c] = level;
          dequantized[r * inDim + c] = dequantizeLevel(level, grid.scale, grid.zero);
        }
      }
    }
    return { payload: { outDim: out, inDim, groupSize: g, bits: this.widths.slice(), q, scale, zero, perm: null }, dequantized };
  }
}

const FIELDS: ReadonlyArray<[string, keyof BlockParams]> = [
  ['self_attn.q_proj', 'wq'], ['self_attn.k_proj', 'wk'], ['self_attn.v_proj', 'wv'], ['self_attn.o_proj', 'wo'],
  ['mlp.gate_proj', 'w1'], ['mlp.down_proj', 'w2'], ['mlp.up_proj', 'w3'],
];

/** Trains every linear's clipping in the block against the float block's output; returns the new results. */
export function refineSlimPlusBlock(ctx: BlockRefineContext, opts: SlimPlusOptions): Map<string, LayerResult> {
  // the block's matmuls and attention on the backend; its buffers hold the quantized weights too
  const kernels = new BlockKernels(ctx.backend);
  try {
    return train(ctx, opts, kernels);
  } finally {
    kernels.dispose();
  }
}

function train(ctx: BlockRefineContext, opts: SlimPlusOptions, kernels: BlockKernels): Map<string, LayerResult> {
  const t0 = performance.now();
  const c = ctx.config;
  const { seqLen: T, windows } = ctx;
  const dim = c.dim;
  const lwc = new Map<string, Lwc>();
  const floatP = { ...ctx.biases, attnNorm: ctx.norms.attnNorm, ffnNorm: ctx.norms.ffnNorm } as BlockParams;
  const quantP = { ...floatP } as BlockParams;
  const grads: Partial<Record<keyof BlockParams, Float32Array>> = {};
  for (const [name, field] of FIELDS) {
    const { w, out, in: inDim } = ctx.weights.get(name)!;
    const widths = (ctx.results.get(name)!.payload.data as GroupQuantized).bits;
    lwc.set(name, new Lwc(w, out, inDim, groupWidth(opts.groupSize, inDim), widths, opts.init, opts.binaryScale === 'abs'));
    floatP[field] = w;
    quantP[field] = kernels.slot(`lwc.${field}`, w.length);
    grads[field] = new Float32Array(w.length);
  }
  // targets: the float block on every window of the quantized stream and of the float model's stream
  const D = T * dim;
  const targetOf = (X: Float32Array) => {
    const target = new Float32Array(windows * D);
    for (let s = 0; s < windows; s++) target.set(blockForward(c, floatP, X.subarray(s * D, (s + 1) * D), T, kernels).out, s * D);
    return target;
  };
  const onQuant = targetOf(ctx.inputs);
  const onFloat = ctx.floatInputs ? targetOf(ctx.floatInputs) : undefined;
  if (opts.lossTargets !== 'quant' && onFloat === undefined) throw new RangeError(`SliM-LLM+ lossTargets '${opts.lossTargets}' needs the float stream (BlockRefineContext.floatInputs)`);
  const targets = opts.lossTargets === 'quant' ? [onQuant] : opts.lossTargets === 'float' ? [onFloat!] : [onQuant, onFloat!];
  /** Block output MSE of the current quantP against each target, for the stats. */
  const mse = (tag: string) => {
    const r: Record<string, number> = {};
    for (const [name, t] of [['Quant', onQuant], ['Float', onFloat]] as const) {
      if (t === undefined) continue;
      let sum = 0;
      for (let s = 0; s < windows; s++) {
        const out = blockForward(c, quantP, ctx.inputs.subarray(s * D, (s + 1) * D), T, kernels).out;
        for (let i = 0; i < D; i++) sum += (out[i]! - t[s * D + i]!) ** 2;
      }
      r[`blockMse${tag}${name}`] = sum / (windows * D);
    }
    return r;
  };
  for (const [name, field] of FIELDS) lwc.get(name)!.apply(quantP[field] as Float32Array);
  const before = mse('Init');
  const L = [...lwc.values()];
  const opt = new AdamW(L.flatMap((x) => [x.u, x.l]), { lr: opts.lr, weightDecay: opts.weightDecay });
  const dout = new Float32Array(D);
  let first = NaN;
  let last = NaN;
  for (let e = 0; e < opts.epochs; e++) {
    let sum = 0;
    for (let s = 0; s < windows; s++) {
      for (const [name, field] of FIELDS) lwc.get(name)!.apply(quantP[field] as Float32Array);
      const x = ctx.inputs.subarray(s * D, (s + 1) * D);
      const acts = blockForward(c, quantP, x, T, kernels);
      dout.fill(0);
      for (const target of targets) {
        for (let i = 0; i < D; i++) {
          const d = acts.out[i]! - target[s * D + i]!;
          sum += d * d;
          dout[i]! += (2 * d) / D;
        }
      }
      for (const g of Object.values(grads)) g.fill(0);
      blockBackward(c, quantP, acts, dout, grads, kernels);
      for (const x2 of L) {
        x2.du.fill(0);
        x2.dl.fill(0);
      }
      for (const [name, field] of FIELDS) lwc.get(name)!.apply(quantP[field] as Float32Array, grads[field]);
      opt.step(L.flatMap((x2) => [x2.du, x2.dl]));
    }
    last = sum / (windows * D);
    if (e === 0) first = last;
  }
  const seconds = (performance.now() - t0) / 1000;
  const finished = new Map([...lwc].map(([name, x]) => [name, x.finish()]));
  for (const [name, field] of FIELDS) quantP[field]!.set(finished.get(name)!.dequantized);
  const after = mse('Final'); // the stored grids, as the file computes them
  const out = new Map<string, LayerResult>();
  for (const [name] of FIELDS) {
    const { payload, dequantized } = finished.get(name)!;
    const prev = ctx.results.get(name)!.stats;
    const stats = { ...prev, ...before, ...after, blockMseFirstEpoch: first, blockMseLastEpoch: last, refineSeconds: seconds };
    out.set(name, { payload: { format: 'groups', data: payload }, dequantized, stats });
  }
  return out;
}

export const slimPlus: QuantMethod<SlimPlusOptions> = {
  name: 'slim+',
  describe:
    'SliM-LLM+ (Huang et al. 2024, official slim-llm-plus on OmniQuant): SliM-LLM\'s SBA bit allocation, ' +
    'fixed, with OmniQuant\'s learnable weight clipping γ = σ(u), β = σ(l) per row and group (init σ(4)), ' +
    'trained block by block with AdamW (lr 1e-2, --epochs passes over the calibration windows) to match ' +
    'the float block\'s output (MSE; --loss-targets both as the official scripts\' --aug_loss: the float block on the ' +
    'quantized stream plus on the float model\'s stream; quant or float for one of them); round-to-nearest on the learned grids, no GPTQ.',
  defaults: slimPlusDefaults,
  options: {
    ...slimPlusOptionSchema(),
  },
  requires: { hessian: true, inputs: true, floatStream: true },
  quantizeLayer(W, outDim, inDim, H, opts, ctx: LayerContext): LayerResult {
    checkLayerShape(ctx, W, outDim, inDim, H);
    if (H === null) throw new RangeError(`${ctx.name}: SliM-LLM+ needs the layer Hessian`);
    const t0 = performance.now();
    const g = groupWidth(opts.groupSize, inDim);
    addAbsoluteDamp(H, inDim, opts.absDamp);
    const salience = groupSalience(W, outDim, inDim, inverseFactorDiagonal(ctx.backend, H, inDim, opts.percdamp, ctx.name), g);
    const sba = searchBitAllocation(ctx.backend, W, outDim, inDim, salience, { ...opts, groupSize: g }, ctx.inputs);
    // the untrained starting point (refineBlock replaces it): LWC at its initial clipping
    const { payload, dequantized } = new Lwc(W, outDim, inDim, g, sba.widths, opts.init, opts.binaryScale === 'abs').finish();
    const count = (b: number) => sba.widths.filter((w) => w === b).length;
    return {
      payload: { format: 'groups', data: payload },
      dequantized,
      stats: { groups1: count(1), groups2: count(2), groups3: count(3), groups4: count(4), sbaShift: sba.shift, sbaScore: sba.score, seconds: (performance.now() - t0) / 1000 },
    };
  },
  refineBlock: refineSlimPlusBlock,
};

function slimPlusOptionSchema(): QuantMethod<SlimPlusOptions>['options'] {
  return {
    ...slim.options,
    epochs: { kind: 'int', help: 'SliM-LLM+: passes over the calibration windows per block', min: 0 },
    lr: { kind: 'number', help: 'SliM-LLM+: AdamW learning rate of the clipping parameters', min: 0 },
    weightDecay: { kind: 'number', help: 'SliM-LLM+: AdamW weight decay', min: 0 },
    init: { kind: 'number', help: 'SliM-LLM+: initial u = l (σ(init) is the starting clip factor)' },
    lossTargets: {
      kind: 'string',
      pattern: /^(quant|float|both)$/,
      help: 'SliM-LLM+: train the quantized block to match the float block on the quantized stream (quant), on the float model\'s stream (float, OmniQuant), or both MSEs summed (both, OmniQuant --aug_loss as the official scripts)',
    },
  };
}
