/**
 * The post-training quantization pipeline (docs/methods.md, "block by block"), after the layer
 * loop of gptq.py's llama.py: the calibration windows' residual stream [N·seqLen, dim] goes
 * through the model one transformer block at a time. For each block:
 *   capture: run the block on the stream, accumulating each linear's Hessian H = 2XᵀX/n
 *   quantize: method.quantizeLayer(W, H) for each linear, its payload packed by the formats
 *   propagate: run the block with its fake-quantized linears → the inputs of the next block
 * Only one block's weights and activations are held at a time. The pipeline knows a method
 * only through the QuantMethod interface and a format only through the registry.
 */
import type { Backend } from '../backend/types.js';
import { InputError } from '../io/errors.js';
import { firstNonFinite } from '../io/finite.js';
import { bitsPerWeight, getFormat, packGroups } from '../formats/registry.js';
import type { PackedTensor } from '../formats/types.js';
import type { LlamaConfig } from '../model/config.js';
import { EMBED, expectedShapes, layerTensor, type LinearName, type ModelSource } from '../model/weights.js';
import { quantizeEmbedding, quantizeHead, sourceForLayout, wholeModelLayout, type WholeModelLayout, type WholeModelOptions } from './whole-model.js';
import type { LayerPayload, LayerResult, LayerStats, QuantMethod } from '../quant/method.js';
import { DenseLinear } from '../runtime/dense.js';
import { allocScratch, loadLayerWeights, type LayerWeights } from '../runtime/model.js';
import { asymmetricTarget, crossMoment } from './asymmetric.js';
import { BlockRunner, INPUT_OF } from './block-runner.js';
import type { CalibrationSet } from './calibration.js';

/** gptq.py's order within a block (its module order); the order linears are quantized and reported in. */
export const QUANT_ORDER: readonly LinearName[] = [
  'self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj',
  'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj',
];

/** gptq.py --true-sequential: each group is calibrated after the ones before it are quantized. */
const SEQUENTIAL_GROUPS: readonly (readonly LinearName[])[] = [
  ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'],
  ['self_attn.o_proj'],
  ['mlp.gate_proj', 'mlp.up_proj'],
  ['mlp.down_proj'],
];

const FIELD_OF: Readonly<Record<LinearName, 'wq' | 'wk' | 'wv' | 'wo' | 'w1' | 'w2' | 'w3'>> = {
  'self_attn.q_proj': 'wq', 'self_attn.k_proj': 'wk', 'self_attn.v_proj': 'wv', 'self_attn.o_proj': 'wo',
  'mlp.gate_proj': 'w1', 'mlp.down_proj': 'w2', 'mlp.up_proj': 'w3',
};

/** How each payload family becomes a packed tensor: one row per family, read from the format registry. */
const PACKERS: { [F in LayerPayload['format']]: (data: Extract<LayerPayload, { format: F }>['data']) => PackedTensor } = {
  groups: (data) => packGroups(data),
  codebook: (data) => getFormat('aqlm').pack(data),
  binary: (data) => getFormat('binary-billm').pack(data),
};

export interface PipelineOptions {
  backend: Backend;
  method: QuantMethod<object>;
  /** Already resolved against the method's schema. */
  methodOptions: object;
  /** Required when the method needs a Hessian or inputs; RTN runs without one. */
  calibration?: CalibrationSet;
  /** Re-capture after each sub-group (q/k/v → o → gate/up → down), like gptq.py --true-sequential. */
  trueSequential?: boolean;
  /** Feed each block the float model's activations instead of the quantized blocks' outputs. */
  floatInputs?: boolean;
  /** Continue after a finished prefix: the first block to quantize and its inputs [N·seqLen, dim]. */
  resume?: {
    block: number;
    inputs: Float32Array;
    /** Unquantized tensors that refineBlock replaced in the finished blocks (BlockResult.dense). */
    dense?: ReadonlyMap<string, Float32Array>;
  };
  /**
   * Activation bits the packed file runs with (16 = float). Calibration passes quantize the block
   * linears' inputs to method.calibrationActBits(options, actBits) bits (float when absent).
   */
  actBits?: number;
  /** The embedding and the output head (whole-model.ts); absent = both kept float. */
  whole?: WholeModelOptions;
  onProgress?: (e: PipelineProgress) => void;
  /** After each calibration window a block pass ran (capture and propagation: minutes per block at 7B shapes). */
  onCapture?: (block: number, windowsDone: number, windows: number) => void;
  /**
   * After each block: its packed tensors and the inputs of the next block (scratch that the next
   * block overwrites: save, do not keep). Return false to stop here (the caller checkpoints).
   */
  onBlockDone?: (b: BlockResult) => boolean | void;
  /**
   * Times the pipeline's phases: 'load' (a block's weights), 'capture' (block forwards over the
   * windows, Hessians), 'quantize' (the method, its checks, packing), 'refine', 'embedding', 'head'.
   */
  phases?: PhaseTimer;
}

