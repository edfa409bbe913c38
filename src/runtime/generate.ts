import { InputError, UsageError } from '../io/errors.js';
import { firstNonFinite } from '../io/finite.js';
import { NonFiniteLogitsError } from './finite-logits.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { renderChat, type ChatMessage } from './chat.js';
import type { LlamaModel } from './model.js';
import { Sampler, type SamplerOptions } from './sampler.js';

export interface GenerateOptions extends SamplerOptions {
  /** Text to continue; may be empty (the sequence then starts from BOS alone). */
  prompt: string;
  /**
   * Chat mode: the conversation so far, rendered with the model's chat template (which adds
   * the model's BOS text itself) and continued as the assistant; `prompt` is then unused.
   */
  messages?: readonly ChatMessage[];
  /** Most tokens to generate; fewer when the model ends the text or the context is full. */
  maxTokens: number;
}

export interface GenerateStats {
  promptTokens: number;
  generatedTokens: number;
  /** Why generation stopped: the model emitted BOS/EOS, maxTokens, or the context was full. */
  stop: 'end-of-text' | 'max-tokens' | 'context';
  prefillSeconds: number;
  /** Decode speed: one-token forward passes (and sampling) per second; NaN when none ran. */
  tokensPerSecond: number;
}

/**
 * Streams the continuation of a prompt as printable pieces, like llama2.c `run.c`: the prompt
 * (BOS first) is prefilled in chunks, then each sampled token is fed back one at a time.
 * Stops when the model emits BOS (run.c's sequence delimiter) or EOS. Timing covers only the
 * model and sampler, not loading nor the consumer of the pieces. Bad options and a prompt
 * longer than the context throw here, before anything is generated.
 */
export function generate(model: LlamaModel, tokenizer: Tokenizer, opts: GenerateOptions): Generator<string, GenerateStats> {
  const prompt = promptTokens(model.config.seqLen, tokenizer, opts);
  return run(model, tokenizer, prompt, new Sampler(model.config.vocabSize, opts), opts.maxTokens);
}

/** The prompt's tokens, after the checks every generation makes before running anything. */
function promptTokens(seqLen: number, tokenizer: Tokenizer, opts: GenerateOptions): number[] {
  if (!Number.isInteger(opts.maxTokens) || opts.maxTokens < 1) throw new UsageError(`max tokens must be a positive integer, got ${opts.maxTokens}`);
  const prompt = opts.messages ? tokenizer.encode(renderChat(tokenizer, opts.messages), false) : tokenizer.encode(opts.prompt, true);
  if (prompt.length === 0) {
    const why = 'the prompt is empty and the tokenizer has no BOS token to start from: give a prompt';
    throw tokenizer.noBosFile !== undefined ? new InputError(tokenizer.noBosFile, `bos_token is null; ${why}`) : new UsageError(why);
  }
  if (prompt.length > seqLen) {
    // in chat mode the template makes part of the prompt: say which file it came from
    const via = opts.messages && tokenizer.chat ? ` (the conversation in the chat template of ${tokenizer.chat.file})` : '';
    throw new UsageError(`the prompt${via} has ${prompt.length} tokens, more than the model's context of ${seqLen}`);
  }
  return prompt;
}

/** A model whose forward pass completes later (the WebGPU backend: logits come back from the GPU). */
export interface AsyncForwardModel {
  readonly name: string;
  readonly config: { seqLen: number; vocabSize: number };
  readonly maxRows: number;
  /** Positions the model can hold (≤ seqLen). */
  readonly positions: number;
  /** Logits [vocab] of the last of `tokens` at positions startPos... */
  forward(tokens: number[], startPos: number): Promise<Float32Array>;
}

