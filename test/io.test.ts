import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BufferSource } from '../src/io/bytes.js';
import { InputError } from '../src/io/errors.js';
import { HfModel, unpermuteRope } from '../src/io/hf.js';
import { Llama2cModel } from '../src/io/llama2c.js';
import { openModel } from '../src/io/load.js';
import { f16BitsToNumber, f16ToF32, numberToF16Bits, bf16ToF32, SafetensorsFile } from '../src/io/safetensors.js';
import { expectedShapes, type ModelSource } from '../src/model/weights.js';
import { FileSource, nodeFs } from '../src/node/fs.js';
import { f32Bytes, permuteForHf, safetensorsBytes, writeHfStories } from './hf-fixture.js';

// dist/test/io.test.js → repo root is two levels up, shared/ sits beside the repo
const SHARED = process.env['BITCRUSH_SHARED'] ?? fileURLToPath(new URL('../../../shared/', import.meta.url));
const STORIES = join(SHARED, 'models/stories260K/stories260K.bin');
const BENCH = join(SHARED, 'models/bench-llama');

const tmp = mkdtempSync(join(tmpdir(), 'bitcrush-io-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Expect an InputError whose message names `file` (and matches `problem` when given). */
function throwsInput(fn: () => unknown, file: string, problem?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InputError, `expected InputError, got ${String(e)}`);
    assert.ok(e.message.includes(file), `message "${e.message}" does not name ${file}`);
    if (problem) assert.match(e.message, problem);
    return true;
  });
}

function freshDir(name: string): string {
  const d = join(tmp, name);
  rmSync(d, { recursive: true, force: true });
  mkdirSync(d);
  return d;
}

/** A copy of `src` with `edit` applied to its bytes, written into the temp dir. */
function corruptCopy(src: string, name: string, edit: (b: Uint8Array) => Uint8Array): string {
  const out = join(tmp, name);
  writeFileSync(out, edit(new Uint8Array(readFileSync(src))));
  return out;
}

describe('llama2.c checkpoints', () => {
  test('a Node Buffer source reads the same tensors as a file source (Buffer.slice is a view)', () => {
    const fromBuffer = new Llama2cModel(new BufferSource(STORIES, readFileSync(STORIES)));
    const fromFile = new Llama2cModel(new FileSource(STORIES));
    for (const { name } of fromFile.tensors()) assert.deepEqual(fromBuffer.load(name), fromFile.load(name), name);
  });

  test('stories260K loads with the expected config and tensors', () => {
    const m = openModel(STORIES, nodeFs);
    assert.ok(m instanceof Llama2cModel);
    assert.deepEqual(
      { ...m.config },
      { dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true },
    );
    const shapes = expectedShapes(m.config);
    assert.deepEqual(new Map(m.tensors().map((t) => [t.name, t.shape])), shapes);
    for (const { name, shape } of m.tensors()) {
      const w = m.load(name);
      assert.equal(w.length, shape.reduce((a, b) => a * b, 1));
      assert.ok(w.every(Number.isFinite), name);
    }
  });

  test('truncated file', () => {
    const p = corruptCopy(STORIES, 'truncated.bin', (b) => b.subarray(0, b.length - 1000));
    throwsInput(() => openModel(p, nodeFs), p, /truncated/);
    const tiny = corruptCopy(STORIES, 'tiny.bin', (b) => b.subarray(0, 10));
    throwsInput(() => openModel(tiny, nodeFs), tiny, /truncated/);
  });

  test('corrupt header', () => {
    const p = corruptCopy(STORIES, 'negdim.bin', (b) => {
      new DataView(b.buffer).setInt32(0, -64, true);
      return b;
    });
    throwsInput(() => openModel(p, nodeFs), p, /dim = -64/);
    const q = corruptCopy(STORIES, 'badheads.bin', (b) => {
      new DataView(b.buffer).setInt32(12, 7, true); // n_heads 7 does not divide dim 64
      return b;
    });
    throwsInput(() => openModel(q, nodeFs), q, /n_heads/);
    const v1 = corruptCopy(STORIES, 'version1.bin', (b) => {
      b.set(new TextEncoder().encode('24ka'), 0); // "ak42" as a little-endian uint32, as export.py writes it
      return b;
    });
    throwsInput(() => openModel(v1, nodeFs), v1, /version 1\/2/);
  });

  test('unknown paths', () => {
    const p = join(tmp, 'weights.pt');
    writeFileSync(p, 'x');
    throwsInput(() => openModel(p, nodeFs), p, /unknown model format/);
    throwsInput(() => openModel(join(tmp, 'nope.bin'), nodeFs), 'nope.bin', /no such file/);
    const d = freshDir('emptydir');
    throwsInput(() => openModel(d, nodeFs), d, /config\.json/);
  });
});