/** Attributes the work inside `run` to a named phase (wall and CPU time, memory: the caller's choice). */
export interface PhaseTimer {
  time<T>(phase: string, run: () => T): T;
}
const untimed: PhaseTimer = { time: (_phase, run) => run() };

export interface PipelineProgress {
  block: number;
  blocks: number;
  /** The linear just quantized ('lm_head' after the last block). */
  linear: LinearName | 'lm_head';
  /** Linears quantized in this run, of `total` this run will quantize. */
  done: number;
  total: number;
  elapsedSeconds: number;
  /**
   * Estimated from the weights still to quantize (a 768×256 linear costs about 3× a 256×256 one
   * in every method here), not the linear count, which is optimistic after a block's small linears.
   */
  etaSeconds: number;
  /** Weights (out·in) of the linears quantized in this run, of `weightsTotal`. */
  weightsDone?: number;
  weightsTotal?: number;
}

export interface LayerReport {
  name: string;
  outDim: number;
  inDim: number;
  format: string;
  bpw: number;
  stats: LayerStats;
}

export interface BlockResult {
  block: number;
  packed: Map<string, PackedTensor>;
  layers: LayerReport[];
  /**
   * [N·seqLen, dim] the inputs of block + 1 (the final residual stream after the last block);
   * empty when the method uses no calibration data.
   */
  nextInputs: Float32Array;
  /** Unquantized tensors of the block the method replaced (trained norm weights), by canonical name. */
  dense?: Map<string, Float32Array>;
}

export interface PipelineResult {
  /** Packed tensors of the blocks quantized in this run, by canonical name. */
  packed: Map<string, PackedTensor>;
  /**
   * The model the packed tensors belong to: the input, or the method's `prepare`d model (its
   * unquantized tensors, e.g. DBellQuant's rescaled norms, are what the packed file must store).
   */
  source: ModelSource;
  layers: LayerReport[];
  /** Blocks finished so far (all of them unless onBlockDone stopped the run). */
  blocksDone: number;
  /** The packed file's config and where its embedding and head live (untied when a tied source is stored apart). */
  layout: WholeModelLayout;
}

/** The residual stream entering block 0: the token embeddings of every calibration window. */
export function embedWindows(
  source: ModelSource,
  cal: CalibrationSet,
  emb: Float32Array = source.load(EMBED), // [vocab, dim] (the quantized table when the file stores one)
): Float32Array {
  const { dim, vocabSize } = source.config;
  const x = new Float32Array(cal.count * cal.seqLen * dim);
  for (let i = 0; i < cal.tokens.length; i++) {
    const t = cal.tokens[i]!;
    if (t < 0 || t >= vocabSize) throw new RangeError(`calibration token ${t} outside the model's vocabulary of ${vocabSize}`);
    x.set(emb.subarray(t * dim, (t + 1) * dim), i * dim);
  }
  return x;
}

