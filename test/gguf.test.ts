/**
 * GGUF (issue 17): random-weight HF directories written as GGUF give the HF model's logits;
 * bench-llama quantized by RTN, exported with `bitcrush export --to gguf` and read back gives
 * bit-identical dequantized weights and logits; the exact-type choice (Q8_0, Q4_0, Q4_1, Q5_0)
 * and its refusals; @huggingface/gguf parses our files; `info`/`eval`/`generate` on a .gguf;
 * seeded header mutations only ever fail as one-line input errors (exit 2).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gguf } from '@huggingface/gguf';
import { createReferenceBackend } from '../src/backend/reference.js';
import { getFormat } from '../src/formats/registry.js';
import type { GroupQuantized } from '../src/formats/quantized.js';
import { BufferSource } from '../src/io/bytes.js';
import { InputError } from '../src/io/errors.js';
import { GgufFile, ggufChunks, GgufValueType as T } from '../src/io/gguf-file.js';
import { ggmlType } from '../src/io/gguf-quants.js';
import { GgufModel } from '../src/io/gguf.js';
import { ggufTokenizer, TOKEN_TYPE, type GgufVocab } from '../src/io/gguf-tokenizer.js';
import { openModel } from '../src/io/load.js';
import { encodePacked, GgufExportError, ggufMetadata, ggufTensors } from '../src/interop/gguf-write.js';
import { FileSource, nodeFs } from '../src/node/fs.js';
import { PackedModel } from '../src/packed/reader.js';
import { LlamaModel } from '../src/runtime/model.js';
import { runCli } from '../src/cli/run.js';
import { ARCH_CASES, concatBytes as concat, writeArchDir } from './hf-dirs.js';
import { mutate, rng } from './fuzz/mutate.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const shared = (p: string) => fileURLToPath(new URL(`../../../shared/${p}`, import.meta.url));
const BENCH = shared('models/bench-llama');
const tmp = mkdtempSync(join(tmpdir(), 'bitcrush-gguf-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const backend = createReferenceBackend();

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** A byte-fallback SentencePiece vocabulary of `n` tokens (the writer needs one; these models never tokenize). */
function tinyVocab(n: number): GgufVocab {
  const tokens = Array.from({ length: n }, (_, i) => (i === 0 ? '<unk>' : i === 1 ? '<s>' : i === 2 ? '</s>' : `t${i}`));
  return { model: 'llama', tokens, scores: tokens.map((_, i) => -i), types: tokens.map((_, i) => (i === 0 ? 2 : i < 3 ? 3 : 1)), bosId: 1, eosId: 2, addBos: true };
}

