/**
 * GPTQ Hugging Face directories as models (src/interop/quantized-source.ts, gptq-import.ts, hf-quantized.ts): each
 * imported linear dequantizes to exactly the checkpoint's weights, the imported model's logits
 * (on the packed kernels) equal those of the same weights as a float directory, `convert` writes
 * that packed file, and bad checkpoints are one-line exit-2 errors.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createReferenceBackend } from '../src/backend/reference.js';
import { openModel } from '../src/io/load.js';
import { nodeFs, FileSource } from '../src/node/fs.js';
import { openRunnable } from '../src/node/packed-open.js';
import { PackedModel } from '../src/packed/reader.js';
import { LlamaModel } from '../src/runtime/model.js';
import { ARCH_CASES, writeChatTokenizer, type ArchCase } from './hf-dirs.js';
import { writeGptqDirs, type GptqCase } from './gptq-dirs.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'bitcrush-gptq-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const backend = createReferenceBackend();
const arch = (name: string) => ARCH_CASES.find((k) => k.name === name)!;
/** GPTQ packs outputs into int32 words: every projection needs a multiple of 32 rows. */
const widerKv = (k: ArchCase, kvHeads: number): ArchCase => ({ ...k, shards: 1, config: { ...k.config, num_key_value_heads: kvHeads } });
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });

export const GPTQ_CASES: GptqCase[] = [
  { arch: arch('llama32-rope-llama3'), bits: 4, groupSize: 32, descAct: true, sym: false, checkpointFormat: 'gptq' },
  { arch: arch('qwen25-bias'), bits: 3, groupSize: -1, descAct: false, sym: true, checkpointFormat: 'gptq_v2' },
  { arch: widerKv(arch('head-dim-linear-untied'), 4), bits: 2, groupSize: 16, descAct: true, sym: false, checkpointFormat: 'gptq_v2' },
  { arch: widerKv(arch('mistral-sharded'), 2), bits: 8, groupSize: 64, descAct: true, sym: true, checkpointFormat: 'gptq' },
];

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

GPTQ_CASES.forEach((k, i) => {
  const label = `${k.arch.name} ${k.bits}-bit g${k.groupSize} ${k.sym ? 'sym' : 'asym'}${k.descAct ? ' act-order' : ''} ${k.checkpointFormat}`;
  test(`GPTQ import ${label}: exact weights, logits of its float weights, convert writes the same file`, () => {
    const dirs = writeGptqDirs(join(tmp, `case${i}`), k, 11 + i);
    const r = openRunnable(dirs.gptq);
    const packed = r.packed!;
    assert.ok(packed, 'a GPTQ directory runs as a packed model');
    const float = openModel(dirs.float, nodeFs);
    let packedCount = 0;
    for (const { name } of float.tensors()) {
      if (packed.isPacked(name)) {
        packedCount++;
        const fmt = packed.header.tensors[name]!.format;
        assert.equal(fmt, k.sym ? 'uniform-sym' : 'uniform-asym', name);
      }
      assert.deepEqual(packed.load(name), float.load(name), `${name}: identical weights`);
    }
    assert.equal(packedCount, 7 * float.config.nLayers);

    const want = new LlamaModel(float, { backend }).forward(k.arch.tokens, 0, 'all');
    const got = new LlamaModel(packed, { backend, linear: packed.linears(backend) }).forward(k.arch.tokens, 0, 'all');
    const d = maxAbsDiff(got, want);
    assert.ok(d < 1e-4, `logits max |Δ| ${d}`); // same weights, the packed kernels' own summation order

    const out = join(tmp, `case${i}.bcq`);
    const c = run('convert', dirs.gptq, '--out', out, '--json');
    assert.equal(c.status, 0, c.stderr);
    const file = new PackedModel(new FileSource(out));
    for (const { name } of float.tensors()) assert.deepEqual(file.load(name), packed.load(name), name);
    assert.equal(JSON.parse(c.stdout).packedTensors, packedCount);
  });
});

