/** Opening what a command runs: a compute backend, then the model and its tokenizer. */
import type { Backend } from '../backend/types.js';
import { floatActivationsOf } from '../formats/lowbit-kernels.js';
import { UsageError } from '../io/errors.js';
import { createBackend } from '../node/backend.js';
import { loadModel, type LoadedModel } from '../node/index.js';
import type { RunOptions } from './options.js';

export function openBackend(opts: RunOptions): Backend {
  try {
    return createBackend({ kind: opts.backend, threads: opts.threads, floatActivations: opts.floatActivations });
  } catch (e) {
    // an unavailable or misnamed backend is the user's choice, not a bug
    throw new UsageError((e as Error).message);
  }
}

/** Runs `body` with the loaded model; the backend is released however `body` ends. */
export function withModel<T>(modelPath: string, opts: RunOptions, body: (loaded: LoadedModel, loadSeconds: number) => T): T {
  const backend = openBackend(opts);
  try {
    const t0 = performance.now();
    const loaded = loadModel(modelPath, { tokenizer: opts.tokenizer, backend });
    try {
      return body(loaded, (performance.now() - t0) / 1000);
    } finally {
      loaded.dispose();
    }
  } finally {
    backend.dispose();
  }
}

export function describeBackend(b: Backend): string {
  const relaxed = (b as Backend & { kernels?: string }).kernels === 'relaxed' ? ', relaxed SIMD' : '';
  return `${b.name}${relaxed}, ${b.threads} thread${b.threads > 1 ? 's' : ''}${floatActivationsOf(b) ? ', float activations' : ''}`;
}
