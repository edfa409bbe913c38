/**
 * `bitcrush export --to gptq` (src/interop/gptq-export.ts): GPTQ → bitcrush → GPTQ gives the
 * checkpoint's tensors back byte for byte; a file bitcrush quantized (RTN) → GPTQ → bitcrush
 * gives identical dequantized weights and logits; what GPTQ cannot hold is an exit-2 error.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createReferenceBackend } from '../src/backend/reference.js';
import { getFormat } from '../src/formats/registry.js';
import type { PackedTensor } from '../src/formats/types.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { FileSource } from '../src/node/fs.js';
import { writeFileAtomic } from '../src/node/atomic-write.js';
import { openRunnable } from '../src/node/packed-open.js';
import { PackedModel } from '../src/packed/reader.js';
import { planPackedModel } from '../src/packed/writer.js';
import { mulberry32 } from '../src/quant/random.js';
import { LlamaModel } from '../src/runtime/model.js';
import { ARCH_CASES, writeArchDir, writeChatTokenizer } from './hf-dirs.js';
import { writeGptqDirs, type GptqCase } from './gptq-dirs.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'bitcrush-gptq-export-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const backend = createReferenceBackend();
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
const arch = (name: string) => ARCH_CASES.find((k) => k.name === name)!;

const oneLineExit2 = (r: ReturnType<typeof run>, why: RegExp) => {
  assert.equal(r.status, 2, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, why);
};

const cases: GptqCase[] = [
  { arch: arch('llama32-rope-llama3'), bits: 4, groupSize: 32, descAct: true, sym: false, checkpointFormat: 'gptq' },
  { arch: arch('qwen25-bias'), bits: 3, groupSize: -1, descAct: false, sym: true, checkpointFormat: 'gptq_v2' },
  { arch: { ...arch('head-dim-linear-untied'), config: { ...arch('head-dim-linear-untied').config, num_key_value_heads: 4 } }, bits: 2, groupSize: 16, descAct: true, sym: false, checkpointFormat: 'gptq_v2' },
];

cases.forEach((k, i) => {
  test(`GPTQ ${k.arch.name} ${k.bits}-bit → bitcrush → GPTQ: the same tensors byte for byte, the same config`, () => {
    const dirs = writeGptqDirs(join(tmp, `rt${i}`), k, 31 + i);
    const bcq = join(tmp, `rt${i}.bcq`);
    assert.equal(run('convert', dirs.gptq, '--out', bcq).status, 0);
    const out = join(tmp, `rt${i}-gptq`);
    const r = run('export', bcq, '--to', 'gptq', '--out', out, '--checkpoint-format', k.checkpointFormat, '--json');
    assert.equal(r.status, 0, r.stderr);
    const a = new SafetensorsFile(new FileSource(join(dirs.gptq, 'model.safetensors')));
    const b = new SafetensorsFile(new FileSource(join(out, 'model.safetensors')));
    assert.deepEqual(b.entries().map((e) => e.name).sort(), a.entries().map((e) => e.name).sort());
    for (const e of a.entries()) {
      assert.deepEqual(b.entry(e.name), e, e.name);
      assert.ok(Buffer.from(b.raw(e.name)).equals(Buffer.from(a.raw(e.name))), `${e.name}: same bytes`);
    }
    const qc = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).quantization_config;
    assert.deepEqual(
      { bits: qc.bits, group_size: qc.group_size, desc_act: qc.desc_act, sym: qc.sym, checkpoint_format: qc.checkpoint_format, quant_method: qc.quant_method },
      { bits: k.bits, group_size: k.groupSize, desc_act: k.descAct, sym: k.sym, checkpoint_format: k.checkpointFormat, quant_method: 'gptq' },
    );
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'quantize_config.json'), 'utf8')), qc);
  });
});

test('bitcrush RTN file → GPTQ → bitcrush: identical weights and logits, tokenizer files copied', () => {
  const k = { ...arch('llama-attention-bias'), config: { ...arch('llama-attention-bias').config, vocab_size: 260 } };
  const src = join(tmp, 'src');
  writeArchDir(src, k);
  writeChatTokenizer(src, { special: ['<s>', '</s>'], config: { bos_token: '<s>', eos_token: '</s>' } });
  for (const [label, flags] of [['asym', ['--bits', '4', '--group-size', '32']], ['sym', ['--bits', '8', '--group-size', '64', '--sym']]] as const) {
    const bcq = join(tmp, `rtn-${label.replace(/ /g, '-')}.bcq`);
    const q = run('quantize', src, '--method', 'rtn', ...flags, '--out', bcq);
    assert.equal(q.status, 0, q.stderr);
    const out = `${bcq}.gptq`;
    const ckptFormat = label === 'sym' ? 'gptq' : 'gptq_v2'; // min-max RTN zeros can be 0: v2
    const r = run('export', bcq, '--to', 'gptq', '--out', out, '--checkpoint-format', ckptFormat);
    assert.equal(r.status, 0, r.stderr);
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) assert.ok(existsSync(join(out, f)), `${label}: ${f} copied from the recorded source`);
    const before = new PackedModel(new FileSource(bcq));
    const after = openRunnable(out).packed!;
    for (const { name } of before.tensors()) {
      // block linears stay packed; a packed embedding (RTN's default) comes back as its exact float32 values
      if (/layers/.test(name)) assert.equal(after.header.tensors[name]!.format, before.header.tensors[name]!.format, `${label} ${name}`);
      assert.deepEqual(after.load(name), before.load(name), `${label} ${name}: identical weights`);
    }
    const tokens = k.tokens;
    const la = new LlamaModel(before, { backend, linear: before.linears(backend) }).forward(tokens, 0, 'all');
    const lb = new LlamaModel(after, { backend, linear: after.linears(backend) }).forward(tokens, 0, 'all');
    assert.deepEqual(lb, la, `${label}: identical logits`);
    const g1 = run('generate', bcq, '-p', 'ab', '-n', '8', '-t', '0', '--json', '--backend', 'reference');
    const g2 = run('generate', out, '-p', 'ab', '-n', '8', '-t', '0', '--json', '--backend', 'reference');
    assert.equal(g2.status, 0, g2.stderr);
    assert.equal(JSON.parse(g2.stdout).text, JSON.parse(g1.stdout).text);
  }
});

test('export --to gptq: what GPTQ cannot hold is a one-line exit-2 error, and nothing is left behind', () => {
  const k = arch('llama-attention-bias');
  const src = join(tmp, 'mixed-src');
  writeArchDir(src, k);
  const source = openRunnable(src).source;
  // one linear in SliM-LLM's mixed-width format, the rest uniform 4-bit
  const rand = mulberry32(5);
  const packed = new Map<string, PackedTensor>();
  for (const { name, shape } of source.tensors()) {
    if (!/layers\.\d+\.(self_attn|mlp)\..*weight$/.test(name)) continue;
    const [o, n] = shape as [number, number];
    const mixed = name === 'model.layers.1.mlp.up_proj.weight';
    const f = getFormat(mixed ? 'mixed-asym' : 'uniform-asym');
    const params = mixed ? f.parseParams({ groupSize: 32, groups: [1, 1, 0, 0], lastBits: 2 }, o, n) : { bits: 4, groupSize: 32, actOrder: false };
    assert.notEqual(typeof params, 'string', String(params));
    packed.set(name, f.pack(f.randomPayload(o, n, params as never, rand)));
  }
  const bcq = join(tmp, 'mixed.bcq');
  const plan = planPackedModel({ config: source.config, method: { name: 'test', options: {} }, source, packed });
  writeFileAtomic(bcq, plan.chunks());
  const out = join(tmp, 'mixed-gptq');
  oneLineExit2(run('export', bcq, '--to', 'gptq', '--out', out), /cannot export to GPTQ: model\.layers\.1\.mlp\.up_proj\.weight is stored as mixed-asym \(per-group bit-widths\)/);
  assert.ok(!existsSync(out));
  oneLineExit2(run('export', bcq, '--to', 'gptq', '--out', out, '--checkpoint-format', 'v9'), /--checkpoint-format v9: expected gptq or gptq_v2/);
  oneLineExit2(run('export', bcq, '--to', 'onnx', '--out', out), /--to onnx: unknown target/);
  oneLineExit2(run('export', bcq, '--to', 'aqlm', '--out', out), /cannot export to AQLM: model\.layers\.0\.self_attn\.q_proj\.weight is stored as uniform-asym/);
  oneLineExit2(run('export', src, '--to', 'gptq', '--out', out), /is not a packed model/);
  writeFileSync(join(tmp, 'exists'), '');
  oneLineExit2(run('export', bcq, '--to', 'gptq', '--out', join(tmp, 'exists')), /already exists/);
});
