/**
 * fp32 decode speed of the benchmark model: greedy, one token per forward pass, a fixed number
 * of steps from BOS (EOS does not stop it, so every run times the same work); load excluded.
 * Used by bench/kernels.ts.
 */
import { fileURLToPath } from 'node:url';
import type { Backend } from '../src/backend/types.js';
import { loadModel } from '../src/node/index.js';
import { argmax } from '../src/runtime/sampler.js';

const BENCH_LLAMA = fileURLToPath(new URL('../../../shared/models/bench-llama', import.meta.url));

/** `path`: bench-llama by default, or a packed file of it (bench/quant.ts). */
export function benchDecodeTokensPerSecond(backend: Backend, steps = 200, path = BENCH_LLAMA): number {
  const { model, tokenizer, dispose } = loadModel(path, { backend });
  const decode = (n: number) => {
    let token = tokenizer.bosId ?? 0;
    for (let pos = 0; pos < n; pos++) token = argmax(model.forward([token], pos, 'last'));
  };
  decode(16); // warm-up: JIT and first touch of the weights
  const t0 = performance.now();
  decode(steps);
  const rate = steps / ((performance.now() - t0) / 1000);
  dispose();
  return rate;
}
