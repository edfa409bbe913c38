/**
 * AQLM (Egiazarian et al. 2024, "Extreme Compression of Large Language Models via Additive
 * Quantization", arXiv:2401.06118, §3 and Algorithm 1). Each group of g consecutive weights of a
 * row is the sum of M codewords (one per codebook of 2^B vectors) times a per-row scale:
 *   ŵ[r, group j] = s_r · Σ_m C_m[b_{r,j,m}]          (scheme "MxB", e.g. 2x8, 1x16)
 * and C, s, b are fitted to minimise the layer's output error on calibration data
 *   L = ‖(Ŵ − W) Xᵀ‖² = tr((Ŵ − W) XᵀX (Ŵ − W)ᵀ).
 * Algorithm 1: s_r = ‖w_r‖; residual k-means of the normalised groups initialises C and b
 * (aqlm-kmeans.ts); then epochs alternate (a) Adam on C and s with b fixed and (b) beam search
 * on b with C and s fixed (aqlm-beam.ts), until the relative improvement of L in an epoch falls
 * below a tolerance. Defaults follow the official code (main.py): Adam lr 1e-4, β = (0, 0.95),
 * 100 steps per epoch, tolerance 0.01, row-norm scales, fp16 codebooks and scales.
 * Codebooks and scales are rounded to float16 before every beam search, so the final codes are
 * chosen for exactly the values the packed file stores.
 */
import type { Backend } from '../backend/types.js';
import type { CodebookQuantized } from '../formats/codebook.js';
import { CODEBOOK_LIMITS } from '../formats/codebook.js';
import { roundToF16 } from '../formats/quantized.js';
import { UsageError } from '../io/errors.js';
import { checkLayerShape, type LayerContext, type LayerResult, type QuantMethod } from '../quant/method.js';
import { beamSearchCodes, reconstruct, rowLosses, sumCodewords } from './aqlm-beam.js';
import { refineAqlmBlock, type AqlmFinetuneOptions } from './aqlm-finetune.js';
import { globalFinetune, type AqlmGlobalOptions } from './aqlm-global.js';
import { residualKmeans } from './aqlm-kmeans.js';
import { realRows, virtualRows } from './aqlm-groups.js';
import { QK_PROJ } from '../io/hf.js';
import { mulberry32 as rng } from '../quant/random.js';

export interface AqlmOptions extends AqlmFinetuneOptions, AqlmGlobalOptions {
  /** "MxB": M codebooks of 2^B codewords (1x16, 2x8, 1x8, 4x8, 2x4, …). */
  scheme: string;
  /** g: input columns per codeword. */
  groupSize: number;
  /** og: output rows per codeword and scale (AQLM's out_group_size; q/k groups pair up, il = 2). */
  outGroupSize: number;
  /** Hypotheses kept per row in the code search. */
  beamSize: number;
  /** Alternations of (Adam on codebooks and scales, beam search on codes) at most. */
  maxEpochs: number;
  /** Stop when an epoch improves L by less than this fraction. */
  relativeTolerance: number;
  /** Adam steps on codebooks and scales per epoch. */
  stepsPerEpoch: number;
  lr: number;
  /** Lloyd iterations of the k-means initialisation at most. */
  kmeansIters: number;
  /** Seed of the k-means initialisation (and of the shuffled beam order). */
  initSeed: number;
  /**
   * Precision of codebooks and scales while the epochs run: 'f16' rounds them before every beam
   * search (codes chosen for the stored values); 'f32' keeps float32 masters throughout, as the
   * official code, and rounds only when storing.
   */
  masterPrecision: 'f16' | 'f32';
  /** 'adam' or 'amsgrad' (the official engine: torch.optim.Adam(amsgrad=True)): v̂ never decreases. */
  adam: 'adam' | 'amsgrad';
  /** Beam search order: 'natural', or 'shuffled' anew each epoch as the official engine (dim_rng). */
  beamOrder: 'natural' | 'shuffled';
  /** k-means empty clusters: 'reseed' with the worst-served point, or 'keep' their centroid (official fit_kmeans). */
  kmeansEmpty: 'reseed' | 'keep';
  /**
   * Blend α of the asymmetric calibration target (pipeline/asymmetric.ts): each linear is fitted
   * to W + α(W* − W), W* undoing the error the earlier quantized blocks left in its inputs;
   * 0 = the layer's own weights on the quantized inputs (the official objective).
   */
  asymmetric: number;
}