export function quantizeModel(input: ModelSource, opts: PipelineOptions): PipelineResult {
  const { backend, method } = opts;
  // a model-level pre-transform (DBellQuant), recomputed on resume: it is deterministic
  const source = method.prepare && opts.calibration ? method.prepare(input, opts.methodOptions, { backend, calibration: opts.calibration }) : input;
  const c = source.config;
  const first = opts.resume?.block ?? 0;
  const whole = opts.whole ?? {};
  const layout = wholeModelLayout(c, whole);
  const result: PipelineResult = { packed: new Map(), source, layers: [], blocksDone: first, layout };
  // the embedding first (data-free, recomputed on resume): the blocks are calibrated on the table the file stores
  let table: Float32Array | undefined; // [vocab, dim]
  if (whole.embed && !layout.shared) {
    const { r, t } = (opts.phases ?? untimed).time('embedding', () => {
      const r = quantizeEmbedding(source, whole.embed!, backend);
      return { r, t: packPayload(EMBED, r.payload, r.dequantized) };
    });
    result.packed.set(EMBED, t);
    result.layers.push(reportOf(EMBED, c.vocabSize, c.dim, t, r));
    table = r.dequantized;
  }
  // a method that reads no calibration data (RTN) skips every pass over the windows, unless the head needs them
  const methodNeedsData = method.requires.hessian || method.requires.inputs;
  const headNeedsData = whole.head !== undefined && whole.head.method.requires.hessian;
  const needsData = methodNeedsData || headNeedsData;
  let X: Float32Array = new Float32Array(0); // [N·seqLen, dim], updated block by block
  let runner: BlockRunner | undefined;
  let blockNow = first; // the block being quantized (capture progress names it)
  if (needsData) {
    const cal = opts.calibration;
    if (cal === undefined) throw new RangeError(`${methodNeedsData ? method.name : `${whole.head!.method.name} on the head`} needs calibration data`);
    if (cal.seqLen > c.seqLen) throw new RangeError(`calibration windows of ${cal.seqLen} tokens exceed the model's context of ${c.seqLen}`);
    X = opts.resume?.inputs ?? (opts.phases ?? untimed).time('capture', () => embedWindows(source, cal, table));
    if (X.length !== cal.count * cal.seqLen * c.dim) throw new RangeError(`resume inputs have ${X.length} values, expected ${cal.count}×${cal.seqLen}×${c.dim}`);
    // One block's scratch: a KV cache of one layer (the block runs as layer 0 of it).
    const blockConfig: LlamaConfig = { ...c, nLayers: 1 };
    const onWindow = opts.onCapture && ((d: number, t: number) => opts.onCapture!(blockNow, d, t));
    const actBits = opts.actBits ?? 16;
    const calibBits = actBits < 16 && method.calibrationActBits ? method.calibrationActBits(opts.methodOptions, actBits) : 16;
    runner = new BlockRunner(backend, blockConfig, allocScratch(blockConfig, backend, Math.min(cal.seqLen, 512)), cal, onWindow, calibBits);
  }

  // the float model's stream for block-level targets (OmniQuant); on resume, recomputed through the float blocks
  let XF: Float32Array | undefined;
  const alpha = asymmetricAlphaOf(opts);
  if (runner && ((method.requires.floatStream && method.refineBlock) || alpha > 0) && !opts.floatInputs) {
    XF = embedWindows(source, opts.calibration!);
    for (let l = 0; l < first; l++) propagateFloat(source, l, runner, backend, XF);
  }

  // norm weights a method's refineBlock trained: the following blocks and the packed file use them
  const dense = new Map<string, Float32Array>(opts.resume?.dense ?? []);
  if (dense.size > 0 || method.refineBlock) result.source = withTensors(source, dense);
  const total = (c.nLayers - first) * QUANT_ORDER.length + (whole.head ? 1 : 0);
  const t0 = performance.now();
  let done = 0;
  const shapes = expectedShapes(c);
  const size = (linear: LinearName) => shapes.get(layerTensor(0, linear))!.reduce((a, b) => a * b, 1);
  const headWeights = whole.head ? c.vocabSize * c.dim : 0;
  const weightsTotal = (c.nLayers - first) * QUANT_ORDER.reduce((a, x) => a + size(x), 0) + headWeights;
  let weightsDone = 0;
  const progress = (block: number, linear: LinearName | 'lm_head', weights: number) => {
    done++;
    weightsDone += weights;
    const elapsed = (performance.now() - t0) / 1000;
    const etaSeconds = (elapsed * (weightsTotal - weightsDone)) / weightsDone;
    opts.onProgress?.({ block, blocks: c.nLayers, linear, done, total, elapsedSeconds: elapsed, etaSeconds, weightsDone, weightsTotal });
  };
  for (let l = first; l < c.nLayers; l++) {
    blockNow = l;
    const block = quantizeBlock(source, l, X, XF, runner, methodNeedsData, opts, (linear) => progress(l, linear, size(linear)));
    for (const [name, t] of block.packed) result.packed.set(name, t);
    for (const [name, t] of block.dense ?? []) dense.set(name, t);
    result.layers.push(...block.layers);
    result.blocksDone = l + 1;
    if (opts.onBlockDone?.(block) === false) break;
  }
  runner?.dispose();
  if (whole.head && result.blocksDone === c.nLayers) {
    // X is now the residual stream after the last block: the final norm of it is the head's input
    const { r, t } = (opts.phases ?? untimed).time('head', () => {
      const r = quantizeHead(result.source, whole.head!, X, backend);
      return { r, t: packPayload(layout.headTensor, r.payload, r.dequantized) };
    });
    result.packed.set(layout.headTensor, t);
    result.layers.push(reportOf(layout.headTensor, c.vocabSize, c.dim, t, r));
    progress(c.nLayers - 1, 'lm_head', headWeights);
  }
  result.source = sourceForLayout(result.source, layout);
  return result;
}

