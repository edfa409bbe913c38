import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { negLogProb, perplexity, perplexityOfText } from '../src/eval/perplexity.js';
import { findTokenizer, openModel } from '../src/io/load.js';
import { createBackend } from '../src/node/backend.js';
import { nodeFs } from '../src/node/fs.js';
import { LlamaModel } from '../src/runtime/model.js';

const shared = (p: string) => fileURLToPath(new URL(`../../../shared/${p}`, import.meta.url));
const STORIES = shared('models/stories260K/stories260K.bin');
const BENCH = shared('models/bench-llama');
const HELDOUT = readFileSync(shared('data/tinystories/heldout.txt'), 'utf8');
// the fastest backend available here (native if built, else wasm); one thread suits tiny layers
const backend = createBackend({ threads: 1 });
after(() => backend.dispose());

/** The cells of the first table row of a shared README whose first cell matches `label`. */
function readmeRow(readme: string, label: RegExp): string[] {
  const rows = readFileSync(shared(readme), 'utf8').split('\n').map((l) => l.split('|').map((c) => c.trim()).slice(1, -1));
  const row = rows.find((r) => r.length > 1 && label.test(r[0]!));
  assert.ok(row, `${readme} has a table row ${label}`);
  return row;
}

test('protocol: fresh windows from position 0, remainder dropped, NLL of tokens 1..seqLen-1', () => {
  const model = new LlamaModel(openModel(STORIES, nodeFs), { backend });
  const tokens = findTokenizer(STORIES, nodeFs).encode(HELDOUT.slice(0, 400), true);
  const seqLen = 16;
  const windows = Math.floor(tokens.length / seqLen);
  assert.ok(windows >= 2 && tokens.length % seqLen !== 0, 'the sample has a remainder to drop');

  // by hand: each window decoded token by token from position 0
  let sum = 0;
  const vocab = model.config.vocabSize;
  for (let w = 0; w < windows; w++) {
    for (let p = 0; p < seqLen - 1; p++) {
      const logits = model.forward([tokens[w * seqLen + p]!], p, 'last');
      sum += negLogProb(logits.subarray(0, vocab), tokens[w * seqLen + p + 1]!);
    }
  }
  const r = perplexity(model, tokens, { seqLen });
  assert.equal(r.windows, windows);
  assert.equal(r.predicted, windows * (seqLen - 1));
  assert.equal(r.tokens, tokens.length);
  assert.ok(Math.abs(r.nll - sum / r.predicted) < 1e-6, `${r.nll} vs ${sum / r.predicted}`);
  assert.ok(Math.abs(r.ppl - Math.exp(r.nll)) < 1e-9);

  // windows longer than the model's chunk size run as chunks over the KV cache: same result
  const chunked = perplexity(new LlamaModel(openModel(STORIES, nodeFs), { backend, maxRows: 5 }), tokens, { seqLen });
  assert.ok(Math.abs(chunked.nll - r.nll) < 1e-6, `chunked ${chunked.nll} vs ${r.nll}`);
});

test('negLogProb is a float64 log-softmax', () => {
  const logits = Float32Array.from([1000, 1000, 0]); // would overflow exp without the max shift
  assert.ok(Math.abs(negLogProb(logits, 0) - Math.log(2)) < 1e-12);
  assert.ok(Math.abs(negLogProb(logits, 2) - (1000 + Math.log(2))) < 1e-9);
});

test('stories260K perplexity on heldout.txt (seqlen 256) reproduces the README reference within 0.1 %', () => {
  const reference = Number(readmeRow('models/stories260K/README.md', /^fp32$/)[1]); // the RTN column's fp32 row
  assert.ok(reference > 1, 'a perplexity in the README');
  const model = new LlamaModel(openModel(STORIES, nodeFs), { backend });
  const progress: number[] = [];
  const r = perplexityOfText(model, findTokenizer(STORIES, nodeFs), HELDOUT, { seqLen: 256, onProgress: (d) => progress.push(d) });
  assert.equal(r.tokens, 98841); // README: 98,841 tokens with BOS (SentencePiece normalization)
  assert.equal(r.windows, 386);
  assert.equal(progress.length, 386);
  assert.ok(Math.abs(r.ppl / reference - 1) < 1e-3, `ppl ${r.ppl} vs reference ${reference}`);
});

test('bench-llama: HF directory and model.bin give the same perplexity (first 3 windows of heldout.txt)', () => {
  // The full 205-window reproduction of the README (149.8140) takes minutes: `npm run repro:fp32`.
  const tokenizer = findTokenizer(BENCH, nodeFs);
  const tokens = tokenizer.encode(HELDOUT, true);
  assert.equal(tokens.length, 52538); // README: 52,538 tokens with BOS
  const ppl = (path: string) => perplexity(new LlamaModel(openModel(path, nodeFs), { backend }), tokens, { seqLen: 256, maxWindows: 3 });
  const hf = ppl(BENCH);
  const bin = ppl(`${BENCH}/model.bin`);
  assert.equal(hf.windows, 3);
  assert.ok(Math.abs(hf.nll - bin.nll) < 1e-5, `nll HF ${hf.nll} vs bin ${bin.nll}`);
  // a weakly trained model on its held-out text: far better than uniform over 32000 tokens
  assert.ok(hf.ppl > 20 && hf.ppl < 1000, `ppl ${hf.ppl}`);
});
