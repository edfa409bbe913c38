/**
 * The quantization pipeline on stories260K with a small calibration set (windows of 64 tokens):
 * calibration sampling, packed file = in-memory fake-quantized model, bpw = file size, an
 * interrupted-then-resumed CLI run = an uninterrupted one byte for byte, GPTQ beats RTN.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { perplexity } from '../src/eval/perplexity.js';
import { getFormat } from '../src/formats/registry.js';
import type { PackedTensor } from '../src/formats/types.js';
import { BufferSource } from '../src/io/bytes.js';
import { findTokenizer, openModel } from '../src/io/load.js';
import { getMethod } from '../src/methods/registry.js';
import { LINEARS, layerTensor } from '../src/model/weights.js';
import { createBackend } from '../src/node/backend.js';
import { nodeFs } from '../src/node/fs.js';
import { PackedModel } from '../src/packed/reader.js';
import { planPackedModel } from '../src/packed/writer.js';
import { calibrationFromText, sampleWindows, type CalibrationSet } from '../src/pipeline/calibration.js';
import { quantizeModel, type PipelineOptions } from '../src/pipeline/quantize.js';
import { DenseLinear } from '../src/runtime/dense.js';
import { allocScratch, LlamaModel, loadLayerWeights } from '../src/runtime/model.js';
import { BlockRunner } from '../src/pipeline/block-runner.js';
import { embedWindows } from '../src/pipeline/quantize.js';

const shared = (p: string) => fileURLToPath(new URL(`../../../shared/${p}`, import.meta.url));
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const STORIES = shared('models/stories260K/stories260K.bin');
const CALIB = shared('data/tinystories/calib.txt');
const HELDOUT = shared('data/tinystories/heldout.txt');
const tmp = mkdtempSync(join(tmpdir(), 'bitcrush-pipeline-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// the fastest backend here (native or wasm): every comparison below is within one backend. Float
// activations: the packed file must compute the fake-quantized model exactly, and the native
// int8 kernels (which now serve the g32 files too) round x; formats.test.ts checks those against W·x̂
const backend = createBackend({ floatActivations: true });
after(() => backend.dispose());
const source = openModel(STORIES, nodeFs);
const tokenizer = findTokenizer(STORIES, nodeFs);
const heldout = tokenizer.encode(readFileSync(HELDOUT, 'utf8'), true);
// evaluation: 24 windows of 128 tokens (3,048 predicted tokens) keeps the file fast
const EVAL = { seqLen: 128, maxWindows: 24 };

let calibCache: CalibrationSet | undefined;
function calibration(): CalibrationSet {
  calibCache ??= calibrationFromText(tokenizer, readFileSync(CALIB, 'utf8'), { count: 16, seqLen: 64, seed: 1 });
  return calibCache;
}

function run(method: string, given: Record<string, unknown>, extra: Partial<PipelineOptions> = {}) {
  const { method: m, opts } = getMethod(method, given);
  return quantizeModel(source, { backend, method: m, methodOptions: opts, calibration: calibration(), ...extra });
}

/** The model with every linear replaced by its packed tensor's reference dequantization, in float32. */
function fakeQuantized(packed: Map<string, PackedTensor>): LlamaModel {
  return new LlamaModel(source, {
    backend,
    linear: (name, src) => {
      const t = packed.get(name);
      if (t !== undefined) return new DenseLinear(backend, getFormat(t.format).dequantize(t), t.outDim, t.inDim);
      const [out, inDim] = src.tensors().find((x) => x.name === name)!.shape as [number, number];
      return new DenseLinear(backend, src.load(name), out, inDim);
    },
  });
}

function writeToMemory(packed: Map<string, PackedTensor>): { model: PackedModel; bytes: Uint8Array; plan: ReturnType<typeof planPackedModel> } {
  const plan = planPackedModel({ config: source.config, method: { name: 'test', options: {} }, source, packed });
  const bytes = new Uint8Array(plan.size);
  let off = 0;
  for (const chunk of plan.chunks()) {
    bytes.set(chunk, off);
    off += chunk.byteLength;
  }
  assert.equal(off, plan.size);
  return { model: new PackedModel(new BufferSource('test.bcq', bytes)), bytes, plan };
}