export const aqlmDefaults: AqlmOptions = {
  scheme: '2x8',
  groupSize: 8,
  outGroupSize: 1,
  beamSize: 8,
  maxEpochs: 20,
  relativeTolerance: 0.01,
  stepsPerEpoch: 100,
  lr: 1e-4,
  kmeansIters: 25,
  initSeed: 0,
  masterPrecision: 'f16',
  adam: 'adam',
  beamOrder: 'natural',
  kmeansEmpty: 'reseed',
  asymmetric: 0.5,
  finetuneEpochs: 0,
  finetuneLr: 1e-3,
  finetuneHoldout: 0.1,
  finetuneWindows: 0,
  globalFinetuneEpochs: 0,
  globalFinetuneLr: 1e-3,
};

/** Adam's β2 and ε (β1 = 0 as in the official AQLM recipe: no momentum). */
const BETA2 = 0.95;
const ADAM_EPS = 1e-8;

export function parseScheme(scheme: string): { M: number; B: number } {
  const m = /^(\d+)x(\d+)$/.exec(scheme);
  const M = m ? Number(m[1]) : NaN;
  const B = m ? Number(m[2]) : NaN;
  if (!(M >= 1 && M <= CODEBOOK_LIMITS.maxM && B >= 1 && B <= CODEBOOK_LIMITS.maxB)) {
    throw new UsageError(`aqlm: scheme '${scheme}' is not MxB with M in 1..${CODEBOOK_LIMITS.maxM} and B in 1..${CODEBOOK_LIMITS.maxB} (e.g. 2x8, 1x16)`);
  }
  return { M, B };
}

