/**
 * Real-checkpoint architectures against golden logits: each case of test/hf-dirs.ts (llama3 and
 * linear RoPE scaling, q/k/v and q/k/v/o biases, head_dim ≠ hidden/heads, tied and untied
 * heads, shards, BF16/F16/F32) is written as a random-weight HF directory and run through the
 * fp32 forward (prefill and decode), the quantization pipeline and the packed file; the golden
 * logits are an independent float64 transformers-semantics implementation's
 * (scripts/golden-logits.py, committed output in test/fixtures/arch-golden.json).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createReferenceBackend } from '../src/backend/reference.js';
import { openModel } from '../src/io/load.js';
import { getMethod } from '../src/methods/registry.js';
import { parseHfConfig } from '../src/io/hf.js';
import { expectedShapes, layerBias } from '../src/model/weights.js';
import { backendBytes } from '../src/runtime/memory.js';
import { nodeFs, FileSource } from '../src/node/fs.js';
import { PackedModel } from '../src/packed/reader.js';
import { planPackedModel } from '../src/packed/writer.js';
import { sampleWindows } from '../src/pipeline/calibration.js';
import { quantizeModel } from '../src/pipeline/quantize.js';
import { mulberry32 } from '../src/quant/random.js';
import { LlamaModel } from '../src/runtime/model.js';
import { ARCH_CASES, writeArchDir, type ArchCase } from './hf-dirs.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const shared = (p: string) => fileURLToPath(new URL(`../../../shared/${p}`, import.meta.url));
const openModelConfig = (cfg: unknown) => parseHfConfig('config.json', cfg);
const FIXTURE = fileURLToPath(new URL('../../test/fixtures/arch-golden.json', import.meta.url));
const golden = (JSON.parse(readFileSync(FIXTURE, 'utf8')) as { cases: Record<string, { tokens: number[]; vocab: number; logits_f32_base64: string }> }).cases;
const tmp = mkdtempSync(join(tmpdir(), 'bitcrush-arch-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const backend = createReferenceBackend();

/** fp32 accumulation against a float64 reference over 2 layers of width ≤ 96. */
const TOL = 2e-4;

