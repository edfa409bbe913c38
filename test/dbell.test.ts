/**
 * DBellQuant's LTDB: the analytic gradient of the proximity loss against finite differences, SGD
 * bringing rows closer to their two targets, and the transform alone (no quantization) leaving
 * stories260K's perplexity unchanged while really rescaling its norms and weights.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { perplexity } from '../src/eval/perplexity.js';
import { dbellDefaults, ltdbTransform, optimizeBlock, proximityLoss } from '../src/methods/dbell.js';
import { layerTensor } from '../src/model/weights.js';
import { createBackend } from '../src/node/backend.js';
import { LlamaModel } from '../src/runtime/model.js';
import { normal, storiesData } from './stories.js';

describe('LTDB proximity loss', () => {
  const rows = 6;
  const n = 16;
  const rand = normal(11);
  const W = Float64Array.from({ length: rows * n }, () => 0.05 * rand());

  it('analytic gradient = central finite differences (a and b differentiated through)', () => {
    const s = Float64Array.from({ length: n }, () => 1 + 0.3 * rand());
    const grad = new Float64Array(n);
    proximityLoss(W, rows, n, s, grad);
    const h = 1e-6;
    for (let j = 0; j < n; j++) {
      const sp = Float64Array.from(s);
      const sm = Float64Array.from(s);
      sp[j] += h;
      sm[j] -= h;
      const fd = (proximityLoss(W, rows, n, sp, null).loss - proximityLoss(W, rows, n, sm, null).loss) / (2 * h);
      assert.ok(Math.abs(fd - grad[j]!) <= 1e-4 * Math.abs(fd) + 1e-6, `∂L/∂s_${j}: analytic ${grad[j]}, finite difference ${fd}`);
    }
  });

  it('SGD brings the scaled rows closer to their two targets', () => {
    // a block of realistic size (on 6×16 the first step already raises the distance: early stop)
    const Wb = Float64Array.from({ length: 64 * 64 }, () => 0.05 * rand());
    const s0 = new Float64Array(64).fill(1);
    const before = proximityLoss(Wb, 64, 64, s0, null);
    const s = optimizeBlock(Wb, 64, 64, s0, 200, 0.01);
    const after = proximityLoss(Wb, 64, 64, s, null);
    assert.ok(after.distance < before.distance, `distance ${before.distance} → ${after.distance}`);
    assert.ok(after.loss < before.loss, `loss ${before.loss} → ${after.loss}`);
    assert.ok(s.some((v) => Math.abs(v - 1) > 1e-3), 'the scales moved');
  });
});

describe('LTDB on stories260K', () => {
  const backend = createBackend();
  after(() => backend.dispose());
  const { source, heldout, calibration: cal } = storiesData({ count: 8, seqLen: 64 });

  it('the transformation alone leaves perplexity unchanged (relative ≤ 1e-4) and rescales norms and weights', () => {
    const { source: t, scales } = ltdbTransform(source, { ...dbellDefaults, blockSize: 64, epochs: 50 }, { backend, calibration: cal });
    const eval_ = { seqLen: 256, maxWindows: 24 };
    const a = perplexity(new LlamaModel(source, { backend }), heldout, eval_).ppl;
    const b = perplexity(new LlamaModel(t, { backend }), heldout, eval_).ppl;
    assert.ok(Math.abs(a - b) / a <= 1e-4, `float ${a} vs transformed ${b}`);
    // not the identity: the norms and the q/k/v, gate/up columns really changed
    const spread = Math.max(...scales.attn[0]!) / Math.min(...scales.attn[0]!);
    assert.ok(spread > 2, `attention scales of block 0 span a factor ${spread}`);
    const g = source.load(layerTensor(0, 'input_layernorm'));
    const g2 = t.load(layerTensor(0, 'input_layernorm'));
    assert.ok(g.some((v, i) => Math.abs(v - g2[i]!) > 1e-3 * Math.abs(v)));
    const o = source.load(layerTensor(0, 'self_attn.o_proj'));
    assert.deepEqual(t.load(layerTensor(0, 'self_attn.o_proj')), o, 'o_proj is not transformed');
  });
});
