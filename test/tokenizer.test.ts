import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { InputError } from '../src/io/errors.js';
import { HfTokenizer } from '../src/io/hf-tokenizer.js';
import { Llama2cTokenizer } from '../src/io/llama2c-tokenizer.js';
import { findTokenizer, openTokenizer } from '../src/io/load.js';
import { readSpmNormalizer, RUN_C_NORMALIZER } from '../src/io/spm-normalizer.js';
import { FileSource, nodeFs } from '../src/node/fs.js';

// dist/test/tokenizer.test.js → repo root is two levels up, shared/ sits beside the repo
const SHARED = process.env['BITCRUSH_SHARED'] ?? fileURLToPath(new URL('../../../shared/', import.meta.url));
const TOK512 = join(SHARED, 'models/stories260K/tok512.bin');
const LLAMA_BIN = join(SHARED, 'models/llama2-tokenizer/tokenizer.bin');
const LLAMA_JSON = join(SHARED, 'models/bench-llama/tokenizer.json');
const text = (rel: string) => readFileSync(join(SHARED, 'data', rel), 'utf8');

const tmp = mkdtempSync(join(tmpdir(), 'bitcrush-tok-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function throwsInput(fn: () => unknown, file: string, problem?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InputError, `expected InputError, got ${String(e)}`);
    assert.ok(e.message.includes(file), `message "${e.message}" does not name ${file}`);
    if (problem) assert.match(e.message, problem);
    return true;
  });
}

/** run.c's `encode`, transcribed literally (O(n²)), with its own reading of tokenizer.bin. */
function naiveRunCEncoder(path: string): (input: string) => number[] {
  const b = readFileSync(path);
  const vocab: string[] = [];
  const scores: number[] = [];
  const ids = new Map<string, number>(); // run.c's bsearch over the sorted vocabulary
  for (let o = 4; o < b.length; ) {
    scores.push(b.readFloatLE(o));
    const len = b.readInt32LE(o + 4);
    vocab.push(b.subarray(o + 8, o + 8 + len).toString('latin1'));
    ids.set(vocab.at(-1)!, vocab.length - 1);
    o += 8 + len;
  }
  const lookup = (s: string) => ids.get(s) ?? -1;
  return (input) => {
    const tokens = [1];
    if (input.length > 0) tokens.push(lookup(' '));
    const bytes = Buffer.from(input, 'utf8');
    let buf: number[] = [];
    for (let i = 0; i < bytes.length; i++) {
      if ((bytes[i]! & 0xc0) !== 0x80) buf = [];
      buf.push(bytes[i]!);
      if (((bytes[i + 1] ?? 0) & 0xc0) === 0x80 && buf.length < 4) continue;
      const id = lookup(Buffer.from(buf).toString('latin1'));
      if (id !== -1) tokens.push(id);
      else tokens.push(...buf.map((x) => x + 3));
      buf = [];
    }
    for (;;) {
      let best = Math.fround(-1e10);
      let bestId = -1;
      let bestIdx = -1;
      for (let i = 0; i < tokens.length - 1; i++) {
        const id = lookup(vocab[tokens[i]!]! + vocab[tokens[i + 1]!]!);
        if (id !== -1 && scores[id]! > best) [best, bestId, bestIdx] = [scores[id]!, id, i];
      }
      if (bestIdx === -1) break;
      tokens.splice(bestIdx, 2, bestId);
    }
    return tokens;
  };
}

