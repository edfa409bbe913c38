/**
 * Which loader reads a path: the one place that maps files on disk to ModelSource/Tokenizer.
 */
import type { ByteSource, FileSystemLike } from './bytes.js';
import { InputError, NotFoundError } from './errors.js';
import { GgufFile } from './gguf-file.js';
import { GgufModel, looksLikeGguf } from './gguf.js';
import { ggufTokenizer, hasGgufTokenizer } from './gguf-tokenizer.js';
import { HfModel, quantizationConfig } from './hf.js';
import { HfTokenizer } from './hf-tokenizer.js';
import { Llama2cModel } from './llama2c.js';
import { Llama2cTokenizer } from './llama2c-tokenizer.js';
import { SafetensorsFile } from './safetensors.js';
import { readSpmNormalizer, RUN_C_NORMALIZER } from './spm-normalizer.js';
import type { Tokenizer } from './tokenizer.js';
import type { ModelSource } from '../model/weights.js';

/**
 * A Hugging Face directory with `config.json`, a GGUF file (magic "GGUF"), or a llama2.c checkpoint. Files are told apart
 * by content, never by name: a safetensors container (u64 header length, then `{`) is not a
 * llama2.c file whatever its extension; llama2.c has no magic, so it is what remains.
 */
export function openModel(path: string, fs: FileSystemLike): ModelSource {
  if (fs.isDirectory(path)) {
    const quantized = quantizationConfig(path, fs);
    if (quantized !== undefined) {
      throw new InputError(path, `is a ${quantized.method} checkpoint (already quantized): run it directly (info, eval, generate), or \`bitcrush convert\` it to a packed file; this needs a float model`);
    }
    if (fs.exists(fs.join(path, 'config.json'))) return new HfModel(path, fs);
    throw new InputError(path, 'directory has no config.json (expected a Hugging Face model directory)');
  }
  if (!fs.exists(path)) throw new InputError(path, 'no such file or directory');
  const src = fs.open(path);
  if (looksLikeGguf(src)) return new GgufModel(src);
  if (looksLikeSafetensors(src)) {
    // its own error first (truncated, bad header), else why it cannot be run as a model here
    const st = new SafetensorsFile(src);
    if (st.metadata.format === 'bitcrush') throw new InputError(path, 'is a bitcrush packed file (already quantized); this needs the float model');
    throw new InputError(path, 'is a bare safetensors file: pass the Hugging Face directory holding it and its config.json');
  }
  // a llama2.c header is 7 int32: anything shorter is no model file at all
  if (src.size < 28) throw new InputError(path, `truncated, or an unknown model format: ${src.size} bytes, shorter than a llama2.c header (expected a llama2.c checkpoint, a Hugging Face directory with config.json, or a bitcrush packed file)`);
  return new Llama2cModel(src);
}

/** safetensors starts with a little-endian u64 header length below the file size, then the JSON header's `{`. */
export function looksLikeSafetensors(src: ByteSource): boolean {
  if (src.size < 9) return false;
  const head = src.read(0, 9);
  const view = new DataView(head.buffer, head.byteOffset, 9);
  return head[8] === 0x7b && view.getUint32(4, true) === 0 && view.getUint32(0, true) > 0;
}

/** A JSON document (first non-blank byte `{` or `[`, or a .json name) → Hugging Face tokenizer.json; anything else → llama2.c tokenizer.bin. */
export function openTokenizer(path: string, fs: FileSystemLike): Tokenizer {
  const src = fs.open(path);
  const head = src.read(0, Math.min(src.size, 64));
  const first = head.find((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09 && b !== 0xef && b !== 0xbb && b !== 0xbf);
  // a tokenizer.bin starts with a small int32 (max_token_length): never `{` or `[` then text
  if (first === 0x7b || first === 0x5b || /\.json$/i.test(path)) return new HfTokenizer(path, fs);
  // tokenizer.bin lost the SentencePiece normalizer flags; the .model it came from has them
  const spm = path.replace(/(\.bin)?$/i, '.model');
  const normalizer = spm !== path && fs.exists(spm) ? readSpmNormalizer(fs.open(spm)) : RUN_C_NORMALIZER;
  return new Llama2cTokenizer(src, normalizer);
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
  // a GGUF file carries its tokenizer
  if (!isDir && fs.exists(modelPath)) {
    const src = fs.open(modelPath);
    if (looksLikeGguf(src)) {
      const g = new GgufFile(src);
      if (!hasGgufTokenizer(g)) throw new NotFoundError(modelPath, 'the GGUF file has no tokenizer (no tokenizer.ggml.model); pass --tokenizer <file>');
      return ggufTokenizer(g);
    }
  }
  const dir = isDir ? modelPath : fs.dirname(modelPath);
  const named = [...(isDir ? ['tokenizer.json'] : []), 'tokenizer.bin'].map((n) => fs.join(dir, n));
  const found = named.find((p) => fs.exists(p));
  if (found !== undefined) return openTokenizer(found, fs);

  const modelName = modelPath.split(/[\\/]/).pop();
  const toks = (fs.list?.(dir) ?? []).filter((n) => /^tok.*\.bin$/i.test(n) && n !== modelName);
  if (toks.length === 1) return openTokenizer(fs.join(dir, toks[0]!), fs);
  const why = toks.length > 1 ? `several candidates (${toks.join(', ')})` : 'no tokenizer.json, tokenizer.bin or tok*.bin beside it';
  throw new NotFoundError(modelPath, `cannot find the tokenizer: ${why}; pass --tokenizer <file>`);
}
