/**
 * Autograd ops: every backward against central differences in float64 (each op alone and the
 * whole block, GQA included), the block forward against the runtime's layerForward on a real
 * stories260K block, and Adam/AdamW against a hand-computed step and a convex problem.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BLOCK_PARAMS, blockBackward, blockForward, blockGrads, type BlockParams } from '../src/autograd/block.js';
import * as op from '../src/autograd/ops.js';
import { Adam, AdamW } from '../src/autograd/optim.js';
import { createReferenceBackend } from '../src/backend/reference.js';
import { openModel } from '../src/io/load.js';
import type { LlamaConfig } from '../src/model/config.js';
import { layerTensor } from '../src/model/weights.js';
import { nodeFs } from '../src/node/fs.js';
import { denseLinears } from '../src/runtime/dense.js';
import { layerForward } from '../src/runtime/forward.js';
import { allocScratch, loadLayerWeights } from '../src/runtime/model.js';
import { mulberry32 as rng } from '../src/quant/random.js';

const rand64 = (r: () => number, n: number, s = 1) => Float64Array.from({ length: n }, () => s * (2 * r() - 1));

/**
 * Checks d(Σ out ⊙ R)/d(input) from `backward` against central differences for every element
 * of every listed input. `forward` returns out; `backward(dout)` returns the analytic gradients.
 */
function gradCheck(name: string, inputs: Record<string, Float64Array>, forward: () => Float64Array, backward: (dout: Float64Array) => Record<string, Float64Array>): void {
  const out0 = forward();
  const R = rand64(rng(99), out0.length);
  const loss = () => forward().reduce((s, v, i) => s + v * R[i]!, 0);
  const grads = backward(R);
  const h = 1e-6;
  for (const [k, x] of Object.entries(inputs)) {
    const g = grads[k]!;
    assert.equal(g.length, x.length, `${name}: d${k} length`);
    for (let i = 0; i < x.length; i++) {
      const keep = x[i]!;
      x[i] = keep + h;
      const lp = loss();
      x[i] = keep - h;
      const lm = loss();
      x[i] = keep;
      const num = (lp - lm) / (2 * h);
      // relative, with an absolute floor at the central difference's rounding noise (~1e-16·|loss|/h)
      const ok = Math.abs(num - g[i]!) <= 1e-5 * (Math.abs(num) + Math.abs(g[i]!)) + 1e-8;
      assert.ok(ok, `${name}: d${k}[${i}] analytic ${g[i]} vs numerical ${num}`);
    }
    assert.ok(g.some((v) => v !== 0), `${name}: d${k} is all zero`);
  }
}

describe('autograd ops: gradients against central differences', () => {
  const r = rng(1);
  it('matmul', () => {
    const [T, I, O] = [3, 5, 4];
    const x = rand64(r, T * I);
    const w = rand64(r, O * I);
    const out = new Float64Array(T * O);
    gradCheck('matmul', { x, w }, () => (op.matmulForward(out, x, w, T, I, O), out.slice()), (d) => {
      const dx = new Float64Array(T * I);
      const dw = new Float64Array(O * I);
      op.matmulBackward(dx, dw, d, x, w, T, I, O);
      return { x: dx, w: dw };
    });
  });
  it('rmsnorm', () => {
    const [T, C] = [3, 6];
    const x = rand64(r, T * C);
    const w = rand64(r, C);
    const out = new Float64Array(T * C);
    const rstd = new Float64Array(T);
    gradCheck('rmsnorm', { x, w }, () => (op.rmsnormForward(out, rstd, x, w, T, C, 1e-5), out.slice()), (d) => {
      const dx = new Float64Array(T * C);
      const dw = new Float64Array(C);
      op.rmsnormBackward(dx, dw, d, x, w, rstd, T, C);
      return { x: dx, w: dw };
    });
  });
  it('rope', () => {
    const [T, width, hs] = [4, 8, 4];
    const x = rand64(r, T * width);
    const tab = op.ropeTables(T, Float64Array.from({ length: hs / 2 }, (_, i) => Math.pow(10000, (-2 * i) / hs)));
    gradCheck('rope', { x }, () => {
      const y = x.slice();
      op.ropeForward(y, tab, T, width, hs);
      return y;
    }, (d) => {
      const dx = d.slice();
      op.ropeBackward(dx, tab, T, width, hs);
      return { x: dx };
    });
  });
  it('causal attention with grouped kv heads', () => {
    const a = { T: 4, nHeads: 4, nKvHeads: 2, headSize: 3 };
    const q = rand64(r, a.T * 12);
    const k = rand64(r, a.T * 6);
    const v = rand64(r, a.T * 6);
    const out = new Float64Array(a.T * 12);
    const att = new Float64Array(4 * a.T * a.T);
    gradCheck('attention', { q, k, v }, () => (op.attentionForward(out, att, q, k, v, a), out.slice()), (d) => {
      const [dq, dk, dv] = [new Float64Array(q.length), new Float64Array(k.length), new Float64Array(v.length)];
      op.attentionBackward(dq, dk, dv, d, att, q, k, v, a);
      return { q: dq, k: dk, v: dv };
    });
  });
  it('SwiGLU', () => {
    const n = 10;
    const g = rand64(r, n, 3);
    const u = rand64(r, n);
    const out = new Float64Array(n);
    gradCheck('swiglu', { g, u }, () => (op.swigluForward(out, g, u, n), out.slice()), (d) => {
      const [dg, du] = [new Float64Array(n), new Float64Array(n)];
      op.swigluBackward(dg, du, d, g, u, n);
      return { g: dg, u: du };
    });
  });
});

