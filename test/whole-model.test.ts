/**
 * Whole-model compression (issue 13) on stories260K: the output head quantized on the final
 * norm's output (GPTQ beats RTN on it), the embedding stored in a low-bit row format gathered
 * one row per token, tied models stored as one tensor or two, and the packed file computing
 * exactly what the fake-quantized model computes.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { formatIds, getFormat } from '../src/formats/registry.js';
import type { PackedTensor } from '../src/formats/types.js';
import { BufferSource } from '../src/io/bytes.js';
import { numberToBf16Bits } from '../src/io/safetensors.js';
import { getMethod } from '../src/methods/registry.js';
import { EMBED, FINAL_NORM, LM_HEAD, type ModelSource } from '../src/model/weights.js';
import { createBackend } from '../src/node/backend.js';
import { PackedModel } from '../src/packed/reader.js';
import { planPackedModel } from '../src/packed/writer.js';
import { describeSize, sizeReport } from '../src/packed/size.js';
import { quantizeModel, type PipelineResult } from '../src/pipeline/quantize.js';
import { quantizeHead, wholeModelLayout, type TensorQuant } from '../src/pipeline/whole-model.js';
import { mulberry32 } from '../src/quant/random.js';
import { rmsnorm } from '../src/runtime/forward.js';
import { DenseLinear } from '../src/runtime/dense.js';
import { LlamaModel } from '../src/runtime/model.js';
import { storiesData } from './stories.js';

// float activations: the packed files must compute the fake-quantized model exactly; the native
// int8 kernels (which serve these g32 heads and embeddings) are checked against W·x̂ in formats.test.ts
const backend = createBackend({ floatActivations: true });
after(() => backend.dispose());
const { source, heldout, calibration } = storiesData({ count: 16, seqLen: 64 });
const c = source.config;

const grid = (method: string, bits: number, groupSize: number): TensorQuant => {
  const { method: m, opts } = getMethod(method, { bits, groupSize });
  return { method: m, options: opts };
};

/** Parameters of the stories260K source (tied: the embedding once). */
const PARAMS = source.tensors().reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);

function toFile(r: PipelineResult): PackedModel {
  return new PackedModel(new BufferSource('whole.bc', fileBytesOf(r)));
}

function fileBytesOf(r: PipelineResult): Uint8Array {
  const plan = planPackedModel({ config: r.layout.config, method: { name: 'test', options: {} }, source: r.source, packed: r.packed, modelWeights: PARAMS });
  const bytes = new Uint8Array(plan.size);
  let off = 0;
  for (const chunk of plan.chunks()) {
    bytes.set(chunk, off);
    off += chunk.byteLength;
  }
  return bytes;
}

/** Every token's logits over a few windows, as one array. */
function logits(m: LlamaModel, windows = 2, len = 48): Float32Array {
  const out = new Float32Array(windows * len * c.vocabSize);
  for (let w = 0; w < windows; w++) out.set(m.forward(heldout.slice(w * len, (w + 1) * len), 0, 'all'), w * len * c.vocabSize);
  return out;
}

/** The model with the packed tensors dequantized whole (reference path: no row gather, no packed kernels). */
function fakeQuantized(r: PipelineResult): LlamaModel {
  const deq = (name: string) => {
    const t = r.packed.get(name);
    return t ? getFormat(t.format).dequantize(t) : r.source.load(name);
  };
  const src: ModelSource = { name: 'fake', config: r.layout.config, tensors: () => r.source.tensors(), load: deq };
  return new LlamaModel(src, {
    backend,
    linear: (name, s) => {
      const [out, inDim] = s.tensors().find((x) => x.name === name)!.shape as [number, number];
      return new DenseLinear(backend, deq(name), out, inDim);
    },
  });
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / m;
}

describe('row gather of the grid formats', () => {
  it('every row equals that row of the reference dequantization, bit for bit', () => {
    const rand = mulberry32(3);
    let checked = 0;
    for (const id of formatIds()) {
      const f = getFormat(id);
      if (f.rowGather === undefined) continue;
      for (const ex of f.examples()) {
        if (ex.outDim * ex.inDim > 1e5) continue;
        const t = f.pack(f.randomPayload(ex.outDim, ex.inDim, ex.params, rand)) as PackedTensor;
        const w = f.dequantize(t);
        const g = f.rowGather(t);
        const row = new Float32Array(ex.inDim);
        for (let r = ex.outDim - 1; r >= 0; r--) {
          g.row(row, r);
          assert.deepEqual(row, w.subarray(r * ex.inDim, (r + 1) * ex.inDim), `${id} ${JSON.stringify(ex.params)} row ${r}`);
        }
        assert.throws(() => g.row(row, ex.outDim), /outside/);
        checked++;
      }
    }
    assert.ok(checked >= 20, `${checked} examples`);
  });
});