describe('llama2.c tokenizer.bin', () => {
  const tok512 = openTokenizer(TOK512, nodeFs);
  const llama = openTokenizer(LLAMA_BIN, nodeFs);

  test('vocabularies and SentencePiece normalizer flags', () => {
    assert.ok(tok512 instanceof Llama2cTokenizer && llama instanceof Llama2cTokenizer);
    assert.equal(tok512.vocabSize, 512);
    assert.equal(llama.vocabSize, 32000);
    assert.deepEqual([tok512.bosId, tok512.eosIds], [1, [2]]);
    // tok512.model keeps SentencePiece's default remove_extra_whitespaces; Llama 2 turns it off
    assert.deepEqual(readSpmNormalizer(new FileSource(TOK512.replace('.bin', '.model'))), { addDummyPrefix: true, removeExtraWhitespaces: true });
    assert.deepEqual(readSpmNormalizer(new FileSource(LLAMA_BIN.replace('.bin', '.model'))), RUN_C_NORMALIZER);
  });

  test('the heap encoder equals run.c encode, token for token', () => {
    const samples = [
      '',
      'a',
      'Hello world',
      '  leading and   inner spaces, trailing  ',
      'naïve café — “quotes” 😀 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u{10FFFF} tab\tnew\nline',
      'ééééééééé aaaaaaaaaaaaaaaa 1234567890',
      text('austen/persuasion.txt').slice(20000, 21500),
      text('wikitext2/test.txt').slice(5000, 6500),
      text('tinystories/heldout.txt').slice(0, 1500),
    ];
    for (const path of [TOK512, LLAMA_BIN]) {
      const fast = new Llama2cTokenizer(new FileSource(path)); // run.c normalization
      const naive = naiveRunCEncoder(path);
      for (const s of samples) assert.deepEqual(fast.encode(s, true), naive(s), `${path}: ${JSON.stringify(s.slice(0, 40))}`);
    }
  });

  test('stories260K heldout: 98,841 tokens with BOS (README)', () => {
    const s = text('tinystories/heldout.txt');
    assert.equal(tok512.encode(s, true).length, 98841);
    // run.c keeps the extra spaces tok512.model removes, so it differs on this text
    assert.notEqual(new Llama2cTokenizer(new FileSource(TOK512)).encode(s, true).length, 98841);
  });

  test('Llama-2 tokenizer: WikiText-2 test, 341,469 tokens with BOS (README)', (t) => {
    const t0 = performance.now();
    const ids = llama.encode(text('wikitext2/test.txt'), true);
    const ms = performance.now() - t0;
    assert.equal(ids.length, 341469);
    assert.equal(ids[0], 1);
    t.diagnostic(`llama2.c encoder: wikitext2 in ${ms.toFixed(0)} ms`);
  });

  test('decode: byte tokens reassemble UTF-8, the space after BOS is dropped', () => {
    for (const tok of [tok512, llama]) {
      const s = 'Once upon a time, naïve Zoë saw 😀 and 漢字.\nThe end.';
      assert.equal(tok.decode(tok.encode(s, true)), s);
      assert.equal(tok.decode(tok.encode(s, false)), ' ' + s); // no BOS: run.c keeps the dummy prefix
    }
    const ids = llama.encode('Hi', true); // [BOS, ' Hi'] 
    assert.equal(llama.decodePiece(1, ids[1]!), 'Hi');
    assert.equal(llama.decodePiece(ids[1]!, ids[1]!), ' Hi');
    assert.equal(llama.decodePiece(5, 13), '\n'); // <0x0A>
    assert.equal(llama.decode([1, 2]), '');
  });

  test('corrupt tokenizer.bin names the file', () => {
    const real = new Uint8Array(readFileSync(TOK512));
    const write = (name: string, bytes: Uint8Array) => {
      const p = join(tmp, name);
      writeFileSync(p, bytes);
      return p;
    };
    const cut = write('cut.bin', real.subarray(0, real.length - 3));
    throwsInput(() => openTokenizer(cut, nodeFs), cut, /truncated/);
    const cutHeader = write('cutheader.bin', real.subarray(0, real.length - 1 - (real.length - 4) / 2));
    throwsInput(() => openTokenizer(cutHeader, nodeFs), cutHeader, /truncated/);
    const neg = real.slice();
    new DataView(neg.buffer).setInt32(8, -5, true); // first token's length
    const negPath = write('neglen.bin', neg);
    throwsInput(() => openTokenizer(negPath, nodeFs), negPath, /bad length -5/);
    const huge = real.slice();
    new DataView(huge.buffer).setInt32(8, 1 << 30, true);
    const hugePath = write('hugelen.bin', huge);
    throwsInput(() => openTokenizer(hugePath, nodeFs), hugePath, /bad length/);
    const badMax = real.slice();
    new DataView(badMax.buffer).setInt32(0, 0, true);
    const badMaxPath = write('badmax.bin', badMax);
    throwsInput(() => openTokenizer(badMaxPath, nodeFs), badMaxPath, /max_token_length/);
    throwsInput(() => openTokenizer(write('empty.bin', new Uint8Array(2)), nodeFs), 'empty.bin', /truncated/);
  });
});

