/** Text <-> token ids. Implementations: llama2.c `tokenizer.bin`, HF `tokenizer.json`. */
export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  /** Token ids of `text`, with BOS first when `bos` is true (SentencePiece dummy prefix applied). */
  encode(text: string, bos: boolean): number[];
  /** The text piece of `token` as it should be printed after `prev` (llama2.c `decode`). */
  decodePiece(prev: number, token: number): string;
  /** Whole sequence to text. */
  decode(tokens: number[]): string;
}
