/**
 * The tokenizer stored in a GGUF file's `tokenizer.ggml.*` keys, run by bitcrush's existing
 * tokenizers rather than a third one:
 *   model "llama" (SentencePiece: tokens with ▁ for space, scores, token types; merging by
 *     highest score, byte fallback <0xXX> at ids 3..258) → the llama2.c tokenizer, which
 *     implements exactly that, fed an equivalent tokenizer.bin built in memory;
 *   model "gpt2" (byte-level BPE: tokens and merges) → @huggingface/tokenizers through an
 *     equivalent tokenizer.json, with the pre-tokenizer regex `tokenizer.ggml.pre` names.
 * BOS/EOS ids, add_bos_token, add_space_prefix and tokenizer.chat_template are honoured.
 */
import { BufferSource, type FileSystemLike } from './bytes.js';
import { check, InputError } from './errors.js';
import type { GgufFile, GgufValue } from './gguf-file.js';
import { HfTokenizer } from './hf-tokenizer.js';
import { Llama2cTokenizer } from './llama2c-tokenizer.js';
import type { ChatTemplateSource, Tokenizer } from './tokenizer.js';

/** llama.cpp's token types (llama_token_type). */
export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/** Pre-tokenizer regexes of `tokenizer.ggml.pre` values (as transformers' tokenizer.json files for those models hold them). */
export const GGUF_PRE_REGEX: Readonly<Record<string, string>> = {
  'llama-bpe': "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  qwen2: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};

/** What a GGUF file says about its tokenizer, the form the GGUF writer takes too. */
export interface GgufVocab {
  model: 'llama' | 'gpt2';
  tokens: string[];
  scores?: number[];
  types?: number[];
  merges?: string[];
  pre?: string;
  bosId?: number;
  eosId: number;
  addBos: boolean;
  addSpacePrefix?: boolean;
  chatTemplate?: string;
}

const VOCABS = new WeakMap<Tokenizer, GgufVocab>();

/** The GGUF vocabulary a tokenizer made by `ggufTokenizer` came from. */
export function ggufVocabOf(t: Tokenizer): GgufVocab | undefined {
  return VOCABS.get(t);
}

export function hasGgufTokenizer(g: GgufFile): boolean {
  return g.metadata.has('tokenizer.ggml.model');
}

export function ggufTokenizer(g: GgufFile): Tokenizer {
  const { tokenizer, vocab } = readGgufTokenizer(g);
  VOCABS.set(tokenizer, vocab);
  return tokenizer;
}

function readGgufTokenizer(g: GgufFile): { tokenizer: Tokenizer; vocab: GgufVocab } {
  const file = g.name;
  const model = g.metadata.get('tokenizer.ggml.model');
  const tokens = stringArray(g, 'tokenizer.ggml.tokens');
  check(tokens.length > 0, file, 'tokenizer.ggml.tokens is empty');
  const types = numberArray(g, 'tokenizer.ggml.token_type', tokens.length);
  const id = (key: string): number | undefined => {
    const v = g.metadata.get(key);
    if (v === undefined) return undefined;
    check(Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) < tokens.length, file, `${key} ${String(v)} is not a token id of the ${tokens.length} tokens`);
    return v as number;
  };
  const flag = (key: string, fallback: boolean): boolean => {
    const v = g.metadata.get(key) ?? fallback;
    check(typeof v === 'boolean', file, `bad ${key}: ${String(v)}`);
    return v;
  };
  const bos = id('tokenizer.ggml.bos_token_id');
  const eos = id('tokenizer.ggml.eos_token_id');
  const eot = id('tokenizer.ggml.eot_token_id');
  const eom = id('tokenizer.ggml.eom_token_id');
  check(eos !== undefined || eot !== undefined, file, 'no tokenizer.ggml.eos_token_id');
  const eosIds = [...new Set([eos, eot, eom].filter((x): x is number => x !== undefined))];
  const template = g.metadata.get('tokenizer.chat_template');
  check(template === undefined || typeof template === 'string', file, 'bad tokenizer.chat_template');
  if (model === 'llama') {
    const addBos = flag('tokenizer.ggml.add_bos_token', true);
    const scores = numberArray(g, 'tokenizer.ggml.scores', tokens.length) ?? new Array<number>(tokens.length).fill(0);
    const space = flag('tokenizer.ggml.add_space_prefix', true);
    const tokenizer = new GgufSpmTokenizer(file, tokens, scores, types, addBos ? (bos ?? 1) : null, eosIds, space, template);
    return { tokenizer, vocab: { model, tokens, scores, types, bosId: bos ?? 1, eosId: eosIds[0]!, addBos, addSpacePrefix: space, chatTemplate: template } };
  }
  if (model === 'gpt2') {
    const merges = stringArray(g, 'tokenizer.ggml.merges');
    const pre = g.metadata.get('tokenizer.ggml.pre') ?? 'default';
    check(typeof pre === 'string', file, 'bad tokenizer.ggml.pre');
    const addBos = flag('tokenizer.ggml.add_bos_token', false);
    const tokenizer = bpeTokenizer(file, tokens, merges, types, pre, addBos && bos !== undefined ? tokens[bos]! : null, eosIds, template);
    return { tokenizer, vocab: { model, tokens, merges, types, pre, bosId: bos, eosId: eosIds[0]!, addBos, chatTemplate: template } };
  }
  throw new InputError(file, `tokenizer.ggml.model ${JSON.stringify(model)} is not supported (supported: llama, gpt2)`);
}

