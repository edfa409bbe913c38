/**
 * A small Llama-3-style byte-level BPE tokenizer.json trained on a text, for random-weight
 * Llama 3 shaped models (no Llama 3 tokenizer is available on these machines): GPT-2's byte →
 * unicode table, Llama 3's pre-tokenizer regex (Split, then ByteLevel without its own regex),
 * `ignore_merges`, <|begin_of_text|> / <|end_of_text|> as special added tokens after the
 * merged vocabulary, and a TemplateProcessing post-processor that adds BOS, as Meta's file has.
 * Training: the most frequent adjacent pair over the pre-tokenized words, ties broken by the
 * pair's text; `merges` merges.
 */
import { GGUF_PRE_REGEX } from '../src/io/gguf-tokenizer.js';

/** GPT-2's bytes_to_unicode: printable bytes map to themselves, the others to U+0100 onwards. */
function byteToUnicode(): string[] {
  const keep = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const out: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) out.push(String.fromCodePoint(keep(b) ? b : next++));
  return out;
}

/** Llama 3's regex in JavaScript syntax (the inline (?i:) group spelled out). */
const WORDS = /'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

export function byteBpeTokenizerJson(text: string, merges: number): { json: Record<string, unknown>; vocabSize: number; bos: number; eos: number } {
  const b2u = byteToUnicode();
  const enc = new TextEncoder();
  const freq = new Map<string, number>();
  for (const w of text.match(WORDS) ?? []) freq.set(w, (freq.get(w) ?? 0) + 1);
  const words = [...freq].map(([w, n]) => ({ syms: [...enc.encode(w)].map((b) => b2u[b]!), n }));
  const vocab: Record<string, number> = {};
  b2u.forEach((u, i) => (vocab[u] = i));
  const mergeList: string[] = [];
  for (let m = 0; m < merges; m++) {
    const pairs = new Map<string, number>();
    for (const { syms, n } of words) for (let i = 0; i + 1 < syms.length; i++) {
      const k = `${syms[i]} ${syms[i + 1]}`;
      pairs.set(k, (pairs.get(k) ?? 0) + n);
    }
    let best: string | undefined;
    let bestN = 0;
    for (const [k, n] of pairs) if (n > bestN || (n === bestN && best !== undefined && k < best)) [best, bestN] = [k, n];
    if (best === undefined) break;
    const [a, b] = best.split(' ') as [string, string];
    mergeList.push(best);
    vocab[a + b] = Object.keys(vocab).length;
    for (const w of words) {
      const out: string[] = [];
      for (let i = 0; i < w.syms.length; i++) {
        if (i + 1 < w.syms.length && w.syms[i] === a && w.syms[i + 1] === b) {
          out.push(a + b);
          i++;
        } else out.push(w.syms[i]!);
      }
      w.syms = out;
    }
  }
  const bos = Object.keys(vocab).length;
  const eos = bos + 1;
  const addedToken = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [addedToken(bos, '<|begin_of_text|>'), addedToken(eos, '<|end_of_text|>')],
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: GGUF_PRE_REGEX['llama-bpe'] }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<|begin_of_text|>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [bos], tokens: ['<|begin_of_text|>'] } },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: true, vocab, merges: mergeList },
  };
  return { json, vocabSize: eos + 1, bos, eos };
}
