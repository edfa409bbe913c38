/**
 * AQLM global fine-tuning (src/methods/aqlm-global.ts): the KL's logit gradient and the whole
 * model's gradients (codebooks, scales, block norms, final norm through every block) against
 * central differences, and that fine-tuning lowers the held-out KL to the float model on
 * stories260K while the file's bits stay the same.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { bitsPerWeight, getFormat } from '../src/formats/registry.js';
import { aqlm, aqlmDefaults, type AqlmOptions } from '../src/methods/aqlm.js';
import { globalFinetune, globalKlProblem, klAndGrad } from '../src/methods/aqlm-global.js';
import { createBackend } from '../src/node/backend.js';
import { quantizeModel } from '../src/pipeline/quantize.js';
import type { ModelRefineContext } from '../src/quant/method.js';
import { mulberry32 as rng, gaussians } from '../src/quant/random.js';
import { storiesData } from './stories.js';

const backend = createBackend({ threads: 1 });
after(() => backend.dispose());

describe('AQLM global fine-tuning', () => {
  it('dKL/dz = (q − p)/T matches central differences of the logits', () => {
    const T = 3;
    const V = 7;
    const rand = rng(5);
    const zp = gaussians(rand, T * V);
    const zq = gaussians(rand, T * V);
    const logSm = (z: Float32Array) => {
      const o = new Float32Array(z.length);
      for (let t = 0; t < T; t++) {
        let m = -Infinity;
        for (let v = 0; v < V; v++) m = Math.max(m, z[t * V + v]!);
        let s = 0;
        for (let v = 0; v < V; v++) s += Math.exp(z[t * V + v]! - m);
        for (let v = 0; v < V; v++) o[t * V + v] = z[t * V + v]! - m - Math.log(s);
      }
      return o;
    };
    const dz = new Float32Array(T * V);
    klAndGrad(logSm(zp), logSm(zq), T, V, dz);
    for (let i = 0; i < T * V; i++) {
      const h = 1e-2;
      const plus = zq.slice();
      plus[i]! += h;
      const minus = zq.slice();
      minus[i]! -= h;
      const fd = (klAndGrad(logSm(zp), logSm(plus), T, V) - klAndGrad(logSm(zp), logSm(minus), T, V)) / (2 * h);
      assert.ok(Math.abs(fd - dz[i]!) < 2e-3, `logit ${i}: finite difference ${fd} vs ${dz[i]}`);
    }
  });

  // a quick AQLM 2x4 g4 model of stories260K on 12 windows of 64 tokens (8 to train, 4 held out).
  // With 6 windows (2 held out) and lr 1e-3 the first epoch's held-out KL went up on one machine and
  // down on another (float rounding of a few noisy windows): 12 windows at lr 3e-4 lowered it on
  // the reference and native backends alike (1.186 → 1.135, 1.243 → 1.211)
  const { source, calibration } = storiesData({ count: 12, seqLen: 64 });
  const opts: AqlmOptions = { ...aqlmDefaults, scheme: '2x4', groupSize: 4, beamSize: 1, maxEpochs: 1, stepsPerEpoch: 5, kmeansIters: 5, globalFinetuneEpochs: 3, globalFinetuneLr: 3e-4, finetuneHoldout: 0.34 };
  const r = quantizeModel(source, { backend, method: aqlm as never, methodOptions: opts, calibration });
  const ctx: ModelRefineContext = {
    backend, float: source, student: r.source, packed: r.packed, headTensor: r.layout.headTensor,
    tokens: calibration.tokens, windows: calibration.count, seqLen: calibration.seqLen,
  };

  it('gradients of codebooks, scales and norms through the whole model match central differences', () => {
    const P = globalKlProblem(ctx, opts.finetuneHoldout);
    try {
      P.windowKl(0, true);
      const analytic = P.grads.map((g) => g.slice());
      // from each kind of parameter (first and last block's q/down codebooks and scales, norms, final norm) its largest-gradient entry
      const picks = [0, 1, 12, 13, P.params.length - 12, P.params.length - 3, P.params.length - 1];
      for (const k of picks) {
        const p = P.params[k]!;
        const g = analytic[k]!;
        let i = 0;
        for (let j = 1; j < g.length; j++) if (Math.abs(g[j]!) > Math.abs(g[i]!)) i = j;
        const h = Math.max(1e-3, Math.abs(p[i]!) * 1e-2);
        const v = p[i]!;
        p[i] = v + h;
        const plus = P.windowKl(0, false);
        p[i] = v - h;
        const minus = P.windowKl(0, false);
        p[i] = v;
        const fd = (plus - minus) / (2 * h);
        assert.ok(Math.abs(fd - g[i]!) <= 0.05 * Math.abs(g[i]!) + 1e-4, `parameter ${k}[${i}]: finite difference ${fd} vs analytic ${g[i]}`);
      }
    } finally {
      P.dispose();
    }
  });

  it('lowers the held-out KL to the float model, same codes and bits', () => {
    const out = globalFinetune(ctx, opts)!;
    assert.ok(out.stats.heldKlAfter < out.stats.heldKlBefore, `held-out KL ${out.stats.heldKlBefore} → ${out.stats.heldKlAfter}`);
    assert.ok(out.packed.size === 7 * source.config.nLayers && out.dense.size === 2 * source.config.nLayers + 1);
    const fmt = getFormat('aqlm');
    for (const [name, t] of out.packed) {
      const before = fmt.unpack(r.packed.get(name)! as never) as { codes: Uint16Array };
      const after = fmt.unpack(t as never) as { codes: Uint16Array; codebooks: Float32Array };
      assert.deepEqual(after.codes, before.codes, `${name}: codes changed`);
      assert.equal(bitsPerWeight(fmt, t.outDim, t.inDim, t.params), bitsPerWeight(fmt, t.outDim, t.inDim, r.packed.get(name)!.params));
    }
  });
});
