/** Architecture of a Llama-family model, whatever file it came from. */
export interface LlamaConfig {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  /** Context length the model was trained with (positions 0..seqLen-1 are valid). */
  seqLen: number;
  normEps: number;
  ropeTheta: number;
  /** true when the classifier reuses the token embedding matrix. */
  tiedEmbeddings: boolean;
  /**
   * Size of one attention head when config.json gives it and it differs from dim / nHeads
   * (then q_proj is [nHeads·headDim, dim] and o_proj [dim, nHeads·headDim]); absent = dim / nHeads.
   */
  headDim?: number;
  /** How RoPE frequencies are rescaled for long contexts; absent = plain RoPE. */
  ropeScaling?: RopeScaling;
  /** Projections with an additive bias (Qwen2: q, k, v; Llama's attention_bias: all four); absent = none. */
  attentionBias?: AttentionBias;
}

/**
 * transformers' `rope_scaling` types that bitcrush computes (modeling_rope_utils.py):
 * linear divides every frequency by `factor`; llama3 (Llama 3.1+) divides the low frequencies
 * by `factor`, keeps the high ones and interpolates in between.
 */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number }
  /** llama.cpp's `rope_freqs.weight` (how a GGUF stores llama3 scaling): pair i's frequency divided by factors[i]. */
  | { type: 'factors'; factors: number[] };

export const ATTENTION_BIASES = ['qkv', 'qkvo'] as const;
export type AttentionBias = (typeof ATTENTION_BIASES)[number];

export function headSize(c: LlamaConfig): number {
  return c.headDim ?? c.dim / c.nHeads;
}

/** Width of the query projection's output and of the attention output: nHeads · headSize. */
export function qDim(c: LlamaConfig): number {
  return c.nHeads * headSize(c);
}

export function kvDim(c: LlamaConfig): number {
  return c.nKvHeads * headSize(c);
}
