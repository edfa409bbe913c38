import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createReferenceBackend } from '../src/backend/reference.js';
import { findTokenizer, openModel } from '../src/io/load.js';
import { nodeFs } from '../src/node/fs.js';
import { generate, type GenerateOptions } from '../src/runtime/generate.js';
import { LlamaModel } from '../src/runtime/model.js';

const shared = (p: string) => fileURLToPath(new URL(`../../../shared/${p}`, import.meta.url));
const STORIES = shared('models/stories260K/stories260K.bin');
const backend = createReferenceBackend();

/** The text run.c printed for `args`, as documented in stories260K.md (run.c adds a final "\n"). */
function documentedOutput(args: string): string {
  const md = readFileSync(shared('models/stories260K/stories260K.md'), 'utf8');
  const header = `$ ./run stories260K/stories260K.bin -z stories260K/tok512.bin ${args}\n`;
  const at = md.indexOf(header);
  assert.ok(at >= 0, `stories260K.md documents ${args}`);
  const block = md.slice(at + header.length, md.indexOf('```', at + header.length));
  assert.ok(block.endsWith('\n'));
  return block.slice(0, -1);
}

function generateText(model: LlamaModel, opts: GenerateOptions): string {
  const tokenizer = findTokenizer(STORIES, nodeFs);
  let text = '';
  const it = generate(model, tokenizer, opts);
  for (let r = it.next(); !r.done; r = it.next()) text += r.value;
  return text;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('stories260K greedy: exactly the story run.c prints (empty prompt, temperature 0, 256 steps)', () => {
  const model = new LlamaModel(openModel(STORIES, nodeFs), { backend });
  const text = generateText(model, { prompt: '', maxTokens: 256, temperature: 0, topP: 0.9, seed: 1 });
  assert.equal(text, documentedOutput('-t 0.0'));
});

test('stories260K sampled: run.c\'s story for -t 1.0 -p 0.9 -s 133742 (same RNG and top-p)', () => {
  const model = new LlamaModel(openModel(STORIES, nodeFs), { backend });
  const text = generateText(model, { prompt: '', maxTokens: 256, temperature: 1, topP: 0.9, seed: 133742 });
  assert.equal(text, documentedOutput('-t 1.0 -p 0.9 -s 133742'));
});

test('generation stops at maxTokens and reports its stop reason', () => {
  const model = new LlamaModel(openModel(STORIES, nodeFs), { backend });
  const tokenizer = findTokenizer(STORIES, nodeFs);
  const it = generate(model, tokenizer, { prompt: 'Once upon a time', maxTokens: 5, temperature: 0, topP: 1, seed: 1 });
  let pieces = 0;
  let r = it.next();
  for (; !r.done; r = it.next()) pieces++;
  assert.equal(pieces, 5);
  assert.equal(r.value.generatedTokens, 5);
  assert.equal(r.value.stop, 'max-tokens');
  assert.equal(r.value.promptTokens, tokenizer.encode('Once upon a time', true).length);
});

test('prefill as matmul (whole chunk, and in chunks over the cache) equals decode one token at a time', () => {
  const source = openModel(STORIES, nodeFs);
  const vocab = source.config.vocabSize;
  const tokens = findTokenizer(STORIES, nodeFs).encode('Once upon a time, a cat sat on a mat. It was happy and sang a song to the sun.', true);
  assert.ok(tokens.length > 20);
  const T = tokens.length;

  const decoder = new LlamaModel(source, { backend });
  const oneByOne = new Float32Array(T * vocab);
  tokens.forEach((t, pos) => oneByOne.set(decoder.forward([t], pos, 'last'), pos * vocab));

  const whole = new LlamaModel(source, { backend }).forward(tokens, 0, 'all').slice();
  assert.ok(maxAbsDiff(whole, oneByOne) <= 1e-4, `whole chunk: max diff ${maxAbsDiff(whole, oneByOne)}`);

  // chunks of 7 (maxRows): later chunks attend to earlier ones through the KV cache
  const chunked = new LlamaModel(source, { backend, maxRows: 7 });
  const inChunks = new Float32Array(T * vocab);
  for (let start = 0; start < T; start += 7) inChunks.set(chunked.forward(tokens.slice(start, start + 7), start, 'all'), start * vocab);
  assert.ok(maxAbsDiff(inChunks, oneByOne) <= 1e-4, `chunks: max diff ${maxAbsDiff(inChunks, oneByOne)}`);

  // 'last' of a chunk is the last row of 'all'
  const last = new LlamaModel(source, { backend }).forward(tokens, 0, 'last');
  assert.ok(maxAbsDiff(last, oneByOne.subarray((T - 1) * vocab)) <= 1e-4);
});

test('forward refuses positions past the context and bad token ids', () => {
  const model = new LlamaModel(openModel(STORIES, nodeFs), { backend, maxRows: 4 });
  const seqLen = model.config.seqLen;
  assert.throws(() => model.forward([1], seqLen), RangeError);
  assert.throws(() => model.forward([1, 2], seqLen - 1), RangeError);
  assert.throws(() => model.forward([1, 2, 3, 4, 5], 0), RangeError); // more than maxRows
  assert.throws(() => model.forward([model.config.vocabSize], 0), RangeError);
  assert.doesNotThrow(() => model.forward([1], seqLen - 1));
});

test('bench-llama: llama2.c model.bin and the HF directory give the same logits', () => {
  const bin = openModel(shared('models/bench-llama/model.bin'), nodeFs);
  const hf = openModel(shared('models/bench-llama'), nodeFs);
  assert.deepEqual(hf.config, bin.config);
  const tokens = findTokenizer(shared('models/bench-llama'), nodeFs).encode('It is a truth universally acknowledged, that a single man', true);
  const a = new LlamaModel(bin, { backend }).forward(tokens, 0, 'all');
  const b = new LlamaModel(hf, { backend }).forward(tokens, 0, 'all');
  const diff = maxAbsDiff(a, b);
  assert.ok(diff <= 1e-4, `max abs diff ${diff}`);
});
