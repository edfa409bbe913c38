/**
 * A Llama model ready to run, in the spirit of llama2.c `run.c`: the config, the weights and
 * the scratch state (activations, KV cache) are three separate structures; scratch is
 * allocated once so the forward pass allocates nothing. The forward itself is in forward.ts.
 */
import type { Backend } from '../backend/types.js';
import { headSize, kvDim, type LlamaConfig } from '../model/config.js';
import { EMBED, FINAL_NORM, LM_HEAD, layerTensor, type ModelSource } from '../model/weights.js';
import { denseLinears, type LinearFactory } from './dense.js';
import { forward, type LogitsWanted } from './forward.js';
import type { Linear } from './linear.js';

export interface LayerWeights {
  attnNorm: Float32Array; // [dim]
  wq: Linear; // [dim, dim]
  wk: Linear; // [kvDim, dim]
  wv: Linear; // [kvDim, dim]
  wo: Linear; // [dim, dim]
  ffnNorm: Float32Array; // [dim]
  w1: Linear; // gate [hidden, dim]
  w2: Linear; // down [dim, hidden]
  w3: Linear; // up [hidden, dim]
}

export interface LlamaWeights {
  embedding: Float32Array; // [vocab, dim]
  layers: LayerWeights[];
  finalNorm: Float32Array; // [dim]
  classifier: Linear; // [vocab, dim]; the embedding when tied
}

/** Activation buffers sized for up to `maxRows` tokens per forward call, and the KV cache. */
export interface Scratch {
  maxRows: number;
  x: Float32Array; // [maxRows, dim] residual stream
  xb: Float32Array; // [maxRows, dim] normed input / attention output
  xb2: Float32Array; // [maxRows, dim] projection output added to the residual
  q: Float32Array; // [maxRows, dim]
  hb: Float32Array; // [maxRows, hidden] gate, then SwiGLU output
  hb2: Float32Array; // [maxRows, hidden] up
  att: Float32Array; // [seqLen] scores of one query row and head (decode)
  kHead: Float32Array; // [seqLen, headSize] one kv head's keys (chunk attention)
  vHeadT: Float32Array; // [headSize, seqLen] one kv head's values, transposed
  qGroup: Float32Array; // [groupSize · maxRows, headSize] queries of the heads sharing a kv head
  scores: Float32Array; // [groupSize · maxRows, seqLen]
  outGroup: Float32Array; // [groupSize · maxRows, headSize]
  logits: Float32Array; // [maxRows, vocab]
  keyCache: Float32Array; // [layers, seqLen, kvDim]
  valueCache: Float32Array; // [layers, seqLen, kvDim]
  ropeCos: Float32Array; // [seqLen, headSize / 2]
  ropeSin: Float32Array; // [seqLen, headSize / 2]
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
}

/** The weights of block `l` alone (the quantization pipeline holds one block at a time). */
export function loadLayerWeights(source: ModelSource, l: number, linear: LinearFactory): LayerWeights {
  return {
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

export function loadWeights(source: ModelSource, linear: LinearFactory): LlamaWeights {
  const c = source.config;
  const layers = Array.from({ length: c.nLayers }, (_, l) => loadLayerWeights(source, l, linear));
  return {
    embedding: source.load(EMBED),
    layers,
    finalNorm: source.load(FINAL_NORM),
    classifier: linear(c.tiedEmbeddings ? EMBED : LM_HEAD, source),
  };
}

export function allocScratch(c: LlamaConfig, backend: Backend, maxRows: number): Scratch {
  const half = headSize(c) / 2;
  const ropeCos = new Float32Array(c.seqLen * half);
  const ropeSin = new Float32Array(c.seqLen * half);
  // interleaved RoPE: pair i of a head turns by pos · theta^(-2i / headSize)
  for (let pos = 0; pos < c.seqLen; pos++) {
    for (let i = 0; i < half; i++) {
      const angle = pos * Math.pow(c.ropeTheta, (-2 * i) / headSize(c));
      ropeCos[pos * half + i] = Math.cos(angle);
      ropeSin[pos * half + i] = Math.sin(angle);
    }
  }
  const cache = c.nLayers * c.seqLen * kvDim(c);
  const groupRows = (c.nHeads / c.nKvHeads) * maxRows;
  return {
    maxRows,
    x: backend.alloc(maxRows * c.dim),
    xb: backend.alloc(maxRows * c.dim),
    xb2: backend.alloc(maxRows * c.dim),
    q: backend.alloc(maxRows * c.dim),
    hb: backend.alloc(maxRows * c.hiddenDim),
    hb2: backend.alloc(maxRows * c.hiddenDim),
    att: new Float32Array(c.seqLen),
    kHead: backend.alloc(c.seqLen * headSize(c)),
    vHeadT: backend.alloc(headSize(c) * c.seqLen),
    qGroup: backend.alloc(groupRows * headSize(c)),
    scores: backend.alloc(groupRows * c.seqLen),
    outGroup: backend.alloc(groupRows * headSize(c)),
    logits: backend.alloc(maxRows * c.vocabSize),
    keyCache: backend.alloc(cache),
    valueCache: backend.alloc(cache),
    ropeCos,
    ropeSin,
  };
}

/** Returns a scratch's backend buffers (allocScratch's) to the backend; the scratch is unusable afterwards. */
export function freeScratch(backend: Backend, s: Scratch): void {
  const fromBackend = [s.x, s.xb, s.xb2, s.q, s.hb, s.hb2, s.kHead, s.vHeadT, s.qGroup, s.scores, s.outGroup, s.logits, s.keyCache, s.valueCache];
  for (const buf of fromBackend) backend.free?.(buf);
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
    this.config = source.config;
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