describe('GGUF as a model source', () => {
  for (const k of ARCH_CASES.filter((c) => c.name !== 'llama32-rope-llama3')) {
    test(`${k.name} (${k.dtype}) written as GGUF: logits equal the HF directory's`, () => {
      const dir = join(tmp, k.name);
      writeArchDir(dir, k);
      const hf = openModel(dir, nodeFs);
      const bytes = concat(ggufChunks(ggufMetadata(hf.config, tinyVocab(hf.config.vocabSize), k.name), ggufTensors(hf)));
      const g = new GgufModel(new BufferSource(`${k.name}.gguf`, bytes));
      assert.deepEqual(g.config, hf.config);
      for (const t of hf.tensors()) {
        assert.deepEqual(g.load(t.name), hf.load(t.name), t.name);
        assert.equal(g.dtypeOf(t.name), t.shape.length === 1 ? 'F32' : hf.dtypeOf!(t.name), t.name);
      }
      const want = new LlamaModel(hf, { backend }).forward(k.tokens, 0, 'all');
      const got = new LlamaModel(g, { backend }).forward(k.tokens, 0, 'all');
      assert.equal(maxAbsDiff(got, want), 0, `${k.name}: logits max |Δ|`);
    });
  }

  test('llama3 RoPE scaling is written as llama.cpp\'s rope_freqs tensor (factors of transformers\' llama3 frequencies), no rope.scaling keys, and read back', () => {
    const k = ARCH_CASES.find((c) => c.name === 'llama32-rope-llama3')!;
    const dir = join(tmp, k.name);
    writeArchDir(dir, k);
    const hf = openModel(dir, nodeFs);
    const kvs = ggufMetadata(hf.config, tinyVocab(hf.config.vocabSize), 'x');
    assert.ok(!kvs.some((kv) => kv.key.startsWith('llama.rope.scaling')), 'llama.cpp would apply a rope.scaling.factor as linear scaling');
    const tensors = ggufTensors(hf);
    const rope = tensors.find((t) => t.name === 'rope_freqs.weight')!;
    assert.deepEqual([rope.ne, rope.type.name], [[8], 'F32']);
    const got = new Float32Array(rope.bytes().slice().buffer);
    // transformers' _compute_llama3_parameters, written out: factor = old / new frequency
    const { factor, low_freq_factor: lf, high_freq_factor: hfac, original_max_position_embeddings: orig } = (k.config as { rope_scaling: Record<string, number> }).rope_scaling as Record<string, number>;
    const want = Array.from({ length: 8 }, (_, i) => {
      const f = 1 / 500000 ** ((2 * i) / 16);
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < orig! / hfac!) return 1;
      if (wavelen > orig! / lf!) return factor!;
      const smooth = (orig! / wavelen - lf!) / (hfac! - lf!);
      return f / ((1 - smooth) * (f / factor!) + smooth * f);
    });
    assert.deepEqual(new Set(want.map((w) => (w === 1 ? 'kept' : w === factor ? 'stretched' : 'interpolated'))).size, 3, 'the fixture covers all three bands');
    for (let i = 0; i < 8; i++) assert.ok(Math.abs(got[i]! - want[i]!) <= 1e-6 * want[i]!, `factor ${i}: ${got[i]} vs ${want[i]}`);
    // read back: the factors as RoPE scaling, logits of the HF model up to the factors' float32 rounding
    const bytes = concat(ggufChunks(kvs, tensors));
    const g = new GgufModel(new BufferSource('l3.gguf', bytes));
    assert.deepEqual(g.config.ropeScaling, { type: 'factors', factors: [...got] });
    const hfLogits = new LlamaModel(hf, { backend }).forward(k.tokens, 0, 'all');
    const logits = new LlamaModel(g, { backend }).forward(k.tokens, 0, 'all');
    assert.ok(maxAbsDiff(logits, hfLogits) < 1e-4, `logits max |Δ| ${maxAbsDiff(logits, hfLogits)}`);
    const plain = new GgufModel(new BufferSource('l3-plain.gguf', concat(ggufChunks(kvs, tensors.filter((t) => t.name !== 'rope_freqs.weight')))));
    assert.ok(maxAbsDiff(new LlamaModel(plain, { backend }).forward(k.tokens, 0, 'all'), hfLogits) > 1e-3, 'without rope_freqs the logits differ');
    // quantized from the GGUF (a 260-token byte-level vocabulary, so it has a real tokenizer), the packed file keeps the factors; exported again, the same tensor
    const k260 = { ...k, name: 'l3-260', config: { ...k.config, vocab_size: 260 } };
    writeArchDir(join(tmp, 'l3-260'), k260);
    const hf260 = openModel(join(tmp, 'l3-260'), nodeFs);
    const bytesChars = Array.from({ length: 256 }, (_, b) => String.fromCodePoint((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174 ? b : 256 + b));
    const vocab260: GgufVocab = { model: 'gpt2', pre: 'llama-bpe', tokens: [...bytesChars, '<s>', '</s>', '<x>', '<y>'], merges: [], types: [...bytesChars.map(() => 1), 3, 3, 3, 3], bosId: 256, eosId: 257, addBos: true };
    const l3 = join(tmp, 'l3.gguf');
    writeFileSync(l3, concat(ggufChunks(ggufMetadata(hf260.config, vocab260, 'l3'), ggufTensors(hf260))));
    const packedPath = join(tmp, 'l3.bcq');
    const q = spawnSync(process.execPath, [CLI, 'quantize', l3, '--method', 'rtn', '--bits', '4', '--group-size', '16', '--out', packedPath], { encoding: 'utf8' });
    assert.equal(q.status, 0, q.stderr);
    const packed = new PackedModel(new FileSource(packedPath));
    assert.deepEqual(packed.config.ropeScaling, new GgufModel(new FileSource(l3)).config.ropeScaling);
    assert.deepEqual(ggufTensors(packed).find((t) => t.name === 'rope_freqs.weight')!.bytes(), rope.bytes());
    // a malformed rope_freqs is refused by name
    const bad = tensors.map((t) => (t.name === 'rope_freqs.weight' ? { ...t, bytes: () => new Uint8Array(new Float32Array(8).fill(-1).buffer) } : t));
    assert.throws(() => new GgufModel(new BufferSource('bad.gguf', concat(ggufChunks(kvs, bad)))), /rope_freqs\.weight holds a factor that is not a positive finite number/);
  });
});

