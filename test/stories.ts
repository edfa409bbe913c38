/**
 * Shared inputs of the method tests: stories260K from ../shared with its tokenizer, the heldout
 * tokens and a small seeded calibration set, plus the seeded normal samples of the BiLLM and
 * DBellQuant tests. (Not a test file: compiled to dist/test/stories.js, outside *.test.js.)
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Tokenizer } from '../src/io/tokenizer.js';
import { findTokenizer, openModel } from '../src/io/load.js';
import type { ModelSource } from '../src/model/weights.js';
import { nodeFs } from '../src/node/fs.js';
import { calibrationFromText, type CalibrationSet } from '../src/pipeline/calibration.js';
import { mulberry32 } from '../src/quant/random.js';

export const shared = (p: string) => fileURLToPath(new URL(`../../../shared/${p}`, import.meta.url));
export const STORIES = shared('models/stories260K/stories260K.bin');

export interface StoriesData {
  source: ModelSource;
  tokenizer: Tokenizer;
  /** tinystories/heldout.txt with BOS. */
  heldout: number[];
  /** `count` windows of `seqLen` tokens of tinystories/calib.txt, seed 1. */
  calibration: CalibrationSet;
}

export function storiesData(cal: { count: number; seqLen: number }): StoriesData {
  const source = openModel(STORIES, nodeFs);
  const tokenizer = findTokenizer(STORIES, nodeFs);
  return {
    source,
    tokenizer,
    heldout: tokenizer.encode(readFileSync(shared('data/tinystories/heldout.txt'), 'utf8'), true),
    calibration: calibrationFromText(tokenizer, readFileSync(shared('data/tinystories/calib.txt'), 'utf8'), { ...cal, seed: 1 }),
  };
}

/** Seeded standard normal samples: Box–Muller on mulberry32 draws moved half a step off 0. */
export function normal(seed: number): () => number {
  const rand = mulberry32(seed);
  const u = () => rand() + 2 ** -33;
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}
