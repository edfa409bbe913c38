/**
 * bitcrush for Node: the core library plus files on disk, the native (OpenBLAS) and
 * worker-thread WebAssembly backends, atomic file writes, and `loadModel`, the one-call way
 * to get a runnable model:
 *
 *   const { model, tokenizer, dispose } = loadModel('stories260K.bin');
 *   for (const piece of generate(model, tokenizer, { prompt: '', maxTokens: 64, temperature: 0, topP: 1, seed: 1 })) …
 *   dispose();
 */
import type { Backend } from '../backend/types.js';
import { InputError } from '../io/errors.js';
import type { Tokenizer } from '../io/tokenizer.js';
import type { ModelSource } from '../model/weights.js';
import type { LinearFactory } from '../runtime/dense.js';
import { backendBytes, formatBytes, WASM_MAX_BYTES } from '../runtime/memory.js';
import { LlamaModel } from '../runtime/model.js';
import { createBackend, type BackendKind } from './backend.js';
import { findRunnableTokenizer, openRunnable, runnableLinears } from './packed-open.js';

export * from '../index.js';
export { FileSource, nodeFs } from './fs.js';
export { createBackend, BACKEND_KINDS, type BackendKind, type BackendOptions } from './backend.js';
export { writeFileAtomic, type AtomicWriteOptions } from './atomic-write.js';

export interface LoadOptions {
  /** Tokenizer file; default: found beside the model. */
  tokenizer?: string;
  /** A backend to use (the caller disposes it), or the kind to create; default 'auto'. */
  backend?: Backend | BackendKind;
  /** Threads of a backend created here; default all cores. */
  threads?: number;
  /** Storage of the linear layers; default dense float32. */
  linear?: LinearFactory;
  /** Most tokens per forward call. */
  maxRows?: number;
}

export interface LoadedModel {
  source: ModelSource;
  tokenizer: Tokenizer;
  backend: Backend;
  model: LlamaModel;
  /** Frees the model's backend memory, and the backend's worker threads when this call created it. */
  dispose(): void;
}

/** Opens a llama2.c `.bin`, Hugging Face directory or bitcrush packed file with its tokenizer, ready to run. */
export function loadModel(path: string, opts: LoadOptions = {}): LoadedModel {
  // files first: a bad input fails before any worker thread starts
  const runnable = openRunnable(path);
  const source = runnable.source;
  const tokenizer = findRunnableTokenizer(path, runnable, opts.tokenizer);
  if (tokenizer.vocabSize > source.config.vocabSize) {
    throw new InputError(
      opts.tokenizer ?? path,
      `the tokenizer has ${tokenizer.vocabSize} tokens but the model only ${source.config.vocabSize}: they do not belong together`,
    );
  }
  const owned = typeof opts.backend !== 'object';
  const backend = typeof opts.backend === 'object' ? opts.backend : createBackend({ kind: opts.backend, threads: opts.threads });
  try {
    if (backend.name === 'wasm' && opts.linear === undefined) {
      const need = backendBytes(source, opts.maxRows ?? Math.min(source.config.seqLen, 512), runnable.packed && ((n) => runnable.packed!.packedBytes(n)));
      if (need > WASM_MAX_BYTES) {
        throw new InputError(path, `needs ${formatBytes(need)} of kernel memory; the wasm backend holds ${formatBytes(WASM_MAX_BYTES)}: use a packed file, a BF16/F16 checkpoint or the native backend`);
      }
    }
    const model = new LlamaModel(source, { backend, linear: opts.linear ?? runnableLinears(runnable, backend), maxRows: opts.maxRows });
    return {
      source,
      tokenizer,
      backend,
      model,
      dispose: () => {
        model.dispose();
        if (owned) backend.dispose();
      },
    };
  } catch (e) {
    if (owned) backend.dispose();
    throw e;
  }
}
