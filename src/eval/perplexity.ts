/**
 * Perplexity with the protocol of GPTQ / SliM-LLM / AQLM / DBellQuant (docs/methods.md): the
 * whole text tokenized once with BOS (none for a tokenizer without one, e.g. Qwen2's), cut into non-overlapping windows of `seqLen` tokens, the
 * remainder dropped; each window starts a fresh sequence at position 0 and predicts its tokens
 * 1..seqLen-1; ppl = exp(mean NLL over all predicted tokens).
 */
import { InputError, UsageError } from '../io/errors.js';
import { encodeInChunks } from '../io/tokenize-chunks.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { NonFiniteLogitsError } from '../runtime/finite-logits.js';
import type { LlamaModel } from '../runtime/model.js';

/**
 * The window length when none is given: the model's context, at most 2048 (the papers' LLaMA
 * protocol; Llama 3.1's 131072 positions would make one window of the whole text).
 */
export const DEFAULT_WINDOW = 2048;
export function defaultWindow(context: number): number {
  return Math.min(context, DEFAULT_WINDOW);
}
/** The text is shorter than one window: the caller knows which file it came from and names it. */
export class TextTooShortError extends UsageError {}

export interface PerplexityOptions {
  /** Window length in tokens (at most the model's context). */
  seqLen: number;
  /** Evaluate only the first windows (quick checks); default all. */
  maxWindows?: number;
  /** Called after each window. */
  onProgress?: (windowsDone: number, windowsTotal: number) => void;
  /** Called as the text is tokenized (perplexityOfText: in chunks, only as far as maxWindows needs). */
  onTokenize?: (charsDone: number, charsTotal: number) => void;
}

export interface PerplexityResult {
  ppl: number;
  /** Mean negative log-likelihood (nats) per predicted token. */
  nll: number;
  /** Tokens of the whole text, BOS included (before the remainder is dropped); of its tokenized part when textComplete is false. */
  tokens: number;
  /** False when maxWindows let tokenization stop before the end of the text (the windows are the same). */
  textComplete: boolean;
  /** Whether a BOS token was prepended (false: the tokenizer has none). */
  bos: boolean;
  windows: number;
  /** Tokens whose probability was scored: windows · (seqLen - 1). */
  predicted: number;
}

export function perplexityOfText(model: LlamaModel, tokenizer: Tokenizer, text: string, opts: PerplexityOptions): PerplexityResult {
  const enough = opts.maxWindows === undefined ? undefined : opts.maxWindows * opts.seqLen;
  const { tokens, complete } = encodeInChunks(tokenizer, text, { bos: true, enough, onProgress: opts.onTokenize });
  return { ...perplexity(model, tokens, opts), bos: tokenizer.bosId !== null, textComplete: complete };
}

export function perplexity(model: LlamaModel, tokens: ArrayLike<number>, opts: PerplexityOptions): Omit<PerplexityResult, 'bos' | 'textComplete'> {
  const { seqLen } = opts;
  const context = model.config.seqLen;
  if (!Number.isInteger(seqLen) || seqLen < 2 || seqLen > context) {
    throw new UsageError(`seqlen must be an integer in 2..${context} (the model's context), got ${seqLen}`);
  }
  const available = Math.floor(tokens.length / seqLen);
  if (available === 0) throw new TextTooShortError(`the text has ${tokens.length} tokens, fewer than one window of ${seqLen}`);
  const windows = Math.min(available, opts.maxWindows ?? available);
  const vocab = model.config.vocabSize;

  let nllSum = 0;
  for (let w = 0; w < windows; w++) {
    const window = Array.from({ length: seqLen }, (_, i) => tokens[w * seqLen + i]!);
    // a window longer than the model's chunk size runs as several chunks over the KV cache
    for (let start = 0; start < seqLen; start += model.maxRows) {
      const chunk = window.slice(start, start + model.maxRows);
      const logits = model.forward(chunk, start, 'all'); // [chunk, vocab]
      for (let t = 0; t < chunk.length; t++) {
        const target = window[start + t + 1];
        if (target === undefined) break; // the window's last token predicts nothing
        const nll = negLogProb(logits.subarray(t * vocab, (t + 1) * vocab), target);
        // finite weights can still overflow float32 on the way: never report a NaN perplexity
        if (!Number.isFinite(nll)) throw new NonFiniteLogitsError(model.name, w * seqLen + start + t);
        nllSum += nll;
      }
    }
    opts.onProgress?.(w + 1, windows);
  }
  const predicted = windows * (seqLen - 1);
  const nll = nllSum / predicted;
  const ppl = Math.exp(nll);
  // exp overflows past 709 nats per token (a uniform guess over 32 000 tokens is 10.4): logits
  // that far off come from corrupt weights, and "perplexity Infinity" is no result
  if (!Number.isFinite(ppl)) throw new InputError(model.name, `perplexity overflows: a mean loss of ${nll.toExponential(3)} nats per token; the model's logits are far out of range (corrupt weights?)`);
  return { ppl, nll, tokens: tokens.length, windows, predicted };
}

/** -log softmax(logits)[target], in float64. */
export function negLogProb(logits: Float32Array, target: number): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return Math.log(sum) + max - logits[target];
}
