/**
 * BiLLM binarization and activation quantization: the per-token quantizer on known values, the
 * layer algorithm on a synthetic layer (beats plain sign binarization in the Hessian metric,
 * stores exactly what it fake-quantizes), and on stories260K the packed binary file — run with
 * its recorded activation bits — scores the same perplexity as the fake-quantized model, while a
 * file with one row's signs flipped does not.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createReferenceBackend } from '../src/backend/reference.js';
import { perplexity } from '../src/eval/perplexity.js';
import { rowKernelsOf } from '../src/backend/types.js';
import { mulberry32 } from '../src/quant/random.js';
import { binaryFormat, salientCount } from '../src/formats/binary.js';
import type { BinaryLinear } from '../src/formats/binary-linear.js';
import { getFormat } from '../src/formats/registry.js';
import type { PackedTensor } from '../src/formats/types.js';
import { BufferSource } from '../src/io/bytes.js';
import { billmDefaults, quantizeBillmLayer } from '../src/methods/billm.js';
import { getMethod } from '../src/methods/registry.js';
import type { ModelSource } from '../src/model/weights.js';
import { createBackend } from '../src/node/backend.js';
import { PackedModel } from '../src/packed/reader.js';
import { planPackedModel } from '../src/packed/writer.js';
import { quantizeModel } from '../src/pipeline/quantize.js';
import { ActQuantLinear, fakeQuantizeRows, withActQuant } from '../src/quant/act-quant.js';
import { DenseLinear } from '../src/runtime/dense.js';
import { LlamaModel } from '../src/runtime/model.js';
import { normal, storiesData } from './stories.js';

describe('activation fake quantization', () => {
  it('per token, symmetric absmax: known values', () => {
    const x = Float32Array.from([1, -0.5, 0.26, 0, 0, 0, 0, 0]); // −0.5·7 = −3.5: a tie, to even −4
    const out = new Float32Array(8);
    fakeQuantizeRows(out, x, 2, 4, 4); // 4 bits: levels −7..7 of max|x| / 7
    const s = 1 / 7;
    assert.deepEqual(Array.from(out.subarray(0, 4)), [s * 7, s * -4, s * 2, 0].map(Math.fround));
    assert.deepEqual(Array.from(out.subarray(4)), [0, 0, 0, 0], 'an all-zero token stays zero');
    fakeQuantizeRows(out, x, 1, 4, 8);
    assert.equal(out[2], Math.fround((1 / 127) * Math.round(0.26 * 127)));
  });

  it('the wrapper multiplies the quantized input, only inside the blocks', () => {
    const backend = createReferenceBackend();
    const w = Float32Array.from({ length: 3 * 5 }, (_, i) => Math.sin(i));
    const dense = new DenseLinear(backend, w, 3, 5);
    const x = Float32Array.from({ length: 2 * 5 }, (_, i) => Math.cos(3 * i));
    const xq = new Float32Array(10);
    fakeQuantizeRows(xq, x, 2, 5, 6);
    const want = new Float32Array(6);
    dense.matmul(want, xq, 2);
    const got = new Float32Array(6);
    new ActQuantLinear(dense, 6).matmul(got, x, 2);
    assert.deepEqual(got, want);
    const plain = new Float32Array(6);
    dense.matmul(plain, x, 2);
    assert.notDeepEqual(plain, want, 'quantization changes the product');
    assert.equal(withActQuant(dense, 'lm_head.weight', 6), dense);
    assert.equal(withActQuant(dense, 'model.layers.0.mlp.up_proj.weight', 16), dense);
    assert.throws(() => new ActQuantLinear(dense, 5), /4, 6, 8/);
  });
});

describe('BiLLM layer', () => {
  const backend = createReferenceBackend();
  const out = 24;
  const inDim = 96;
  const rand = normal(3);
  // weights with a few large columns (salient) and a heavy-ish tail
  const W = Float32Array.from({ length: out * inDim }, (_, i) => 0.02 * rand() * (i % inDim < 3 ? 6 : 1) * (rand() > 2 ? 4 : 1));
  const n = 400;
  const X = Float32Array.from({ length: n * inDim }, (_, i) => rand() * (i % inDim === 5 ? 8 : 1));
  const hessian = () => {
    const H = new Float64Array(inDim * inDim);
    for (let t = 0; t < n; t++) for (let a = 0; a < inDim; a++) for (let b = 0; b < inDim; b++) H[a * inDim + b] += (2 / n) * X[t * inDim + a]! * X[t * inDim + b]!;
    return H;
  };
  /** tr((W − Ŵ) H (W − Ŵ)ᵀ): the output error the Hessian measures. */
  const outputError = (Wq: Float32Array) => {
    const H = hessian();
    let e = 0;
    for (let r = 0; r < out; r++) {
      for (let a = 0; a < inDim; a++) {
        const da = W[r * inDim + a]! - Wq[r * inDim + a]!;
        for (let b = 0; b < inDim; b++) e += da * H[a * inDim + b]! * (W[r * inDim + b]! - Wq[r * inDim + b]!);
      }
    }
    return e;
  };

  it('beats per-row sign binarization in the output error, and stores exactly what it returns', () => {
    const r = quantizeBillmLayer(W, out, inDim, hessian(), { ...billmDefaults, blockSize: 32 }, backend);
    assert.equal(r.payload.format, 'binary');
    const data = r.payload.data as Parameters<typeof binaryFormat.pack>[0];
    const t = binaryFormat.pack(data);
    assert.deepEqual(binaryFormat.dequantize(t), r.dequantized);
    assert.ok(salientCount(data.salient) >= 3, 'one salient column searched per block at least');
    // the baseline: ŵ = mean|w| · sign(w) per row
    const sign = new Float32Array(out * inDim);
    for (let row = 0; row < out; row++) {
      let a = 0;
      for (let j = 0; j < inDim; j++) a += Math.abs(W[row * inDim + j]!) / inDim;
      for (let j = 0; j < inDim; j++) sign[row * inDim + j] = W[row * inDim + j]! >= 0 ? a : -a;
    }
    const billmErr = outputError(r.dequantized);
    const signErr = outputError(sign);
    assert.ok(billmErr < 0.7 * signErr, `BiLLM ${billmErr} vs sign ${signErr}`);
  });
});

