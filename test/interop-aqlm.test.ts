/**
 * AQLM Hugging Face directories as models (src/interop/aqlm.ts): codes (int8 / int16, two's
 * complement as AQLM packs them), fp16 codebooks [M, 2^B, og, g] and scales [out/og, 1, 1, 1]
 * become bitcrush's codebook format with the same numbers, for out_group_size 1 and > 1 (q/k
 * groups in the interleaved RoPE order); the imported model's logits equal those of its float
 * weights (AQLM's reconstruction, test/gptq-dirs.ts); bad configs and shapes are one-line
 * exit-2 errors.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createReferenceBackend } from '../src/backend/reference.js';
import { aqlmToCodebook, codebookToAqlm } from '../src/interop/aqlm.js';
import { openModel } from '../src/io/load.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { FileSource, nodeFs } from '../src/node/fs.js';
import { openRunnable } from '../src/node/packed-open.js';
import { PackedModel } from '../src/packed/reader.js';
import { LlamaModel } from '../src/runtime/model.js';
import { ARCH_CASES, writeArchDir, writeChatTokenizer } from './hf-dirs.js';
import { writeAqlmDirs, type AqlmCase } from './gptq-dirs.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'bitcrush-aqlm-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const backend = createReferenceBackend();
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
const arch = (name: string) => ARCH_CASES.find((k) => k.name === name)!;

test('AQLM codes: two\'s complement as AQLM packs them (codes ≥ 2^(b−1) stored minus 2^b)', () => {
  const c = { inGroupSize: 2, outGroupSize: 1, numCodebooks: 1, nbitsPerCodebook: 12 };
  const codes = Int16Array.of(0, 2047, -2048, -1); // = 0, 2047, 2048, 4095
  const q = aqlmToCodebook(new Uint8Array(codes.buffer), new Uint16Array(4096 * 2), Uint16Array.of(0x3c00, 0x3c00), c, 2, 4);
  assert.deepEqual([...q.codes], [0, 2047, 2048, 4095]);
  assert.deepEqual([...codebookToAqlm(q).codes], [...codes]);
  const bad = Int16Array.of(0, 5000, 0, 0);
  assert.throws(() => aqlmToCodebook(new Uint8Array(bad.buffer), new Uint16Array(4096 * 2), Uint16Array.of(0, 0), c, 2, 4), /codes\[1\] = 5000 is not a 12-bit code/);
});

const cases: AqlmCase[] = [
  { arch: arch('llama32-rope-llama3'), numCodebooks: 2, nbits: 8, inGroupSize: 8 },
  { arch: arch('qwen25-bias'), numCodebooks: 1, nbits: 12, inGroupSize: 16 },
  // out_group_size > 1: codewords [og, g], one scale per og rows (head size 16: og | 8)
  { arch: arch('llama32-rope-llama3'), numCodebooks: 2, nbits: 6, inGroupSize: 4, outGroupSize: 4 },
  { arch: arch('qwen25-bias'), numCodebooks: 1, nbits: 10, inGroupSize: 8, outGroupSize: 2 },
];
const say = (k: AqlmCase) => `${k.numCodebooks}x${k.nbits} g${k.inGroupSize}${k.outGroupSize ? ` out_group ${k.outGroupSize}` : ''}`;

cases.forEach((k, i) => {
  test(`AQLM ${say(k)} ${k.arch.name}: exact weights, logits of its float weights, convert`, () => {
    const dirs = writeAqlmDirs(join(tmp, `c${i}`), k, 3 + i);
    const packed = openRunnable(dirs.aqlm).packed!;
    const float = openModel(dirs.float, nodeFs);
    let n = 0;
    for (const { name } of float.tensors()) {
      if (packed.isPacked(name)) {
        n++;
        const rec = packed.header.tensors[name] as unknown as { format: string; params: Record<string, unknown> };
        assert.equal(rec.format, 'aqlm', name);
        assert.equal(rec.params.og, k.outGroupSize, `${name}: og`);
        // q/k groups pair up in the interleaved RoPE rows
        assert.equal(rec.params.il, k.outGroupSize && /\.(q|k)_proj\./.test(name) ? 2 : undefined, `${name}: il`);
      }
      assert.deepEqual(packed.load(name), float.load(name), `${name}: identical weights`);
    }
    assert.equal(n, 7 * float.config.nLayers);
    const want = new LlamaModel(float, { backend }).forward(k.arch.tokens, 0, 'all');
    const got = new LlamaModel(packed, { backend, linear: packed.linears(backend) }).forward(k.arch.tokens, 0, 'all');
    let d = 0;
    for (let j = 0; j < want.length; j++) d = Math.max(d, Math.abs(got[j]! - want[j]!));
    assert.ok(d < 1e-4, `prefill (matmul) logits max |Δ| ${d}`);
    // decode: the last token alone runs every linear's matvec
    const nTok = k.arch.tokens.length;
    const decoder = new LlamaModel(packed, { backend, linear: packed.linears(backend) });
    decoder.forward(k.arch.tokens.slice(0, nTok - 1), 0);
    const last = decoder.forward(k.arch.tokens.slice(nTok - 1), nTok - 1);
    const vocab = last.length;
    d = 0;
    for (let j = 0; j < vocab; j++) d = Math.max(d, Math.abs(last[j]! - want[(nTok - 1) * vocab + j]!));
    assert.ok(d < 1e-4, `decode (matvec) logits max |Δ| ${d}`);
    const out = join(tmp, `c${i}.bcq`);
    const c = run('convert', dirs.aqlm, '--out', out);
    assert.equal(c.status, 0, c.stderr);
    const file = new PackedModel(new FileSource(out));
    assert.equal(file.header.method.name, 'aqlm');
    for (const { name } of float.tensors()) assert.deepEqual(file.load(name), packed.load(name), name);
  });
});

test('AQLM directory: unsupported configs and bad tensors are one-line exit-2 errors', () => {
  const dirs = writeAqlmDirs(join(tmp, 'bad'), cases[0]!);
  const config = JSON.parse(readFileSync(join(dirs.aqlm, 'config.json'), 'utf8'));
  const expectFail = (why: RegExp) => {
    const r = run('inspect', dirs.aqlm);
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, why);
  };
  const withConfig = (qc: Record<string, unknown>) => writeFileSync(join(dirs.aqlm, 'config.json'), JSON.stringify({ ...config, quantization_config: { ...config.quantization_config, ...qc } }));
  withConfig({ out_group_size: 8 });
  expectFail(/q_proj.codes is I8 \[64,8,2\], expected I8 \[8,8,2\] for \[64,64\]/);
  withConfig({ out_group_size: 5 });
  expectFail(/out_group_size 5 does not divide the 64 output rows/);
  withConfig({ out_group_size: 65 });
  expectFail(/out_group_size 65 is not supported \(an integer in \[1, 64\]\)/);
  withConfig({ num_codebooks: 1 });
  expectFail(/codes is I8 \[.*\], expected I8 \[.*\]/);
  withConfig({ nbits_per_codebook: 16 });
  expectFail(/codes is I8 \[.*\], expected I16/);
  withConfig({ in_group_size: 'eight' });
  expectFail(/in_group_size "eight" is not supported/);
});

test('AQLM out_group_size that does not divide half the head size: the q/k groups cannot take RoPE rows, one-line exit 2', () => {
  const dirs = writeAqlmDirs(join(tmp, 'og16'), { arch: arch('llama32-rope-llama3'), numCodebooks: 1, nbits: 2, inGroupSize: 4, outGroupSize: 16 });
  const r = run('inspect', dirs.aqlm);
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /q_proj: the 16 rows of output group 0 do not stay one group .*out_group_size 16 must divide half the head size/);
});

test('AQLM out_group_size 4 directory on the CLI: inspect shows og (and il on q/k), eval on reference and wasm gives the float twin\'s nll, generate its greedy text', () => {
  const a0 = arch('llama32-rope-llama3');
  const k: AqlmCase = { arch: { ...a0, config: { ...a0.config, vocab_size: 260 } }, numCodebooks: 2, nbits: 6, inGroupSize: 4, outGroupSize: 4 };
  const dirs = writeAqlmDirs(join(tmp, 'cli'), k, 5);
  for (const d of [dirs.aqlm, dirs.float]) writeChatTokenizer(d, { special: ['<s>', '</s>'], config: { bos_token: '<s>', eos_token: '</s>' } });
  const ins = run('inspect', dirs.aqlm);
  assert.equal(ins.status, 0, ins.stderr);
  assert.match(ins.stdout, /q_proj\.weight +\[64, 64\] +aqlm M=2 B=6 g=4 og=4 il=2 /);
  assert.match(ins.stdout, /v_proj\.weight +\[32, 64\] +aqlm M=2 B=6 g=4 og=4 /);
  const text = join(tmp, 'cli.txt');
  writeFileSync(text, 'the quick brown fox jumps over the lazy dog again and again until the end of the story');
  const nll = (dir: string, be: string) => {
    const r = run('eval', dir, '--text', text, '--seqlen', '16', '--json', '--backend', be);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout).nll as number;
  };
  const want = nll(dirs.float, 'reference');
  for (const be of ['reference', 'wasm']) {
    const got = nll(dirs.aqlm, be);
    assert.ok(Math.abs(got - want) <= 1e-6 * Math.abs(want), `${be}: nll ${got} vs the float weights' ${want}`);
  }
  // greedy generation (prefill, then one decode matvec per token) gives the float twin's text
  const gen = (dir: string, be: string) => {
    const r = run('generate', dir, '-p', 'once upon', '-n', '12', '-t', '0', '--json', '--backend', be);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout).text as string;
  };
  assert.equal(gen(dirs.aqlm, 'wasm'), gen(dirs.float, 'reference'));
});

test('packed og/il header values the layout does not allow: one-line exit-2 errors naming the file', () => {
  const dirs = writeAqlmDirs(join(tmp, 'hdr'), { arch: arch('llama32-rope-llama3'), numCodebooks: 2, nbits: 6, inGroupSize: 4, outGroupSize: 4 }, 8);
  const bcq = join(tmp, 'hdr.bcq');
  assert.equal(run('convert', dirs.aqlm, '--out', bcq).status, 0);
  const bytes = readFileSync(bcq);
  // same-length edits of the first q_proj params ({"M":2,"B":6,"g":4,"og":4,"il":2}) inside the JSON header
  const at = bytes.indexOf('\\"og\\":4,\\"il\\":2');
  assert.ok(at > 0);
  const cases: Array<[string, RegExp]> = [
    ['\\"og\\":1,\\"il\\":2', /og 1 is not an integer in \[2, 64\] \(absent for 1\)/],
    ['\\"og\\":0,\\"il\\":2', /og 0 is not an integer in \[2, 64\]/],
    ['\\"og\\":3,\\"il\\":2', /og 3 × il 2 does not divide the 64 output rows/],
    ['\\"og\\":4,\\"il\\":3', /il 3 is not 2 with og > 1/],
    ['\\"og\\":8,\\"il\\":2', /q_proj.weight.codes is U8 \[16,24\], expected U8 \[8,24\]/],
    ['\\"xx\\":4,\\"il\\":2', /unknown params xx/],
  ];
  for (const [edit, why] of cases) {
    const f = join(tmp, 'hdr-bad.bcq');
    const b = Buffer.from(bytes);
    b.write(edit, at, 'latin1');
    writeFileSync(f, b);
    const r = run('inspect', f);
    assert.equal(r.status, 2, `${edit}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.ok(r.stderr.includes(f), r.stderr);
    assert.match(r.stderr, why, edit);
  }
});

test('quantize --method aqlm --out-group-size 2 → export --to aqlm → convert: the same weights, out_group_size 2, q/k paired', () => {
  const a0 = arch('llama32-rope-llama3');
  const src = join(tmp, 'm-src');
  writeArchDir(src, { ...a0, config: { ...a0.config, vocab_size: 260 } });
  writeChatTokenizer(src, { special: ['<s>', '</s>'], config: { bos_token: '<s>', eos_token: '</s>' } });
  const calib = join(tmp, 'm-calib.txt');
  writeFileSync(calib, 'once upon a time there was a little fox who liked to run in the woods with her friends every day. '.repeat(4));
  const bcq = join(tmp, 'm.bcq');
  const q = run('quantize', src, '--method', 'aqlm', '--scheme', '1x6', '--group-size', '4', '--out-group-size', '2', '--max-epochs', '1', '--steps-per-epoch', '2',
    '--kmeans-iters', '2', '--beam-size', '1', '--calib', calib, '--nsamples', '2', '--seqlen', '16', '--embed-bits', '16', '--head-bits', '16', '--out', bcq);
  assert.equal(q.status, 0, q.stderr);
  const packed = new PackedModel(new FileSource(bcq));
  const params = (name: string) => (packed.header.tensors[name] as unknown as { params: Record<string, unknown> }).params;
  assert.deepEqual(params('model.layers.0.self_attn.k_proj.weight'), { M: 1, B: 6, g: 4, og: 2, il: 2 });
  assert.deepEqual(params('model.layers.1.mlp.down_proj.weight'), { M: 1, B: 6, g: 4, og: 2 });
  const out = join(tmp, 'm-aqlm');
  const e = run('export', bcq, '--to', 'aqlm', '--out', out);
  assert.equal(e.status, 0, e.stderr);
  assert.equal(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).quantization_config.out_group_size, 2);
  const back = join(tmp, 'm-back.bcq');
  assert.equal(run('convert', out, '--out', back).status, 0);
  const file = new PackedModel(new FileSource(back));
  let n = 0;
  for (const { name } of packed.tensors()) {
    if (!packed.isPacked(name)) continue;
    assert.deepEqual(file.header.tensors[name], packed.header.tensors[name], name);
    assert.deepEqual(file.load(name), packed.load(name), name);
    n++;
  }
  assert.equal(n, 14);
});

test('AQLM → bitcrush → export --to aqlm: the checkpoint\'s tensors back byte for byte; other files refused', () => {
  cases.forEach((k, i) => {
    const dirs = writeAqlmDirs(join(tmp, `rt${i}`), k, 21 + i);
    const bcq = join(tmp, `rt${i}.bcq`);
    assert.equal(run('convert', dirs.aqlm, '--out', bcq).status, 0);
    const out = join(tmp, `rt${i}-aqlm`);
    const r = run('export', bcq, '--to', 'aqlm', '--out', out);
    assert.equal(r.status, 0, r.stderr);
    const a = new SafetensorsFile(new FileSource(join(dirs.aqlm, 'model.safetensors')));
    const b = new SafetensorsFile(new FileSource(join(out, 'model.safetensors')));
    assert.deepEqual(b.entries().map((e) => e.name).sort(), a.entries().map((e) => e.name).sort());
    for (const e of a.entries()) {
      assert.deepEqual(b.entry(e.name), e, e.name);
      assert.ok(Buffer.from(b.raw(e.name)).equals(Buffer.from(a.raw(e.name))), `${e.name}: same bytes`);
    }
    const qa = JSON.parse(readFileSync(join(dirs.aqlm, 'config.json'), 'utf8')).quantization_config;
    const qb = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).quantization_config;
    assert.deepEqual({ ...qb, linear_weights_not_to_quantize: [...qb.linear_weights_not_to_quantize].sort() }, { ...qa, linear_weights_not_to_quantize: [...qa.linear_weights_not_to_quantize].sort() });
  });
  const r = run('export', join(tmp, 'rt0.bcq'), '--to', 'aqlm', '--out', join(tmp, 'again'), '--checkpoint-format', 'gptq');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--checkpoint-format is a gptq option/);
});
