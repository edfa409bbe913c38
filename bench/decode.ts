/**
 * fp32 decode speed of the benchmark model: greedy generation, one token per forward pass,
 * timed by `generate` (model and sampler only, load excluded). Used by bench/kernels.ts.
 */
import { fileURLToPath } from 'node:url';
import type { Backend } from '../src/backend/types.js';
import { loadModel } from '../src/node/index.js';
import { generate } from '../src/runtime/generate.js';

const BENCH_LLAMA = fileURLToPath(new URL('../../../shared/models/bench-llama', import.meta.url));

/** `path`: bench-llama by default, or a packed file of it (bench/quant.ts). */
export function benchDecodeTokensPerSecond(backend: Backend, tokens = 200, path = BENCH_LLAMA): number {
  const { model, tokenizer, dispose } = loadModel(path, { backend });
  const run = (maxTokens: number) => {
    const it = generate(model, tokenizer, { prompt: 'It was a bright cold day', maxTokens, temperature: 0, topP: 1, seed: 1 });
    let r = it.next();
    while (!r.done) r = it.next();
    return r.value;
  };
  run(16); // warm-up: JIT and first-touch of the weights
  const rate = run(tokens).tokensPerSecond;
  dispose();
  return rate;
}
