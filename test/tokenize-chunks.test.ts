/**
 * Chunked tokenization (src/io/tokenize-chunks.ts) gives exactly the whole-text tokens on the
 * shared texts with both tokenizer kinds, stops early when told how many tokens are enough,
 * and `eval --max-windows` scores the same windows as before while tokenizing only a prefix.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, describe, test } from 'node:test';
import { createReferenceBackend } from '../src/backend/reference.js';
import { perplexity, perplexityOfText } from '../src/eval/perplexity.js';
import { HfTokenizer } from '../src/io/hf-tokenizer.js';
import { findTokenizer, openModel } from '../src/io/load.js';
import { encodeInChunks } from '../src/io/tokenize-chunks.js';
import { nodeFs } from '../src/node/fs.js';
import { LlamaModel } from '../src/runtime/model.js';
import { writeChatTokenizer } from './hf-dirs.js';
import { shared, STORIES } from './stories.js';

const TEXTS = ['data/wikitext2/test.txt', 'data/tinystories/heldout.txt', 'data/tinystories/calib.txt', 'data/austen/emma.txt'].map((p) => readFileSync(shared(p), 'utf8'));
const tmp = mkdtempSync(join(tmpdir(), 'bitcrush-chunks-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('chunked tokenization', () => {
  test('llama2.c tokenizer: whole shared texts, token for token', () => {
    const tok = findTokenizer(STORIES, nodeFs);
    for (const text of TEXTS) assert.deepEqual(encodeInChunks(tok, text, { bos: true }).tokens, tok.encode(text, true));
  });

  test('HF SentencePiece tokenizer (Llama 2): 60k-character slices of every text', () => {
    const tok = findTokenizer(shared('models/bench-llama'), nodeFs);
    for (const text of TEXTS) {
      const part = text.slice(0, 60_000);
      assert.deepEqual(encodeInChunks(tok, part, { bos: true }).tokens, tok.encode(part, true));
    }
  });

  test('byte-level BPE: blank lines, indented lines and CRLF', () => {
    writeChatTokenizer(tmp, { special: ['<|endoftext|>'], config: { bos_token: null, eos_token: '<|endoftext|>' } });
    const tok = new HfTokenizer(join(tmp, 'tokenizer.json'), nodeFs);
    const text = TEXTS[0]!.slice(0, 40_000) + '\r\n  indented\n\n\n x\n \n y'.repeat(3000);
    assert.deepEqual(encodeInChunks(tok, text, { bos: true }).tokens, tok.encode(text, true));
  });

  test('enough tokens: stops early with a prefix of the whole encoding; progress from the first chunk', () => {
    const tok = findTokenizer(STORIES, nodeFs);
    const text = TEXTS[3]!;
    const seen: number[] = [];
    const r = encodeInChunks(tok, text, { bos: true, enough: 5000, onProgress: (d) => seen.push(d) });
    assert.equal(r.complete, false);
    assert.ok(r.tokens.length >= 5000 && seen.length >= 1 && seen.at(-1)! < text.length / 4);
    assert.deepEqual(r.tokens, tok.encode(text, true).slice(0, r.tokens.length));
  });

  test('eval --max-windows: the same windows and perplexity as tokenizing the whole text', () => {
    const model = new LlamaModel(openModel(STORIES, nodeFs), { backend: createReferenceBackend() });
    const tok = findTokenizer(STORIES, nodeFs);
    const text = TEXTS[1]!;
    const quick = perplexityOfText(model, tok, text, { seqLen: 128, maxWindows: 4 });
    const whole = perplexity(model, tok.encode(text, true), { seqLen: 128, maxWindows: 4 });
    assert.equal(quick.textComplete, false);
    assert.equal(quick.nll, whole.nll);
    assert.ok(quick.tokens < whole.tokens / 10, `tokenized ${quick.tokens} of ${whole.tokens}`);
  });
});
