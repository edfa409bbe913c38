/**
 * The backend path of the block (BlockKernels: linears and attention on Backend.matmul) against
 * the plain-loop path of ops.ts, in float32, on every backend this machine has: the forward
 * output, the input gradient and every parameter gradient must agree to float32 accuracy. The
 * loop path itself is checked against numerical gradients in autograd.test.ts.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { BLOCK_PARAMS, blockBackward, blockForward, blockGrads, type BlockParams } from '../src/autograd/block.js';
import { BlockKernels } from '../src/autograd/kernels.js';
import { createReferenceBackend } from '../src/backend/reference.js';
import type { Backend } from '../src/backend/types.js';
import type { LlamaConfig } from '../src/model/config.js';
import { createWasmBackendNode } from '../src/node/backend.js';
import { loadNativeBackend } from '../src/node/native.js';
import { mulberry32 as rng } from '../src/quant/random.js';

const cfg = {
  dim: 32, hiddenDim: 44, nLayers: 1, nHeads: 4, nKvHeads: 2, vocabSize: 16, seqLen: 64, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true,
} as LlamaConfig;

const rand32 = (r: () => number, n: number, s = 1) => Float32Array.from({ length: n }, () => s * (2 * r() - 1));

function randomBlock(seed: number): BlockParams {
  const r = rng(seed);
  const { dim, hiddenDim: hid } = cfg;
  const kv = (dim / cfg.nHeads) * cfg.nKvHeads;
  const w = 1 / Math.sqrt(dim);
  return {
    attnNorm: rand32(r, dim), wq: rand32(r, dim * dim, 3 * w), wk: rand32(r, kv * dim, 3 * w), wv: rand32(r, kv * dim, w),
    wo: rand32(r, dim * dim, w), ffnNorm: rand32(r, dim), w1: rand32(r, hid * dim, w), w2: rand32(r, dim * hid, w), w3: rand32(r, hid * dim, w),
  };
}

/** max |a − b| over max |b|: the error relative to the tensor's scale. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    err = Math.max(err, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  assert.ok(scale > 0, 'reference tensor is all zero');
  return err / scale;
}

const backends: { label: string; be: Backend }[] = [
  { label: 'reference', be: createReferenceBackend() },
  { label: 'wasm', be: createWasmBackendNode(2) },
];
const native = loadNativeBackend(2);
if (native.backend) backends.push({ label: 'native', be: native.backend });
after(() => backends.forEach(({ be }) => be.dispose()));

describe('block on backend kernels equals the loop path (float32)', () => {
  const T = 37;
  const p = randomBlock(5);
  const x = rand32(rng(6), T * cfg.dim, 2);
  const dout = rand32(rng(7), T * cfg.dim);
  const ref = blockForward(cfg, p, x, T);
  const refGrads = blockGrads(p);
  const refDx = blockBackward(cfg, p, ref, dout, refGrads);

  for (const { label, be } of backends) {
    it(label, () => {
      const kernels = new BlockKernels(be);
      try {
        // twice on the same kernels: reused buffers must not leak state between passes
        for (let pass = 0; pass < 2; pass++) {
          const acts = blockForward(cfg, p, x, T, kernels);
          assert.ok(relErr(acts.out, ref.out) < 1e-5, `${label} pass ${pass}: out ${relErr(acts.out, ref.out)}`);
          assert.ok(relErr(acts.att, ref.att) < 1e-5, `${label} pass ${pass}: attention probabilities`);
          const grads = blockGrads(p);
          const dx = blockBackward(cfg, p, acts, dout, grads, kernels);
          assert.ok(relErr(dx, refDx) < 1e-4, `${label} pass ${pass}: dx ${relErr(dx, refDx)}`);
          for (const k of BLOCK_PARAMS) {
            const e = relErr(grads[k]!, refGrads[k]!);
            assert.ok(e < 1e-4, `${label} pass ${pass}: d${k} relative error ${e}`);
          }
        }
      } finally {
        kernels.dispose();
      }
    });
  }

  it('a Float64 input takes the loop path even with kernels (the gradient checks stay exact)', () => {
    const kernels = new BlockKernels(createReferenceBackend());
    const p64 = Object.fromEntries(BLOCK_PARAMS.map((k) => [k, Float64Array.from(p[k])])) as unknown as BlockParams;
    const acts = blockForward(cfg, p64, Float64Array.from(x), T, kernels);
    assert.ok(acts.out instanceof Float64Array);
    assert.ok(relErr(acts.out, ref.out) < 1e-5);
  });
});