function reportOf(name: string, out: number, inDim: number, t: PackedTensor, r: LayerResult): LayerReport {
  return { name, outDim: out, inDim, format: t.format, bpw: bitsPerWeight(getFormat(t.format), out, inDim, t.params), stats: r.stats };
}

function quantizeBlock(
  source: ModelSource,
  l: number,
  X: Float32Array, // [N·seqLen, dim]
  XF: Float32Array | undefined, // [N·seqLen, dim] the float model's stream, when the method requires it
  runner: BlockRunner | undefined,
  methodNeedsData: boolean,
  opts: PipelineOptions,
  quantized: (linear: LinearName) => void,
): BlockResult {
  const dense = new Map<string, Float32Array>();
  const { backend, method } = opts;
  const clock = opts.phases ?? untimed;
  // the float block; its weight matrices kept for the method
  const W = new Map<string, { w: Float32Array; out: number; in: number }>();
  const float = clock.time('load', () => loadLayerWeights(source, l, (name, src) => {
    const info = src.tensors().find((t) => t.name === name);
    if (info === undefined || info.shape.length !== 2) throw new RangeError(`${src.name}: no 2-D tensor ${name}`);
    const [out, inDim] = info.shape as [number, number];
    const w = src.load(name);
    W.set(name, { w, out, in: inDim });
    return new DenseLinear(backend, w, out, inDim);
  }));
  const current: LayerWeights = { ...float };
  const packed = new Map<string, PackedTensor>();
  const layers: LayerReport[] = [];
  const groups = opts.trueSequential ? SEQUENTIAL_GROUPS : [QUANT_ORDER];
  // float inputs without re-capture: the one capture pass already yields the float block's output
  // (not when a block-level step still needs the block's inputs)
  const captureIsOutput = methodNeedsData && opts.floatInputs === true && groups.length === 1 && method.refineBlock === undefined;
  const floatPassAdvances = groups.length === 1 && !method.requires.floatStream;
  const results = new Map<string, LayerResult>();

  for (const group of groups) {
    // a data-free method run only to carry the stream to the head captures nothing
    // asymmetric targets: the linears' inputs in both models; the float pass also carries XF to
    // the next block when it is the block's only pass and no block step needs XF unchanged
    const asym = asymmetricAlphaOf(opts) > 0 && XF !== undefined && runner !== undefined && method.requires.hessian;
    const capture = methodNeedsData ? clock.time('capture', () => runner?.capture(current, X, group, asym ? { ...method.requires, inputs: true } : method.requires, captureIsOutput)) : undefined;
    const floatCapture = asym ? clock.time('capture', () => runner!.capture(float, XF!, group, { hessian: false, inputs: true }, floatPassAdvances)) : undefined;
    const crosses = new Map<string, Float64Array>();
    for (const linear of group) {
      const name = layerTensor(l, linear);
      const { w, out, in: inDim } = W.get(name)!;
      const cap = capture?.get(INPUT_OF[linear]);
      let H: Float64Array | null = null;
      if (method.requires.hessian) {
        H = backend.alloc64?.(inDim * inDim) ?? new Float64Array(inDim * inDim);
        H.set(cap!.hessian!.h); // the method may overwrite its H; siblings need the original
      }
      const inputs = method.requires.inputs ? { x: cap!.inputs!, rows: runner!.rows } : undefined;
      // the method, its checks and the packing (with its bit-for-bit check) are the 'quantize' phase
      clock.time('quantize', () => checkQuantizable(source.name, name, w, H));
      let target = w;
      if (floatCapture && H !== null) {
        const id = INPUT_OF[linear];
        let C = crosses.get(id);
        if (C === undefined) {
          C = clock.time('capture', () => crossMoment(backend, floatCapture.get(id)!.inputs!, cap!.inputs!, runner!.rows, inDim));
          crosses.set(id, C);
        }
        target = clock.time('quantize', () => asymmetricTarget(backend, w, out, inDim, H!, C!, asymmetricAlphaOf(opts)));
      }
      const { r, t } = clock.time('quantize', () => {
        const r = method.quantizeLayer(target, out, inDim, H, opts.methodOptions, { backend, name, inputs });
        if (H !== null) backend.free?.(H);
        checkQuantizedFinite(source.name, name, w, r.dequantized);
        return { r, t: packPayload(name, r.payload, r.dequantized) };
      });
      packed.set(name, t);
      const bpw = bitsPerWeight(getFormat(t.format), out, inDim, t.params);
      layers.push({ name, outDim: out, inDim, format: t.format, bpw, stats: r.stats });
      current[FIELD_OF[linear]] = new DenseLinear(backend, r.dequantized, out, inDim);
      results.set(linear, r);
      quantized(linear);
    }
    if (capture) for (const cap of capture.values()) if (cap.hessian) backend.free?.(cap.hessian.h);
  }

  if (method.refineBlock && runner && opts.calibration) {
    const weights = new Map(QUANT_ORDER.map((linear) => [linear as string, W.get(layerTensor(l, linear))!]));
    const cal = opts.calibration;
    let norms: { attnNorm?: Float32Array; ffnNorm?: Float32Array } = {};
    const refined = clock.time('refine', () => method.refineBlock!(
      {
        backend, config: source.config, block: l, inputs: X, windows: cal.count, seqLen: cal.seqLen, norms: { attnNorm: float.attnNorm, ffnNorm: float.ffnNorm }, biases: { bq: float.bq, bk: float.bk, bv: float.bv, bo: float.bo }, weights, results, floatInputs: opts.floatInputs ? X : XF,
        setNorms: (n) => { norms = { ...norms, ...n }; },
      },
      opts.methodOptions,
    ));
    for (const [linear, r] of refined) {
      const name = layerTensor(l, linear as LinearName);
      const { out, in: inDim } = W.get(name)!;
      const t = packPayload(name, r.payload, r.dequantized);
      packed.set(name, t);
      const i = layers.findIndex((x) => x.name === name);
      layers[i] = { name, outDim: out, inDim, format: t.format, bpw: bitsPerWeight(getFormat(t.format), out, inDim, t.params), stats: r.stats };
      current[FIELD_OF[linear as LinearName]].dispose?.();
      current[FIELD_OF[linear as LinearName]] = new DenseLinear(backend, r.dequantized, out, inDim);
    }
    for (const [key, tensor] of [['attnNorm', 'input_layernorm'], ['ffnNorm', 'post_attention_layernorm']] as const) {
      const w = norms[key];
      if (w === undefined) continue;
      if (!(w.length === source.config.dim && w.every(Number.isFinite))) throw new RangeError(`${method.name}: refined ${tensor} of block ${l} is not ${source.config.dim} finite values`);
      current[key] = w;
      dense.set(layerTensor(l, tensor), w);
    }
  }

  // the inputs of the next block
  clock.time('capture', () => {
    if (!captureIsOutput) runner?.propagate(opts.floatInputs ? float : current, X);
    if (XF && !(floatPassAdvances && asymmetricAlphaOf(opts) > 0 && method.requires.hessian)) runner?.propagate(float, XF);
  });
  for (const linear of QUANT_ORDER) {
    const f = FIELD_OF[linear];
    float[f].dispose?.();
    if (current[f] !== float[f]) current[f].dispose?.();
  }
  return { block: l, packed, layers, nextInputs: X, ...(dense.size > 0 ? { dense } : {}) };
}