export function quantizeAqlmLayer(
  W: Float32Array, // [out, in]
  outDim: number,
  inDim: number,
  H64: Float64Array, // [in, in] ∝ XᵀX (the pipeline's 2XᵀX/n)
  opts: AqlmOptions,
  backend: Backend,
  name = 'layer',
): LayerResult {
  const og = opts.outGroupSize ?? 1;
  if (og !== 1) return outGroupLayer(W, outDim, inDim, H64, opts, backend, name, og);
  const t0 = performance.now();
  const { M, B } = parseScheme(opts.scheme);
  const K = 2 ** B;
  const g = opts.groupSize;
  if (!(Number.isInteger(g) && g >= 1 && g <= CODEBOOK_LIMITS.maxG)) throw new UsageError(`aqlm: groupSize ${g} is not in 1..${CODEBOOK_LIMITS.maxG}`);
  if (inDim % g !== 0) throw new UsageError(`${name}: aqlm groupSize ${g} does not divide its ${inDim} input columns`);
  const nG = inDim / g;
  const n = outDim * inDim;

  const H = backend.alloc(inDim * inDim); // [in, in] float32 copy for the backend's matmuls
  for (let i = 0; i < inDim * inDim; i++) H[i] = H64[i]!;
  const What = backend.alloc(n); // [out, in] Ŵ, then Ŵ − W
  const G = backend.alloc(n); // [out, in] (Ŵ − W)·H
  const rowLoss = new Float64Array(outDim);

  /** L = Σ_r (ŵ_r − w_r) H (ŵ_r − w_r)ᵀ for the given parameters; leaves Ŵ − W in What and its H-product in G. */
  const lossOf = (codes: Uint16Array, codebooks: Float32Array, scale: Float32Array): number => {
    reconstruct(What, codes, codebooks, scale, outDim, inDim, M, K, g);
    for (let i = 0; i < n; i++) What[i] = What[i]! - W[i]!;
    rowLosses(backend, What, H, G, outDim, inDim, rowLoss);
    return rowLoss.reduce((a, b) => a + b, 0);
  };

  try {
    // 1. scales s_r = ‖w_r‖ and residual k-means on the normalised groups
    const scale = new Float32Array(outDim);
    const groups = new Float32Array(n); // [out·nG, g] w_r / s_r
    for (let r = 0; r < outDim; r++) {
      let ss = 0;
      for (let c = 0; c < inDim; c++) ss += W[r * inDim + c]! ** 2;
      const s = Math.sqrt(ss);
      scale[r] = s;
      const inv = s > 0 ? 1 / s : 0;
      for (let c = 0; c < inDim; c++) groups[r * inDim + c] = W[r * inDim + c]! * inv;
    }
    const tInit = performance.now();
    const init = residualKmeans(groups, outDim * nG, g, M, K, { iters: opts.kmeansIters, rand: rng(opts.initSeed), backend, keepEmpty: opts.kmeansEmpty === 'keep' });
    const codebooks = init.codebooks; // [M, K, g] float32 master copy (Adam's parameters)
    const codes = init.codes; // [out, nG, M]
    const cb16 = new Float32Array(codebooks.length);
    const s16 = new Float32Array(outDim);
    const round = () => {
      for (let i = 0; i < codebooks.length; i++) cb16[i] = roundToF16(codebooks[i]!);
      for (let r = 0; r < outDim; r++) s16[r] = roundToF16(scale[r]!);
    };
    // what the beam search and the epoch losses see: the stored (rounded) values or the float32 masters
    const f32 = opts.masterPrecision === 'f32';
    const cbSearch = f32 ? codebooks : cb16;
    const sSearch = f32 ? scale : s16;
    const beamRand = opts.beamOrder === 'shuffled' ? rng((opts.initSeed ^ 0x9e3779b9) >>> 0) : undefined;
    round();
    const initSeconds = (performance.now() - tInit) / 1000;
    const initLoss = lossOf(codes, cbSearch, sSearch);

    // 2. alternate Adam on (C, s) and beam search on b
    const ams = opts.adam === 'amsgrad';
    const adamState = (n: number) => ({ v: new Float64Array(n), vmax: ams ? new Float64Array(n) : null, grad: new Float64Array(n) });
    const adamC = adamState(codebooks.length);
    const adamS = adamState(outDim);
    let step = 0;
    let loss = initLoss;
    let epochs = 0;
    let adamSeconds = 0;
    let beamSeconds = 0;
    const A = new Float32Array(n); // [out, in] Σ_m C_m[b] = Ŵ / s, per Adam step
    for (let epoch = 0; epoch < opts.maxEpochs; epoch++) {
      const ta = performance.now();
      for (let it = 0; it < opts.stepsPerEpoch; it++) {
        // Ŵ − W (the format's float32 arithmetic), then G = (Ŵ − W) H: the step's one matmul
        sumCodewords(A, codes, codebooks, outDim, inDim, M, K, g);
        for (let r = 0; r < outDim; r++) {
          const s = scale[r]!;
          for (let o = r * inDim; o < (r + 1) * inDim; o++) What[o] = Math.fround(s * A[o]!) - W[o]!;
        }
        backend.matmul(G, What, H, outDim, inDim, inDim);
        // dL/dŴ = 2G; chain rule through ŵ_rj = s_r Σ_m C_m[b]
        adamC.grad.fill(0);
        for (let r = 0; r < outDim; r++) {
          const s = scale[r]!;
          let gs = 0;
          for (let j = 0; j < nG; j++) {
            const o = r * inDim + j * g;
            const b = (r * nG + j) * M;
            for (let m = 0; m < M; m++) {
              const c = (m * K + codes[b + m]!) * g;
              for (let t = 0; t < g; t++) adamC.grad[c + t] += 2 * s * G[o + t]!;
            }
            for (let t = 0; t < g; t++) gs += 2 * G[o + t]! * A[o + t]!;
          }
          adamS.grad[r] = gs;
        }
        step++;
        adamStep(codebooks, adamC, opts.lr, step);
        adamStep(scale, adamS, opts.lr, step);
      }
      round();
      const tb = performance.now();
      adamSeconds += (tb - ta) / 1000;
      beamSearchCodes({ backend, outDim, inDim, M, K, g, W, H, codebooks: cbSearch, scale: sSearch, codes, beamSize: opts.beamSize, rand: beamRand });
      beamSeconds += (performance.now() - tb) / 1000;
      const next = lossOf(codes, cbSearch, sSearch);
      epochs++;
      const improvement = (loss - next) / loss;
      loss = next;
      if (!(improvement >= opts.relativeTolerance)) break; // also stops on a zero or non-finite loss
    }

    round();
    // the stored values' loss (with f16 masters it is the last epoch's)
    if (f32) loss = lossOf(codes, cb16, s16);
    const dequantized = new Float32Array(n);
    reconstruct(dequantized, codes, cb16, s16, outDim, inDim, M, K, g);
    const data: CodebookQuantized = { outDim, inDim, M, B, g, codes, codebooks: cb16, scale: s16 };
    return {
      payload: { format: 'codebook', data },
      dequantized,
      // ½ as GPTQ's: with H = 2XᵀX/n this is the mean over calibration rows of ‖(Ŵ − W)x‖²
      stats: {
        loss: loss / 2,
        initLoss: initLoss / 2,
        epochs,
        initSeconds,
        adamSeconds,
        beamSeconds,
        seconds: (performance.now() - t0) / 1000,
      },
    };
  } finally {
    for (const buf of [H, What, G]) backend.free?.(buf);
  }
}

