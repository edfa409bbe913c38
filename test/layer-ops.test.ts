/**
 * The native backend's layer ops (native/decode-ops.c) against the reference (runtime/layer-ops.ts)
 * on random inputs: the fused residual add + RMSNorm, SwiGLU's silu ⊙ up, and the one-row attention
 * with grouped kv heads at positions that run on the calling thread and, at 2 threads, split over
 * heads on the pool. Float32 summation order differs (eight partial sums), so results are compared
 * to 1e-5 of the output's scale; bad shapes must throw, not read out of bounds.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createReferenceBackend } from '../src/backend/reference.js';
import { openModel } from '../src/io/load.js';
import { nodeFs } from '../src/node/fs.js';
import { loadNativeBackend } from '../src/node/native.js';
import { LlamaModel } from '../src/runtime/model.js';
import { mulberry32 } from '../src/quant/random.js';
import { referenceLayerOps as ref } from '../src/runtime/layer-ops.js';

const rand = (r: () => number, n: number, s = 1) => Float32Array.from({ length: n }, () => s * (2 * r() - 1));

function relErr(a: Float32Array, b: Float32Array): number {
  let err = 0, scale = 0;
  for (let i = 0; i < b.length; i++) {
    err = Math.max(err, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return err / scale;
}

{
  // 2 threads: the long positions below split attention over heads on the pool, the short ones run inline
  const be = loadNativeBackend(2).backend;
  describe('native layer ops', { skip: be ? false : 'native addon not built' }, () => {
    const ops = be!.layerOps;
    it('addRmsnorm with and without the residual add', () => {
      const r = mulberry32(1);
      for (const n of [1, 7, 2048]) {
        const x = rand(r, n, 3), d = rand(r, n), w = rand(r, n);
        for (const withAdd of [false, true]) {
          const xr = x.slice(), xn = x.slice(), or = new Float32Array(n), on = new Float32Array(n);
          ref.addRmsnorm(or, xr, withAdd ? d : null, w, n, 1e-5);
          ops.addRmsnorm(on, xn, withAdd ? d : null, w, n, 1e-5);
          assert.deepEqual(xn, xr, 'the residual add is exact');
          assert.ok(relErr(on, or) < 1e-6, `n ${n}: ${relErr(on, or)}`);
        }
      }
    });
    it('siluMul', () => {
      const r = mulberry32(2);
      const h = rand(r, 5632, 8), u = rand(r, 5632);
      const hr = h.slice(), hn = h.slice();
      ref.siluMul(hr, u, h.length);
      ops.siluMul(hn, u, h.length);
      assert.ok(relErr(hn, hr) < 1e-6, String(relErr(hn, hr)));
    });
    it('one-row attention, grouped kv heads, short and long positions', () => {
      const r = mulberry32(3);
      // 8 query heads on 2 kv heads of 24 (not a multiple of 8: the dot's tail), kv rows wider than the heads
      const nh = 8, nkv = 2, hs = 24, kvDim = 56, positions = 700, layers = 2;
      const k = rand(r, layers * positions * kvDim), v = rand(r, layers * positions * kvDim);
      const q = rand(r, nh * hs, 2);
      for (const pos of [0, 5, 699]) {
        const layerOff = positions * kvDim;
        const or = new Float32Array(nh * hs), on = new Float32Array(nh * hs);
        ref.attention(or, q, k, v, layerOff, pos, nh, nkv, hs, kvDim, new Float32Array(positions));
        ops.attention(on, q, k, v, layerOff, pos, nh, nkv, hs, kvDim, new Float32Array(0));
        assert.ok(relErr(on, or) < 1e-5, `pos ${pos}: ${relErr(on, or)}`);
      }
      assert.throws(() => ops.attention(new Float32Array(nh * hs), q, k, v, positions * kvDim, positions, nh, nkv, hs, kvDim, new Float32Array(0)), /shorter/);
      assert.throws(() => ops.attention(new Float32Array(nh * hs), q, k, v, 0, 3, nh, 3, hs, kvDim, new Float32Array(0)), /heads/);
      assert.throws(() => ops.addRmsnorm(new Float32Array(4), new Float32Array(8), null, new Float32Array(8), 8, 1e-5), /shorter/);
    });
    it('stories260K decoded token by token: the same logits as the reference backend', () => {
      const file = fileURLToPath(new URL('../../../shared/models/stories260K/stories260K.bin', import.meta.url));
      const native = new LlamaModel(openModel(file, nodeFs), { backend: be! });
      const reference = new LlamaModel(openModel(file, nodeFs), { backend: createReferenceBackend() });
      for (let pos = 0; pos < 40; pos++) {
        const token = (pos * 37 + 1) % native.config.vocabSize;
        const a = native.forward([token], pos).slice(), b = reference.forward([token], pos);
        assert.ok(relErr(a, b) < 1e-4, `pos ${pos}: ${relErr(a, b)}`);
      }
    });
  });
}
