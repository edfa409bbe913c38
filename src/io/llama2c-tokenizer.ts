/**
 * llama2.c `tokenizer.bin`: int32 max_token_length, then per token until the end of the file:
 * float32 score, int32 byte length, the piece's bytes. (The vocabulary size is not stored;
 * llama2.c takes it from the model, we count the entries.)
 *
 * `encode` gives exactly the ids of run.c's `encode` — dummy-prefix " ", one piece per UTF-8
 * codepoint (byte fallback id = byte + 3), then repeatedly merge the adjacent pair whose
 * concatenation is in the vocabulary with the highest score, leftmost on ties — but in
 * O(n log n): a heap of candidate pairs over a linked list, stale entries skipped on pop
 * (run.c rescans every pair after each merge, O(n²), too slow for megabyte texts).
 *
 * A SentencePiece normalizer (read from the `.model` the file was exported from) can be given;
 * the default is run.c's behaviour. See spm-normalizer.ts for why it matters.
 */
import type { ByteSource } from './bytes.js';
import { check } from './errors.js';
import { removeExtraWhitespaces, RUN_C_NORMALIZER, type SpmNormalizer } from './spm-normalizer.js';
import type { Tokenizer } from './tokenizer.js';

const BOS = 1;
const EOS = 2;
const BYTE_FALLBACK_OFFSET = 3;
const MAX_VOCAB = 1 << 22;
/** run.c only merges pairs scoring above this (its initial best_score, a float). */
const MIN_SCORE = Math.fround(-1e10);

export class Llama2cTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId = BOS;
  readonly eosId = EOS;
  private readonly pieces: Uint8Array[] = [];
  private readonly scores: Float32Array;
  /** piece bytes as a binary string (one char per byte) → id */
  private readonly ids = new Map<string, number>();
  /** pair key (left * vocab + right) → merged id, or -1 */
  private readonly pairCache = new Map<number, number>();
  private readonly spaceId: number;

  constructor(
    src: ByteSource,
    private readonly normalizer: SpmNormalizer = RUN_C_NORMALIZER,
  ) {
    const file = src.name;
    const view = (offset: number, length: number) => {
      const b = src.read(offset, length);
      return new DataView(b.buffer, b.byteOffset, length);
    };
    const maxLen = view(0, 4).getInt32(0, true);
    check(maxLen > 0 && maxLen <= 1 << 16, file, `bad tokenizer.bin header: max_token_length = ${maxLen}`);
    const scores: number[] = [];
    let offset = 4;
    while (offset < src.size) {
      const id = scores.length;
      check(id < MAX_VOCAB, file, `more than ${MAX_VOCAB} tokens`);
      check(offset + 8 <= src.size, file, `truncated: token ${id} at byte ${offset} has no score/length`);
      const h = view(offset, 8);
      const len = h.getInt32(4, true);
      check(len >= 0 && len <= maxLen, file, `bad length ${len} of token ${id} at byte ${offset} (max_token_length ${maxLen})`);
      check(offset + 8 + len <= src.size, file, `truncated: token ${id} needs bytes up to ${offset + 8 + len} but the file has ${src.size}`);
      const piece = src.read(offset + 8, len).slice();
      scores.push(h.getFloat32(0, true));
      this.pieces.push(piece);
      // run.c looks pieces up by string; on duplicates the first id wins here
      const key = binaryString(piece);
      if (!this.ids.has(key)) this.ids.set(key, id);
      offset += 8 + len;
    }
    this.vocabSize = scores.length;
    check(this.vocabSize > EOS, file, `only ${this.vocabSize} tokens`);
    this.scores = Float32Array.from(scores);
    this.spaceId = this.ids.get(' ') ?? -1;
  }

  encode(text: string, bos: boolean): number[] {
    if (this.normalizer.removeExtraWhitespaces) text = removeExtraWhitespaces(text);
    const tokens: number[] = [];
    if (bos) tokens.push(BOS);
    // run.c's dummy prefix (it would push id -1 for a vocabulary without " "; we skip it)
    if (this.normalizer.addDummyPrefix && text.length > 0 && this.spaceId >= 0) tokens.push(this.spaceId);
    this.pushCodepoints(new TextEncoder().encode(text), tokens);
    return this.merge(tokens);
  }

  /** One piece per UTF-8 codepoint (run.c groups at most 4 bytes), unknown ones as byte tokens. */
  private pushCodepoints(bytes: Uint8Array, tokens: number[]): void {
    let start = 0;
    for (let i = 0; i < bytes.length; i++) {
      const len = i + 1 - start;
      const next = i + 1 < bytes.length ? bytes[i + 1]! : 0;
      if ((next & 0xc0) === 0x80 && len < 4) continue;
      const id = this.ids.get(binaryString(bytes.subarray(start, i + 1)));
      if (id !== undefined) tokens.push(id);
      else for (let j = start; j <= i; j++) tokens.push(bytes[j]! + BYTE_FALLBACK_OFFSET);
      start = i + 1;
    }
  }

  /** The merged id of (left, right), or -1; cached since the same pairs recur throughout a text. */
  private pairId(left: number, right: number): number {
    const key = left * this.vocabSize + right;
    let id = this.pairCache.get(key);
    if (id === undefined) {
      const merged = binaryString(this.pieces[left]!) + binaryString(this.pieces[right]!);
      id = this.ids.get(merged) ?? -1;
      if (id >= 0 && !(this.scores[id]! > MIN_SCORE)) id = -1;
      this.pairCache.set(key, id);
    }
    return id;
  }

  /** run.c's merge loop. Nodes are the initial positions; `version` invalidates stale heap entries. */
  private merge(initial: number[]): number[] {
    const n = initial.length;
    const id = Int32Array.from(initial);
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    const version = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap = new PairHeap(n);
    const offer = (left: number) => {
      const right = left >= 0 ? next[left]! : -1;
      if (right < 0) return;
      const merged = this.pairId(id[left]!, id[right]!);
      if (merged >= 0) heap.push(this.scores[merged]!, left, version[left]!, right, version[right]!, merged);
    };
    for (let i = 0; i + 1 < n; i++) offer(i);
    while (heap.size > 0) {
      const e = heap.pop();
      const left = heap.left[e]!;
      const right = heap.right[e]!;
      if (version[left] !== heap.leftVersion[e] || version[right] !== heap.rightVersion[e] || next[left] !== right) continue;
      id[left] = heap.merged[e]!;
      version[left]!++;
      version[right] = -1; // removed for good
      next[left] = next[right]!;
      if (next[right]! >= 0) prev[next[right]!] = left;
      offer(prev[left]!);
      offer(left);
    }
    const out: number[] = [];
    for (let i = n > 0 ? 0 : -1; i >= 0; i = next[i]!) out.push(id[i]!);
    return out;
  }

  /** run.c `decode`: the piece, without its leading space after BOS; `<0xXX>` pieces give that byte. */
  pieceBytes(prev: number, token: number): Uint8Array {
    let piece = this.pieces[token];
    if (piece === undefined) throw new RangeError(`token id ${token} outside the vocabulary of ${this.vocabSize}`);
    if (prev === BOS && piece[0] === 0x20) piece = piece.subarray(1);
    const m = /^<0x([0-9A-Fa-f]{1,2})/.exec(binaryString(piece));
    return m ? Uint8Array.of(parseInt(m[1]!, 16)) : piece;
  }

  decodePiece(prev: number, token: number): string {
    return new TextDecoder().decode(this.pieceBytes(prev, token));
  }

  /** Text of a sequence; BOS/EOS print nothing. Bytes are gathered first so UTF-8 split over byte tokens decodes whole. */
  decode(tokens: number[]): string {
    const parts: Uint8Array[] = [];
    let prev = -1;
    for (const t of tokens) {
      if (t !== BOS && t !== EOS) parts.push(this.pieceBytes(prev, t));
      prev = t;
    }
    const all = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.length;
    }
    return new TextDecoder().decode(all);
  }
}