describe('calibration windows', () => {
  const tokens = Array.from({ length: 1000 }, (_, i) => i);
  it('are seeded, inside the text, and cover its start and end region', () => {
    const a = sampleWindows(tokens, { count: 200, seqLen: 100, seed: 7 });
    const b = sampleWindows(tokens, { count: 200, seqLen: 100, seed: 7 });
    const c = sampleWindows(tokens, { count: 200, seqLen: 100, seed: 8 });
    assert.deepEqual(a.tokens, b.tokens);
    assert.notDeepEqual(a.starts, c.starts);
    for (const [i, s] of a.starts.entries()) {
      assert.ok(s >= 0 && s <= 900, `start ${s}`);
      assert.equal(a.tokens[i * 100], s);
      assert.equal(a.tokens[i * 100 + 99], s + 99);
    }
    assert.ok(Math.min(...a.starts) < 50 && Math.max(...a.starts) > 850, 'starts spread over [0, len − seqLen]');
  });
  it('reject a text shorter than one window', () => {
    assert.throws(() => sampleWindows(tokens.slice(0, 50), { count: 1, seqLen: 64, seed: 1 }), /fewer than one window/);
  });
});

describe('pipeline on stories260K', () => {
  it('packed file computes what the fake-quantized model computes (GPTQ 3-bit g32)', () => {
    const r = run('gptq', { bits: 3, groupSize: 32 });
    assert.equal(r.blocksDone, source.config.nLayers);
    assert.equal(r.packed.size, source.config.nLayers * LINEARS.length);
    const { model: file } = writeToMemory(r.packed);
    const packedModel = new LlamaModel(file, { backend, linear: file.linears(backend) });
    const a = perplexity(packedModel, heldout, EVAL).ppl;
    const b = perplexity(fakeQuantized(r.packed), heldout, EVAL).ppl;
    assert.ok(Math.abs(a - b) / b <= 1e-4, `packed ${a} vs fake-quantized ${b}`);
  });

  it('file size agrees with the reported bits per weight', () => {
    const r = run('rtn', { bits: 3, groupSize: 32 });
    const { bytes, plan } = writeToMemory(r.packed);
    const t = plan.header.totals;
    // every packed byte counted in the bpw, nothing else: header + blobs + dense + alignment = file
    const headerBytes = 8 + Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal(headerBytes + t.packedBytes + t.denseBytes + t.paddingBytes, bytes.byteLength);
    const perLayer = r.layers.reduce((s, l) => s + (l.bpw * l.outDim * l.inDim) / 8, 0);
    assert.ok(Math.abs(perLayer - t.packedBytes) < 1e-6, `layers ${perLayer} B, file blobs ${t.packedBytes} B`);
    // 3 bits + (16-bit scale + 3-bit zero) / 32, plus whole-byte row padding of the 172-wide rows
    assert.ok(t.packedBpw > 3 + 19 / 32 && t.packedBpw < 3 + 19 / 32 + 0.1, `bpw ${t.packedBpw}`);
  });

  it('float inputs change only the blocks after the first', () => {
    const q = run('gptq', { bits: 2, groupSize: 32 });
    const f = run('gptq', { bits: 2, groupSize: 32 }, { floatInputs: true });
    const same = (l: number) => LINEARS.every((n) => bytesEqual(q.packed.get(layerTensor(l, n))!, f.packed.get(layerTensor(l, n))!));
    assert.ok(same(0), 'block 0 sees the embeddings either way');
    assert.ok(!same(1), 'block 1 sees quantized vs float activations');
  });

  it('true-sequential re-captures after each sub-group (changes o, down; keeps q, k, v)', () => {
    const a = run('gptq', { bits: 2, groupSize: 32 });
    const b = run('gptq', { bits: 2, groupSize: 32 }, { trueSequential: true });
    const eq = (n: (typeof LINEARS)[number]) => bytesEqual(a.packed.get(layerTensor(0, n))!, b.packed.get(layerTensor(0, n))!);
    assert.ok(eq('self_attn.q_proj') && eq('self_attn.k_proj') && eq('self_attn.v_proj'));
    assert.ok(!eq('self_attn.o_proj') && !eq('mlp.down_proj'));
  });

  it('a capture without write-back stops after the last input it needs: same Hessians, stream untouched', () => {
    const c = { ...source.config, nLayers: 1 };
    const cal = calibration();
    const runner = new BlockRunner(backend, c, allocScratch(c, backend, 32), cal); // 64-token windows in two chunks
    const L = loadLayerWeights(source, 0, (name, src) => {
      const [out, inDim] = src.tensors().find((x) => x.name === name)!.shape as [number, number];
      return new DenseLinear(backend, src.load(name), out, inDim);
    });
    const X = embedWindows(source, cal);
    const before = X.slice();
    const need = { hessian: true, inputs: false };
    for (const group of [['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'], ['self_attn.o_proj'], ['mlp.gate_proj', 'mlp.up_proj'], ['mlp.down_proj']] as const) {
      const early = runner.capture(L, X, group, need, false);
      assert.deepEqual(X, before, 'no write-back');
      const full = runner.capture(L, X.slice(), group, need, true);
      for (const [id, cap] of early) assert.deepEqual(cap.hessian!.h, full.get(id)!.hessian!.h, `${group.join(',')}: H of ${id}`);
    }
    runner.dispose();
  });

  it('GPTQ beats RTN at 3 bits, group 32', () => {
    const ppl = (m: string) => perplexity(fakeQuantized(run(m, { bits: 3, groupSize: 32 }).packed), heldout, EVAL).ppl;
    const rtn = ppl('rtn');
    const gptq = ppl('gptq');
    assert.ok(gptq < rtn, `GPTQ ${gptq} vs RTN ${rtn}`);
  });
});