/** The method's asymmetric-target blend (0: off; always off on float inputs, where X̃ = X). */
function asymmetricAlphaOf(opts: PipelineOptions): number {
  if (opts.floatInputs) return 0;
  const a = opts.method.asymmetricAlpha?.(opts.methodOptions) ?? 0;
  return Number.isFinite(a) && a > 0 ? Math.min(1, a) : 0;
}

/** XF ← float block l (XF): the float stream of the blocks a resumed run skips. */
function propagateFloat(source: ModelSource, l: number, runner: BlockRunner, backend: Backend, XF: Float32Array): void {
  const float = loadLayerWeights(source, l, (name, src) => {
    const [out, inDim] = src.tensors().find((t) => t.name === name)!.shape as [number, number];
    return new DenseLinear(backend, src.load(name), out, inDim);
  });
  runner.propagate(float, XF);
  for (const linear of QUANT_ORDER) float[FIELD_OF[linear]].dispose?.();
}

/** The source with some unquantized tensors replaced (read lazily, so `replaced` may still grow). */
function withTensors(source: ModelSource, replaced: ReadonlyMap<string, Float32Array>): ModelSource {
  return {
    name: source.name,
    config: source.config,
    tensors: () => source.tensors(),
    load: (name) => replaced.get(name)?.slice() ?? source.load(name),
  };
}

