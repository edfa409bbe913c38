/**
 * Tokenizing a long text in chunks, with progress, and only as far as needed, giving exactly
 * the tokens of one whole-text `encode`. The text is cut after a newline that a non-space
 * character follows, or one space and then a non-space (WikiText's lines start with a space):
 * no tokenizer bitcrush reads merges across such a point (byte-level BPE
 * pre-tokenizers split there; SentencePiece vocabularies have no piece holding "\n"), but the
 * piece after the cut depends on what precedes it (SentencePiece's dummy prefix), so each later
 * chunk is encoded behind a "\n" sentinel whose own tokens are then dropped. If a chunk's
 * tokens do not start with the sentinel's, the whole text is encoded at once instead.
 */
import type { Tokenizer } from './tokenizer.js';

/** Characters per chunk: large enough that per-call costs vanish, small enough for progress every ~0.1 s. */
const CHUNK_CHARS = 16384;
const SENTINEL = '\n';

export interface ChunkedEncoding {
  tokens: number[];
  /** False when encoding stopped early because `enough` tokens were reached. */
  complete: boolean;
}

export function encodeInChunks(
  tokenizer: Tokenizer,
  text: string,
  opts: { bos: boolean; enough?: number; onProgress?: (charsDone: number, charsTotal: number, tokens: number) => void },
): ChunkedEncoding {
  const enough = opts.enough ?? Infinity;
  const sentinel = tokenizer.encode(SENTINEL, false);
  const tokens: number[] = [];
  let at = 0;
  while (at < text.length) {
    const end = cutAfter(text, at + CHUNK_CHARS);
    if (at === 0) append(tokens, tokenizer.encode(text.slice(0, end), opts.bos), 0);
    else {
      const t = tokenizer.encode(SENTINEL + text.slice(at, end), false);
      if (!sentinel.every((id, i) => t[i] === id)) return { tokens: tokenizer.encode(text, opts.bos), complete: true };
      append(tokens, t, sentinel.length);
    }
    at = end;
    opts.onProgress?.(at, text.length, tokens.length);
    if (tokens.length >= enough && at < text.length) return { tokens, complete: false };
  }
  if (text.length === 0) append(tokens, tokenizer.encode('', opts.bos), 0);
  return { tokens, complete: true };
}

function append(to: number[], from: number[], start: number): void {
  for (let i = start; i < from.length; i++) to.push(from[i]!);
}

/** The first safe cut at or after `from`: just past a "\n" followed by a non-space, or by one space and a non-space (or the end). */
function cutAfter(text: string, from: number): number {
  const solid = (i: number) => i < text.length && !/\s/.test(text[i]!);
  for (let i = Math.max(1, from); i < text.length; i++) {
    if (text[i - 1] === '\n' && (solid(i) || (text[i] === ' ' && solid(i + 1)))) return i;
  }
  return text.length;
}