/** `generate` for a model with an asynchronous forward pass: the same prompt, sampling, stops and stats. */
export async function* generateAsync(model: AsyncForwardModel, tokenizer: Tokenizer, opts: GenerateOptions): AsyncGenerator<string, GenerateStats> {
  const seqLen = Math.min(model.config.seqLen, model.positions);
  const prompt = promptTokens(seqLen, tokenizer, opts);
  const sampler = new Sampler(model.config.vocabSize, opts);
  const t0 = performance.now();
  let logits: Float32Array = new Float32Array(0);
  for (let start = 0; start < prompt.length; start += model.maxRows) logits = await model.forward(prompt.slice(start, start + model.maxRows), start);
  const prefillSeconds = (performance.now() - t0) / 1000;
  const d = new DecodeLoop(model.name, model.config.vocabSize, seqLen, tokenizer, sampler, prompt, opts.maxTokens);
  for (let out = d.next(logits); out !== null; out = d.next(logits)) {
    yield out.piece;
    if (!d.continues()) break;
    const t = performance.now();
    logits = await model.forward([out.token], d.pos++);
    d.decoded(performance.now() - t);
  }
  return d.stats(prefillSeconds);
}

function* run(model: LlamaModel, tokenizer: Tokenizer, prompt: number[], sampler: Sampler, maxTokens: number): Generator<string, GenerateStats> {
  const { seqLen } = model.config;
  // prefill the prompt, maxRows tokens per forward call
  const t0 = performance.now();
  let logits: Float32Array = new Float32Array(0);
  for (let start = 0; start < prompt.length; start += model.maxRows) {
    logits = model.forward(prompt.slice(start, start + model.maxRows), start, 'last');
  }
  const prefillSeconds = (performance.now() - t0) / 1000;
  const d = new DecodeLoop(model.name, model.config.vocabSize, seqLen, tokenizer, sampler, prompt, maxTokens);
  for (let out = d.next(logits); out !== null; out = d.next(logits)) {
    yield out.piece;
    if (!d.continues()) break;
    const t = performance.now();
    logits = model.forward([out.token], d.pos++, 'last');
    d.decoded(performance.now() - t);
  }
  return d.stats(prefillSeconds);
}

/**
 * The decode loop's bookkeeping, shared by the synchronous and the asynchronous forward pass:
 * sampling with its checks, the stops (BOS/EOS, maxTokens, a full context) and the timing.
 */
class DecodeLoop {
  /** Position of the next token fed to the model. */
  pos: number;
  private prev: number;
  private generated = 0;
  private decodeMs = 0;
  private decodeSteps = 0;
  private stop: GenerateStats['stop'] = 'end-of-text';

  constructor(
    private readonly modelName: string,
    private readonly vocabSize: number,
    private readonly seqLen: number,
    private readonly tokenizer: Tokenizer,
    private readonly sampler: Sampler,
    private readonly prompt: readonly number[],
    private readonly maxTokens: number,
  ) {
    this.pos = prompt.length;
    this.prev = prompt[prompt.length - 1]!;
  }

  /** The token sampled from `logits` and its printable piece; null when the model ended the text. */
  next(logits: Float32Array): { token: number; piece: string } | null {
    if (firstNonFinite(logits) >= 0) throw new NonFiniteLogitsError(this.modelName, this.pos - 1);
    const t = performance.now();
    const token = this.sampler.sample(logits);
    this.decodeMs += performance.now() - t;
    // finite logits near float32's limit overflow the softmax: no token can be drawn
    if (!Number.isInteger(token) || token < 0 || token >= this.vocabSize) throw new NonFiniteLogitsError(this.modelName, this.pos - 1);
    if (token === this.tokenizer.bosId || this.tokenizer.eosIds.includes(token)) {
      this.stop = 'end-of-text';
      return null;
    }
    const piece = this.tokenizer.decodePiece(this.prev, token);
    this.generated++;
    this.prev = token;
    return { token, piece };
  }

  /** Whether the token just emitted is fed back: not once maxTokens are out or the context is full. */
  continues(): boolean {
    if (this.generated >= this.maxTokens) this.stop = 'max-tokens';
    else if (this.pos >= this.seqLen) this.stop = 'context';
    else return true;
    return false;
  }

  /** One decode step's forward pass took `ms`. */
  decoded(ms: number): void {
    this.decodeMs += ms;
    this.decodeSteps++;
  }

  stats(prefillSeconds: number): GenerateStats {
    const { decodeSteps, decodeMs } = this;
    return {
      promptTokens: this.prompt.length,
      generatedTokens: this.generated,
      stop: this.stop,
      prefillSeconds,
      tokensPerSecond: decodeSteps > 0 ? decodeSteps / (decodeMs / 1000) : NaN,
    };
  }
}