function bytesEqual(a: PackedTensor, b: PackedTensor): boolean {
  return Object.keys(a.blobs).every((k) => Buffer.compare(a.blobs[k]!.bytes, b.blobs[k]!.bytes) === 0);
}

describe('quantize CLI', () => {
  const bitcrush = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
  const common = (out: string) => [
    'quantize', STORIES, '--method', 'gptq', '--bits', '2', '--group-size', '32', '--calib', CALIB,
    '--nsamples', '8', '--seqlen', '64', '--seed', '3', '--out', out, '--json',
  ];

  it('a run stopped after block 1 and resumed writes the same bytes as an uninterrupted run', () => {
    const full = join(tmp, 'full.bcq');
    const r0 = bitcrush(...common(full));
    assert.equal(r0.status, 0, r0.stderr);
    assert.ok(!existsSync(`${full}.partial`), 'work dir removed on success');
    const summary = JSON.parse(r0.stdout) as { fileBytes: number; linearBpw: number; resumedBlocks: number };
    assert.equal(summary.fileBytes, statSync(full).size);
    assert.equal(summary.resumedBlocks, 0);

    const part = join(tmp, 'part.bcq');
    const r1 = bitcrush(...common(part), '--stop-after-block', '1');
    assert.equal(r1.status, 0, r1.stderr);
    assert.ok(!existsSync(part), 'no output before the last block');
    const manifest = JSON.parse(readFileSync(join(`${part}.partial`, 'manifest.json'), 'utf8')) as { blocksDone: number };
    assert.equal(manifest.blocksDone, 2);

    // other options cannot continue this work directory
    const wrong = bitcrush(...common(part).map((a) => (a === '3' ? '4' : a)), '--resume');
    assert.equal(wrong.status, 2, wrong.stderr);
    assert.match(wrong.stderr, /different model, options or calibration/);

    const r2 = bitcrush(...common(part), '--resume');
    assert.equal(r2.status, 0, r2.stderr);
    assert.equal((JSON.parse(r2.stdout) as { resumedBlocks: number }).resumedBlocks, 2);
    assert.ok(!existsSync(`${part}.partial`));
    assert.ok(Buffer.compare(readFileSync(full), readFileSync(part)) === 0, 'resumed file differs from the uninterrupted one');
  });

  it('RTN needs no calibration text; GPTQ without one is a usage error', () => {
    const out = join(tmp, 'rtn.bcq');
    const r = bitcrush('quantize', STORIES, '--method', 'rtn', '--bits', '4', '--group-size', '0', '--out', out, '--json');
    assert.equal(r.status, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { fileBytes: number }).fileBytes, statSync(out).size);
    const g = bitcrush('quantize', STORIES, '--method', 'gptq', '--out', join(tmp, 'g.bcq'));
    assert.equal(g.status, 2);
    assert.match(g.stderr, /^bitcrush: gptq needs calibration data/);
  });

  it('inspect reports the bpw the quantize summary reported', () => {
    const out = join(tmp, 'full.bcq');
    const r = bitcrush('inspect', out, '--json');
    assert.equal(r.status, 0, r.stderr);
    const info = JSON.parse(r.stdout) as { fileBytes: number; totals: { packedBpw: number }; tensors: Array<{ name: string; format: string; bpw: number }> };
    assert.equal(info.fileBytes, statSync(out).size);
    const packed = info.tensors.filter((t) => t.format === 'uniform-asym');
    // 35 block linears, and by default the tied embedding/head as one low-bit tensor
    assert.equal(packed.filter((t) => t.name.startsWith('model.layers.')).length, 35);
    assert.deepEqual(packed.filter((t) => !t.name.startsWith('model.layers.')).map((t) => t.name), ['model.embed_tokens.weight']);
    assert.ok(info.totals.packedBpw > 2 && info.totals.packedBpw < 3);
  });

  it('eval runs the packed file, finding the tokenizer through the original model', () => {
    const r = bitcrush('eval', join(tmp, 'full.bcq'), '--text', HELDOUT, '--seqlen', '64', '--max-windows', '2', '--json');
    assert.equal(r.status, 0, r.stderr);
    const ppl = (JSON.parse(r.stdout) as { ppl: number }).ppl;
    assert.ok(ppl > 1 && Number.isFinite(ppl));
  });
});
