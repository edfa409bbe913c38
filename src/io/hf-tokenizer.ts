/**
 * Hugging Face `tokenizer.json` (+ `tokenizer_config.json`), run by `@huggingface/tokenizers`
 * (pure JS, so it works in the browser too). BOS is added by us rather than by the file's
 * post-processor, so `encode(text, bos)` means the same for every tokenizer; `bos_token: null`
 * (Qwen2) means there is none. The ids that end a text are the EOS token's and those that
 * `generation_config.json` and `config.json` beside it list (Llama 3 instruct: three).
 * The chat template is tokenizer_config.json's `chat_template` (a string, or named templates:
 * "default" is used) or a `chat_template.jinja` file beside it.
 */
import { Tokenizer as HfTokenizerImpl } from '@huggingface/tokenizers';
import { readText, type FileSystemLike } from './bytes.js';
import { check, InputError } from './errors.js';
import { parseJson } from './hf.js';
import type { ChatTemplateSource, Tokenizer } from './tokenizer.js';

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
  readonly bosId: number | null;
  readonly noBosFile?: string;
  readonly eosIds: readonly number[];
  readonly chat?: ChatTemplateSource;
  private readonly impl: HfTokenizerImpl;

  /** `path` is the tokenizer.json; a tokenizer_config.json beside it is read when present. */
  constructor(
    readonly path: string,
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
    const cfg = config as Record<string, unknown>;
    // tokenizer_config gives a special token as a string, an AddedToken object, or null (none)
    const tokenText = (key: string, fallback: string): string | null => {
      const given = key in cfg ? cfg[key] : fallback;
      if (given === null) return null;
      const text = typeof given === 'string' ? given : (given as { content?: unknown } | undefined)?.content;
      check(typeof text === 'string', configPath, `bad ${key}: ${JSON.stringify(given)}`);
      return text;
    };
    const idOf = (key: string, text: string): number => {
      const id = this.impl.token_to_id(text);
      check(id !== undefined, path, `no ${key} (${JSON.stringify(text)}) in the vocabulary`);
      return id;
    };
    const bos = tokenText('bos_token', '<s>');
    const eos = tokenText('eos_token', '</s>');
    this.bosId = bos === null ? null : idOf('bos_token', bos);
    if (bos === null) this.noBosFile = configPath;
    const eosIds = new Set<number>(eos === null ? [] : [idOf('eos_token', eos)]);
    for (const name of ['generation_config.json', 'config.json']) {
      const file = fs.join(fs.dirname(path), name);
      if (!fs.exists(file)) continue;
      const listed = (parseJson(file, readText(fs.open(file))) as Record<string, unknown> | null)?.['eos_token_id'];
      const ids = listed === undefined || listed === null ? [] : Array.isArray(listed) ? listed : [listed];
      for (const id of ids) {
        check(Number.isSafeInteger(id) && (id as number) >= 0 && (id as number) < this.vocabSize, file, `eos_token_id ${JSON.stringify(id)} is not a token id of ${path}`);
        eosIds.add(id as number);
      }
    }
    check(eosIds.size > 0, path, 'no end-of-text token: eos_token is null and no eos_token_id is given');
    this.eosIds = [...eosIds];
    const chat = readChatTemplate(fs, configPath, cfg);
    if (chat !== undefined) this.chat = { ...chat, bosToken: bos ?? '', eosToken: eos ?? '' };
  }

  encode(text: string, bos: boolean): number[] {
    const ids = this.guard(() => this.impl.encode(text, { add_special_tokens: false }).ids);
    return bos && this.bosId !== null ? [this.bosId, ...ids] : ids;
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

/** `chat_template.jinja` beside tokenizer_config.json, else its `chat_template` (a string or [{ name, template }]). */
function readChatTemplate(fs: FileSystemLike, configPath: string, cfg: Record<string, unknown>): { file: string; template: string } | undefined {
  const jinja = fs.join(fs.dirname(configPath), 'chat_template.jinja');
  if (fs.exists(jinja)) return { file: jinja, template: readText(fs.open(jinja)) };
  const t = cfg['chat_template'];
  if (t === undefined || t === null) return undefined;
  if (typeof t === 'string') return { file: configPath, template: t };
  check(Array.isArray(t) && t.every((x) => typeof x?.name === 'string' && typeof x?.template === 'string'), configPath, 'chat_template is neither a string nor a list of { name, template }');
  const named = t as Array<{ name: string; template: string }>;
  const chosen = named.find((x) => x.name === 'default') ?? named[0];
  return chosen === undefined ? undefined : { file: configPath, template: chosen.template };
}
