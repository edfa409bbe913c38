/**
 * The browser runtime's logic without a browser: input files told apart, the model card, and
 * the model worker's message protocol driven through a fake worker scope in Node (single
 * thread, the real kernels.wasm), against the Node runtime's greedy text.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { modelCard } from '../../src/browser/card.js';
import { openTokenizerBytes, sortModelFiles } from '../../src/browser/files.js';
import { serveModelWorker } from '../../src/browser/model-worker.js';
import type { FromWorker, ToWorker } from '../../src/browser/protocol.js';
import { BufferSource } from '../../src/io/bytes.js';
import { InputError } from '../../src/io/errors.js';
import { LINEARS } from '../../src/model/weights.js';
import { loadModel } from '../../src/node/index.js';
import { PackedModel } from '../../src/packed/reader.js';
import { generate } from '../../src/runtime/generate.js';
import { STORIES, STORIES_TOKENIZER } from './fixtures.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const WASM = fileURLToPath(new URL('../../../wasm/kernels.wasm', import.meta.url));

let tmp: string;
let packedFile: string;
const bytesOf = (name: string, path: string) => ({ name, bytes: new Uint8Array(readFileSync(path)) });

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'bitcrush-browser-core-'));
  packedFile = join(tmp, 'stories-rtn.bcq');
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync(process.execPath, [CLI, 'quantize', STORIES, '--method', 'rtn', '--bits', '3', '--group-size', '32', '--out', packedFile, '--threads', '1'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('browser input files', () => {
  it('tells the packed model from the tokenizer by content, whatever the order and names', () => {
    const model = bytesOf('weights.anything', packedFile);
    const tok = bytesOf('tok512.bin', STORIES_TOKENIZER);
    const sorted = sortModelFiles([tok, model]);
    assert.equal(sorted.model, model);
    assert.equal(sorted.tokenizer, tok);
  });

  it('refuses inputs without exactly one packed model and one tokenizer, naming the files', () => {
    const model = bytesOf('m.bcq', packedFile);
    const tok = bytesOf('tok512.bin', STORIES_TOKENIZER);
    assert.throws(() => sortModelFiles([tok]), (e: unknown) => e instanceof InputError && /tok512\.bin/.test(e.message) && /no.*packed model|none/.test(e.message));
    assert.throws(() => sortModelFiles([model]), (e: unknown) => e instanceof InputError && /no tokenizer/.test(e.message));
    assert.throws(() => sortModelFiles([model, { ...model, name: 'copy.bcq' }, tok]), /more than one packed model/);
  });

  it('the in-memory tokenizer encodes like the one read from disk', () => {
    const tok = openTokenizerBytes(bytesOf('tok512.bin', STORIES_TOKENIZER));
    const { tokenizer, dispose } = loadModel(STORIES, { tokenizer: STORIES_TOKENIZER, backend: 'reference' });
    dispose();
    const text = 'Once upon a time, Lily met a big dog.';
    assert.deepEqual(tok.encode(text, true), tokenizer.encode(text, true));
  });

  it('model card: every linear of every layer with the header bpw and format', () => {
    const bytes = readFileSync(packedFile);
    const packed = new PackedModel(new BufferSource('stories-rtn.bcq', bytes));
    const card = modelCard(packed, bytes.byteLength);
    assert.equal(card.method, 'rtn');
    assert.equal(card.layers.length, 5);
    for (const [l, row] of card.layers.entries()) {
      assert.deepEqual(row.map((c) => c.part), [...LINEARS]);
      for (const c of row) {
        const rec = packed.header.tensors[`model.layers.${l}.${c.part}.weight`]!;
        assert.equal(c.format, rec.format);
        assert.equal(c.bpw, rec.bpw);
        assert.ok(c.bpw > 3 && c.bpw < 4, `3-bit g32 linear at ${c.bpw} bpw`);
      }
    }
    assert.equal(card.formats.reduce((s, f) => s + f.tensors, 0), Object.keys(packed.header.tensors).length);
    assert.ok(!('source' in card.options) && !('calibration' in card.options), 'no local paths on the card');
    // the honest size: the whole file over the model's parameters, the tied embedding/head low-bit by default
    const params = packed.tensors().reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
    assert.equal(card.size.bpw, (bytes.byteLength * 8) / params);
    assert.equal(card.size.tied, 'one tensor');
    assert.ok(card.size.roles.embedding.bpw > 4 && card.size.roles.embedding.bpw < 5, `embedding ${card.size.roles.embedding.bpw} bpw`);
    assert.ok(packed.rowGather('model.embed_tokens.weight') !== undefined, 'the browser runs the low-bit table row by row');
  });
});

describe('model worker protocol (fake scope, one thread)', () => {
  function startWorker(): { send(m: ToWorker): void; next(type: FromWorker['type']): Promise<FromWorker>; pieces: string[] } {
    const posted: FromWorker[] = [];
    const waiting: (() => void)[] = [];
    const pieces: string[] = [];
    const scope = {
      onmessage: null as ((e: MessageEvent) => void) | null,
      postMessage(m: FromWorker) {
        if (m.type === 'piece') pieces.push(m.text);
        else posted.push(m);
        waiting.splice(0).forEach((w) => w());
      },
    };
    serveModelWorker({ wasm: async () => new Uint8Array(readFileSync(WASM)).buffer }, scope);
    return {
      pieces,
      send: (m) => scope.onmessage!({ data: m } as MessageEvent),
      async next(type) {
        for (;;) {
          const i = posted.findIndex((m) => m.type === type || m.type === 'error');
          if (i >= 0) {
            const m = posted.splice(i, 1)[0]!;
            if (m.type === 'error' && type !== 'error') assert.fail(`worker error: ${m.message}`);
            return m;
          }
          await new Promise<void>((r) => waiting.push(r));
        }
      },
    };
  }

  it('loads, streams the Node runtime\'s greedy text, and reports a bad file by name', async () => {
    const w = startWorker();
    w.send({ id: 1, type: 'load', files: [bytesOf('stories-rtn.bcq', packedFile), bytesOf('tok512.bin', STORIES_TOKENIZER)] });
    const loaded = await w.next('loaded');
    assert.ok(loaded.type === 'loaded' && loaded.runtime.backend === 'wasm' && loaded.runtime.threads === 1 && !loaded.runtime.isolated);

    const req = { prompt: 'Lily', maxTokens: 60, temperature: 0, topP: 1, seed: 1 };
    w.send({ id: 2, type: 'generate', ...req });
    const done = await w.next('done');
    assert.ok(done.type === 'done' && !done.result.stopped && done.result.generatedTokens === w.pieces.length);
    const node = loadModel(packedFile, { tokenizer: STORIES_TOKENIZER, backend: 'wasm', threads: 1 });
    const expected = [...generate(node.model, node.tokenizer, req)].join('');
    node.dispose();
    assert.equal(w.pieces.join(''), expected);

    const bad = join(tmp, 'bad.bcq');
    const bytes = readFileSync(packedFile);
    writeFileSync(bad, bytes.subarray(0, bytes.length - 64));
    w.send({ id: 3, type: 'load', files: [bytesOf('bad.bcq', bad), bytesOf('tok512.bin', STORIES_TOKENIZER)] });
    const err = await w.next('error');
    assert.ok(err.type === 'error' && err.id === 3 && /bad\.bcq/.test(err.message), JSON.stringify(err));
    // the model loaded before is still there
    w.send({ id: 4, type: 'generate', ...req });
    await w.next('done');
  });
});