describe('exact llama.cpp types for uniform grids', () => {
  const random = (seed: number) => {
    let s = seed;
    return () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  };
  /** A GroupQuantized [4, 64] with group size 32 and the given zero / scale rule. */
  const grid = (bits: number, zero: (i: number) => number, scale: (i: number) => number): GroupQuantized => {
    const r = random(bits * 7 + 1);
    const q = Uint8Array.from({ length: 4 * 64 }, () => Math.floor(r() * 2 ** bits));
    return { outDim: 4, inDim: 64, groupSize: 32, bits: new Uint8Array(2).fill(bits), q, scale: Float32Array.from({ length: 8 }, (_, i) => scale(i)), zero: Float32Array.from({ length: 8 }, (_, i) => zero(i)), perm: null };
  };
  const cases: Array<[string, string, GroupQuantized, string]> = [
    ['sym 8-bit', 'uniform-sym', grid(8, () => 128, (i) => 0.0078125 * (i + 1)), 'Q8_0'],
    ['sym 4-bit', 'uniform-sym', grid(4, () => 8, (i) => 0.01171875 * (i + 1)), 'Q4_0'],
    ['asym 2-bit', 'uniform-asym', grid(2, (i) => i % 4, (i) => 0.0302734375 * (i + 1)), 'Q4_0'],
    ['asym 3-bit', 'uniform-asym', grid(3, (i) => i % 8, (i) => 0.0302734375 * (i + 1)), 'Q4_0'],
    ['asym 4-bit, −s·z a float16', 'uniform-asym', grid(4, (i) => [0, 1, 2, 4, 8][i % 5]!, (i) => 0.0302734375 * (i + 1)), 'Q4_1'],
    ['asym 4-bit, −s·z not a float16', 'uniform-asym', grid(4, (i) => 3 + (i % 12), () => 0.0302734375 + 2 ** -15), 'Q5_0'],
  ];
  for (const [label, id, g, type] of cases) {
    test(`${label} → ${type}, dequantized bit for bit`, () => {
      const f = getFormat(id);
      const packed = f.pack(g);
      const enc = encodePacked('w', packed);
      assert.equal(enc.type.name, type);
      const out = new Float32Array(g.outDim * g.inDim);
      enc.type.dequantize(enc.bytes, out);
      assert.deepEqual(out, f.dequantize(packed));
    });
  }
  test('no exact type: asymmetric 8-bit out of int8, act-order, group 16 — errors name the reason', () => {
    const asym8 = getFormat('uniform-asym').pack(grid(8, () => 0, () => 0.5));
    assert.throws(() => encodePacked('w8', asym8), /w8: 8-bit level .* outside Q8_0/);
    const g16 = grid(4, () => 8, () => 0.5);
    assert.throws(() => encodePacked('w16', getFormat('uniform-sym').pack({ ...g16, groupSize: 16, bits: new Uint8Array(4).fill(4), scale: new Float32Array(16).fill(0.5), zero: new Float32Array(16).fill(8) })), /w16: group size 16/);
    const perm = Int32Array.from({ length: 64 }, (_, i) => 63 - i);
    assert.throws(() => encodePacked('wp', getFormat('uniform-sym').pack({ ...g16, perm })), /wp: columns are stored permuted/);
  });
});

