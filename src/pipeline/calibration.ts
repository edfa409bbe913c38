/**
 * Calibration windows: `count` random windows of `seqLen` tokens cut from one tokenized text,
 * as GPTQ's data loaders do (random start, fixed seed). The text is tokenized whole with BOS,
 * exactly as the evaluation protocol does, so calibration sees the same token statistics.
 */
import { UsageError } from '../io/errors.js';
import { encodeInChunks } from '../io/tokenize-chunks.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { Rng } from '../runtime/sampler.js';

export interface CalibrationOptions {
  /** Number of windows (GPTQ's nsamples). */
  count: number;
  /** Tokens per window; at most the model's context. */
  seqLen: number;
  /** Positive integer; the same seed and text give the same windows. */
  seed: number | bigint;
}

export interface CalibrationSet {
  /** [count, seqLen] token ids, window after window. */
  tokens: Int32Array;
  count: number;
  seqLen: number;
  /** Start of each window in the tokenized text (for reports and tests). */
  starts: number[];
  /** Tokens of the whole text, BOS included. */
  textTokens: number;
}

/** `onTokenize` reports tokenization progress (the text is tokenized in chunks, same tokens as whole). */
export function calibrationFromText(tokenizer: Tokenizer, text: string, opts: CalibrationOptions, onTokenize?: (charsDone: number, charsTotal: number) => void): CalibrationSet {
  return sampleWindows(encodeInChunks(tokenizer, text, { bos: true, onProgress: onTokenize }).tokens, opts);
}

/**
 * Window starts are uniform in [0, len − seqLen] (inclusive) from run.c's xorshift64* generator
 * (the one the sampler uses), so the same seed gives the same windows on every platform.
 * Windows may overlap, as in gptq.py.
 */
export function sampleWindows(tokens: ArrayLike<number>, opts: CalibrationOptions): CalibrationSet {
  const { count, seqLen } = opts;
  if (!Number.isInteger(count) || count < 1) throw new UsageError(`calibration needs at least one window, got ${count}`);
  if (!Number.isInteger(seqLen) || seqLen < 1) throw new UsageError(`calibration window length must be a positive integer, got ${seqLen}`);
  if (tokens.length < seqLen) {
    throw new UsageError(`the calibration text has ${tokens.length} tokens, fewer than one window of ${seqLen}`);
  }
  const rng = new Rng(opts.seed);
  const positions = tokens.length - seqLen + 1; // possible starts
  const out = new Int32Array(count * seqLen);
  const starts: number[] = [];
  for (let i = 0; i < count; i++) {
    const start = uniformInt(rng, positions);
    starts.push(start);
    for (let t = 0; t < seqLen; t++) out[i * seqLen + t] = tokens[start + t]!;
  }
  return { tokens: out, count, seqLen, starts, textTokens: tokens.length };
}

/** Uniform integer in [0, n) from 53 random bits (the modulo bias of 32 bits would be visible for long texts). */
function uniformInt(rng: Rng, n: number): number {
  const hi = rng.u32() >>> 5; // 27 bits
  const lo = rng.u32() >>> 6; // 26 bits
  const u = (hi * 67108864 + lo) / 9007199254740992; // [0, 1)
  return Math.floor(u * n);
}
