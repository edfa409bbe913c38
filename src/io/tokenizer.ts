/** Text <-> token ids. Implementations: llama2.c `tokenizer.bin`, HF `tokenizer.json`. */
export interface Tokenizer {
  readonly vocabSize: number;
  /** The id every sequence starts with; null when the model has none (Qwen2: `bos_token: null`). */
  readonly bosId: number | null;
  /** When bosId is null: the file that says so (tokenizer_config.json), for error messages. */
  readonly noBosFile?: string;
  /** The ids that end a text: EOS, and every id generation_config.json lists (often several). */
  readonly eosIds: readonly number[];
  /** The model's chat template (Jinja) and the special-token strings it refers to, when it has one. */
  readonly chat?: ChatTemplateSource;
  /** Token ids of `text`, with BOS first when `bos` is true and the model has one (SentencePiece dummy prefix applied). */
  encode(text: string, bos: boolean): number[];
  /** The text piece of `token` as it should be printed after `prev` (llama2.c `decode`). */
  decodePiece(prev: number, token: number): string;
  /** Whole sequence to text. */
  decode(tokens: number[]): string;
}

export interface ChatTemplateSource {
  /** The file it came from (tokenizer_config.json or chat_template.jinja), for error messages. */
  file: string;
  template: string;
  bosToken: string;
  eosToken: string;
}