/**
 * og > 1: the og = 1 method on virtual rows (aqlm-groups.ts), its payload read as og rows per
 * codeword. q/k groups take every other row (il = 2): in bitcrush's interleaved RoPE order those
 * are og consecutive rows of Hugging Face's rotate-half order, so the file exports to AQLM.
 */
function outGroupLayer(W: Float32Array, outDim: number, inDim: number, H64: Float64Array, opts: AqlmOptions, backend: Backend, name: string, og: number): LayerResult {
  const g = opts.groupSize;
  if (!(Number.isInteger(og) && og >= 1 && og * g <= CODEBOOK_LIMITS.maxG)) throw new UsageError(`aqlm: outGroupSize ${og} × groupSize ${g} exceeds ${CODEBOOK_LIMITS.maxG} weights per codeword`);
  if (opts.finetuneEpochs > 0 || opts.globalFinetuneEpochs > 0) throw new UsageError('aqlm: block and global fine-tuning train codewords of one row: use outGroupSize 1 with them');
  const il = QK_PROJ.test(name) ? 2 : 1;
  if (outDim % (og * il) !== 0 || inDim % g !== 0) throw new UsageError(`${name}: aqlm outGroupSize ${og}${il > 1 ? ' (q/k: in pairs)' : ''} and groupSize ${g} do not divide [${outDim}, ${inDim}]`);
  const v = virtualRows(W, H64, outDim, inDim, g, og, il);
  const r = quantizeAqlmLayer(v.W, outDim / og, og * inDim, v.H, { ...opts, outGroupSize: 1, groupSize: og * g }, backend, name);
  const q = (r.payload as { data: CodebookQuantized }).data;
  const data: CodebookQuantized = { ...q, outDim, inDim, g, og, ...(il > 1 ? { il } : {}) };
  return { payload: { format: 'codebook', data }, dequantized: realRows(r.dequantized, outDim, inDim, g, og, il), stats: r.stats };
}

/** One Adam step with β1 = 0: p −= lr · grad / (√v̂ + ε), v̂ the bias-corrected EMA of grad² (AMSGrad: its running max). */
function adamStep(p: Float32Array, s: { v: Float64Array; vmax: Float64Array | null; grad: Float64Array }, lr: number, step: number): void {
  const correction = 1 - BETA2 ** step;
  const { v, vmax } = s;
  for (let i = 0; i < p.length; i++) {
    const gr = s.grad[i]!;
    v[i] = BETA2 * v[i]! + (1 - BETA2) * gr * gr;
    // AMSGrad: the denominator uses the largest v seen so far (torch's max_exp_avg_sq)
    let d = v[i]!;
    if (vmax !== null) d = vmax[i] = Math.max(vmax[i]!, d);
    p[i] -= (lr * gr) / (Math.sqrt(d / correction) + ADAM_EPS);
  }
}

