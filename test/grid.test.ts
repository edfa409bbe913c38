import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dequantizeGroups, roundToF16 } from '../src/formats/quantized.js';
import { dequantizeLevel, fakeQuantize, fitGrid, maxLevel, quantizeLevel, rangeOf } from '../src/quant/grid.js';
import { quantizeRtnLayer } from '../src/methods/rtn.js';
import { mulberry32 as rng } from '../src/quant/random.js';

function gaussian(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

test('asymmetric grid: float16 scale, integer zero, round trip within half a step', () => {
  const rand = rng(1);
  for (const bits of [2, 3, 4, 8]) {
    const maxq = maxLevel(bits);
    for (let trial = 0; trial < 50; trial++) {
      const w = Array.from({ length: 32 }, () => gaussian(rand) * 0.05 + (trial % 3) * 0.02);
      const [min, max] = rangeOf(w, 0, w.length);
      const { scale, zero } = fitGrid(min, max, bits, false);
      assert.equal(roundToF16(scale), scale, 'scale is a float16 value');
      assert.ok(Number.isInteger(zero) && zero >= 0 && zero <= maxq, `zero ${zero} in [0, ${maxq}]`);
      assert.ok(Math.abs(scale - (Math.max(max, 0) - Math.min(min, 0)) / maxq) <= scale * 2 ** -10);
      for (const x of w) {
        const q = quantizeLevel(x, scale, zero, maxq);
        assert.ok(Number.isInteger(q) && q >= 0 && q <= maxq);
        const v = dequantizeLevel(q, scale, zero);
        // within range every value is within half a step (plus the f16 rounding of the scale)
        assert.ok(Math.abs(v - x) <= scale * (0.5 + maxq * 2 ** -10) + 1e-7, `bits ${bits}: ${x} -> ${v}, step ${scale}`);
        assert.equal(fakeQuantize(x, scale, zero, maxq), v);
        assert.equal(quantizeLevel(v, scale, zero, maxq), q, 'a grid value quantizes to itself');
      }
      assert.equal(fakeQuantize(0, scale, zero, maxq), 0, 'zero is exact');
    }
  }
});

test('grid range always contains 0; all-zero and constant groups', () => {
  const pos = fitGrid(0.5, 1.5, 4, false);
  assert.equal(pos.zero, 0, 'all-positive group: zero level is 0');
  assert.ok(Math.abs(fakeQuantize(1.5, pos.scale, pos.zero, 15) - 1.5) < 1e-3);
  const neg = fitGrid(-2, -1, 3, false);
  assert.equal(neg.zero, 7);
  assert.ok(Math.abs(fakeQuantize(-2, neg.scale, neg.zero, 7) + 2) < 2e-3);
  const z = fitGrid(0, 0, 2, false);
  assert.ok(z.scale > 0 && Number.isFinite(z.scale));
  assert.equal(fakeQuantize(0, z.scale, z.zero, 3), 0);
  const tiny = fitGrid(-1e-12, 1e-12, 4, false);
  assert.ok(tiny.scale > 0, 'scale never rounds to zero');
  assert.throws(() => fitGrid(NaN, 1, 4, false), RangeError);
  assert.throws(() => fitGrid(0, Infinity, 4, false), RangeError);
});

test('symmetric grid: zero = 2^(bits-1), range ±max|w| even for one-signed groups', () => {
  for (const bits of [2, 3, 4, 8]) {
    const maxq = maxLevel(bits);
    const g = fitGrid(-0.3, 0.1, bits, true);
    assert.equal(g.zero, 2 ** (bits - 1));
    assert.ok(Math.abs(g.scale - 0.6 / maxq) <= g.scale * 2 ** -10);
    assert.ok(Math.abs(fakeQuantize(-0.3, g.scale, g.zero, maxq) + 0.3) <= g.scale * 0.51);
    const p = fitGrid(0.2, 0.4, bits, true);
    // all positive: the top level (2^(b-1) − 1)·scale still reaches close to max, no clipping to half
    const top = fakeQuantize(0.4, p.scale, p.zero, maxq);
    assert.ok(top >= 0.4 * ((2 ** (bits - 1) - 1) / (maxq / 2)) * (1 - 2 ** -10), `bits ${bits}: top ${top}`);
  }
});

test('ties round to even as torch.round', () => {
  // scale 1, zero 0: 2.5 → 2, 3.5 → 4, −0.5 → 0 (clamped anyway), 1.5 → 2
  assert.equal(quantizeLevel(2.5, 1, 0, 15), 2);
  assert.equal(quantizeLevel(3.5, 1, 0, 15), 4);
  assert.equal(quantizeLevel(1.5, 1, 0, 15), 2);
  assert.equal(quantizeLevel(2.4, 1, 0, 15), 2);
  assert.equal(quantizeLevel(99, 1, 0, 15), 15);
  assert.equal(quantizeLevel(-3, 1, 0, 15), 0);
});

test('RTN: error falls with bits, dequantized equals dequantizeGroups, partial last group', () => {
  const rand = rng(7);
  const out = 24;
  const inDim = 172; // stories260K's hidden width: groups of 32 leave a last group of 12
  const W = Float32Array.from({ length: out * inDim }, () => gaussian(rand) * 0.1);
  W[5 * inDim + 170] = 1.5; // an outlier in the partial group only
  let prev = Infinity;
  for (const bits of [2, 3, 4, 8]) {
    for (const groupSize of [32, 0]) {
      const res = quantizeRtnLayer(W, out, inDim, { bits, groupSize, sym: false });
      assert.equal(res.payload.format, 'groups');
      const t = res.payload.data;
      assert.deepEqual(res.dequantized, dequantizeGroups(t), `bits ${bits} g ${groupSize}: bit-exact with the format reference`);
      if (groupSize === 32) {
        assert.equal(t.groupSize, 32);
        assert.equal(t.scale.length, out * 6);
        // the partial group's grid is fitted on its own 12 columns: the outlier widens only it
        const [min, max] = rangeOf(W, 5 * inDim + 160, 12);
        const own = fitGrid(min, max, bits, false);
        assert.equal(t.scale[5 * 6 + 5], own.scale);
        assert.ok(t.scale[5 * 6 + 4] < own.scale / 2, 'the previous group is not widened by the outlier');
        let err = 0;
        for (let i = 0; i < W.length; i++) err += (res.dequantized[i] - W[i]) ** 2;
        assert.ok(err < prev * 0.6, `bits ${bits}: error ${err} should be well below ${prev}`);
        prev = err;
      } else {
        assert.equal(t.groupSize, inDim);
        assert.equal(t.scale.length, out);
      }
      for (let i = 0; i < t.q.length; i++) assert.ok(t.q[i] <= maxLevel(bits));
    }
  }
});