const tiny: LlamaConfig = {
  dim: 8, hiddenDim: 12, nLayers: 1, nHeads: 4, nKvHeads: 2, vocabSize: 16, seqLen: 8, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true,
} as LlamaConfig;

describe('Llama block', () => {
  it('whole block: every parameter and the input, against central differences', () => {
    const r = rng(2);
    const T = 5;
    const kv = (tiny.dim / tiny.nHeads) * tiny.nKvHeads;
    const p: BlockParams = {
      attnNorm: rand64(r, tiny.dim), wq: rand64(r, 64, 0.5), wk: rand64(r, kv * 8, 0.5), wv: rand64(r, kv * 8, 0.5), wo: rand64(r, 64, 0.5),
      ffnNorm: rand64(r, tiny.dim), w1: rand64(r, 96, 0.5), w2: rand64(r, 96, 0.5), w3: rand64(r, 96, 0.5),
    };
    const x = rand64(r, T * tiny.dim);
    const inputs: Record<string, Float64Array> = { x };
    for (const k of BLOCK_PARAMS) inputs[k] = p[k] as Float64Array;
    gradCheck('block', inputs, () => blockForward(tiny, p, x, T).out as Float64Array, (d) => {
      const acts = blockForward(tiny, p, x, T);
      const grads = blockGrads(p);
      const dx = blockBackward(tiny, p, acts, d, grads);
      return { x: dx as Float64Array, ...(grads as unknown as Record<string, Float64Array>) };
    });
  });

  it('forward equals the runtime\'s layerForward on stories260K block 1', () => {
    const STORIES = fileURLToPath(new URL('../../../shared/models/stories260K/stories260K.bin', import.meta.url));
    const source = openModel(STORIES, nodeFs);
    const c = { ...source.config, nLayers: 1 };
    const backend = createReferenceBackend();
    const T = 20;
    const L = loadLayerWeights(source, 1, denseLinears(backend));
    const s = allocScratch(c, backend, T);
    const x = Float32Array.from(rand64(rng(3), T * c.dim));
    s.x.set(x);
    layerForward(backend, c, L, s, 0, T, 0);
    const load = (n: Parameters<typeof layerTensor>[1]) => source.load(layerTensor(1, n));
    const p: BlockParams = {
      attnNorm: load('input_layernorm'), wq: load('self_attn.q_proj'), wk: load('self_attn.k_proj'), wv: load('self_attn.v_proj'),
      wo: load('self_attn.o_proj'), ffnNorm: load('post_attention_layernorm'), w1: load('mlp.gate_proj'), w2: load('mlp.down_proj'), w3: load('mlp.up_proj'),
    };
    const out = blockForward(c, p, x, T).out;
    for (let i = 0; i < T * c.dim; i++) assert.ok(Math.abs(out[i]! - s.x[i]!) <= 1e-4 * (1 + Math.abs(s.x[i]!)), `${i}: ${out[i]} vs ${s.x[i]}`);
  });
});

describe('optimizers', () => {
  it('first Adam step moves each parameter by lr against its gradient sign; AdamW decays apart from the gradient', () => {
    const p = Float64Array.from([1, -2, 3]);
    new Adam([p], { lr: 0.1 }).step([Float64Array.from([0.5, -4, 0])]);
    assert.ok(Math.abs(p[0]! - 0.9) < 1e-6 && Math.abs(p[1]! + 1.9) < 1e-6 && p[2] === 3);
    const q = Float64Array.from([2]);
    new AdamW([q], { lr: 0.1, weightDecay: 0.5 }).step([Float64Array.from([1])]);
    assert.ok(Math.abs(q[0]! - (2 - 0.1 - 0.1 * 0.5 * 2)) < 1e-6, `${q[0]}`);
  });
  it('AdamW minimises a quadratic', () => {
    const target = Float64Array.from([3, -1, 0.5]);
    const p = new Float64Array(3);
    const opt = new AdamW([p], { lr: 0.05 });
    for (let i = 0; i < 2000; i++) opt.step([p.map((v, k) => 2 * (v - target[k]!))]);
    for (let k = 0; k < 3; k++) assert.ok(Math.abs(p[k]! - target[k]!) < 1e-3, `${p[k]}`);
  });
});
