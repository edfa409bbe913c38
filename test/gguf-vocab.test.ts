/**
 * HF tokenizer.json → GGUF tokenizer.ggml.* (src/interop/gguf-vocab.ts): the vocabulary
 * written to a GGUF and read back by bitcrush's GGUF tokenizer encodes a text exactly as the
 * HF tokenizer does, for SentencePiece-style BPE (bench-llama's Llama 2 tokenizer.json, read
 * back by the llama2.c merge loop: an independent implementation) and byte-level BPE (a
 * Llama 3 style tokenizer trained by bench/byte-bpe.ts); a pre-tokenizer regex llama.cpp does
 * not name is refused with the regex. (llama.cpp itself tokenizes both identically too:
 * `npm run check:llamacpp`.)
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { byteBpeTokenizerJson } from '../bench/byte-bpe.js';
import { BufferSource } from '../src/io/bytes.js';
import { InputError } from '../src/io/errors.js';
import { GgufFile, ggufChunks } from '../src/io/gguf-file.js';
import { concatBytes as concat } from './hf-dirs.js';
import { ggufTokenizer, TOKEN_TYPE, type GgufVocab } from '../src/io/gguf-tokenizer.js';
import { HfTokenizer } from '../src/io/hf-tokenizer.js';
import { hfVocabForGguf } from '../src/interop/gguf-vocab.js';
import { ggufMetadata } from '../src/interop/gguf-write.js';
import { FileSource, nodeFs } from '../src/node/fs.js';
import { Llama2cTokenizer } from '../src/io/llama2c-tokenizer.js';
import { vocabForGguf } from '../src/cli/export-gguf.js';
import type { LlamaConfig } from '../src/model/config.js';

const shared = (p: string) => fileURLToPath(new URL(`../../../shared/${p}`, import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'bitcrush-gguf-vocab-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const TEXT = readFileSync(shared('data/tinystories/heldout.txt'), 'utf8').slice(0, 30_000) + '\nCafé über 12345 ünïcødé — “quotes” 🙂 tabs\there  spaces   end.';

function vocabOf(dir: string): { hf: HfTokenizer; vocab: GgufVocab } {
  const hf = new HfTokenizer(join(dir, 'tokenizer.json'), nodeFs);
  const json = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
  return { hf, vocab: hfVocabForGguf(join(dir, 'tokenizer.json'), json, { bosId: hf.bosId, eosIds: hf.eosIds, chatTemplate: hf.chat?.template }) };
}

/** The vocabulary through a GGUF file (metadata only) and back as bitcrush's GGUF tokenizer. */
function throughGguf(vocab: GgufVocab) {
  const c = { dim: 32, hiddenDim: 64, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: vocab.tokens.length, seqLen: 64, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true } as LlamaConfig;
  return ggufTokenizer(new GgufFile(new BufferSource('t.gguf', concat(ggufChunks(ggufMetadata(c, vocab, 't'), [])))));
}

describe('HF tokenizer.json as GGUF tokenizer metadata', () => {
  test('SentencePiece-style BPE (Llama 2 tokenizer.json): model llama, byte tokens, scores from merge ranks; encodes as HF', () => {
    const { hf, vocab } = vocabOf(shared('models/bench-llama'));
    assert.equal(vocab.model, 'llama');
    assert.equal(vocab.tokens.length, 32000);
    assert.deepEqual([vocab.types![0], vocab.types![1], vocab.types![2], vocab.types![3], vocab.types![258], vocab.types![259]], [TOKEN_TYPE.UNKNOWN, TOKEN_TYPE.CONTROL, TOKEN_TYPE.CONTROL, TOKEN_TYPE.BYTE, TOKEN_TYPE.BYTE, TOKEN_TYPE.NORMAL]);
    assert.deepEqual([vocab.bosId, vocab.eosId, vocab.addBos, vocab.addSpacePrefix], [1, 2, true, true]);
    const back = throughGguf(vocab);
    const want = hf.encode(TEXT, true);
    assert.deepEqual(back.encode(TEXT, true), want);
    assert.equal(back.decode(want.slice(0, 200)), hf.decode(want.slice(0, 200)));
  });

  test('a token that is a byte-order mark (Llama 2\'s 30143, U+FEFF) survives, from tokenizer.json and from tokenizer.bin, through a GGUF file', () => {
    const { vocab } = vocabOf(shared('models/bench-llama'));
    const bin = vocabForGguf(new Llama2cTokenizer(new FileSource(shared('models/bench-llama/tokenizer.bin'))), 'tokenizer.bin');
    for (const v of [vocab, bin]) {
      assert.equal(v.tokens[30143], '\ufeff');
      const c = { dim: 32, hiddenDim: 64, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: v.tokens.length, seqLen: 64, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true } as LlamaConfig;
      const g = new GgufFile(new BufferSource('t.gguf', concat(ggufChunks(ggufMetadata(c, v, 't'), []))));
      assert.equal((g.metadata.get('tokenizer.ggml.tokens') as string[])[30143], '\ufeff');
    }
  });

  test('byte-level BPE (Llama 3 style): model gpt2, pre llama-bpe, merges and special tokens; encodes as HF', () => {
    const dir = join(tmp, 'bpe');
    const { json } = byteBpeTokenizerJson(TEXT.slice(0, 20_000), 300);
    writeDir(dir, json);
    const { hf, vocab } = vocabOf(dir);
    assert.deepEqual([vocab.model, vocab.pre, vocab.merges!.length, vocab.tokens.length], ['gpt2', 'llama-bpe', 300, 558]);
    assert.deepEqual([vocab.types![556], vocab.types![557], vocab.types![100]], [TOKEN_TYPE.CONTROL, TOKEN_TYPE.CONTROL, TOKEN_TYPE.NORMAL]);
    const back = throughGguf(vocab);
    const want = hf.encode(TEXT, true);
    assert.ok(want.length < new TextEncoder().encode(TEXT).length * 0.6, 'the merges shorten the text');
    assert.deepEqual(back.encode(TEXT, true), want);
  });

  test('a pre-tokenizer regex llama.cpp has no name for is refused with the regex', () => {
    const dir = join(tmp, 'odd');
    const { json } = byteBpeTokenizerJson('hello world', 3);
    ((json['pre_tokenizer'] as { pretokenizers: Array<{ pattern?: { Regex: string } }> }).pretokenizers[0]!.pattern = { Regex: '\\s+|\\S+' });
    writeDir(dir, json);
    assert.throws(() => vocabOf(dir), (e: Error) => e instanceof InputError && /regex "\\\\s\+\|\\\\S\+" is not one llama\.cpp names/.test(e.message));
  });
});

function writeDir(dir: string, json: Record<string, unknown>): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<|begin_of_text|>', eos_token: '<|end_of_text|>' }));
}