describe('bitcrush export --to gguf', () => {
  const tok = join(BENCH, 'tokenizer.bin');
  const runs: Array<[string, string[], string[]]> = [
    ['rtn-4bit-asym-g32', ['--bits', '4', '--group-size', '32'], ['Q5_0']],
    ['rtn-8bit-sym-g64', ['--bits', '8', '--sym', '--group-size', '64'], ['Q8_0', 'Q5_0']],
  ];
  for (const [name, flags, types] of runs) {
    test(`${name}: exported GGUF reads back with identical weights and logits`, async () => {
      const packedPath = join(tmp, `${name}.bcq`);
      const out = join(tmp, `${name}.gguf`);
      assert.equal(await runCli(['node', 'bitcrush', 'quantize', BENCH, '--method', 'rtn', ...flags, '--out', packedPath]), 0);
      assert.equal(await runCli(['node', 'bitcrush', 'export', packedPath, '--to', 'gguf', '--out', out, '--tokenizer', tok]), 0);
      const packed = new PackedModel(new FileSource(packedPath));
      const g = new GgufModel(new FileSource(out));
      assert.deepEqual(g.config, packed.config);
      const seen = new Set<string>();
      for (const t of packed.tensors()) {
        assert.deepEqual(g.load(t.name), packed.load(t.name), t.name);
        if (packed.isPacked(t.name)) seen.add(g.ggmlTypeOf(t.name));
      }
      assert.deepEqual([...seen].sort(), [...types].sort());
      const tokens = [1, 450, 4996, 17354];
      const want = new LlamaModel(packed, { backend }).forward(tokens, 0, 'all');
      const got = new LlamaModel(g, { backend }).forward(tokens, 0, 'all');
      assert.equal(maxAbsDiff(got, want), 0, 'logits max |Δ| against the packed file dequantized');
      const kernels = new LlamaModel(packed, { backend, linear: packed.linears(backend) }).forward(tokens, 0, 'all');
      assert.ok(maxAbsDiff(got, kernels) < 1e-3, `against the packed kernels: ${maxAbsDiff(got, kernels)}`);

      // @huggingface/gguf reads the same header
      const parsed = await gguf(out, { allowLocalFile: true });
      assert.equal(parsed.metadata['general.architecture'], 'llama');
      assert.equal(Number(parsed.metadata['llama.block_count']), packed.config.nLayers);
      assert.equal(parsed.tensorInfos.length, packed.tensors().length);
      for (const ti of parsed.tensorInfos) {
        const mine = g.gguf.tensors.get(ti.name);
        assert.ok(mine, ti.name);
        assert.equal(ggmlType(mine.type.name).id, ti.dtype, ti.name);
        assert.deepEqual(ti.shape.map(Number), mine.ne, ti.name);
        assert.equal(Number(ti.offset) + g.gguf.dataStart, mine.offset, ti.name);
      }
    });
  }

  test('info, eval and generate run on the exported file; its tokenizer is the one exported', () => {
    const out = join(tmp, 'rtn-4bit-asym-g32.gguf');
    const info = spawnSync(process.execPath, [CLI, 'info', out, '--json'], { encoding: 'utf8' });
    assert.equal(info.status, 0, info.stderr);
    const j = JSON.parse(info.stdout) as { tokenizer: { vocabSize: number; bosId: number; eosIds: number[] } };
    assert.deepEqual(j.tokenizer, { vocabSize: 32000, bosId: 1, eosIds: [2], chatTemplate: false });
    const text = join(tmp, 'text.txt');
    writeFileSync(text, readFileSync(shared('data/tinystories/heldout.txt'), 'utf8').slice(0, 1200));
    const a = spawnSync(process.execPath, [CLI, 'eval', out, '--text', text, '--seqlen', '64', '--json'], { encoding: 'utf8' });
    const b = spawnSync(process.execPath, [CLI, 'eval', join(tmp, 'rtn-4bit-asym-g32.bcq'), '--text', text, '--seqlen', '64', '--json', '--tokenizer', join(BENCH, 'tokenizer.bin')], { encoding: 'utf8' });
    assert.equal(a.status, 0, a.stderr);
    const pa = JSON.parse(a.stdout) as { tokens: number; ppl: number };
    const pb = JSON.parse(b.stdout) as { tokens: number; ppl: number };
    assert.equal(pa.tokens, pb.tokens, 'same token count: the GGUF tokenizer encodes as tokenizer.bin does');
    assert.ok(Math.abs(pa.ppl - pb.ppl) < 1e-3 * pb.ppl, `ppl ${pa.ppl} vs ${pb.ppl}`);
    const gen = (m: string, extra: string[] = []) => spawnSync(process.execPath, [CLI, 'generate', m, '-t', '0', '-n', '24', '-p', 'Once upon a time', ...extra], { encoding: 'utf8' }).stdout;
    assert.equal(gen(out), gen(join(tmp, 'rtn-4bit-asym-g32.bcq'), ['--tokenizer', join(BENCH, 'tokenizer.bin')]));
  });

  test('--float-fallback: stories260K (w2 has 172 columns, no llama.cpp block fits) goes out with w2 as F32 of its dequantized values', async () => {
    const stories = shared('models/stories260K/stories260K.bin');
    const tok512 = shared('models/stories260K/tok512.bin');
    const packedPath = join(tmp, 'stories-rtn4.bcq');
    const out = join(tmp, 'stories-rtn4.gguf');
    assert.equal(await runCli(['node', 'bitcrush', 'quantize', stories, '--method', 'rtn', '--bits', '4', '--sym', '--group-size', '32', '--out', packedPath]), 0);
    const refused = spawnSync(process.execPath, [CLI, 'export', packedPath, '--to', 'gguf', '--out', out, '--tokenizer', tok512], { encoding: 'utf8' });
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /tensor model\.layers\.0\.mlp\.down_proj\.weight: 172 columns is not a multiple of llama\.cpp's block of 32 \(--float-fallback/);
    assert.equal(await runCli(['node', 'bitcrush', 'export', packedPath, '--to', 'gguf', '--out', out, '--tokenizer', tok512, '--float-fallback']), 0);
    const packed = new PackedModel(new FileSource(packedPath));
    const g = new GgufModel(new FileSource(out));
    const types = new Map<string, string>();
    for (const t of packed.tensors()) {
      assert.deepEqual(g.load(t.name), packed.load(t.name), t.name);
      if (packed.isPacked(t.name)) types.set(t.name.replace(/\d+/, 'N'), g.ggmlTypeOf(t.name));
    }
    assert.equal(types.get('model.layers.N.mlp.down_proj.weight'), 'F32');
    assert.equal(types.get('model.layers.N.mlp.gate_proj.weight'), 'Q4_0');
  });

  test('an output path that is the input is refused before any work', () => {
    const p = join(tmp, 'rtn-4bit-asym-g32.bcq');
    const r = spawnSync(process.execPath, [CLI, 'export', p, '--to', 'gguf', '--out', p], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /would be overwritten/);
    const u = spawnSync(process.execPath, [CLI, 'export', p, '--to', 'onnx', '--out', join(tmp, 'x')], { encoding: 'utf8' });
    assert.equal(u.status, 2);
    assert.match(u.stderr, /unknown target/);
  });
});