describe('Hugging Face tokenizer.json', () => {
  const hf = openTokenizer(LLAMA_JSON, nodeFs);
  const llama = openTokenizer(LLAMA_BIN, nodeFs);

  test('same ids as tokenizer.bin on the held-out texts; README counts', (t) => {
    assert.ok(hf instanceof HfTokenizer);
    assert.deepEqual([hf.vocabSize, hf.bosId, hf.eosIds], [32000, 1, [2]]);
    // all of wikitext2 takes the HF tokenizer ~25 s: its full count is checked with tokenizer.bin above
    const wikiSlice = text('wikitext2/test.txt').slice(0, 100_000);
    for (const [rel, count] of [['tinystories/heldout.txt', 52538], ['austen/persuasion.txt', 123185], ['wikitext2/test.txt (first 100k chars)', undefined]] as const) {
      const s = count === undefined ? wikiSlice : text(rel);
      const t0 = performance.now();
      const a = hf.encode(s, true);
      const t1 = performance.now();
      const b = llama.encode(s, true);
      const t2 = performance.now();
      if (count !== undefined) assert.equal(a.length, count, rel);
      assert.deepEqual(a, b, rel);
      t.diagnostic(`${rel}: HF ${(t1 - t0).toFixed(0)} ms, llama2.c ${(t2 - t1).toFixed(0)} ms`);
    }
  });

  test('edge texts and decoding agree with tokenizer.bin', () => {
    for (const s of ['', ' ', 'a', '  two  spaces  ', 'naïve Zoë 😀 漢字\n\ttab', 'x\n\n\ny']) {
      assert.deepEqual(hf.encode(s, true), llama.encode(s, true), JSON.stringify(s));
      assert.deepEqual(hf.encode(s, false), llama.encode(s, false), JSON.stringify(s));
    }
    const ids = llama.encode('Once upon a time, naïve Zoë saw 😀.\nThe end.', true);
    assert.equal(hf.decode(ids), llama.decode(ids));
    let streamed = '';
    for (let i = 1; i < ids.length; i++) streamed += hf.decodePiece(ids[i - 1]!, ids[i]!);
    assert.equal(streamed.replace(/\uFFFD/g, ''), llama.decode(ids).replace('😀', ''));
  });

  test('bad tokenizer.json names the file', () => {
    const d = join(tmp, 'badjson');
    mkdirSync(d, { recursive: true });
    const p = join(d, 'tokenizer.json');
    writeFileSync(p, readFileSync(LLAMA_JSON, 'utf8').slice(0, 5000));
    throwsInput(() => openTokenizer(p, nodeFs), p, /bad JSON/);
    writeFileSync(p, '{"version": "1.0"}');
    throwsInput(() => openTokenizer(p, nodeFs), p);
    writeFileSync(p, '[1, 2]');
    throwsInput(() => openTokenizer(p, nodeFs), p, /not a JSON object/);
  });
});

describe('finding the tokenizer of a model', () => {
  test('tok512.bin beside stories260K, tokenizer.json in an HF directory, tokenizer.bin beside model.bin', () => {
    const stories = findTokenizer(join(SHARED, 'models/stories260K/stories260K.bin'), nodeFs);
    assert.equal(stories.vocabSize, 512);
    assert.deepEqual(stories.encode('a  b ', true), stories.encode('a b', true)); // normalizer from tok512.model
    assert.ok(findTokenizer(join(SHARED, 'models/bench-llama'), nodeFs) instanceof HfTokenizer);
    assert.ok(findTokenizer(join(SHARED, 'models/bench-llama/model.bin'), nodeFs) instanceof Llama2cTokenizer);
    assert.ok(findTokenizer(join(SHARED, 'models/bench-llama'), nodeFs, LLAMA_BIN) instanceof Llama2cTokenizer);
    assert.equal(findTokenizer(TOK512, nodeFs, join(SHARED, 'models/llama2-tokenizer')).vocabSize, 32000);
  });

  test('no tokenizer, or several candidates: an InputError naming the model and --tokenizer', () => {
    const d = join(tmp, 'lonely');
    mkdirSync(d, { recursive: true });
    const model = join(d, 'stories260K.bin');
    symlinkSync(join(SHARED, 'models/stories260K/stories260K.bin'), model);
    throwsInput(() => findTokenizer(model, nodeFs), model, /--tokenizer/);
    symlinkSync(TOK512, join(d, 'tok512.bin'));
    symlinkSync(TOK512, join(d, 'tok4096.bin'));
    throwsInput(() => findTokenizer(model, nodeFs), model, /several candidates.*--tokenizer/);
    throwsInput(() => findTokenizer(model, nodeFs, join(d, 'missing.bin')), 'missing.bin', /no such file/);
  });
});
