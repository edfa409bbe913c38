/**
 * A Llama model ready to run, in the spirit of llama2.c `run.c`: the config, the weights and
 * the scratch state (activations, KV cache) are three separate structures; scratch is
 * allocated once so the forward pass allocates nothing. The forward itself is in forward.ts.
 */
import type { Backend } from '../backend/types.js';
import type { LlamaConfig } from '../model/config.js';
import { BIASED, EMBED, FINAL_NORM, LM_HEAD, layerBias, layerTensor, type BiasedLinear, type ModelSource } from '../model/weights.js';
import { denseLinears, type LinearFactory } from './dense.js';
import { denseEmbedding, type Embedding } from './embedding.js';
import { forward, type LogitsWanted } from './forward.js';
import type { Linear } from './linear.js';
import { allocScratch, freeScratch, type Scratch } from './scratch.js';

export { allocScratch, freeScratch, growScratch, type Scratch } from './scratch.js';

export interface LayerWeights {
  attnNorm: Float32Array; // [dim]
  wq: Linear; // [qDim, dim]
  wk: Linear; // [kvDim, dim]
  wv: Linear; // [kvDim, dim]
  wo: Linear; // [dim, qDim]
  /** Additive biases of the projections, when the architecture has them (config.attentionBias). */
  bq?: Float32Array; // [qDim]
  bk?: Float32Array; // [kvDim]
  bv?: Float32Array; // [kvDim]
  bo?: Float32Array; // [dim]
  ffnNorm: Float32Array; // [dim]
  w1: Linear; // gate [hidden, dim]
  w2: Linear; // down [dim, hidden]
  w3: Linear; // up [hidden, dim]
}

export interface LlamaWeights {
  embedding: Embedding; // [vocab, dim], one row per token
  layers: LayerWeights[];
  finalNorm: Float32Array; // [dim]
  classifier: Linear; // [vocab, dim]; the embedding when tied
}

export interface ModelOptions {
  backend: Backend;
  /** How each linear layer is stored and computed; default dense float32 on the backend. */
  linear?: LinearFactory;
  /**
   * Most tokens one forward call takes (prefill / evaluation chunk). Scratch, logits included,
   * scales with it; default min(seqLen, 512).
   */
  maxRows?: number;
  /**
   * Most positions a sequence may have on this model (its context for this run, ≤ seqLen;
   * `config.seqLen` is lowered to it, so the KV cache never grows past it and generation stops
   * there); default the model's seqLen.
   */
  positions?: number;
}

/** The weights of block `l` alone (the quantization pipeline holds one block at a time). */
export function loadLayerWeights(source: ModelSource, l: number, linear: LinearFactory): LayerWeights {
  const c = source.config;
  const biases: Partial<Record<'bq' | 'bk' | 'bv' | 'bo', Float32Array>> = {};
  for (const proj of c.attentionBias ? BIASED[c.attentionBias] : []) biases[BIAS_FIELD[proj]] = source.load(layerBias(l, proj));
  return {
    ...biases,
    attnNorm: source.load(layerTensor(l, 'input_layernorm')),
    wq: linear(layerTensor(l, 'self_attn.q_proj'), source),
    wk: linear(layerTensor(l, 'self_attn.k_proj'), source),
    wv: linear(layerTensor(l, 'self_attn.v_proj'), source),
    wo: linear(layerTensor(l, 'self_attn.o_proj'), source),
    ffnNorm: source.load(layerTensor(l, 'post_attention_layernorm')),
    w1: linear(layerTensor(l, 'mlp.gate_proj'), source),
    w2: linear(layerTensor(l, 'mlp.down_proj'), source),
    w3: linear(layerTensor(l, 'mlp.up_proj'), source),
  };
}

const BIAS_FIELD: Readonly<Record<BiasedLinear, 'bq' | 'bk' | 'bv' | 'bo'>> = {
  'self_attn.q_proj': 'bq', 'self_attn.k_proj': 'bk', 'self_attn.v_proj': 'bv', 'self_attn.o_proj': 'bo',
};

export function loadWeights(source: ModelSource, linear: LinearFactory): LlamaWeights {
  const c = source.config;
  const layers = Array.from({ length: c.nLayers }, (_, l) => loadLayerWeights(source, l, linear));
  return {
    // a packed file gathers token rows from its low-bit table; other sources hold the float table
    embedding: source.rowGather?.(EMBED) ?? denseEmbedding(source.load(EMBED), c.vocabSize, c.dim),
    layers,
    finalNorm: source.load(FINAL_NORM),
    classifier: linear(c.tiedEmbeddings ? EMBED : LM_HEAD, source),
  };
}

export class LlamaModel {
  /** The source's name (its file), for errors about what the weights compute. */
  readonly name: string;
  readonly config: LlamaConfig;
  readonly weights: LlamaWeights;
  private readonly scratch: Scratch;
  private readonly backend: Backend;

  constructor(source: ModelSource, opts: ModelOptions) {
    this.name = source.name;
    const p = opts.positions;
    if (p !== undefined && (!Number.isInteger(p) || p < 1)) throw new RangeError(`positions must be a positive integer, got ${p}`);
    this.config = p !== undefined && p < source.config.seqLen ? { ...source.config, seqLen: p } : source.config;
    this.backend = opts.backend;
    this.weights = loadWeights(source, opts.linear ?? denseLinears(opts.backend));
    const maxRows = opts.maxRows ?? Math.min(this.config.seqLen, 512);
    if (!Number.isInteger(maxRows) || maxRows < 1) throw new RangeError(`maxRows must be a positive integer, got ${maxRows}`);
    this.scratch = allocScratch(this.config, opts.backend, Math.min(maxRows, this.config.seqLen));
  }

  /**
   * Returns the weights' and scratch's backend memory (wasm heap) for reuse by later models on
   * the same backend; the model is unusable afterwards.
   */
  dispose(): void {
    const { layers, classifier } = this.weights;
    for (const L of layers) for (const lin of [L.wq, L.wk, L.wv, L.wo, L.w1, L.w2, L.w3]) lin.dispose?.();
    classifier.dispose?.();
    freeScratch(this.backend, this.scratch);
  }

  /** Most tokens one `forward` call accepts. */
  get maxRows(): number {
    return this.scratch.maxRows;
  }

  /**
   * Runs tokens at positions startPos.. (the KV cache must hold positions 0..startPos-1 of the
   * same sequence). Returns logits [vocab] of the last token, or [tokens, vocab] for all of
   * them; the array is scratch, overwritten by the next call.
   */
  forward(tokens: ArrayLike<number>, startPos: number, wanted: LogitsWanted = 'last'): Float32Array {
    return forward(this.backend, this.config, this.weights, this.scratch, tokens, startPos, wanted);
  }
}
