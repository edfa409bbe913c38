/**
 * The layer-level contract every quantization method implements. The pipeline (calibration,
 * block-by-block capture) knows nothing about a method beyond this: it looks the method up in
 * the registry, gives it one linear's weights, Hessian and (if asked) inputs, and gets back a
 * payload for the packed formats plus the fake-quantized weights it runs the next block with.
 */
import type { Backend } from '../backend/types.js';
import { UsageError } from '../io/errors.js';
import type { GroupQuantized } from '../formats/quantized.js';
import type { CodebookQuantized } from '../formats/codebook.js';
import type { BinaryQuantized } from '../formats/binary.js';
import type { ModelSource } from '../model/weights.js';
import type { CalibrationSet } from '../pipeline/calibration.js';

/**
 * What a method hands to the formats, by format family. Grid methods (RTN, GPTQ, SliM-LLM)
 * produce `groups`; codebook methods (AQLM) and binarization methods (BiLLM, DBellQuant) add
 * their own member here, next to the format that packs it.
 */
export interface LayerPayloads {
  groups: GroupQuantized;
  codebook: CodebookQuantized;
  binary: BinaryQuantized;
}

/** Discriminated union over LayerPayloads: `{ format: 'groups', data: GroupQuantized } | …`. */
export type LayerPayload = { [F in keyof LayerPayloads]: { format: F; data: LayerPayloads[F] } }[keyof LayerPayloads];

/** Numbers a method reports about one layer (printed by the pipeline, never interpreted). */
export interface LayerStats {
  /**
   * The method's own estimate of the output error it introduced, in units of H:
   * ½·Σ_rows (ŵ − w)·H·(ŵ − w)ᵀ ≈ mean over calibration rows of ‖(Ŵ − W)x‖² (GPTQ's `error`).
   */
  loss?: number;
  /** Wall-clock seconds spent in quantizeLayer. */
  seconds?: number;
  [key: string]: number | undefined;
}

export interface LayerResult {
  payload: LayerPayload;
  /**
   * [out, in] the fake-quantized weights, original column order. Must equal the payload's
   * reference dequantization bit for bit, so a packed file behaves exactly like the model the
   * pipeline calibrated the next block with.
   */
  dequantized: Float32Array;
  stats: LayerStats;
}

export interface LayerContext {
  backend: Backend;
  /** Canonical tensor name, for messages. */
  name: string;
  /** The layer's calibration inputs, when the method `requires.inputs` (SliM-LLM's SBA). */
  inputs?: { x: Float32Array /* [rows, in] */; rows: number };
}

export interface PrepareContext {
  backend: Backend;
  calibration: CalibrationSet;
}

/**
 * What a block-level calibration step sees (SliM-LLM+'s learnable clipping, AQLM's block
 * fine-tuning): the block's float weights, its calibration inputs and every linear's result.
 */
export interface BlockRefineContext {
  backend: Backend;
  /** The model's config (dims, heads, norm eps, RoPE theta). */
  config: import('../model/config.js').LlamaConfig;
  block: number;
  /** [windows·seqLen, dim] the block's calibration inputs, window after window; read only. */
  inputs: Float32Array;
  windows: number;
  seqLen: number;
  /** The float block: norm weights [dim] and each linear's weights [out, in], by short name ('self_attn.q_proj', …). */
  norms: { attnNorm: Float32Array; ffnNorm: Float32Array };
  /** The block's projection biases when the architecture has them (constants: no method changes them). */
  biases?: { bq?: Float32Array; bk?: Float32Array; bv?: Float32Array; bo?: Float32Array };
  weights: ReadonlyMap<string, { w: Float32Array; out: number; in: number }>;
  /** Each linear's quantizeLayer result, by short name. */
  results: ReadonlyMap<string, LayerResult>;
  /**
   * Replaces the block's norm weights [dim] (AQLM's fine-tuning trains them): the following
   * blocks are calibrated with them and the packed file stores them instead of the source's.
   * Absent when the caller cannot carry them; a method then leaves the norms as they are.
   */
  setNorms?(norms: { attnNorm?: Float32Array; ffnNorm?: Float32Array }): void;
  /**
   * [windows·seqLen, dim] the float model's stream entering this block (every earlier block
   * unquantized), when the method `requires.floatStream`; read only. OmniQuant's targets.
   */
  floatInputs?: Float32Array;
}

