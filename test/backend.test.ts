/**
 * Every available backend against the reference loops on random inputs: odd shapes that do
 * not fill the register tiles or cache blocks, arrays inside and outside `alloc`, several
 * threads with the parallel threshold forced down so small shapes exercise the splitting.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import {
  createReferenceBackend,
  referenceCholesky,
  referenceMatmul,
  referenceTriInverse,
  referenceXtx,
} from '../src/backend/reference.js';
import type { Backend } from '../src/backend/types.js';
import { createWasmBackend } from '../src/backend/wasm.js';
import { createBackend, createWasmBackendNode, spawnNodeWorker } from '../src/node/backend.js';
import { loadNativeBackend } from '../src/node/native.js';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const EPS32 = 1.2e-7;
const EPS64 = 2.3e-16;

/** Deterministic uniform numbers in [-1, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  };
}

function randomF32(length: number, rand: () => number): Float32Array {
  return Float32Array.from({ length }, rand);
}

/** Copies `data` into a buffer from the backend, or into a plain array (with an offset, so byteOffset matters). */
function place<T extends Float32Array | Float64Array>(be: Backend, data: T, inside: boolean): T {
  if (!inside) {
    const plain = new (data.constructor as { new (n: number): T })(data.length + 3).subarray(3) as T;
    plain.set(data);
    return plain;
  }
  const buf = (data instanceof Float32Array ? be.alloc(data.length + 1) : be.alloc64!(data.length + 1)) as T;
  const view = buf.subarray(1) as T;
  view.set(data);
  return view;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>, length = a.length): number {
  let e = 0;
  for (let i = 0; i < length; i++) e = Math.max(e, Math.abs(a[i] - b[i]));
  return e;
}

const wasmBytes = readFileSync(new URL('../../wasm/kernels.wasm', import.meta.url));
const backends: { label: string; be: Backend }[] = [
  { label: 'reference', be: createReferenceBackend() },
  { label: 'wasm x1', be: createWasmBackend({ wasm: wasmBytes, threads: 1 }) },
  // Forced parallel: every call is split across 3 threads, however small.
  { label: 'wasm x3 split', be: createWasmBackend({ wasm: wasmBytes, threads: 3, spawn: spawnNodeWorker, parallelMinWork: 1 }) },
  { label: 'wasm default', be: createWasmBackendNode(2) },
];
const native = loadNativeBackend(2);
if (native.backend) backends.push({ label: 'native', be: native.backend });
else console.log(`# native backend not tested: ${native.error}`);
after(() => backends.forEach(({ be }) => be.dispose()));

const GEMM_SHAPES: [number, number, number][] = [
  [1, 1, 1], [1, 37, 19], [2, 9, 5], [3, 5, 1], [5, 9, 7], [4, 8, 16], [67, 45, 33],
  [130, 70, 300], [6, 600, 20], [200, 17, 64], [9, 1030, 3],
];