function goldenLogits(k: ArchCase): Float32Array {
  const g = golden[k.name];
  assert.ok(g, `fixture has ${k.name}`);
  assert.deepEqual(g.tokens, k.tokens, `${k.name}: fixture tokens are the case's (regenerate the fixture after changing a case)`);
  const b = Buffer.from(g.logits_f32_base64, 'base64');
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function dirOf(k: ArchCase): string {
  const d = join(tmp, k.name);
  writeArchDir(d, k);
  return d;
}

describe('architectures against golden logits (transformers semantics)', () => {
  for (const k of ARCH_CASES) {
    test(`${k.name}: prefill and decode logits`, () => {
      const want = goldenLogits(k);
      const model = new LlamaModel(openModel(dirOf(k), nodeFs), { backend });
      const V = model.config.vocabSize;
      const prefill = model.forward(k.tokens, 0, 'all');
      const d = maxAbsDiff(prefill, want);
      assert.ok(d < TOL, `${k.name}: prefill max |Δ| ${d}`);
      const decode = new Float32Array(k.tokens.length * V);
      k.tokens.forEach((t, pos) => decode.set(model.forward([t], pos, 'last'), pos * V));
      const dd = maxAbsDiff(decode, want);
      assert.ok(dd < TOL, `${k.name}: decode max |Δ| ${dd}`);
    });
  }

  test('config switches are read as the files say', () => {
    const c = (name: string) => openModel(dirOf(ARCH_CASES.find((k) => k.name === name)!), nodeFs).config;
    assert.deepEqual(c('llama32-rope-llama3').ropeScaling, { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64 });
    assert.equal(c('llama32-rope-llama3').seqLen, 131072);
    assert.equal(c('qwen25-bias').attentionBias, 'qkv');
    assert.equal(c('llama-attention-bias').attentionBias, 'qkvo');
    assert.equal(c('head-dim-linear-untied').headDim, 24);
    assert.equal(c('head-dim-linear-untied').tiedEmbeddings, false);
    assert.equal(c('mistral-sharded').attentionBias, undefined);
  });

  test('a context of 131072 positions allocates the KV cache as the sequence grows', () => {
    const k = ARCH_CASES.find((x) => x.name === 'llama32-rope-llama3')!;
    let allocated = 0;
    const counting = { ...backend, alloc: (n: number) => ((allocated += n), backend.alloc(n)) };
    const model = new LlamaModel(openModel(dirOf(k), nodeFs), { backend: counting });
    const c = model.config;
    const fullCache = 2 * c.nLayers * c.seqLen * c.nKvHeads * (c.headDim ?? c.dim / c.nHeads);
    assert.ok(allocated < fullCache / 8, `allocated ${allocated} floats in all; the full KV cache alone is ${fullCache}`);
    // past the first capacity: positions 0..1099 in chunks, then decode, equal to one prefill of the same tokens
    const tokens = Array.from({ length: 1100 }, (_, i) => (i * 7) % c.vocabSize);
    for (let p = 0; p < 1050; p += 350) model.forward(tokens.slice(p, p + 350), p);
    let last = new Float32Array(0);
    for (let p = 1050; p < 1100; p++) last = model.forward([tokens[p]!], p).slice();
    const fresh = new LlamaModel(openModel(dirOf(k), nodeFs), { backend, maxRows: 1100 });
    const all = fresh.forward(tokens, 0, 'all');
    const d = maxAbsDiff(last, all.subarray(1099 * c.vocabSize, 1100 * c.vocabSize));
    assert.ok(d < 1e-4, `grown cache vs one prefill: max |Δ| ${d}`);
  });
});

describe('biases and head_dim through the pipeline and the packed file', () => {
  for (const name of ['qwen25-bias', 'llama-attention-bias', 'head-dim-linear-untied']) {
    test(`${name}: GPTQ 8-bit packed file keeps the biases and runs like the float model`, () => {
      const k = ARCH_CASES.find((x) => x.name === name)!;
      const source = openModel(dirOf(k), nodeFs);
      const c = source.config;
      const rand = mulberry32(7);
      const stream = Int32Array.from({ length: 4096 }, () => Math.floor(rand() * c.vocabSize));
      const calibration = sampleWindows(stream, { count: 8, seqLen: 32, seed: 1 });
      const { method, opts } = getMethod('gptq', { bits: 8, groupSize: 16 });
      const r = quantizeModel(source, { backend, method, methodOptions: opts, calibration });
      const plan = planPackedModel({ config: c, method: { name: 'gptq', options: {} }, source: r.source, packed: r.packed });
      if (c.attentionBias) {
        const rec = plan.header.tensors[layerBias(1, 'self_attn.k_proj')];
        assert.equal(rec?.format, 'dense', 'biases are stored unquantized');
      }
      const file = join(tmp, `${name}.bcq`);
      const bytes = new Uint8Array(plan.size);
      let at = 0;
      for (const chunk of plan.chunks()) {
        bytes.set(chunk, at);
        at += chunk.byteLength;
      }
      writeFileSync(file, bytes);
      const packed = new PackedModel(new FileSource(file));
      assert.deepEqual(packed.config, c);
      const model = new LlamaModel(packed, { backend, linear: packed.linears(backend) });
      const want = goldenLogits(k);
      const got = model.forward(k.tokens, 0, 'all');
      // 8-bit weights move the logits by well under 1 % of their range ...
      const tol = 0.01 * maxAbsDiff(want, new Float32Array(want.length));
      const d = maxAbsDiff(got, want);
      assert.ok(d < tol, `${name}: packed 8-bit vs golden max |Δ| ${d} (tolerance ${tol})`);
      // ... and losing the biases moves them by far more than that
      if (c.attentionBias) {
        const noBias = { name: source.name, config: c, tensors: () => source.tensors(), load: (t: string) => (t.endsWith('.bias') ? new Float32Array(source.load(t).length) : source.load(t)) };
        const dropped = maxAbsDiff(new LlamaModel(noBias, { backend }).forward(k.tokens, 0, 'all'), want);
        assert.ok(dropped > 10 * tol, `${name}: the biases matter (${dropped} without them)`);
      }
    });
  }
});

describe('memory at real size', () => {
  /** A Llama-2-7B-shaped HF directory (5 layers) whose safetensors file is sparse: a header and a hole, no data written. */
  function sparseLlama7b(dtype: 'F32' | 'BF16'): string {
    const d = join(tmp, `llama7b-${dtype}`);
    mkdirSync(d, { recursive: true });
    const cfg = { ...(JSON.parse(readFileSync(shared('models/configs/llama2-7b.json'), 'utf8')) as Record<string, unknown>), num_hidden_layers: 5 };
    writeFileSync(join(d, 'config.json'), JSON.stringify(cfg));
    const parsed = openModelConfig(cfg);
    const header: Record<string, unknown> = {};
    let offset = 0;
    for (const [name, shape] of expectedShapes(parsed)) {
      const bytes = shape.reduce((a, b) => a * b, 1) * (dtype === 'F32' ? 4 : 2);
      header[name] = { dtype, shape, data_offsets: [offset, offset + bytes] };
      offset += bytes;
    }
    const json = Buffer.from(JSON.stringify(header));
    const head = Buffer.alloc(8);
    head.writeBigUInt64LE(BigInt(json.length));
    const file = join(d, 'model.safetensors');
    writeFileSync(file, Buffer.concat([head, json]));
    truncateSync(file, 8 + json.length + offset);
    copyFileSync(shared('models/bench-llama/tokenizer.json'), join(d, 'tokenizer.json'));
    return d;
  }

  test('an F32 model larger than the wasm heap fails at once with exit 2; BF16 weights stay outside it', () => {
    const f32 = sparseLlama7b('F32');
    const text = join(tmp, 'one-line.txt');
    writeFileSync(text, 'Once upon a time there was a model too large for the wasm heap.\n');
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [CLI, 'eval', f32, '--text', text, '--backend', 'wasm', '--seqlen', '8'], { encoding: 'utf8' });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /needs 4\.6 GiB of kernel memory; the wasm backend holds 4\.0 GiB/);
    assert.ok(performance.now() - t0 < 20_000, 'refused before reading the weights');
    // the same shapes in BF16 keep their weights 16-bit outside the wasm heap: tiles and scratch only
    const bf16 = openModel(sparseLlama7b('BF16'), nodeFs);
    assert.ok(backendBytes(bf16, 512) < 2 ** 30, `${backendBytes(bf16, 512)} bytes`);
  });
});
