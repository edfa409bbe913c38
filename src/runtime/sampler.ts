/**
 * Next-token sampling as llama2.c `run.c` does it — greedy at temperature 0, otherwise
 * softmax(logits / temperature) sampled whole or from the top-p nucleus — with the same
 * xorshift64* generator and float32 arithmetic, so a seed gives run.c's exact choices.
 */

export interface SamplerOptions {
  /** 0 picks the most likely token (greedy); higher values flatten the distribution. */
  temperature: number;
  /** Nucleus size: sample among the most likely tokens whose probabilities sum past topP; ≥ 1 disables it. */
  topP: number;
  /** Positive integer; the same seed gives the same samples. */
  seed: number | bigint;
}

const f32 = Math.fround;
const MASK64 = (1n << 64n) - 1n;

/** xorshift64* as in run.c: 32 random bits per call. */
export class Rng {
  private state: bigint;

  constructor(seed: number | bigint) {
    const s = BigInt(seed);
    if (s <= 0n || s > MASK64) throw new RangeError(`seed must be a positive 64-bit integer, got ${seed}`);
    this.state = s;
  }

  u32(): number {
    let s = this.state;
    s ^= s >> 12n;
    s ^= (s << 25n) & MASK64;
    s ^= s >> 27n;
    this.state = s;
    return Number(((s * 0x2545f4914f6cdd1dn) & MASK64) >> 32n);
  }

  /** Uniform in [0, 1), 24 bits. */
  f32(): number {
    return (this.u32() >>> 8) / 16777216;
  }
}

export class Sampler {
  private readonly rng: Rng;
  private readonly probs: Float32Array; // [vocab]
  private readonly temperature: number;
  private readonly topP: number;

  constructor(
    readonly vocabSize: number,
    opts: SamplerOptions,
  ) {
    if (!(opts.temperature >= 0) || !Number.isFinite(opts.temperature)) throw new RangeError(`temperature must be ≥ 0, got ${opts.temperature}`);
    if (!(opts.topP > 0) || !Number.isFinite(opts.topP)) throw new RangeError(`top-p must be > 0, got ${opts.topP}`);
    this.rng = new Rng(opts.seed);
    this.probs = new Float32Array(vocabSize);
    this.temperature = f32(opts.temperature);
    this.topP = f32(opts.topP);
  }

  /** The next token given `logits` [vocab] (not modified). */
  sample(logits: Float32Array): number {
    if (this.temperature === 0) return argmax(logits);
    const p = this.probs;
    for (let i = 0; i < p.length; i++) p[i] = logits[i] / this.temperature;
    softmax32(p);
    const coin = this.rng.f32();
    return this.topP >= 1 ? sampleMult(p, coin) : sampleTopP(p, this.topP, coin);
  }
}

/** Index of the largest value (the first one on ties). */
export function argmax(v: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}

/** In-place softmax with float32 sums, like run.c. */
function softmax32(x: Float32Array): void {
  let max = x[0];
  for (let i = 1; i < x.length; i++) if (x[i] > max) max = x[i];
  let sum = 0;
  for (let i = 0; i < x.length; i++) {
    x[i] = Math.exp(f32(x[i] - max));
    sum = f32(sum + x[i]);
  }
  for (let i = 0; i < x.length; i++) x[i] = x[i] / sum;
}

/** Inverse-CDF sample from probabilities that sum to 1. */
function sampleMult(p: Float32Array, coin: number): number {
  let cdf = 0;
  for (let i = 0; i < p.length; i++) {
    cdf = f32(cdf + p[i]);
    if (coin < cdf) return i;
  }
  return p.length - 1; // rounding left the total below coin
}

/** Sample from the smallest set of most likely tokens whose probabilities exceed topP. */
function sampleTopP(p: Float32Array, topP: number, coin: number): number {
  // tokens below this cannot be in the nucleus (run.c's shortcut, which keeps the sort small)
  const cutoff = f32(f32(1 - topP) / (p.length - 1));
  const candidates: number[] = [];
  for (let i = 0; i < p.length; i++) if (p[i] >= cutoff) candidates.push(i);
  candidates.sort((a, b) => p[b] - p[a]);
  let total = 0;
  let last = candidates.length - 1;
  for (let i = 0; i < candidates.length; i++) {
    total = f32(total + p[candidates[i]]);
    if (total > topP) {
      last = i;
      break;
    }
  }
  const r = f32(coin * total);
  let cdf = 0;
  for (let i = 0; i <= last; i++) {
    cdf = f32(cdf + p[candidates[i]]);
    if (r < cdf) return candidates[i];
  }
  return candidates[last];
}
