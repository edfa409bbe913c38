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
import { check, InputError } from './errors.js';
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
  readonly eosIds = [EOS];
  private readonly pieces: Uint8Array[] = [];
  private readonly scores: Float32Array;
  /** piece bytes as a binary string (one char per byte) → id */
  private readonly ids = new Map<string, number>();
  /** (left, right) → merged id, or -1 */
  private readonly pairCache = new PairTable();
  private readonly spaceId: number;
  /** The file, for errors. */
  private readonly file: string;

  constructor(
    src: ByteSource,
    private readonly normalizer: SpmNormalizer = RUN_C_NORMALIZER,
  ) {
    const file = src.name;
    this.file = file;
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
    // run.c's encoder falls back to ids 3..258 for raw bytes: those must exist
    check(this.vocabSize >= BYTE_FALLBACK_OFFSET + 256, file, `only ${this.vocabSize} tokens: a llama2.c tokenizer starts with 3 special and 256 byte-fallback tokens (truncated?)`);
    this.scores = Float32Array.from(scores);
    this.spaceId = this.ids.get(' ') ?? -1;
  }

  /** The pieces (bytes), their scores and the normalizer, for writers of other tokenizer formats (GGUF). */
  vocabulary(): { pieces: readonly Uint8Array[]; scores: Float32Array; normalizer: SpmNormalizer } {
    return { pieces: this.pieces, scores: this.scores, normalizer: this.normalizer };
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
    let id = this.pairCache.get(left, right);
    if (id === undefined) {
      const merged = binaryString(this.pieces[left]!) + binaryString(this.pieces[right]!);
      id = this.ids.get(merged) ?? -1;
      if (id >= 0 && !(this.scores[id]! > MIN_SCORE)) id = -1;
      this.pairCache.set(left, right, id);
    }
    return id;
  }

  /**
   * run.c's merge loop over a linked list of the initial positions. A heap entry (left, merged)
   * is current iff the pair now starting at `left` still merges to `merged`: a node's piece
   * only grows, so a pair that changed concatenates to a longer string, never the same one.
   */
  private merge(initial: number[]): number[] {
    const n = initial.length;
    const id = Int32Array.from(initial); // -1: merged into its left neighbour
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap = new PairHeap(n);
    const offer = (left: number) => {
      const right = left >= 0 ? next[left]! : -1;
      if (right < 0) return;
      const merged = this.pairId(id[left]!, id[right]!);
      if (merged >= 0) heap.push(this.scores[merged]!, left, merged);
    };
    for (let i = 0; i + 1 < n; i++) offer(i);
    while (heap.size > 0) {
      const left = heap.topLeft();
      const merged = heap.topMerged();
      heap.pop();
      const right = next[left]!;
      if (id[left]! < 0 || right < 0 || this.pairId(id[left]!, id[right]!) !== merged) continue;
      id[left] = merged;
      id[right] = -1;
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
    // a model with a larger vocabulary than its tokenizer (a mismatched or truncated file) can produce such ids
    if (piece === undefined) throw new InputError(this.file, `token id ${token} is outside this tokenizer's ${this.vocabSize} tokens: the model and tokenizer do not belong together`);
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
 * run.c's scan picks them (its strict `>` keeps the leftmost of equal scores). Entries are
 * stored inline (struct of arrays by heap slot) so sifting touches contiguous memory.
 */
class PairHeap {
  size = 0;
  private score: Float32Array;
  private left: Int32Array;
  private merged: Int32Array;

  constructor(capacity: number) {
    this.score = new Float32Array(Math.max(16, capacity));
    this.left = new Int32Array(this.score.length);
    this.merged = new Int32Array(this.score.length);
  }

  topLeft(): number {
    return this.left[0]!;
  }

  topMerged(): number {
    return this.merged[0]!;
  }

  push(score: number, left: number, merged: number): void {
    if (this.size === this.score.length) this.grow();
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const ps = this.score[parent]!;
      if (ps > score || (ps === score && this.left[parent]! < left)) break;
      this.move(parent, i);
      i = parent;
    }
    this.score[i] = score;
    this.left[i] = left;
    this.merged[i] = merged;
  }

  pop(): void {
    const last = --this.size;
    const score = this.score[last]!;
    const left = this.left[last]!;
    const merged = this.merged[last]!;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= last) break;
      if (child + 1 < last && this.before(child + 1, child)) child++;
      const cs = this.score[child]!;
      if (cs < score || (cs === score && this.left[child]! > left)) break;
      this.move(child, i);
      i = child;
    }
    this.score[i] = score;
    this.left[i] = left;
    this.merged[i] = merged;
  }

  private before(a: number, b: number): boolean {
    const sa = this.score[a]!;
    const sb = this.score[b]!;
    return sa > sb || (sa === sb && this.left[a]! < this.left[b]!);
  }

  private move(from: number, to: number): void {
    this.score[to] = this.score[from]!;
    this.left[to] = this.left[from]!;
    this.merged[to] = this.merged[from]!;
  }

  private grow(): void {
    const cap = this.score.length * 2;
    const score = new Float32Array(cap);
    const left = new Int32Array(cap);
    const merged = new Int32Array(cap);
    score.set(this.score);
    left.set(this.left);
    merged.set(this.merged);
    [this.score, this.left, this.merged] = [score, left, merged];
  }
}

/** Open-addressing hash map (left id, right id) → merged id; far faster than a Map on 4 M lookups. */
class PairTable {
  private keys = new Int32Array(2 * 1024).fill(-1);
  private values = new Int32Array(1024);
  private count = 0;

  get(left: number, right: number): number | undefined {
    const slot = this.find(left, right);
    return this.keys[2 * slot]! < 0 ? undefined : this.values[slot]!;
  }

  set(left: number, right: number, value: number): void {
    if (2 * (this.count + 1) > this.values.length) this.grow();
    const slot = this.find(left, right);
    if (this.keys[2 * slot]! < 0) this.count++;
    this.keys[2 * slot] = left;
    this.keys[2 * slot + 1] = right;
    this.values[slot] = value;
  }

  private find(left: number, right: number): number {
    const mask = this.values.length - 1;
    let slot = (Math.imul(left, 0x9e3779b1) ^ Math.imul(right + 0x7f4a7c15, 0x85ebca77)) >>> 0;
    slot = (slot ^ (slot >>> 15)) & mask;
    for (;;) {
      const k = this.keys[2 * slot]!;
      if (k < 0 || (k === left && this.keys[2 * slot + 1] === right)) return slot;
      slot = (slot + 1) & mask;
    }
  }

  private grow(): void {
    const { keys, values } = this;
    this.keys = new Int32Array(keys.length * 2).fill(-1);
    this.values = new Int32Array(values.length * 2);
    this.count = 0;
    for (let s = 0; s < values.length; s++) if (keys[2 * s]! >= 0) this.set(keys[2 * s]!, keys[2 * s + 1]!, values[s]!);
  }
}