test('GPTQ directory: info, inspect, eval and generate run on it as on its float weights', () => {
  const k0 = GPTQ_CASES[0]!;
  const k: GptqCase = { ...k0, arch: { ...k0.arch, config: { ...k0.arch.config, vocab_size: 288 } } };
  const dirs = writeGptqDirs(join(tmp, 'cli'), k);
  for (const d of [dirs.gptq, dirs.float]) writeChatTokenizer(d, { special: ['<s>', '</s>'], config: { bos_token: '<s>', eos_token: '</s>' } });
  const text = join(tmp, 'text.txt');
  writeFileSync(text, 'the quick brown fox jumps over the lazy dog, and then some more text to score. '.repeat(4));

  const info = run('info', dirs.gptq, '--json');
  assert.equal(info.status, 0, info.stderr);
  const ij = JSON.parse(info.stdout) as { packed?: { method: string; linearBpw: number } };
  assert.equal(ij.packed?.method, 'gptq');
  assert.ok(ij.packed!.linearBpw > 4 && ij.packed!.linearBpw < 5, `4-bit g32 with f16 scales and 4-bit zeros: ${ij.packed!.linearBpw}`);

  const ins = run('inspect', dirs.gptq, '--json');
  assert.equal(ins.status, 0, ins.stderr);
  const j = JSON.parse(ins.stdout) as { method: { name: string }; tensors: Array<{ name: string; format: string }> };
  assert.equal(j.method.name, 'gptq');
  assert.equal(j.tensors.filter((t) => t.format === 'uniform-asym').length, 14);

  const ppl = (d: string) => {
    const r = run('eval', d, '--text', text, '--seqlen', '64', '--json', '--backend', 'reference');
    assert.equal(r.status, 0, r.stderr);
    return (JSON.parse(r.stdout) as { ppl: number }).ppl;
  };
  const pq = ppl(dirs.gptq);
  const pf = ppl(dirs.float);
  assert.ok(Math.abs(pq - pf) <= 1e-4 * pf, `perplexity ${pq} vs float ${pf}`);

  const gen = (d: string) => {
    const r = run('generate', d, '-p', 'the', '-n', '12', '-t', '0', '--json', '--backend', 'reference');
    assert.equal(r.status, 0, r.stderr);
    return (JSON.parse(r.stdout) as { text: string }).text;
  };
  assert.equal(gen(dirs.gptq), gen(dirs.float));
});

test('GPTQ directory: bad checkpoints are one-line exit-2 errors', () => {
  const k = GPTQ_CASES[0]!;
  const dirs = writeGptqDirs(join(tmp, 'bad'), k);
  const config = JSON.parse(readFileSync(join(dirs.gptq, 'config.json'), 'utf8'));
  const st = readFileSync(join(dirs.gptq, 'model.safetensors'));
  const expectFail = (why: RegExp) => {
    const r = run('inspect', dirs.gptq);
    assert.equal(r.status, 2, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, why);
  };
  const withConfig = (qc: Record<string, unknown>) => writeFileSync(join(dirs.gptq, 'config.json'), JSON.stringify({ ...config, quantization_config: { ...config.quantization_config, ...qc } }));
  withConfig({ quant_method: 'awq' });
  expectFail(/quant_method "awq" is not supported/);
  withConfig({ bits: 5 });
  expectFail(/quantization_config\.bits 5 is not supported/);
  withConfig({ bits: 3 }); // qweight no longer has the 3-bit shape
  expectFail(/qweight is I32 \[\d+,\d+\], expected I32/);
  withConfig({ checkpoint_format: 'marlin' });
  expectFail(/checkpoint_format "marlin" is not supported/);
  withConfig({});
  writeFileSync(join(dirs.gptq, 'model.safetensors'), st.subarray(0, st.length - 100));
  expectFail(/model\.safetensors/);
  // a g_idx whose groups are not group_size columns each
  const header = JSON.parse(st.subarray(8, 8 + Number(st.readBigUInt64LE(0))).toString('utf8'));
  const gEntry = header['model.layers.0.mlp.up_proj.g_idx'];
  const at = 8 + Number(st.readBigUInt64LE(0)) + gEntry.data_offsets[0];
  const broken = Buffer.from(st);
  const g0 = broken.readInt32LE(at);
  broken.writeInt32LE(g0 === 0 ? 1 : 0, at);
  writeFileSync(join(dirs.gptq, 'model.safetensors'), broken);
  expectFail(/up_proj: g_idx puts \d+ columns in group/);
});
