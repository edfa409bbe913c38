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

export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  private readonly impl: HfTokenizerImpl;

  /** `path` is the tokenizer.json; a tokenizer_config.json beside it is read when present. */
  constructor(path: string, fs: FileSystemLike) {
    const json = parseJson(path, readText(fs.open(path)));
    check(typeof json === 'object' && json !== null && !Array.isArray(json), path, 'not a JSON object');
    const configPath = fs.join(fs.dirname(path), 'tokenizer_config.json');
    const config = fs.exists(configPath) ? parseJson(configPath, readText(fs.open(configPath))) : {};
    check(typeof config === 'object' && config !== null && !Array.isArray(config), configPath, 'not a JSON object');
    check(typeof (json as { model?: unknown }).model === 'object', path, 'no "model" section');
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
    const ids = this.impl.encode(text, { add_special_tokens: false }).ids;
    return bos ? [this.bosId, ...ids] : ids;
  }

  /** The text `token` adds after `prev`: the difference of two decodes, so decoder rules (leading-space strip) apply as in a full decode. */
  decodePiece(prev: number, token: number): string {
    const base = prev >= 0 ? this.decode([prev]) : '';
    const both = prev >= 0 ? this.decode([prev, token]) : this.decode([token]);
    return both.startsWith(base) ? both.slice(base.length) : this.decode([token]);
  }

  /** Special tokens (BOS, EOS) print nothing. */
  decode(tokens: number[]): string {
    return this.impl.decode(tokens, { skip_special_tokens: true });
  }
}