describe('Hugging Face directories', () => {
  test('bench-llama: model.bin and the HF directory give identical tensors (q/k permutation undone)', () => {
    const bin = openModel(join(BENCH, 'model.bin'), nodeFs);
    const hf = openModel(BENCH, nodeFs);
    assert.ok(hf instanceof HfModel);
    assert.deepEqual(hf.config, bin.config);
    const byName = (m: ModelSource) => new Map(m.tensors().map((t) => [t.name, t.shape]));
    assert.deepEqual(byName(hf), byName(bin));
    const raw = new SafetensorsFile(new FileSource(join(BENCH, 'model.safetensors')));
    let permuted = 0;
    for (const { name } of bin.tensors()) {
      const a = bin.load(name);
      const b = hf.load(name);
      assert.equal(a.length, b.length, name);
      let maxDiff = 0;
      for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!));
      assert.ok(maxDiff <= 1e-6, `${name}: max abs diff ${maxDiff}`);
      if (/[qk]_proj/.test(name)) {
        // the raw HF rows must differ (else this test could not catch a missing un-permutation)
        if (raw.float32(name).some((v, i) => v !== a[i])) permuted++;
      }
    }
    assert.equal(permuted, 2 * bin.config.nLayers);
  });

  test('unpermuteRope inverts the HF permutation, GQA k_proj included (stories260K round trip)', () => {
    const d = freshDir('hf-stories');
    writeHfStories(d);
    const hf = openModel(d, nodeFs);
    const bin = openModel(STORIES, nodeFs);
    assert.deepEqual(hf.config, bin.config);
    for (const { name } of bin.tensors()) assert.deepEqual(hf.load(name), bin.load(name), name);
    const w = Float32Array.from({ length: 8 * 3 }, (_, i) => i);
    assert.deepEqual(unpermuteRope(permuteForHf(w, 2, 4, 3), 2, 4, 3), w);
  });

  test('sharded weights via model.safetensors.index.json', () => {
    const d = freshDir('hf-sharded');
    writeHfStories(d, { shards: 3 });
    const hf = openModel(d, nodeFs);
    const bin = openModel(STORIES, nodeFs);
    for (const { name } of bin.tensors()) assert.deepEqual(hf.load(name), bin.load(name), name);
    // an index pointing at a missing shard, or outside the directory
    const index = join(d, 'model.safetensors.index.json');
    const good = readFileSync(index, 'utf8');
    writeFileSync(index, good.replace(/model-00002-of-00003/g, 'model-00009-of-00003'));
    throwsInput(() => openModel(d, nodeFs), 'model-00009-of-00003', /no such file/);
    writeFileSync(index, good.replace(/model-00002-of-00003\.safetensors/g, '../model-00002-of-00003.safetensors'));
    throwsInput(() => openModel(d, nodeFs), index, /bad shard name/);
  });

  test('lm_head present but tied flag set: follows the flag; absent lm_head means tied', () => {
    const d = freshDir('hf-lmhead');
    const m = new Llama2cModel(new FileSource(STORIES));
    const head = { name: 'lm_head.weight', dtype: 'F32', shape: [512, 64], bytes: f32Bytes(new Float32Array(512 * 64)) };
    writeHfStories(d, { extra: [head] });
    const tied = openModel(d, nodeFs);
    assert.equal(tied.config.tiedEmbeddings, true);
    assert.ok(!tied.tensors().some((t) => t.name === 'lm_head.weight'));
    writeHfStories(d, { extra: [head], config: { tie_word_embeddings: false } });
    const untied = openModel(d, nodeFs);
    assert.equal(untied.config.tiedEmbeddings, false);
    assert.deepEqual(untied.load('lm_head.weight'), new Float32Array(512 * 64));
    writeHfStories(d, { config: { tie_word_embeddings: false } });
    assert.equal(openModel(d, nodeFs).config.tiedEmbeddings, true);
    assert.equal(m.config.tiedEmbeddings, true);
  });

  test('rejects extra or missing tensors, bad shapes and bad configs', () => {
    const d = freshDir('hf-bad');
    const mlpBias = { name: 'model.layers.0.mlp.gate_proj.bias', dtype: 'F32', shape: [172], bytes: new Uint8Array(688) };
    writeHfStories(d, { extra: [mlpBias] });
    throwsInput(() => openModel(d, nodeFs), join(d, 'model.safetensors'), /unexpected tensor model\.layers\.0\.mlp\.gate_proj\.bias/);
    // Qwen2 has q/k/v biases in every layer: one alone is a broken file
    const qBias = { name: 'model.layers.0.self_attn.q_proj.bias', dtype: 'F32', shape: [64], bytes: new Uint8Array(256) };
    writeHfStories(d, { extra: [qBias], config: { architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2' } });
    throwsInput(() => openModel(d, nodeFs), d, /missing tensor model\.layers\.0\.self_attn\.k_proj\.bias/);

    writeHfStories(d, { config: { intermediate_size: 171 } });
    throwsInput(() => openModel(d, nodeFs), join(d, 'model.safetensors'), /mlp\.(gate|down|up)_proj.*shape/);

    const cfg = join(d, 'config.json');
    writeHfStories(d, { config: { num_hidden_layers: 6 } });
    throwsInput(() => openModel(d, nodeFs), d, /missing tensor model\.layers\.5\./);

    writeHfStories(d);
    const good = JSON.parse(readFileSync(cfg, 'utf8')) as Record<string, unknown>;
    writeFileSync(cfg, JSON.stringify(good).slice(0, -5));
    throwsInput(() => openModel(d, nodeFs), cfg, /bad JSON/);
    for (const field of ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'vocab_size', 'max_position_embeddings', 'rms_norm_eps']) {
      const { [field]: _, ...rest } = good;
      writeFileSync(cfg, JSON.stringify(rest));
      throwsInput(() => openModel(d, nodeFs), cfg, new RegExp(`missing field ${field}`));
    }
    for (const [field, value] of [['hidden_size', -64], ['num_key_value_heads', 3], ['rms_norm_eps', 'x'], ['model_type', 'gpt2'], ['rope_scaling', { type: 'linear' }], ['rope_scaling', { rope_type: 'yarn', factor: 4 }], ['head_dim', 7]] as const) {
      writeFileSync(cfg, JSON.stringify({ ...good, [field]: value }));
      throwsInput(() => openModel(d, nodeFs), cfg, new RegExp(field));
    }
  });

  test('Mistral config: sliding window caps the context', () => {
    const d = freshDir('hf-mistral');
    writeHfStories(d, { config: { architectures: ['MistralForCausalLM'], model_type: 'mistral', sliding_window: 128, rope_theta: 1e6 } });
    const m = openModel(d, nodeFs);
    assert.equal(m.config.seqLen, 128);
    assert.equal(m.config.ropeTheta, 1e6);
  });
});