describe('malformed GGUF input', () => {
  test('seeded header mutations: loaded, or one InputError naming the file', () => {
    const k = ARCH_CASES.find((c) => c.name === 'mistral-sharded')!;
    const dir = join(tmp, 'fuzz-src');
    writeArchDir(dir, k);
    const hf = openModel(dir, nodeFs);
    const base = concat(ggufChunks(ggufMetadata(hf.config, tinyVocab(hf.config.vocabSize), 'fuzz'), ggufTensors(hf)));
    const headerEnd = new GgufModel(new BufferSource('base', base)).gguf.dataStart;
    let failed = 0;
    for (let i = 0; i < 300; i++) {
      const r = rng(17, i);
      // mutate the header region mostly: that is where the parser's bounds checks live
      let m = mutate('raw', i % 3 === 0 ? base : base.subarray(0, headerEnd), r);
      if (i % 3 === 1) {
        // a size or count field overwritten: 4 or 8 bytes at a random header offset, small or huge
        const b = base.slice(0, headerEnd);
        const at = Math.floor(r() * (headerEnd - 8));
        const v = [0, 1, 0xff, 0x7fffffff, 0xffffffff, Math.floor(r() * 65536)][Math.floor(r() * 6)]!;
        new DataView(b.buffer).setUint32(at, v, true);
        if (r() < 0.5) new DataView(b.buffer).setUint32(at + 4, r() < 0.5 ? 0 : v, true);
        m = { kind: 'header-int', what: `u32 at ${at} = ${v}`, bytes: b };
      }
      const bytes = i % 3 === 0 ? m.bytes : concat([m.bytes, base.subarray(headerEnd)]);
      try {
        const g = new GgufModel(new BufferSource('m.gguf', bytes));
        for (const t of g.tensors()) g.load(t.name);
      } catch (e) {
        assert.ok(e instanceof InputError, `case ${i} (${m.kind}): ${(e as Error).stack}`);
        assert.equal(e.file, 'm.gguf');
        assert.ok(!e.message.includes('\n'), `case ${i}: one line`);
        failed++;
      }
    }
    assert.ok(failed > 100, `${failed} of 300 mutations were rejected`);
  });

  test('the CLI: exit 2 and one line naming the file', () => {
    const bad = join(tmp, 'bad.gguf');
    writeFileSync(bad, Buffer.concat([Buffer.from('GGUF'), Buffer.from([3, 0, 0, 0]), Buffer.alloc(8, 0xff), Buffer.alloc(8)]));
    const r = spawnSync(process.execPath, [CLI, 'info', bad], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, new RegExp(`^bitcrush: ${bad}: .+\\n$`));
  });
});

