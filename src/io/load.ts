/**
 * Which loader reads a path: the one place that maps files on disk to ModelSource/Tokenizer.
 */
import type { FileSystemLike } from './bytes.js';
import { InputError } from './errors.js';
import { HfModel } from './hf.js';
import { HfTokenizer } from './hf-tokenizer.js';
import { Llama2cModel } from './llama2c.js';
import { Llama2cTokenizer } from './llama2c-tokenizer.js';
import { readSpmNormalizer, RUN_C_NORMALIZER } from './spm-normalizer.js';
import type { Tokenizer } from './tokenizer.js';
import type { ModelSource } from '../model/weights.js';

/** A llama2.c `.bin` checkpoint, or a Hugging Face directory with `config.json`. */
export function openModel(path: string, fs: FileSystemLike): ModelSource {
  if (fs.isDirectory(path)) {
    if (fs.exists(fs.join(path, 'config.json'))) return new HfModel(path, fs);
    throw new InputError(path, 'directory has no config.json (expected a Hugging Face model directory)');
  }
  if (!fs.exists(path)) throw new InputError(path, 'no such file or directory');
  if (/\.bin$/i.test(path)) return new Llama2cModel(fs.open(path));
  throw new InputError(path, 'unknown model format (expected a llama2.c .bin file or a Hugging Face directory with config.json)');
}

/** `.json` → Hugging Face tokenizer; anything else → llama2.c tokenizer.bin. */
export function openTokenizer(path: string, fs: FileSystemLike): Tokenizer {
  if (/\.json$/i.test(path)) return new HfTokenizer(path, fs);
  // tokenizer.bin lost the SentencePiece normalizer flags; the .model it came from has them
  const spm = path.replace(/(\.bin)?$/i, '.model');
  const normalizer = spm !== path && fs.exists(spm) ? readSpmNormalizer(fs.open(spm)) : RUN_C_NORMALIZER;
  return new Llama2cTokenizer(fs.open(path), normalizer);
}

/**
 * The tokenizer for a model: `explicitPath` when given (a file, or a directory holding
 * tokenizer.json / tokenizer.bin); else `tokenizer.json` in a Hugging Face
 * directory, `tokenizer.bin` beside the model, or the single `tok*.bin` beside it
 * (stories260K ships `tok512.bin`).
 */
export function findTokenizer(modelPath: string, fs: FileSystemLike, explicitPath?: string): Tokenizer {
  if (explicitPath !== undefined) {
    if (!fs.isDirectory(explicitPath)) return openTokenizer(explicitPath, fs);
    const inside = ['tokenizer.json', 'tokenizer.bin'].map((n) => fs.join(explicitPath, n)).find((p) => fs.exists(p));
    if (inside === undefined) throw new InputError(explicitPath, 'directory has no tokenizer.json or tokenizer.bin');
    return openTokenizer(inside, fs);
  }
  const isDir = fs.isDirectory(modelPath);
  const dir = isDir ? modelPath : fs.dirname(modelPath);
  const named = [...(isDir ? ['tokenizer.json'] : []), 'tokenizer.bin'].map((n) => fs.join(dir, n));
  const found = named.find((p) => fs.exists(p));
  if (found !== undefined) return openTokenizer(found, fs);

  const modelName = modelPath.split(/[\\/]/).pop();
  const toks = (fs.list?.(dir) ?? []).filter((n) => /^tok.*\.bin$/i.test(n) && n !== modelName);
  if (toks.length === 1) return openTokenizer(fs.join(dir, toks[0]!), fs);
  const why = toks.length > 1 ? `several candidates (${toks.join(', ')})` : 'no tokenizer.json, tokenizer.bin or tok*.bin beside it';
  throw new InputError(modelPath, `cannot find the tokenizer: ${why}; pass --tokenizer <file>`);
}
