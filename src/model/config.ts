/** Architecture of a Llama-family model, whatever file it came from. */
export interface LlamaConfig {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  /** Context length the model was trained with. */
  seqLen: number;
  normEps: number;
  ropeTheta: number;
  /** true when the classifier reuses the token embedding matrix. */
  tiedEmbeddings: boolean;
}

export function headSize(c: LlamaConfig): number {
  return c.dim / c.nHeads;
}

export function kvDim(c: LlamaConfig): number {
  return (c.dim * c.nKvHeads) / c.nHeads;
}