describe('tokenizer.ggml.* as a tokenizer', () => {
  /** GPT-2's byte → printable character map (bytes_to_unicode). */
  const byteChars = (): string[] => {
    const keep = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
    let n = 0;
    return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(keep(b) ? b : 256 + n++));
  };
  const fileOf = (kvs: Parameters<typeof ggufChunks>[0]) => new GgufFile(new BufferSource('tok.gguf', concat(ggufChunks(kvs, []))));

  test('gpt2 byte-level BPE: merges apply, text round-trips, EOS from the file', () => {
    const chars = byteChars();
    const sp = chars[32]!; // Ġ
    const tokens = [...chars, 'he', 'll', 'hell', 'hello', `${sp}w`, '<|endoftext|>'];
    const merges = ['h e', 'l l', 'he ll', 'hell o', `${sp} w`];
    const types = tokens.map((t) => (t === '<|endoftext|>' ? TOKEN_TYPE.CONTROL : TOKEN_TYPE.NORMAL));
    const eos = tokens.length - 1;
    const g = fileOf([
      { key: 'tokenizer.ggml.model', type: T.STRING, value: 'gpt2' },
      { key: 'tokenizer.ggml.pre', type: T.STRING, value: 'qwen2' },
      { key: 'tokenizer.ggml.tokens', type: T.ARRAY, elem: T.STRING, value: tokens },
      { key: 'tokenizer.ggml.token_type', type: T.ARRAY, elem: T.INT32, value: types },
      { key: 'tokenizer.ggml.merges', type: T.ARRAY, elem: T.STRING, value: merges },
      { key: 'tokenizer.ggml.eos_token_id', type: T.UINT32, value: eos },
      { key: 'tokenizer.ggml.add_bos_token', type: T.BOOL, value: false },
    ]);
    const t = ggufTokenizer(g);
    const ids = t.encode('hello world', true);
    assert.deepEqual(ids.slice(0, 2), [tokens.indexOf('hello'), tokens.indexOf(`${sp}w`)]);
    assert.equal(t.bosId, null);
    assert.deepEqual(t.eosIds, [eos]);
    assert.equal(t.decode(ids), 'hello world');
    assert.equal(t.decode([...ids, eos]), 'hello world');
  });

  test('llama SentencePiece: ▁ pieces merge by score, bytes fall back, BOS/EOS from the file', () => {
    const bytes = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    const tokens = ['<unk>', '<s>', '</s>', ...bytes, '\u2581', 'a', 'b', '\u2581a', '\u2581ab', 'ab'];
    const scores = tokens.map((t) => (t === '\u2581ab' ? -1 : t === '\u2581a' ? -2 : t === 'ab' ? -3 : -10));
    const types = tokens.map((_, i) => (i === 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1));
    const g = fileOf([
      { key: 'tokenizer.ggml.model', type: T.STRING, value: 'llama' },
      { key: 'tokenizer.ggml.tokens', type: T.ARRAY, elem: T.STRING, value: tokens },
      { key: 'tokenizer.ggml.scores', type: T.ARRAY, elem: T.FLOAT32, value: scores },
      { key: 'tokenizer.ggml.token_type', type: T.ARRAY, elem: T.INT32, value: types },
      { key: 'tokenizer.ggml.bos_token_id', type: T.UINT32, value: 1 },
      { key: 'tokenizer.ggml.eos_token_id', type: T.UINT32, value: 2 },
    ]);
    const t = ggufTokenizer(g);
    const ids = t.encode('ab\u00e9', true);
    // "▁ab" merges first (−2 then −1); é has no piece: its two UTF-8 bytes fall back to <0xC3><0xA9>
    assert.deepEqual(ids, [1, tokens.indexOf('\u2581ab'), 3 + 0xc3, 3 + 0xa9]);
    assert.equal(t.decode(ids), 'ab\u00e9');
  });
});