/** What a model-level step (AQLM's global fine-tuning) sees, after every block is quantized. */
export interface ModelRefineContext {
  backend: Backend;
  /** The float model (the teacher). */
  float: import('../model/weights.js').ModelSource;
  /** The model whose unquantized tensors the file stores (block fine-tuning's norms included). */
  student: import('../model/weights.js').ModelSource;
  /** Every packed tensor of the file, by canonical name (block linears in the codebook format). */
  packed: ReadonlyMap<string, import('../formats/types.js').PackedTensor>;
  /** Name of the head tensor in `student` / `packed`. */
  headTensor: string;
  /** [windows·seqLen] calibration tokens. */
  tokens: Int32Array | Uint32Array | number[];
  windows: number;
  seqLen: number;
  /** Called after every step (epoch, training windows done over all epochs, of total) and after each held-out pass. */
  onProgress?: (epoch: number, done: number, total: number, note: string) => void;
}

export interface ModelRefineResult {
  /** Replaced packed tensors (the codebook linears with trained codebooks and scales). */
  packed: Map<string, import('../formats/types.js').PackedTensor>;
  /** Replaced float tensors (norms). */
  dense: Map<string, Float32Array>;
  stats: { heldKlBefore: number; heldKlAfter: number; trainKlFirst: number; trainKlLast: number; epochs: number; seconds: number; trained: number };
}

/** One option of a method, enough for CLI parsing, validation and generated --help. */
export type OptionSpec =
  | { kind: 'int'; help: string; min?: number; max?: number; choices?: readonly number[] }
  | { kind: 'number'; help: string; min?: number; max?: number }
  | { kind: 'boolean'; help: string }
  /** A short string matching `pattern` (AQLM's scheme "2x8"); the method parses it. */
  | { kind: 'string'; help: string; pattern: RegExp };

export type OptionSchema<O> = { [K in keyof O]-?: OptionSpec };

export interface QuantMethod<O extends object> {
  readonly name: string;
  /** One paragraph for --help: the paper, and where the defaults follow the official code. */
  readonly describe: string;
  readonly defaults: Readonly<O>;
  readonly options: OptionSchema<O>;
  /**
   * What the pipeline must collect for this method (RTN needs neither). `floatStream`: also
   * carry the float model's residual stream for refineBlock (BlockRefineContext.floatInputs).
   */
  readonly requires: { hessian: boolean; inputs: boolean; floatStream?: boolean };
  /**
   * Quantize one linear.
   * @param W [out, in] float32, row-major; not modified.
   * @param H [in, in] float64, 2·XᵀX/n; null when !requires.hessian. The method may overwrite
   *   it (it can be ~1 GB for wide layers, so it is not copied).
   */
  quantizeLayer(W: Float32Array, outDim: number, inDim: number, H: Float64Array | null, opts: O, ctx: LayerContext): LayerResult;
  /**
   * Optional block-level step after every linear of a block is quantized, before the block's
   * output is propagated: returns replacement results for the linears it changed (by short
   * name); they are packed and used for the next block's inputs like quantizeLayer's.
   */
  refineBlock?(ctx: BlockRefineContext, opts: O): Map<string, LayerResult>;
  /**
   * Optional model-level step after every block is quantized (AQLM's global fine-tuning): the
   * replaced packed tensors and float tensors, or null when it is off.
   */
  refineModel?(ctx: ModelRefineContext, opts: O): ModelRefineResult | null;
  /**
   * Optional model-level step run once before any layer is quantized (DBellQuant's LTDB rewrites
   * norm and weight tensors): returns the model the pipeline quantizes and whose unquantized
   * tensors the packed file stores. Must depend only on (source, opts, calibration), so a
   * resumed run recomputes the same model.
   */
  prepare?(source: ModelSource, opts: O, ctx: PrepareContext): ModelSource;
  /**
   * Optional: the blend α ∈ [0, 1] of the asymmetric calibration target (pipeline/asymmetric.ts):
   * each linear is quantized towards W + α(W* − W), W* the minimiser of ‖W*X̃ᵀ − WXᵀ‖² (X̃ its
   * inputs in the partly quantized model, X in the float model), instead of towards W. 0 or
   * absent: the layer's own weights (the usual objective).
   */
  asymmetricAlpha?(opts: O): number;
  /**
   * Optional: the activation bits the calibration passes (Hessian capture and propagation) apply
   * to every block linear's input when the model runs with `actBits` < 16; absent = 16 (float
   * calibration). DBellQuant's released code quantizes the inputs in place, so its Hessians are
   * of quantized activations.
   */
  calibrationActBits?(opts: O, actBits: number): number;
}

