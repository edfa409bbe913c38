import { kvDim, qDim, type LlamaConfig } from './config.js';

/**
 * Canonical tensor names (Hugging Face's), used by every loader, method and file format.
 * Loaders convert to ONE convention: q/k rows in llama2.c's *interleaved* RoPE order
 * (pairs (2i, 2i+1) of a head rotate together). HF files store q/k permuted for
 * rotate-half RoPE; the HF loader undoes that permutation when it reads them.
 */
export const LINEARS = [
  'self_attn.q_proj', // [qDim, dim]  (qDim = nHeads · headSize = dim unless config.json sets head_dim)
  'self_attn.k_proj', // [kvDim, dim]
  'self_attn.v_proj', // [kvDim, dim]
  'self_attn.o_proj', // [dim, qDim]
  'mlp.gate_proj', // [hidden, dim]  (llama2.c w1)
  'mlp.down_proj', // [dim, hidden]  (llama2.c w2)
  'mlp.up_proj', // [hidden, dim]    (llama2.c w3)
] as const;
export type LinearName = (typeof LINEARS)[number];

export const EMBED = 'model.embed_tokens.weight'; // [vocab, dim]
export const FINAL_NORM = 'model.norm.weight'; // [dim]
export const LM_HEAD = 'lm_head.weight'; // [vocab, dim], absent when tied

export function layerTensor(layer: number, part: LinearName | 'input_layernorm' | 'post_attention_layernorm'): string {
  return `model.layers.${layer}.${part}.weight`;
}

/** The projections that carry an additive bias under each `attentionBias` setting. */
export type BiasedLinear = 'self_attn.q_proj' | 'self_attn.k_proj' | 'self_attn.v_proj' | 'self_attn.o_proj';
export const BIASED: Readonly<Record<NonNullable<LlamaConfig['attentionBias']>, readonly BiasedLinear[]>> = {
  qkv: ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'],
  qkvo: ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj'],
};

/** `model.layers.{l}.{proj}.bias` [out], kept in float by every method and format. */
export function layerBias(layer: number, proj: BiasedLinear): string {
  return `model.layers.${layer}.${proj}.bias`;
}

export interface TensorInfo {
  name: string;
  shape: number[];
}

/**
 * A model whose tensors are read lazily, one at a time, as float32, so a model larger than
 * memory can be processed block by block.
 */
export interface ModelSource {
  readonly name: string;
  readonly config: LlamaConfig;
  /** Every tensor the model has, canonical names. */
  tensors(): TensorInfo[];
  /** The tensor as float32 (converted from f16/bf16), row-major, canonical RoPE layout. */
  load(name: string): Float32Array;
  /**
   * The tensor's stored 16-bit values (same layout as `load`), when it is stored as F16 or
   * BF16 and the source can hand them out; runtimes keep such weights 16-bit (HalfLinear).
   */
  loadHalf?(name: string): { dtype: 'F16' | 'BF16'; bits: Uint16Array } | undefined;
  /**
   * How the source stores a tensor, so an unquantized tensor is never written wider than it
   * came (absent: F32 everywhere, e.g. llama2.c files).
   */
  dtypeOf?(name: string): SourceDtype;
  /**
   * Row `r` of a 2-D tensor without loading the whole of it (the token embedding of a packed
   * file: one row per token); absent, or undefined for a tensor, when the source only loads whole tensors.
   */
  rowGather?(name: string): RowGather | undefined;
}

/** Storage types of the float tensors a source may hold. */
export type SourceDtype = 'F32' | 'F16' | 'BF16' | 'F64';

/** A table [rows, cols] read one row at a time. */
export interface RowGather {
  readonly rows: number;
  readonly cols: number;
  /** dst[cols] = row r of the table, as float32. */
  row(dst: Float32Array, r: number): void;
}

/** Expected shape of every canonical tensor of a config. */
export function expectedShapes(c: LlamaConfig): Map<string, number[]> {
  const kv = kvDim(c);
  const qd = qDim(c);
  const m = new Map<string, number[]>();
  m.set(EMBED, [c.vocabSize, c.dim]);
  for (let l = 0; l < c.nLayers; l++) {
    m.set(layerTensor(l, 'input_layernorm'), [c.dim]);
    m.set(layerTensor(l, 'self_attn.q_proj'), [qd, c.dim]);
    m.set(layerTensor(l, 'self_attn.k_proj'), [kv, c.dim]);
    m.set(layerTensor(l, 'self_attn.v_proj'), [kv, c.dim]);
    m.set(layerTensor(l, 'self_attn.o_proj'), [c.dim, qd]);
    for (const proj of c.attentionBias ? BIASED[c.attentionBias] : []) m.set(layerBias(l, proj), [proj === 'self_attn.o_proj' ? c.dim : m.get(layerTensor(l, proj))![0]!]);
    m.set(layerTensor(l, 'post_attention_layernorm'), [c.dim]);
    m.set(layerTensor(l, 'mlp.gate_proj'), [c.hiddenDim, c.dim]);
    m.set(layerTensor(l, 'mlp.down_proj'), [c.dim, c.hiddenDim]);
    m.set(layerTensor(l, 'mlp.up_proj'), [c.hiddenDim, c.dim]);
  }
  m.set(FINAL_NORM, [c.dim]);
  if (!c.tiedEmbeddings) m.set(LM_HEAD, [c.vocabSize, c.dim]);
  return m;
}