describe('tied layout choice', () => {
  it('one tensor when the grids agree, two (untied file) when they differ, unchanged when both float', () => {
    assert.equal(c.tiedEmbeddings, true);
    const shared = wholeModelLayout(c, { head: grid('gptq', 4, 32), embed: grid('rtn', 4, 32) });
    assert.ok(shared.shared && shared.config.tiedEmbeddings && shared.headTensor === EMBED);
    const apart = wholeModelLayout(c, { head: grid('gptq', 4, 32), embed: grid('rtn', 2, 32) });
    assert.ok(!apart.shared && !apart.config.tiedEmbeddings && apart.headTensor === LM_HEAD);
    const float = wholeModelLayout(c, {});
    assert.ok(!float.shared && float.config.tiedEmbeddings && float.headTensor === EMBED);
  });
});

describe('output head on the final norm output', () => {
  it('GPTQ lowers the head\'s output error on the calibration stream below RTN\'s', () => {
    // the final residual stream of the float model over the calibration windows
    const m = new LlamaModel(source, { backend });
    const X = new Float32Array(calibration.count * calibration.seqLen * c.dim);
    const hook = m as unknown as { scratch: { x: Float32Array } };
    for (let w = 0; w < calibration.count; w++) {
      m.forward(calibration.tokens.slice(w * calibration.seqLen, (w + 1) * calibration.seqLen), 0, 'all');
      X.set(hook.scratch.x.subarray(0, calibration.seqLen * c.dim), w * calibration.seqLen * c.dim);
    }
    m.dispose();
    const W = source.load(EMBED);
    const xn = new Float32Array(X.length);
    rmsnorm(xn, X, source.load(FINAL_NORM), X.length / c.dim, c.dim, c.normEps);
    const err = (q: Float32Array) => {
      let e = 0;
      for (let r = 0; r < X.length / c.dim; r += 7) {
        for (let v = 0; v < c.vocabSize; v++) {
          let d = 0;
          for (let k = 0; k < c.dim; k++) d += (q[v * c.dim + k]! - W[v * c.dim + k]!) * xn[r * c.dim + k]!;
          e += d * d;
        }
      }
      return e;
    };
    const g = quantizeHead(source, grid('gptq', 3, 32), X, backend);
    const r = quantizeHead(source, grid('rtn', 3, 32), new Float32Array(0), backend);
    const eg = err(g.dequantized);
    const er = err(r.dequantized);
    assert.ok(eg < 0.8 * er, `GPTQ head error ${eg} vs RTN ${er}`);
  });
});

describe('whole-model packed files', () => {
  const { method, opts } = getMethod('rtn', { bits: 4, groupSize: 32 });
  const quantize = (head?: TensorQuant, embed?: TensorQuant) =>
    quantizeModel(source, { backend, method, methodOptions: opts, calibration, whole: { head, embed } });

  it('tied, one tensor: the GPTQ head is the embedding too; the file computes the fake-quantized model', () => {
    const r = quantize(grid('gptq', 4, 32), grid('rtn', 4, 32));
    assert.ok(r.layout.shared);
    assert.ok(r.packed.has(EMBED) && !r.packed.has(LM_HEAD));
    const file = toFile(r);
    assert.ok(file.config.tiedEmbeddings && file.isPacked(EMBED));
    assert.ok(file.rowGather(EMBED) !== undefined);
    const packed = new LlamaModel(file, { backend, linear: file.linears(backend) });
    const d = maxRelDiff(logits(packed), logits(fakeQuantized(r)));
    assert.ok(d < 1e-4, `packed vs fake-quantized logits: ${d}`);
  });

  it('tied, different grids: two tensors, an untied file; the embedding row-gathered at its own bits', () => {
    const r = quantize(grid('gptq', 4, 32), grid('rtn', 2, 32));
    assert.ok(!r.layout.shared && !r.layout.config.tiedEmbeddings);
    const file = toFile(r);
    assert.equal(file.config.tiedEmbeddings, false);
    assert.equal((file.header.tensors[EMBED] as unknown as { params: { bits: number } }).params.bits, 2);
    assert.equal((file.header.tensors[LM_HEAD] as unknown as { params: { bits: number } }).params.bits, 4);
    const packed = new LlamaModel(file, { backend, linear: file.linears(backend) });
    const d = maxRelDiff(logits(packed), logits(fakeQuantized(r)));
    assert.ok(d < 1e-4, `packed vs fake-quantized logits: ${d}`);
  });

  it('a float head beside a low-bit embedding reads the tied matrix; float both = the old layout', () => {
    const r = quantize(undefined, grid('rtn', 3, 32));
    const file = toFile(r);
    assert.equal(file.config.tiedEmbeddings, false);
    assert.ok(!file.isPacked(LM_HEAD));
    assert.deepEqual(file.load(LM_HEAD), source.load(EMBED));
    const plain = toFile(quantize());
    assert.ok(plain.config.tiedEmbeddings && !plain.isPacked(EMBED));
  });
});