/**
 * Merge user-given option values (already typed: numbers / booleans) over a method's
 * defaults, validating each against the schema. Unknown names and out-of-range values are
 * UsageErrors (they come from the command line or a web form).
 */
export function resolveOptions<O extends object>(method: QuantMethod<O>, given: Record<string, unknown>): O {
  const out: Record<string, unknown> = { ...method.defaults };
  const schema = method.options as Record<string, OptionSpec>;
  for (const [key, value] of Object.entries(given)) {
    const spec = schema[key];
    if (spec === undefined) {
      throw new UsageError(`${method.name}: unknown option '${key}' (options: ${Object.keys(schema).join(', ')})`);
    }
    out[key] = checkOption(method.name, key, spec, value);
  }
  return out as O;
}

function checkOption(method: string, key: string, spec: OptionSpec, value: unknown): number | boolean | string {
  const bad = (why: string) => new UsageError(`${method}: option '${key}' ${why} (got ${String(value)})`);
  if (spec.kind === 'string') {
    if (typeof value !== 'string' || !spec.pattern.test(value)) throw bad(`must match ${spec.pattern.source}`);
    return value;
  }
  if (spec.kind === 'boolean') {
    if (typeof value !== 'boolean') throw bad('must be true or false');
    return value;
  }
  if (typeof value !== 'number' || !Number.isFinite(value)) throw bad('must be a number');
  if (spec.kind === 'int') {
    if (!Number.isInteger(value)) throw bad('must be an integer');
    if (spec.choices && !spec.choices.includes(value)) throw bad(`must be one of ${spec.choices.join(', ')}`);
  }
  if (spec.min !== undefined && value < spec.min) throw bad(`must be ≥ ${spec.min}`);
  if (spec.max !== undefined && value > spec.max) throw bad(`must be ≤ ${spec.max}`);
  return value;
}

/**
 * Check W's shape before any work (a wrong length is a pipeline bug, not an input error), and
 * that every weight is finite (a NaN would silently poison a whole group's grid).
 */
export function checkLayerShape(ctx: LayerContext, W: Float32Array, outDim: number, inDim: number, H: Float64Array | null): void {
  if (!(outDim > 0 && inDim > 0 && W.length === outDim * inDim)) {
    throw new RangeError(`${ctx.name}: weight has ${W.length} values, expected ${outDim}×${inDim}`);
  }
  if (H !== null && H.length < inDim * inDim) {
    throw new RangeError(`${ctx.name}: Hessian has ${H.length} values, expected ${inDim}×${inDim}`);
  }
  for (let i = 0; i < W.length; i++) {
    if (!Number.isFinite(W[i])) throw new RangeError(`${ctx.name}: weight [${Math.floor(i / inDim)}, ${i % inDim}] is ${W[i]}`);
  }
}
