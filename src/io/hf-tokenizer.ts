/**
 * Hugging Face `tokenizer.json` (+ `tokenizer_config.json`), run by `@huggingface/tokenizers`
 * (pure JS, so it works in the browser too). BOS is added by us rather than by the file's
 * post-processor, so `encode(text, bos)` means the same for every tokenizer.
 */
import { Tokenizer as HfTokenizerImpl } from '@huggingface/tokenizers';
import { readText, type FileSystemLike } from './bytes.js';
import { check, InputError } from './errors.js';
import { parseJson } from './hf.js';
import type { Tokenizer } from './tokenizer.js';

/** More ids than any real vocabulary (the largest are ~256 K); the library allocates arrays of the largest id. */
const MAX_VOCAB = 1 << 22;

/**
 * Every token id of `model.vocab` and `added_tokens` is an integer in 0..MAX_VOCAB-1. The
 * library trusts them: one id of 1e9 makes it walk a billion-slot array (a hang), a negative
 * one yields token ids the model cannot embed.
 */
function checkTokenIds(path: string, json: Record<string, unknown>): void {
  const model = json['model'];
  check(typeof model === 'object' && model !== null && !Array.isArray(model), path, 'no "model" section');
  const isId = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) < MAX_VOCAB;
  const vocab = (model as Record<string, unknown>)['vocab'];
  if (Array.isArray(vocab)) {
    // Unigram: [piece, score] pairs, the id is the index
    check(vocab.length <= MAX_VOCAB, path, `model.vocab has ${vocab.length} entries, more than ${MAX_VOCAB}`);
    const bad = vocab.findIndex((e) => !Array.isArray(e) || typeof e[0] !== 'string' || !Number.isFinite(e[1]));
    check(bad < 0, path, `model.vocab[${bad}] is not a [piece, score] pair`);
  } else {
    check(typeof vocab === 'object' && vocab !== null, path, 'model.vocab is not an object of token → id');
    for (const [token, id] of Object.entries(vocab)) check(isId(id), path, `model.vocab[${JSON.stringify(token)}] = ${JSON.stringify(id)} is not a token id in 0..${MAX_VOCAB - 1}`);
  }
  const merges = (model as Record<string, unknown>)['merges'];
  check(merges === undefined || Array.isArray(merges), path, 'model.merges is not an array');
  const added = json['added_tokens'] ?? [];
  check(Array.isArray(added), path, 'added_tokens is not an array');
  added.forEach((t: unknown, i) => {
    const o = t as { id?: unknown; content?: unknown } | null;
    check(typeof o === 'object' && o !== null && typeof o.content === 'string', path, `added_tokens[${i}] is not { id, content, … }`);
    check(isId(o.id), path, `added_tokens[${i}].id = ${JSON.stringify(o.id)} is not a token id in 0..${MAX_VOCAB - 1}`);
  });
}

export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  private readonly impl: HfTokenizerImpl;

  /** `path` is the tokenizer.json; a tokenizer_config.json beside it is read when present. */
  constructor(
    private readonly path: string,
    fs: FileSystemLike,
  ) {
    const json = parseJson(path, readText(fs.open(path)));
    check(typeof json === 'object' && json !== null && !Array.isArray(json), path, 'not a JSON object');
    const configPath = fs.join(fs.dirname(path), 'tokenizer_config.json');
    const config = fs.exists(configPath) ? parseJson(configPath, readText(fs.open(configPath))) : {};
    check(typeof config === 'object' && config !== null && !Array.isArray(config), configPath, 'not a JSON object');
    checkTokenIds(path, json as Record<string, unknown>);
    try {
      this.impl = new HfTokenizerImpl(json, config);
    } catch (e) {
      throw new InputError(path, `malformed or unsupported tokenizer: ${(e as Error).message}`);
    }
    const vocab = this.impl.get_vocab(true);
    check(vocab.size > 0, path, 'empty vocabulary');
    this.vocabSize = Math.max(...vocab.values()) + 1;
    const special = (key: string, fallback: string): number => {
      const given = (config as Record<string, unknown>)[key];
      // tokenizer_config gives the token as a string or as an AddedToken object
      const text = typeof given === 'string' ? given : ((given as { content?: unknown } | null)?.content ?? fallback);
      const id = typeof text === 'string' ? this.impl.token_to_id(text) : undefined;
      check(id !== undefined, path, `no ${key} (${JSON.stringify(text)}) in the vocabulary`);
      return id;
    };
    this.bosId = special('bos_token', '<s>');
    this.eosId = special('eos_token', '</s>');
  }

  encode(text: string, bos: boolean): number[] {
    const ids = this.guard(() => this.impl.encode(text, { add_special_tokens: false }).ids);
    return bos ? [this.bosId, ...ids] : ids;
  }

  /**
   * The library validates a tokenizer.json only as far as its constructor reads it; a bad
   * normalizer or post-processor section fails at the first encode. That is the file's fault.
   */
  private guard<T>(f: () => T): T {
    try {
      return f();
    } catch (e) {
      if (e instanceof InputError) throw e;
      throw new InputError(this.path, `malformed or unsupported tokenizer: ${(e as Error).message}`);
    }
  }

  /** The text `token` adds after `prev`: the difference of two decodes, so decoder rules (leading-space strip) apply as in a full decode. */
  decodePiece(prev: number, token: number): string {
    const base = prev >= 0 ? this.decode([prev]) : '';
    const both = prev >= 0 ? this.decode([prev, token]) : this.decode([token]);
    return both.startsWith(base) ? both.slice(base.length) : this.decode([token]);
  }

  /** Special tokens (BOS, EOS) print nothing. */
  decode(tokens: number[]): string {
    return this.guard(() => this.impl.decode(tokens, { skip_special_tokens: true }));
  }
}
