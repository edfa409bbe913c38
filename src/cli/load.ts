/** Opening what a command runs: the model file, its tokenizer and a compute backend. */
import type { Backend } from '../backend/types.js';
import { InputError, UsageError } from '../io/errors.js';
import { findTokenizer, openModel } from '../io/load.js';
import type { Tokenizer } from '../io/tokenizer.js';
import type { ModelSource } from '../model/weights.js';
import { createBackend } from '../node/backend.js';
import { nodeFs } from '../node/fs.js';
import { LlamaModel } from '../runtime/model.js';
import type { RunOptions } from './options.js';

export interface Loaded {
  source: ModelSource;
  tokenizer: Tokenizer;
  backend: Backend;
  model: LlamaModel;
  loadSeconds: number;
}

export function openBackend(opts: RunOptions): Backend {
  try {
    return createBackend({ kind: opts.backend, threads: opts.threads });
  } catch (e) {
    // an unavailable or misnamed backend is the caller's choice, not a bug
    throw new UsageError((e as Error).message);
  }
}

/** Opens model and tokenizer before the backend, so input errors come first and cheaply. */
export function loadForRun(modelPath: string, opts: RunOptions): Loaded {
  const t0 = performance.now();
  const source = openModel(modelPath, nodeFs);
  const tokenizer = findTokenizer(modelPath, nodeFs, opts.tokenizer);
  if (tokenizer.vocabSize > source.config.vocabSize) {
    throw new InputError(
      opts.tokenizer ?? modelPath,
      `the tokenizer has ${tokenizer.vocabSize} tokens but the model only ${source.config.vocabSize}: they do not belong together`,
    );
  }
  const backend = openBackend(opts);
  try {
    const model = new LlamaModel(source, { backend });
    return { source, tokenizer, backend, model, loadSeconds: (performance.now() - t0) / 1000 };
  } catch (e) {
    backend.dispose();
    throw e;
  }
}

export function describeBackend(b: Backend): string {
  return b.threads > 1 ? `${b.name}, ${b.threads} threads` : `${b.name}, 1 thread`;
}
