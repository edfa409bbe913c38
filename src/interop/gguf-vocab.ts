/**
 * A Hugging Face `tokenizer.json` (BPE) as GGUF `tokenizer.ggml.*`, the way llama.cpp's
 * converter lays them out, so llama.cpp tokenizes as the HF tokenizer does:
 *   SentencePiece-style BPE (Llama 2, Mistral, TinyLlama: byte_fallback, ▁ for space, a
 *     Prepend "▁" normalizer or a Metaspace pre-tokenizer) → model "llama": tokens as they
 *     are, types (unknown, control for special added tokens, byte for <0xXX>), and scores
 *     −(rank of the first merge that makes the token), so llama.cpp's highest-score-first
 *     bigram merging applies the merges in the file's order;
 *   byte-level BPE (Llama 3, Qwen2, GPT-2: a ByteLevel pre-tokenizer, alone or after a Split
 *     regex) → model "gpt2": tokens, merges "a b", types, and `tokenizer.ggml.pre` naming the
 *     regex ("llama-bpe", "qwen2", "gpt-2"); another regex is an error naming it.
 * BOS/EOS ids and the chat template come from the tokenizer as bitcrush reads it.
 */
import { check } from '../io/errors.js';
import { GGUF_PRE_REGEX, TOKEN_TYPE, type GgufVocab } from '../io/gguf-tokenizer.js';

interface AddedToken {
  id: number;
  content: string;
  special?: boolean;
}

/** What the export takes from the tokenizer bitcrush runs (src/io/hf-tokenizer.ts). */
export interface HfTokenizerFacts {
  bosId: number | null;
  eosIds: readonly number[];
  chatTemplate?: string;
}

type Json = Record<string, unknown>;
const obj = (v: unknown): Json | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined);

/** Every node of a normalizer / pre-tokenizer / decoder tree (Sequence members flattened). */
function parts(v: unknown): Json[] {
  const o = obj(v);
  if (o === undefined) return [];
  const inner = o['normalizers'] ?? o['pretokenizers'] ?? o['decoders'];
  return Array.isArray(inner) ? inner.flatMap(parts) : [o];
}

export function hfVocabForGguf(file: string, json: Json, facts: HfTokenizerFacts): GgufVocab {
  const model = obj(json['model']);
  check(model !== undefined && model['type'] === 'BPE', file, `model.type ${JSON.stringify(model?.['type'])}: only BPE tokenizer.json files are exported to GGUF`);
  const vocab = obj(model['vocab']);
  check(vocab !== undefined, file, 'model.vocab is not an object of token → id');
  const added = (Array.isArray(json['added_tokens']) ? json['added_tokens'] : []) as AddedToken[];
  const byId = new Map<number, string>();
  for (const [t, id] of Object.entries(vocab)) byId.set(id as number, t);
  for (const a of added) byId.set(a.id, a.content);
  const n = Math.max(...byId.keys()) + 1;
  const tokens: string[] = [];
  for (let i = 0; i < n; i++) {
    const t = byId.get(i);
    check(t !== undefined, file, `token id ${i} is missing (GGUF stores one token per id 0..${n - 1})`);
    tokens.push(t);
  }
  const special = new Map(added.map((a) => [a.id, a.special !== false]));
  const merges = ((model['merges'] ?? []) as unknown[]).map((m, i) => {
    const pair = typeof m === 'string' ? m.split(' ') : m;
    check(Array.isArray(pair) && pair.length === 2 && pair.every((x) => typeof x === 'string' && !x.includes(' ')), file, `model.merges[${i}] is not a pair of tokens without spaces`);
    return pair as [string, string];
  });
  const common = { bosId: facts.bosId ?? undefined, eosId: facts.eosIds[0]!, addBos: facts.bosId !== null, chatTemplate: facts.chatTemplate };
  const pre = parts(json['pre_tokenizer']);
  const norm = parts(json['normalizer']);
  const metaspace = pre.find((p) => p['type'] === 'Metaspace');
  const prepend = norm.some((p) => p['type'] === 'Prepend' && p['prepend'] === '\u2581');
  if (model['byte_fallback'] === true && (prepend || metaspace !== undefined || norm.some((p) => p['type'] === 'Replace' && (p['content'] === '\u2581')))) {
    const rank = new Map<string, number>();
    merges.forEach(([a, b], r) => {
      if (!rank.has(a + b)) rank.set(a + b, r);
    });
    const unk = typeof model['unk_token'] === 'string' ? vocab[model['unk_token']] : undefined;
    const types = tokens.map((t, i) => (i === unk ? TOKEN_TYPE.UNKNOWN : special.get(i) === true ? TOKEN_TYPE.CONTROL : special.has(i) ? TOKEN_TYPE.USER_DEFINED : /^<0x[0-9A-F]{2}>$/.test(t) ? TOKEN_TYPE.BYTE : TOKEN_TYPE.NORMAL));
    const scores = tokens.map((t, i) => (types[i] === TOKEN_TYPE.NORMAL ? -(rank.get(t) ?? merges.length) : 0));
    const addSpacePrefix = prepend || (metaspace !== undefined && metaspace['prepend_scheme'] !== 'never' && metaspace['add_prefix_space'] !== false);
    return { model: 'llama', tokens, scores, types, addSpacePrefix, ...common, bosId: facts.bosId ?? 1 };
  }
  const byteLevel = pre.find((p) => p['type'] === 'ByteLevel');
  check(byteLevel !== undefined, file, 'neither a SentencePiece-style BPE (byte_fallback, ▁) nor a byte-level BPE (ByteLevel pre-tokenizer): no GGUF tokenizer model for it');
  const splits = pre.filter((p) => p['type'] === 'Split');
  let preName: string;
  if (splits.length === 0) {
    check(byteLevel['use_regex'] !== false, file, 'a ByteLevel pre-tokenizer without a regex has no llama.cpp pre-tokenizer');
    preName = 'gpt-2';
  } else {
    const regex = obj(splits[0]!['pattern'])?.['Regex'];
    const known = Object.entries(GGUF_PRE_REGEX).find(([, r]) => r === regex);
    check(splits.length === 1 && known !== undefined, file, `pre-tokenizer regex ${JSON.stringify(regex)} is not one llama.cpp names (known: ${Object.keys(GGUF_PRE_REGEX).join(', ')})`);
    preName = known[0];
  }
  const types = tokens.map((_, i) => (special.get(i) === true ? TOKEN_TYPE.CONTROL : special.has(i) ? TOKEN_TYPE.USER_DEFINED : TOKEN_TYPE.NORMAL));
  return { model: 'gpt2', tokens, types, merges: merges.map(([a, b]) => `${a} ${b}`), pre: preName, ...common };
}