describe('unquantized tensors in their source dtype', () => {
  const bf16 = (x: number) => new Float32Array(new Uint32Array([numberToBf16Bits(x) << 16]).buffer)[0]!;
  it('bfloat16 rounding: nearest, ties to even, Inf and NaN kept', () => {
    assert.equal(bf16(1), 1);
    assert.equal(bf16(1 + 2 ** -8), 1); // tie → even mantissa
    assert.equal(bf16(1 + 3 * 2 ** -8), 1 + 2 ** -6); // tie → even, upwards
    assert.equal(bf16(1 + 2 ** -8 + 2 ** -20), 1 + 2 ** -7);
    assert.equal(bf16(-Infinity), -Infinity);
    assert.ok(Number.isNaN(bf16(NaN)));
  });

  it('a BF16 source\'s norms stay BF16 (16 bits, exact values), F32 stays F32; packed tensors are unaffected', () => {
    const asBf16 = new Set([FINAL_NORM, 'model.layers.0.input_layernorm.weight']);
    const src: ModelSource = {
      ...source,
      name: 'bf16-source',
      config: c,
      tensors: () => source.tensors(),
      load: (name) => (asBf16.has(name) ? source.load(name).map(bf16) : source.load(name)),
      dtypeOf: (name) => (asBf16.has(name) ? 'BF16' : 'F32'),
    };
    const { method, opts } = getMethod('rtn', { bits: 2, groupSize: 32 });
    const r = quantizeModel(src, { backend, method, methodOptions: opts, whole: { head: grid('rtn', 4, 32), embed: grid('rtn', 4, 32) } });
    const file = toFile(r);
    for (const name of asBf16) {
      assert.equal((file.header.tensors[name] as { dtype?: string }).dtype, 'BF16');
      assert.equal(file.header.tensors[name]!.bpw, 16);
      assert.deepEqual(file.load(name), src.load(name));
    }
    assert.equal((file.header.tensors['model.layers.1.input_layernorm.weight'] as { dtype?: string }).dtype, 'F32');
    assert.equal(file.dtypeOf(FINAL_NORM), 'BF16');
  });
});

describe('one honest size', () => {
  const { method, opts } = getMethod('rtn', { bits: 2, groupSize: 32 });
  const quantize = (head?: TensorQuant, embed?: TensorQuant) =>
    quantizeModel(source, { backend, method, methodOptions: opts, whole: { head, embed } });
  const written = (r: PipelineResult) => {
    const bytes = fileBytesOf(r);
    return { f: new PackedModel(new BufferSource('whole.bc', bytes)), bytes: bytes.byteLength };
  };

  it('the whole file over all weights, then by role; the roles add up to the tensor data', () => {
    const { f, bytes } = written(quantize(grid('rtn', 4, 32), grid('rtn', 4, 32)));
    const s = sizeReport(f.header, bytes);
    assert.equal(s.weights, PARAMS);
    assert.equal(s.bpw, (bytes * 8) / PARAMS);
    assert.equal(s.tied, 'one tensor');
    const t = f.header.totals;
    const roleBytes = Object.values(s.roles).reduce((a, r) => a + r.bytes, 0);
    assert.ok(Math.abs(roleBytes - (t.packedBytes + t.denseBytes)) < 1e-6, `${roleBytes} vs ${t.packedBytes + t.denseBytes}`);
    assert.equal(s.roles.blockLinears.tensors, c.nLayers * 7);
    assert.equal(s.roles.head.tensors, 0);
    assert.equal(s.roles.embedding.weights, c.vocabSize * c.dim);
    // 4-bit levels + f16 scale + 4-bit zero per 32 columns
    assert.ok(Math.abs(s.roles.embedding.bpw - (4 + 20 / 32)) < 1e-9, `embedding ${s.roles.embedding.bpw}`);
    assert.equal(s.roles.other.bpw, 32); // llama2.c: F32 norms
    assert.match(describeSize(s)[0]!, /bits per weight over all 0\.\d+ M weights \(whole file\)/);
  });

  it('a tied source stored as two tensors is still divided by its own parameters', () => {
    const { f, bytes } = written(quantize(grid('rtn', 4, 32), grid('rtn', 2, 32)));
    const s = sizeReport(f.header, bytes);
    assert.equal(s.tied, 'two tensors');
    assert.equal(s.weights, PARAMS);
    assert.equal(s.roles.head.weights + s.roles.embedding.weights, 2 * c.vocabSize * c.dim);
  });
});