/**
 * Weights beyond this magnitude are a broken file, not a model (trained weights stay below
 * ~1e3): their grids and GPTQ's error updates overflow float32. Refused before quantizing.
 */
const MAX_QUANTIZABLE = 1e15;

function checkQuantizable(file: string, name: string, w: Float32Array, H: Float64Array | null): void {
  let maxAbs = 0;
  for (let i = 0; i < w.length; i++) maxAbs = Math.max(maxAbs, Math.abs(w[i]!));
  if (maxAbs > MAX_QUANTIZABLE) throw new InputError(file, `tensor ${name} has weights up to |w| = ${maxAbs.toExponential(2)}, beyond ${MAX_QUANTIZABLE.toExponential(0)}: not a trained model's weights (corrupt file?)`);
  if (H !== null && firstNonFinite(H) >= 0) throw new InputError(file, `the calibration activations entering ${name} overflow float32: the weights before it are out of range (corrupt file?)`);
}

/**
 * Finite weights near float32's limit (|w| ~ 1e38) overflow a quantization grid (max − min is
 * infinite) or the calibration activations; the result is an input problem of the model file,
 * named as such, not a bug.
 */
function checkQuantizedFinite(file: string, name: string, w: Float32Array, dequantized: Float32Array): void {
  if (firstNonFinite(dequantized) < 0) return;
  let maxAbs = 0;
  for (let i = 0; i < w.length; i++) maxAbs = Math.max(maxAbs, Math.abs(w[i]!));
  throw new InputError(file, `quantizing tensor ${name} gives non-finite values: its weights reach |w| = ${maxAbs.toExponential(2)}, or the activations feeding it overflow float32`);
}

/**
 * Packs a payload with the format registry and checks the promise of LayerResult: the packed
 * tensor dequantizes bit for bit to the weights the next block is calibrated with, so the
 * packed file computes what the pipeline's fake-quantized model computes.
 */
function packPayload(name: string, payload: LayerPayload, dequantized: Float32Array): PackedTensor {
  // TypeScript cannot correlate the union's format with its data; PACKERS' type guarantees the match
  const t = (PACKERS[payload.format] as (data: LayerPayload['data']) => PackedTensor)(payload.data);
  const back = getFormat(t.format).dequantize(t);
  for (let i = 0; i < back.length; i++) {
    if (back[i] !== dequantized[i] && !(Number.isNaN(back[i]) && Number.isNaN(dequantized[i]))) {
      throw new Error(`${name}: packed ${t.format} weight ${i} dequantizes to ${back[i]}, the method's fake-quantized value is ${dequantized[i]}`);
    }
  }
  return t;
}
