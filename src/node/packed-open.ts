/**
 * Opening a model file that may be a bitcrush packed file: its linears then run on the packed
 * formats' kernels through the reader's Linear factory (nothing is dequantized at load), and its
 * tokenizer is found beside it or through the original model recorded by `bitcrush quantize`.
 */
import type { Backend } from '../backend/types.js';
import { NotFoundError } from '../io/errors.js';
import { quantizationConfig } from '../io/hf.js';
import { findTokenizer, openModel } from '../io/load.js';
import { openQuantizedHf } from '../interop/hf-quantized.js';
import type { Tokenizer } from '../io/tokenizer.js';
import type { ModelSource } from '../model/weights.js';
import { isPackedModel, PackedModel } from '../packed/reader.js';
import type { LinearFactory } from '../runtime/dense.js';
import { FileSource, nodeFs } from './fs.js';

export interface RunnableSource {
  source: ModelSource;
  /** Set for a packed file: the Linear factory of its formats. */
  packed?: PackedModel;
}

/** A bitcrush packed file (any name; recognised by its header), a quantized HF directory, else whatever openModel reads. */
export function openRunnable(path: string): RunnableSource {
  if (nodeFs.exists(path) && !nodeFs.isDirectory(path)) {
    const file = new FileSource(path);
    if (isPackedModel(file)) {
      const packed = new PackedModel(file);
      return { source: packed, packed };
    }
    file.close();
  }
  // a quantized Hugging Face checkpoint (GPTQ): converted in memory to the packed file it is
  if (nodeFs.isDirectory(path) && quantizationConfig(path, nodeFs) !== undefined) {
    const packed = openQuantizedHf(path, nodeFs);
    return { source: packed, packed };
  }
  return { source: openModel(path, nodeFs) };
}

/** The Linear factory a runnable source needs (undefined: the default dense float32). */
export function runnableLinears(r: RunnableSource, backend: Backend): LinearFactory | undefined {
  return r.packed?.linears(backend);
}

/**
 * The tokenizer: `explicit`, else one beside the file; for a packed file without one beside
 * it, the tokenizer recorded in its header (paths relative to the packed file's directory):
 * the --tokenizer given to quantize, else the one beside the original model.
 */
export function findRunnableTokenizer(path: string, r: RunnableSource, explicit?: string): Tokenizer {
  const recorded = r.packed?.header.method.options.source as { model?: unknown; tokenizer?: unknown } | undefined;
  if (explicit !== undefined || recorded === undefined) return findTokenizer(path, nodeFs, explicit);
  try {
    return findTokenizer(path, nodeFs);
  } catch (e) {
    if (!(e instanceof NotFoundError)) throw e; // a bad tokenizer beside the file is an error, not absent
    const dir = nodeFs.dirname(path);
    if (typeof recorded.tokenizer === 'string') return findTokenizer(path, nodeFs, nodeFs.join(dir, recorded.tokenizer));
    const original = typeof recorded.model === 'string' ? nodeFs.join(dir, recorded.model) : undefined;
    if (original === undefined || !nodeFs.exists(original)) throw e;
    return findTokenizer(original, nodeFs);
  }
}
