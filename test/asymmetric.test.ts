/**
 * Asymmetric calibration targets (src/pipeline/asymmetric.ts): the cross moment against a direct
 * sum, W* as the minimiser of the ridge-regularised asymmetric objective, the α blend.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createReferenceBackend } from '../src/backend/reference.js';
import { ASYM_DAMP, asymmetricTarget, crossMoment } from '../src/pipeline/asymmetric.js';
import { mulberry32 as rng } from '../src/quant/random.js';

const ref = createReferenceBackend();

function problem(seed: number, rows: number, inDim: number, out: number) {
  const r = rng(seed);
  const g = () => r() * 2 - 1;
  const xf = Float32Array.from({ length: rows * inDim }, g);
  // the quantized model's inputs: the float ones with an error
  const xq = xf.map((v) => v + 0.3 * g());
  const w = Float32Array.from({ length: out * inDim }, g);
  const H = new Float64Array(inDim * inDim);
  for (let i = 0; i < rows; i++) {
    for (let a = 0; a < inDim; a++) for (let b = 0; b < inDim; b++) H[a * inDim + b] += (2 * xq[i * inDim + a]! * xq[i * inDim + b]!) / rows;
  }
  return { xf, xq, w, H };
}

/** ‖V X̃ᵀ − W Xᵀ‖²/n + δ‖V − W‖², the objective W* minimises. */
function objective(v: Float32Array, w: Float32Array, xf: Float32Array, xq: Float32Array, rows: number, inDim: number, out: number, delta: number): number {
  let f = 0;
  for (let i = 0; i < rows; i++) {
    for (let o = 0; o < out; o++) {
      let e = 0;
      for (let c = 0; c < inDim; c++) e += v[o * inDim + c]! * xq[i * inDim + c]! - w[o * inDim + c]! * xf[i * inDim + c]!;
      f += (e * e) / rows;
    }
  }
  for (let k = 0; k < v.length; k++) f += delta * (v[k]! - w[k]!) ** 2;
  return f;
}

describe('asymmetric calibration targets', () => {
  it('crossMoment equals XᵀX̃/n summed directly, across row chunks', () => {
    const rows = 5000; // more than one 4096-row chunk
    const inDim = 3;
    const { xf, xq } = problem(1, rows, inDim, 2);
    const C = crossMoment(ref, xf, xq, rows, inDim);
    for (let a = 0; a < inDim; a++) {
      for (let b = 0; b < inDim; b++) {
        let s = 0;
        for (let i = 0; i < rows; i++) s += xf[i * inDim + a]! * xq[i * inDim + b]!;
        assert.ok(Math.abs(C[a * inDim + b]! - s / rows) < 1e-5, `C[${a},${b}]`);
      }
    }
  });

  for (const out of [4, 9]) it(`α = 1 gives the minimiser of the asymmetric objective; α = 0 the weights; α blends linearly (${out} rows of 6: ${out < 6 ? 'left to right' : 'through K'})`, () => {
    const rows = 200;
    const inDim = 6;
    const { xf, xq, w, H } = problem(2, rows, inDim, out);
    const C = crossMoment(ref, xf, xq, rows, inDim);
    let tr = 0;
    for (let i = 0; i < inDim; i++) tr += H[i * inDim + i]! / 2;
    const delta = ASYM_DAMP * (tr / inDim) + 1e-12;
    const star = asymmetricTarget(ref, w, out, inDim, H, C, 1);
    const f0 = objective(star, w, xf, xq, rows, inDim, out, delta);
    assert.ok(f0 < objective(w, w, xf, xq, rows, inDim, out, delta) * 0.9, 'W* beats W clearly');
    // any small move raises the objective (a quadratic at its minimum)
    const r = rng(3);
    for (let trial = 0; trial < 20; trial++) {
      const v = star.map((x) => x + 1e-2 * (r() * 2 - 1));
      assert.ok(objective(v, w, xf, xq, rows, inDim, out, delta) > f0, `perturbation ${trial}`);
    }
    const zero = asymmetricTarget(ref, w, out, inDim, H, C, 0);
    assert.deepEqual(zero, w);
    const half = asymmetricTarget(ref, w, out, inDim, H, C, 0.5);
    for (let k = 0; k < w.length; k++) assert.ok(Math.abs(half[k]! - (w[k]! + star[k]!) / 2) < 1e-5);
  });
});
