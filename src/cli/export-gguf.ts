/** `bitcrush export --to gguf`: a packed (or float) model as a GGUF file for llama.cpp / Ollama. */
import { readFileSync } from 'node:fs';
import { InputError } from '../io/errors.js';
import { ggufChunks } from '../io/gguf-file.js';
import { ggufVocabOf, TOKEN_TYPE, type GgufVocab } from '../io/gguf-tokenizer.js';
import { parseJson } from '../io/hf.js';
import { HfTokenizer } from '../io/hf-tokenizer.js';
import { Llama2cTokenizer } from '../io/llama2c-tokenizer.js';
import { hfVocabForGguf } from '../interop/gguf-vocab.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { writeFileAtomic } from '../node/atomic-write.js';
import { findRunnableTokenizer, openRunnable } from '../node/packed-open.js';
import { GgufExportError, ggufMetadata, ggufTensors } from '../interop/gguf-write.js';
import type { ExportOptions } from './export.js';
import { inputFiles, checkOutputFile } from './output-check.js';
import { createProgress } from './progress.js';

export function exportGguf(modelPath: string, opts: ExportOptions): Record<string, unknown> {
  checkOutputFile('--out', opts.out, inputFiles(modelPath));
  const runnable = openRunnable(modelPath);
  const source = runnable.source;
  const vocab = vocabForGguf(findRunnableTokenizer(modelPath, runnable, opts.tokenizer), opts.tokenizer ?? modelPath);
  let kvs;
  let tensors;
  try {
    kvs = ggufMetadata(source.config, vocab, modelPath.split(/[\\/]/).pop() ?? 'model');
    tensors = ggufTensors(source, runnable.packed, { floatFallback: opts.floatFallback === true });
  } catch (e) {
    if (e instanceof GgufExportError) throw new InputError(modelPath, `cannot export to GGUF: ${e.message}${opts.floatFallback ? '' : ' (--float-fallback writes tensors without an exact llama.cpp type as F32)'}`);
    throw e;
  }
  const progress = createProgress(process.stderr, 'export gguf', 'tensors');
  let done = 0;
  const counted = tensors.map((t) => ({
    ...t,
    bytes: () => {
      progress.update(done++, tensors.length, t.name);
      return t.bytes();
    },
  }));
  const bytes = writeFileAtomic(opts.out, ggufChunks(kvs, counted));
  progress.update(tensors.length, tensors.length);
  progress.finish();
  const types: Record<string, number> = {};
  for (const t of tensors) types[t.type.name] = (types[t.type.name] ?? 0) + 1;
  const weights = source.tensors().reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
  const summary = { model: modelPath, out: opts.out, to: 'gguf', bytes, bpw: (8 * bytes) / weights, types };
  if (!opts.json) {
    process.stderr.write(`wrote ${opts.out}: ${bytes} bytes (${summary.bpw.toFixed(3)} bits per weight over ${weights} weights, header included), tensors ${Object.entries(types).map(([k, n]) => `${k} ×${n}`).join(', ')}\n`);
  }
  return summary;
}

/** The model's tokenizer as tokenizer.ggml.* (a GGUF one as it was; a llama2.c tokenizer.bin as SentencePiece "llama"; an HF tokenizer.json by src/interop/gguf-vocab.ts). */
export function vocabForGguf(t: Tokenizer, file: string): GgufVocab {
  const fromGguf = ggufVocabOf(t);
  if (fromGguf) return fromGguf;
  if (t instanceof HfTokenizer) {
    const json = parseJson(t.path, readFileSync(t.path, 'utf8'));
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new InputError(t.path, 'not a JSON object');
    return hfVocabForGguf(t.path, json as Record<string, unknown>, { bosId: t.bosId, eosIds: t.eosIds, chatTemplate: t.chat?.template });
  }
  if (t instanceof Llama2cTokenizer) {
    const { pieces, scores, normalizer } = t.vocabulary();
    // ignoreBOM: keep a leading U+FEFF (Llama 2's token 30143 is that one character)
    const dec = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
    const special = ['<unk>', '<s>', '</s>'];
    const tokens = pieces.map((p, i) => {
      if (i < 3) return special[i]!;
      try {
        return dec.decode(p).replaceAll(' ', '\u2581');
      } catch {
        throw new InputError(file, `token ${i} is not UTF-8: GGUF stores tokens as text`);
      }
    });
    const types = tokens.map((_, i) => (i === 0 ? TOKEN_TYPE.UNKNOWN : i < 3 ? TOKEN_TYPE.CONTROL : i < 259 ? TOKEN_TYPE.BYTE : TOKEN_TYPE.NORMAL));
    return { model: 'llama', tokens, scores: [...scores], types, bosId: 1, eosId: 2, addBos: true, addSpacePrefix: normalizer.addDummyPrefix };
  }
  throw new InputError(file, 'exporting this tokenizer to GGUF is not supported yet (supported: llama2.c tokenizer.bin, HF tokenizer.json BPE, a GGUF file\'s own)');
}