describe('BiLLM on stories260K', () => {
  const backend = createBackend();
  after(() => backend.dispose());
  const { source, heldout, calibration: cal } = storiesData({ count: 16, seqLen: 64 });
  const EVAL = { seqLen: 128, maxWindows: 16 };

  const fakeQuantized = (src: ModelSource, packed: Map<string, PackedTensor>, bits: number, be = backend) =>
    new LlamaModel(src, {
      backend: be,
      linear: (name, s) => {
        const t = packed.get(name);
        const [o, i] = s.tensors().find((x) => x.name === name)!.shape as [number, number];
        const lin = new DenseLinear(be, t ? getFormat(t.format).dequantize(t) : s.load(name), o, i);
        return withActQuant(lin, name, bits, be);
      },
    });

  /** The packed file of `packed` with `actBits` in its header, in memory. */
  const packFile = (src: ModelSource, packed: Map<string, PackedTensor>, bits: number) => {
    const plan = planPackedModel({ config: source.config, method: { name: 'billm', options: {} }, source: src, packed, actBits: bits });
    const bytes = new Uint8Array(plan.size);
    let off = 0;
    for (const c of plan.chunks()) (bytes.set(c, off), (off += c.byteLength));
    return new PackedModel(new BufferSource('billm.bcq', bytes));
  };
  const filePpl = (file: PackedModel) => perplexity(new LlamaModel(file, { backend, linear: file.linears(backend) }), heldout, EVAL).ppl;

  it('packed file with recorded activation bits = fake-quantized model (W1A16, W1A6, W1A4), and a wrong file is caught', () => {
    const { method, opts } = getMethod('billm', { blockSize: 32 });
    const r = quantizeModel(source, { backend, method, methodOptions: opts, calibration: cal });
    // Evaluation multiplies whole windows (matmul), where the binary kernels expand tiles of
    // rows to exactly dequantizeBinary's floats and call the same backend.matmul as the dense
    // fake-quantized model: the products, hence the activation roundings, are the same, so
    // even with quantized activations the two must agree to float noise, not only at A16.
    const ppl: number[] = [];
    for (const bits of [16, 6, 4]) {
      const file = packFile(r.source, r.packed, bits);
      assert.equal(file.header.actBits, bits < 16 ? bits : undefined);
      const a = filePpl(file);
      const b = perplexity(fakeQuantized(r.source, r.packed, bits), heldout, EVAL).ppl;
      assert.ok(Math.abs(a - b) / b <= 1e-4, `A${bits}: packed ${a} vs fake-quantized ${b}`);
      ppl.push(b);
    }
    assert.ok(Math.abs(ppl[1]! - ppl[0]!) / ppl[0]! > 1e-3, `activation quantization is applied (A16 ${ppl[0]}, A6 ${ppl[1]})`);
    // the same comparison on a file whose first q_proj row has its sign bits flipped must fail
    const name = 'model.layers.0.self_attn.q_proj.weight';
    const t = r.packed.get(name)!;
    const signs = t.blobs.signs!.bytes.slice();
    const rb = signs.length / t.outDim;
    for (let i = 0; i < rb; i++) signs[i] = ~signs[i]! & 0xff;
    const wrong = new Map(r.packed).set(name, { ...t, blobs: { ...t.blobs, signs: { ...t.blobs.signs!, bytes: signs } } });
    const bad = filePpl(packFile(r.source, wrong, 6));
    assert.ok(Math.abs(bad - ppl[1]!) / ppl[1]! > 1e-4, `a file with one row's signs flipped: ${bad} vs fake-quantized ${ppl[1]}`);
  });

  it('binary layers run the wasm kernels on backends with row kernels, the TypeScript ones elsewhere', () => {
    const payload = binaryFormat.randomPayload(8, 64, { blockSize: 32, salientColumns: 4 }, mulberry32(5));
    const t = binaryFormat.pack(payload);
    const onRowKernels = binaryFormat.makeLinear(t, backend) as BinaryLinear;
    assert.equal(onRowKernels.engine, rowKernelsOf(backend) ? 'wasm' : 'typescript');
    assert.ok(rowKernelsOf(backend), `${backend.name} backend lends row kernels`);
    assert.equal((binaryFormat.makeLinear(t, createReferenceBackend()) as BinaryLinear).engine, 'typescript');
    onRowKernels.dispose();
  });
});