export const aqlm: QuantMethod<AqlmOptions> = {
  name: 'aqlm',
  describe:
    'AQLM (Egiazarian et al. 2024, Algorithm 1): each group of g weights is a sum of M codewords ' +
    'from M codebooks of 2^B entries ("MxB"), times a per-row scale; residual k-means init, then ' +
    'epochs of Adam on codebooks and scales (lr 1e-4, β = (0, 0.95)) and beam search on the codes, ' +
    'both on the XᵀX-weighted output error, until an epoch gains less than relativeTolerance. ' +
    'Each linear fits the asymmetric target W + a(W* − W) (--asymmetric, default 0.5; 0 = official): W* maps the ' +
    'quantized model\'s inputs to the float model\'s outputs. ' +
    'Optional block fine-tuning (§3.4, --finetune-epochs, off by default): codes fixed, Adam ' +
    '(lr 1e-3, β = (0.9, 0.95)) on every linear\'s codebooks and scales and the block\'s norms against the float block\'s output ' +
    '(MSE), early stopping on held-out calibration windows. Optional global fine-tuning (--global-finetune-epochs, off by default): ' +
    'after the last block, codebooks, scales and all norms trained end to end on the KL to the float model\'s next-token distribution (codes fixed). ' +
    'Bits per weight count codes, float16 codebooks and scales.',
  defaults: aqlmDefaults,
  options: {
    scheme: { kind: 'string', help: 'MxB: M codebooks of 2^B codewords (1x16, 2x8, 1x8, 4x8, 2x4, …)', pattern: /^\d+x\d+$/ },
    groupSize: { kind: 'int', help: 'input columns per codeword (AQLM g)', min: 1, max: CODEBOOK_LIMITS.maxG },
    outGroupSize: { kind: 'int', help: 'output rows per codeword and scale (AQLM out_group_size; og·g ≤ 64; no fine-tuning with og > 1)', min: 1, max: CODEBOOK_LIMITS.maxOg },
    beamSize: { kind: 'int', help: 'code hypotheses kept per row in the beam search', min: 1, max: 64 },
    maxEpochs: { kind: 'int', help: 'alternations of codebook training and code search at most', min: 0, max: 10000 },
    relativeTolerance: { kind: 'number', help: 'stop when an epoch improves the loss by less than this fraction', min: 0, max: 1 },
    stepsPerEpoch: { kind: 'int', help: 'Adam steps on codebooks and scales per epoch', min: 0, max: 100000 },
    lr: { kind: 'number', help: 'Adam learning rate of codebooks and scales', min: 0, max: 1 },
    kmeansIters: { kind: 'int', help: 'k-means iterations of the initialisation at most', min: 1, max: 10000 },
    initSeed: { kind: 'int', help: 'seed of the k-means initialisation (and of the shuffled beam order)', min: 0, max: 2 ** 32 - 1 },
    masterPrecision: { kind: 'string', help: 'codebooks and scales during the epochs: f16 (rounded before every beam search) or f32 (official; rounded only when stored)', pattern: /^(f16|f32)$/ },
    adam: { kind: 'string', help: 'optimizer of codebooks and scales: adam or amsgrad (official)', pattern: /^(adam|amsgrad)$/ },
    beamOrder: { kind: 'string', help: 'beam search order of groups and codebooks: natural or shuffled (official, a new order each epoch)', pattern: /^(natural|shuffled)$/ },
    asymmetric: { kind: 'number', help: 'blend of the asymmetric calibration target: fit W + a(W* − W), W* the weights that map the quantized model\'s inputs to the float model\'s outputs (0 = official: W on the quantized inputs)', min: 0, max: 1 },
    kmeansEmpty: { kind: 'string', help: 'k-means empty clusters: reseed (worst-served point) or keep (official)', pattern: /^(reseed|keep)$/ },
    finetuneEpochs: { kind: 'int', help: 'block fine-tuning of codebooks, scales and norms: passes over the calibration windows at most (0 = off)', min: 0, max: 10000 },
    finetuneLr: { kind: 'number', help: 'block fine-tuning: Adam learning rate of codebooks, scales and norms', min: 0, max: 1 },
    finetuneHoldout: { kind: 'number', help: 'block fine-tuning: fraction of calibration windows held out for early stopping', min: 0, max: 0.9 },
    globalFinetuneEpochs: { kind: 'int', help: 'global fine-tuning after all blocks: codebooks, scales and norms trained end to end on the KL to the float model\'s next-token distribution, codes fixed; passes over the calibration windows at most (0 = off)', min: 0, max: 10000 },
    globalFinetuneLr: { kind: 'number', help: 'global fine-tuning: Adam learning rate (β = (0.9, 0.95))', min: 0, max: 1 },
    finetuneWindows: { kind: 'int', help: 'block fine-tuning: use the first N calibration windows only (0 = all)', min: 0, max: 1000000 },
  },
  requires: { hessian: true, inputs: false },
  quantizeLayer(W: Float32Array, outDim: number, inDim: number, H: Float64Array | null, opts: AqlmOptions, ctx: LayerContext): LayerResult {
    checkLayerShape(ctx, W, outDim, inDim, H);
    if (H === null) throw new RangeError(`${ctx.name}: AQLM needs the layer Hessian`);
    return quantizeAqlmLayer(W, outDim, inDim, H, opts, ctx.backend, ctx.name);
  },
  asymmetricAlpha: (opts: AqlmOptions) => opts.asymmetric,
  refineBlock: refineAqlmBlock,
  refineModel: globalFinetune,
};