/** Bytes as a JS string, one char per byte (so concatenation and Map lookup are byte-exact). */
function binaryString(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]!);
  return s;
}

/**
 * Max-heap of candidate merges ordered by (score desc, left position asc) — the order in which
 * run.c's scan picks them (strict `>` keeps the leftmost of equal scores). Struct of arrays.
 */
class PairHeap {
  size = 0;
  score: Float32Array;
  left: Int32Array;
  leftVersion: Int32Array;
  right: Int32Array;
  rightVersion: Int32Array;
  merged: Int32Array;
  private order: Int32Array; // heap of entry indices
  private free: number[] = [];
  private count = 0;

  constructor(capacity: number) {
    const cap = Math.max(16, capacity);
    this.score = new Float32Array(cap);
    this.left = new Int32Array(cap);
    this.leftVersion = new Int32Array(cap);
    this.right = new Int32Array(cap);
    this.rightVersion = new Int32Array(cap);
    this.merged = new Int32Array(cap);
    this.order = new Int32Array(cap);
  }

  push(score: number, left: number, leftVersion: number, right: number, rightVersion: number, merged: number): void {
    const e = this.free.pop() ?? this.count++;
    if (e >= this.score.length) this.grow();
    this.score[e] = score;
    this.left[e] = left;
    this.leftVersion[e] = leftVersion;
    this.right[e] = right;
    this.rightVersion[e] = rightVersion;
    this.merged[e] = merged;
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(e, this.order[parent]!)) break;
      this.order[i] = this.order[parent]!;
      i = parent;
    }
    this.order[i] = e;
  }

  /** Removes the top entry and returns its index, valid until the next push. */
  pop(): number {
    const top = this.order[0]!;
    const last = this.order[--this.size]!;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= this.size) break;
      if (child + 1 < this.size && this.before(this.order[child + 1]!, this.order[child]!)) child++;
      if (!this.before(this.order[child]!, last)) break;
      this.order[i] = this.order[child]!;
      i = child;
    }
    if (this.size > 0) this.order[i] = last;
    this.free.push(top);
    return top;
  }

  private before(a: number, b: number): boolean {
    const sa = this.score[a]!;
    const sb = this.score[b]!;
    return sa > sb || (sa === sb && this.left[a]! < this.left[b]!);
  }

  private grow(): void {
    const cap = this.score.length * 2;
    const widen = <T extends Float32Array | Int32Array>(a: T, make: (n: number) => T): T => {
      const b = make(cap);
      b.set(a);
      return b;
    };
    this.score = widen(this.score, (n) => new Float32Array(n));
    this.left = widen(this.left, (n) => new Int32Array(n));
    this.leftVersion = widen(this.leftVersion, (n) => new Int32Array(n));
    this.right = widen(this.right, (n) => new Int32Array(n));
    this.rightVersion = widen(this.rightVersion, (n) => new Int32Array(n));
    this.merged = widen(this.merged, (n) => new Int32Array(n));
    this.order = widen(this.order, (n) => new Int32Array(n));
  }
}