function stringArray(g: GgufFile, key: string): string[] {
  const v = g.metadata.get(key);
  check(Array.isArray(v) && v.every((x) => typeof x === 'string'), g.name, `missing or bad ${key} (an array of strings)`);
  return v as string[];
}

function numberArray(g: GgufFile, key: string, n: number): number[] | undefined {
  const v: GgufValue | undefined = g.metadata.get(key);
  if (v === undefined) return undefined;
  check(Array.isArray(v) && v.length === n && v.every((x) => typeof x === 'number' && Number.isFinite(x)), g.name, `bad ${key}: expected ${n} numbers, one per token`);
  return v as number[];
}

/** SentencePiece vocabulary on the llama2.c merge loop; BOS/EOS remapped to the file's ids. */
class GgufSpmTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly chat?: ChatTemplateSource;
  private readonly inner: Llama2cTokenizer;

  constructor(file: string, tokens: string[], scores: number[], types: number[] | undefined, readonly bosId: number | null, readonly eosIds: readonly number[], addSpacePrefix: boolean, template: string | undefined) {
    this.vocabSize = tokens.length;
    for (let b = 0; b < 256; b++) {
      const want = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
      check(tokens[3 + b] === want, file, `token ${3 + b} is ${JSON.stringify(tokens[3 + b])}, expected the byte token ${want} (a SentencePiece vocabulary with byte fallback at 3..258)`);
    }
    const enc = new TextEncoder();
    const pieces = tokens.map((t, i) => {
      const ty = types?.[i] ?? TOKEN_TYPE.NORMAL;
      // control, unknown and unused tokens are never produced from text and print nothing
      if (ty === TOKEN_TYPE.CONTROL || ty === TOKEN_TYPE.UNKNOWN || ty === TOKEN_TYPE.UNUSED) return new Uint8Array(0);
      return enc.encode(t.replaceAll('\u2581', ' '));
    });
    const size = 4 + pieces.reduce((a, p) => a + 8 + p.length, 0);
    const bin = new Uint8Array(size);
    const view = new DataView(bin.buffer);
    view.setInt32(0, Math.max(1, ...pieces.map((p) => p.length)), true);
    let at = 4;
    pieces.forEach((p, i) => {
      view.setFloat32(at, p.length === 0 ? -1e30 : scores[i]!, true);
      view.setInt32(at + 4, p.length, true);
      bin.set(p, at + 8);
      at += 8 + p.length;
    });
    this.inner = new Llama2cTokenizer(new BufferSource(file, bin), { addDummyPrefix: addSpacePrefix, removeExtraWhitespaces: false });
    if (template !== undefined) this.chat = { file, template, bosToken: bosId === null ? '' : tokens[bosId]!, eosToken: tokens[eosIds[0]!]! };
  }

  encode(text: string, bos: boolean): number[] {
    const ids = this.inner.encode(text, false);
    return bos && this.bosId !== null ? [this.bosId, ...ids] : ids;
  }

  decodePiece(prev: number, token: number): string {
    // the llama2.c decoder strips a piece's leading space after its BOS (id 1)
    return this.inner.decodePiece(prev === this.bosId ? 1 : prev === 1 ? -1 : prev, token);
  }

  decode(tokens: number[]): string {
    // as ids 1 and 2 the llama2.c decoder prints them as nothing and strips the space after BOS
    return this.inner.decode(tokens.map((t) => (t === this.bosId ? 1 : this.eosIds.includes(t) ? 2 : t)));
  }
}

/** Byte-level BPE through an in-memory tokenizer.json + tokenizer_config.json + config.json. */
function bpeTokenizer(file: string, tokens: string[], merges: string[], types: number[] | undefined, pre: string, bosToken: string | null, eosIds: number[], template: string | undefined): Tokenizer {
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => {
    if (!(t in vocab)) vocab[t] = i;
  });
  const special = (i: number) => types?.[i] === TOKEN_TYPE.CONTROL || types?.[i] === TOKEN_TYPE.USER_DEFINED;
  const added = tokens.flatMap((content, id) => (special(id) ? [{ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: types?.[id] === TOKEN_TYPE.CONTROL }] : []));
  const regex = GGUF_PRE_REGEX[pre];
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: regex === undefined };
  const json = {
    version: '1.0',
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: regex === undefined ? byteLevel : { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false }, byteLevel] },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: pre === 'llama-bpe', vocab, merges },
  };
  const config = { bos_token: bosToken, eos_token: tokens[eosIds[0]!], ...(template !== undefined ? { chat_template: template } : {}) };
  const files = new Map<string, string>([
    ['tokenizer.json', JSON.stringify(json)],
    ['tokenizer_config.json', JSON.stringify(config)],
    ['config.json', JSON.stringify({ eos_token_id: eosIds })],
  ]);
  // names look like "<file>:tokenizer.json", so errors still point at the GGUF file
  const fs: FileSystemLike = {
    open: (p) => new BufferSource(p, new TextEncoder().encode(files.get(p.slice(file.length + 1)) ?? '')),
    exists: (p) => files.has(p.slice(file.length + 1)),
    join: (_dir, name) => `${file}:${name}`,
    dirname: () => file,
    isDirectory: () => false,
  };
  return new HfTokenizer(`${file}:tokenizer.json`, fs);
}
