/**
 * Small Hugging Face model directories for tests: stories260K written as config.json +
 * model.safetensors (q/k permuted like HF's converter), and a 512-token cut of bench-llama's
 * tokenizer.json to run them. (Not a test file: compiled outside *.test.js.)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Llama2cModel } from '../src/io/llama2c.js';
import { FileSource } from '../src/node/fs.js';
import { safetensorsBytes, type TestTensor } from './hf-dirs.js';

export { safetensorsBytes, type TestTensor };

const SHARED = process.env['BITCRUSH_SHARED'] ?? fileURLToPath(new URL('../../../shared/', import.meta.url));
export const STORIES_BIN = join(SHARED, 'models/stories260K/stories260K.bin');
export const BENCH_DIR = join(SHARED, 'models/bench-llama');

export const f32Bytes = (a: Float32Array) => new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));

/** HF's permutation (what its converter applies): interleaved row h*hs+2i+p → HF row h*hs+p*hs/2+i. */
export function permuteForHf(w: Float32Array, nHeads: number, hs: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < hs / 2; i++) {
      for (let p = 0; p < 2; p++) out.set(w.subarray((h * hs + 2 * i + p) * cols, (h * hs + 2 * i + p + 1) * cols), (h * hs + p * (hs / 2) + i) * cols);
    }
  }
  return out;
}

/** stories260K as an HF directory (q/k permuted like HF's converter), optionally with extra tensors or shards. */
export function writeHfStories(dir: string, opts: { extra?: TestTensor[]; shards?: number; config?: Record<string, unknown> } = {}): void {
  const m = new Llama2cModel(new FileSource(STORIES_BIN));
  const c = m.config;
  const hs = c.dim / c.nHeads;
  const tensors: TestTensor[] = m.tensors().map(({ name, shape }) => {
    let w = m.load(name);
    if (name.endsWith('q_proj.weight')) w = permuteForHf(w, c.nHeads, hs, c.dim);
    if (name.endsWith('k_proj.weight')) w = permuteForHf(w, c.nKvHeads, hs, c.dim);
    return { name, dtype: 'F32', shape, bytes: f32Bytes(w) };
  });
  tensors.push(...(opts.extra ?? []));
  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: c.dim,
    intermediate_size: c.hiddenDim,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.seqLen,
    rms_norm_eps: 1e-5,
    tie_word_embeddings: true,
    ...opts.config,
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  const shards = opts.shards ?? 1;
  if (shards === 1) {
    writeFileSync(join(dir, 'model.safetensors'), safetensorsBytes(tensors, { format: 'pt' }));
    return;
  }
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < shards; s++) {
    const file = `model-0000${s + 1}-of-0000${shards}.safetensors`;
    const part = tensors.filter((_, i) => i % shards === s);
    for (const t of part) weightMap[t.name] = file;
    writeFileSync(join(dir, file), safetensorsBytes(part));
  }
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
}

/**
 * bench-llama's Llama-2 tokenizer.json cut to its first `vocab` ids (special tokens, the 256
 * byte-fallback tokens, the first merges' pieces), keeping the merges whose pieces survive:
 * a valid BPE tokenizer small enough to drive stories260K (512 ids) and to mutate quickly.
 */
export function smallTokenizerJson(vocab = 512): string {
  const t = JSON.parse(readFileSync(join(BENCH_DIR, 'tokenizer.json'), 'utf8')) as {
    added_tokens: Array<{ id: number }>;
    model: { vocab: Record<string, number>; merges: Array<[string, string] | string> };
  };
  const kept = Object.fromEntries(Object.entries(t.model.vocab).filter(([, id]) => id < vocab));
  t.model.vocab = kept;
  t.model.merges = t.model.merges.filter((m) => {
    const [a, b] = typeof m === 'string' ? (m.split(' ') as [string, string]) : m;
    return a in kept && b in kept && `${a}${b}` in kept;
  });
  t.added_tokens = t.added_tokens.filter((a) => a.id < vocab);
  return JSON.stringify(t);
}