for (const { label, be } of backends) {
  describe(`backend ${label}`, () => {
    test('matmul matches the reference (odd shapes, in and out of alloc)', () => {
      const rand = rng(1);
      for (const [m, n, k] of GEMM_SHAPES) {
        for (const inside of [true, false]) {
          const a = randomF32(m * k, rand);
          const b = randomF32(n * k, rand);
          const want = new Float32Array(m * n);
          referenceMatmul(want, a, b, m, n, k);
          const c = place(be, new Float32Array(m * n).fill(NaN), inside);
          be.matmul(c, place(be, a, inside), place(be, b, inside), m, n, k);
          const err = maxAbsDiff(c, want);
          assert.ok(err <= 4 * EPS32 * k, `${m}x${n}x${k} inside=${inside}: max error ${err}`);
        }
      }
    });

    test('gemv matches the reference', () => {
      const rand = rng(2);
      // k ≥ 2048 takes the four-rows-at-a-time kernel, shorter rows the one-row kernel.
      for (const [n, k] of [[1, 1], [7, 3], [33, 100], [1000, 77], [4, 1], [517, 256], [9, 2051], [16, 2048]]) {
        for (const inside of [true, false]) {
          const w = randomF32(n * k, rand);
          const x = randomF32(k, rand);
          const want = new Float32Array(n);
          referenceMatmul(want, x, w, 1, n, k);
          const y = place(be, new Float32Array(n).fill(NaN), inside);
          be.gemv(y, place(be, w, inside), place(be, x, inside), n, k);
          const err = maxAbsDiff(y, want);
          assert.ok(err <= 4 * EPS32 * k, `${n}x${k} inside=${inside}: max error ${err}`);
        }
      }
    });

    test('xtxAccumulate sums several calls in float64', () => {
      const rand = rng(3);
      for (const k of [1, 5, 13, 70]) {
        for (const inside of [true, false]) {
          const want = new Float64Array(k * k);
          const h = place(be, new Float64Array(k * k), inside);
          for (const rows of [1, 7, 600]) {
            const x = randomF32(rows * k, rand);
            referenceXtx(want, x, rows, k);
            be.xtxAccumulate(h, place(be, x, inside), rows, k);
          }
          const err = maxAbsDiff(h, want);
          assert.ok(err <= 1e-12 * 608, `k=${k} inside=${inside}: max error ${err}`);
        }
      }
    });

    test('xtxAccumulate32 sums each call in float32 into float64 h (when the backend has it)', (t) => {
      if (!be.xtxAccumulate32) return t.skip('no xtxAccumulate32');
      const rand = rng(5);
      for (const k of [1, 5, 13, 70, 130]) {
        for (const inside of [true, false]) {
          const want = new Float64Array(k * k);
          const bound = new Float64Array(k * k); // Σ over calls of rows·ε32·Σ|x_i·x_j|: float32 summation's error bound
          const h = place(be, new Float64Array(k * k), inside);
          for (const rows of [1, 7, 600, 3000]) {
            const x = randomF32(rows * k, rand);
            referenceXtx(want, x, rows, k);
            const abs = new Float64Array(k * k);
            referenceXtx(abs, x.map(Math.abs), rows, k);
            for (let i = 0; i < abs.length; i++) bound[i] += rows * EPS32 * abs[i];
            be.xtxAccumulate32(h, place(be, x, inside), rows, k);
          }
          for (let i = 0; i < k * k; i++) {
            const err = Math.abs(h[i] - want[i]);
            assert.ok(err <= bound[i], `k=${k} inside=${inside}: h[${i}] = ${h[i]}, float64 sum ${want[i]}, error ${err} > ${bound[i]}`);
          }
          // symmetric to the bit: both triangles get the same float32 sum
          for (let i = 0; i < k; i++) for (let j = 0; j < i; j++) assert.equal(h[i * k + j], h[j * k + i]);
          // and not the float64 kernel under another name: some entry shows float32 rounding
          if (k >= 13) assert.ok(maxAbsDiff(h, want) > 1e-9, `k=${k}: no float32 rounding visible`);
        }
      }
    });

    test('cholesky factors SPD matrices and triInverse inverts the factor', () => {
      const rand = rng(4);
      for (const n of [1, 5, 64, 65, 130, 200]) {
        const a = spd(n, rand);
        const want = a.slice();
        assert.equal(referenceCholesky(want, n), true);
        const l = place(be, a, n % 2 === 0);
        assert.equal(be.cholesky(l, n), true, `n=${n}`);
        assert.ok(maxAbsDiff(l, want) <= 1e-12 * n, `n=${n}: factor differs by ${maxAbsDiff(l, want)}`);
        for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) assert.equal(l[i * n + j], 0, 'upper triangle zero');

        const inv = place(be, l.slice(), n % 2 === 1);
        be.triInverse(inv, n);
        const wantInv = want.slice();
        referenceTriInverse(wantInv, n);
        assert.ok(maxAbsDiff(inv, wantInv) <= 1e-11 * n, `n=${n}: inverse differs by ${maxAbsDiff(inv, wantInv)}`);
        // L · L⁻¹ = I.
        let err = 0;
        for (let i = 0; i < n; i++) {
          for (let j = 0; j < n; j++) {
            let s = 0;
            for (let p = 0; p < n; p++) s += l[i * n + p] * inv[p * n + j];
            err = Math.max(err, Math.abs(s - (i === j ? 1 : 0)));
          }
        }
        assert.ok(err <= 1e3 * EPS64 * n, `n=${n}: |L·L⁻¹ - I| = ${err}`);
      }
    });

    test('cholesky returns false for matrices that are not positive definite', () => {
      const rand = rng(5);
      for (const [n, bad] of [[1, 0], [4, 2], [150, 149], [150, 70]]) {
        const a = spd(n, rand);
        a[bad * n + bad] = -5;
        assert.equal(be.cholesky(place(be, a, true), n), false, `n=${n}, negative pivot at ${bad}`);
      }
      const nan = spd(8, rand);
      nan[3 * 8 + 3] = NaN;
      assert.equal(be.cholesky(nan, 8), false, 'NaN on the diagonal');
    });

    test('alloc returns zeroed buffers, also after free', () => {
      for (let round = 0; round < 3; round++) {
        const x = be.alloc(1000);
        assert.equal(x.length, 1000);
        assert.ok(x.every((v) => v === 0));
        x.fill(7);
        be.free?.(x);
      }
    });

    test('shapes longer than the arrays are rejected', () => {
      if (be.name === 'reference') return; // plain loops read undefined; not a memory hazard
      assert.throws(() => be.matmul(be.alloc(4), be.alloc(4), be.alloc(4), 2, 2, 3), RangeError);
    });
  });
}