describe('safetensors', () => {
  const real = join(BENCH, 'model.safetensors');

  test('reads metadata, entries and float tensors of the real file', () => {
    const f = new SafetensorsFile(new FileSource(real));
    assert.deepEqual(f.metadata, { format: 'pt' });
    const e = f.entries().find((x) => x.name === 'model.norm.weight');
    assert.deepEqual(e, { name: 'model.norm.weight', dtype: 'F32', shape: [256] });
    assert.equal(f.float32('model.norm.weight').length, 256);
    throwsInput(() => f.raw('nope'), real, /no tensor named nope/);
  });

  test('a Node Buffer source reads the same tensors as a file source (Buffer.slice is a view)', () => {
    const fromBuffer = new SafetensorsFile(new BufferSource(real, readFileSync(real)));
    const fromFile = new SafetensorsFile(new FileSource(real));
    const bytesOf = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    for (const { name } of fromFile.entries()) assert.ok(bytesOf(fromBuffer.float32(name)).equals(bytesOf(fromFile.float32(name))), name);
    // a Buffer that is a view into a larger allocation, as Node's pooled small buffers are
    const small = safetensorsBytes([{ name: 'x', dtype: 'F32', shape: [3], bytes: f32Bytes(Float32Array.of(1.5, -2, 3)) }]);
    const pooled = Buffer.alloc(small.length + 13);
    pooled.set(small, 13);
    assert.deepEqual([...new SafetensorsFile(new BufferSource('pooled.safetensors', pooled.subarray(13))).float32('x')], [1.5, -2, 3]);
  });

  test('integer dtypes raw, F16/BF16 converted', () => {
    const halves = Uint16Array.of(0x3c00, 0xc000, 0x0001, 0x7bff, 0xfbff, 0x8000, 0x3555);
    const expectHalf = [1, -2, 2 ** -24, 65504, -65504, -0, f16BitsToNumber(0x3555)];
    const bf = Uint16Array.of(0x3f80, 0xc040, 0x4049);
    const bytes = safetensorsBytes(
      [
        { name: 'codes', dtype: 'U8', shape: [2, 3], bytes: Uint8Array.of(1, 2, 3, 4, 5, 255) },
        { name: 'ints', dtype: 'I32', shape: [2], bytes: new Uint8Array(Int32Array.of(-7, 1 << 30).buffer) },
        { name: 'half', dtype: 'F16', shape: [7], bytes: new Uint8Array(halves.buffer) },
        { name: 'brain', dtype: 'BF16', shape: [3], bytes: new Uint8Array(bf.buffer) },
        { name: 'empty', dtype: 'F32', shape: [0, 4], bytes: new Uint8Array(0) },
        { name: 'inf', dtype: 'F16', shape: [2], bytes: new Uint8Array(Uint16Array.of(0x3c00, 0x7c00).buffer) },
        { name: 'nan', dtype: 'F32', shape: [1], bytes: f32Bytes(Float32Array.of(NaN)) },
      ],
      { format: 'bitcrush', bits: '2' },
    );
    const f = new SafetensorsFile(new BufferSource('mem.safetensors', bytes));
    assert.deepEqual(f.metadata, { format: 'bitcrush', bits: '2' });
    assert.deepEqual([...f.raw('codes')], [1, 2, 3, 4, 5, 255]);
    const ints = f.raw('ints');
    assert.deepEqual([...new Int32Array(ints.slice().buffer)], [-7, 1 << 30]);
    assert.deepEqual([...f.float32('half')], expectHalf.map((v) => Math.fround(v)));
    assert.deepEqual([...f.float32('brain')], [1, -3, 3.140625]);
    assert.equal(f.float32('empty').length, 0);
    throwsInput(() => f.float32('codes'), 'mem.safetensors', /dtype U8/);
    // non-finite weights are refused when read, naming the tensor
    throwsInput(() => f.float32('inf'), 'mem.safetensors', /tensor inf holds a non-finite value \(Infinity\) at index 1/);
    throwsInput(() => f.float32('nan'), 'mem.safetensors', /tensor nan holds a non-finite value \(NaN\) at index 0/);
    assert.deepEqual([...bf16ToF32(Uint16Array.of(0x8000))], [-0]);
    assert.deepEqual([...f16ToF32(Uint16Array.of(0x7e00))], [NaN]);
  });

  test('numberToF16Bits rounds to nearest even and round-trips every half', () => {
    for (let h = 0; h < 0x10000; h++) {
      const v = f16BitsToNumber(h);
      if (Number.isNaN(v)) assert.ok(Number.isNaN(f16BitsToNumber(numberToF16Bits(v))));
      else assert.equal(numberToF16Bits(v), h, `half 0x${h.toString(16)}`);
    }
    assert.equal(numberToF16Bits(1 + 2 ** -11), 0x3c00); // tie → even
    assert.equal(numberToF16Bits(1 + 3 * 2 ** -11), 0x3c02); // tie → even (up)
    assert.equal(numberToF16Bits(65520), 0x7c00); // rounds past the max half
    assert.equal(numberToF16Bits(2 ** -26), 0); // below half the smallest subnormal
  });

  test('corrupt files name the file', () => {
    const header = (b: Uint8Array) => Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
    const prefix = (b: Uint8Array) => b.slice(0, 8 + header(b) + 1024);
    const edited = (name: string, edit: (b: Uint8Array) => Uint8Array, fullSize = false) => {
      const p = corruptCopy(real, name, (b) => edit(prefix(b)));
      // restore the original size as a sparse file so only the edited header is at fault
      if (fullSize) truncateSync(p, readFileSync(real).length);
      return () => new SafetensorsFile(new FileSource(p));
    };
    const replaceInHeader = (from: string, to: string) => (b: Uint8Array) => {
      const text = new TextDecoder().decode(b.subarray(8, 8 + header(b)));
      assert.ok(text.includes(from));
      const next = new TextEncoder().encode(text.replace(from, to));
      assert.equal(next.length, header(b));
      b.set(next, 8);
      return b;
    };
    const huge = edited('hugeheader.safetensors', (b) => {
      new DataView(b.buffer).setBigUint64(0, 1n << 60n, true);
      return b;
    });
    throwsInput(huge, 'hugeheader.safetensors', /header length/);
    throwsInput(edited('short.safetensors', (b) => b.subarray(0, 5)), 'short.safetensors', /truncated/);
    throwsInput(edited('badjson.safetensors', (b) => ((b[8] = 0x78), b)), 'badjson.safetensors', /bad safetensors header/);
    throwsInput(edited('cut.safetensors', (b) => b), 'cut.safetensors', /outside the data section/);
    const dtype = edited('dtype.safetensors', replaceInHeader('"dtype":"F32"', '"dtype":"F16"'), true);
    throwsInput(dtype, 'dtype.safetensors', /needs/);
    const unknown = edited('unknowndtype.safetensors', replaceInHeader('"dtype":"F32"', '"dtype":"Q4K"'), true);
    throwsInput(unknown, 'unknowndtype.safetensors', /unknown dtype/);
    const overlap = safetensorsBytes([
      { name: 'a', dtype: 'U8', shape: [4], bytes: new Uint8Array(4) },
      { name: 'b', dtype: 'U8', shape: [4], bytes: new Uint8Array(4) },
    ]);
    const text = new TextDecoder().decode(overlap).replace('[4,8]', '[2,6]');
    throwsInput(() => new SafetensorsFile(new BufferSource('overlap.safetensors', new TextEncoder().encode(text))), 'overlap.safetensors', /overlap/);
  });

  test('symlinked real weights open through an HF directory', () => {
    const d = freshDir('hf-link');
    copyFileSync(join(BENCH, 'config.json'), join(d, 'config.json'));
    symlinkSync(real, join(d, 'model.safetensors'));
    assert.equal(openModel(d, nodeFs).config.dim, 256);
  });
});