test('wasm memory grows without invalidating earlier buffers; freed blocks are reused', () => {
  const be = createWasmBackend({ wasm: wasmBytes, threads: 1 });
  try {
    const small = be.alloc(1000).fill(3);
    const big = be.alloc(3 << 20); // 12 MiB: more than the initial memory
    big[big.length - 1] = 5;
    assert.equal(small[999], 3, 'view from before the grow still reads the same memory');
    const y = be.alloc(2);
    be.matmul(y, small.subarray(0, 4), small.subarray(4, 8), 1, 1, 4); // in place, no copy
    assert.equal(y[0], 36);
    be.free(big);
    const again = be.alloc(3 << 20);
    assert.equal(again.byteOffset, big.byteOffset, 'first fit reuses the freed block');
    assert.equal(again[again.length - 1], 0, 'reused block is zeroed');
    assert.throws(() => be.free(new Float32Array(4)), /not allocated/);
  } finally {
    be.dispose();
  }
});

test('wasm pool: thousands of back-to-back split calls of changing shapes stay correct', () => {
  // Races between a late worker and the next dispatch would show up as wrong rows here.
  const be = createWasmBackend({ wasm: wasmBytes, threads: 3, spawn: spawnNodeWorker, parallelMinWork: 1 });
  try {
    const rand = rng(6);
    const w = be.alloc(64 * 40), x = be.alloc(40), y = be.alloc(64), want = new Float32Array(64);
    w.set(randomF32(w.length, rand));
    for (let it = 0; it < 3000; it++) {
      const n = 1 + (it % 64), k = 1 + ((it * 7) % 40);
      x.set(randomF32(k, rand));
      be.gemv(y, w, x, n, k);
      referenceMatmul(want, x, w, 1, n, k);
      const err = maxAbsDiff(y, want, n);
      if (err > 4 * EPS32 * k) assert.fail(`iteration ${it} (${n}x${k}): max error ${err}`);
    }
  } finally {
    be.dispose();
  }
});

test('wasm runRows dispatches any exported kernel over row ranges, with per-thread scratch', () => {
  const be = createWasmBackend({ wasm: wasmBytes, threads: 3, spawn: spawnNodeWorker, parallelMinWork: 1 });
  try {
    const rand = rng(7);
    const m = 37, n = 29, k = 50;
    const a = be.alloc(m * k), b = be.alloc(n * k), c = be.alloc(m * n), want = new Float32Array(m * n);
    a.set(randomF32(a.length, rand));
    b.set(randomF32(b.length, rand));
    referenceMatmul(want, a, b, m, n, k);
    const addr = (v: Float32Array) => be.address(v)!;
    be.runRows('sgemm', [addr(c), addr(a), addr(b), m, n, k, 0], m, { work: m * n * k, scratchBytes: 1 << 20 });
    assert.ok(maxAbsDiff(c, want) <= 4 * EPS32 * k, 'sgemm through runRows');
    const bytes = be.allocBytes(100);
    assert.ok(bytes.every((v) => v === 0));
    assert.equal(be.address(bytes), bytes.byteOffset);
    assert.equal(be.address(new Uint8Array(4)), undefined);
    be.free(bytes);
    assert.throws(() => be.runRows('no_such_kernel', [], 10, { work: 1e9 }), /no export/);
  } finally {
    be.dispose();
  }
});

test('an undisposed wasm backend does not keep the process alive', () => {
  const script = `
    import { createBackend } from ${JSON.stringify(new URL('../src/node/backend.js', import.meta.url).href)};
    const be = createBackend({ kind: 'wasm', threads: 2 });
    const n = 256, a = be.alloc(n * n).fill(1), c = be.alloc(n * n);
    be.matmul(c, a, a, n, n, n);
    console.log(c[0]);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 0, `exit status ${r.status}, signal ${r.signal}: ${r.stderr}`);
  assert.equal(r.stdout.trim(), '256');
});

test('BITCRUSH_BACKEND overrides the requested kind', () => {
  const saved = process.env.BITCRUSH_BACKEND;
  try {
    process.env.BITCRUSH_BACKEND = 'reference';
    assert.equal(createBackend({ kind: 'wasm' }).name, 'reference');
    process.env.BITCRUSH_BACKEND = 'bogus';
    assert.throws(() => createBackend(), /BITCRUSH_BACKEND/);
  } finally {
    if (saved === undefined) delete process.env.BITCRUSH_BACKEND;
    else process.env.BITCRUSH_BACKEND = saved;
  }
});

/** A symmetric positive definite matrix B·Bᵀ/n + I/2, float64 [n, n]. */
function spd(n: number, rand: () => number): Float64Array {
  const b = Float64Array.from({ length: n * n }, rand);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let p = 0; p < n; p++) s += b[i * n + p] * b[j * n + p];
      a[i * n + j] = a[j * n + i] = s / n + (i === j ? 0.5 : 0);
    }
  }
  return a;
}
