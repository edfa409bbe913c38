/**
 * One registry-driven test over every registered packed format and each of its example
 * parameter sets: pack/unpack is bit-exact, dequantization equals the payload's weights, the
 * fast kernels agree with dequantize-then-multiply, and bits per weight is the true byte count.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createReferenceBackend } from '../src/backend/reference.js';
import { rowKernelsOf, type Backend } from '../src/backend/types.js';
import { createWasmBackend } from '../src/backend/wasm.js';
import { spawnNodeWorker, wasmKernelBytes, wasmKernelsKind } from '../src/node/backend.js';
import { loadNativeBackend } from '../src/node/native.js';
import { UniformLinear } from '../src/formats/uniform-linear.js';
import { CodebookLinear } from '../src/formats/codebook-linear.js';
import { MixedLinear } from '../src/formats/mixed-linear.js';
import { BinaryLinear } from '../src/formats/binary-linear.js';
import type { MixedParams } from '../src/formats/mixed.js';
import type { CodebookParams, CodebookQuantized } from '../src/formats/codebook.js';
import { assertInt8Tables, int8TableReference } from './codebook-int8-ref.js';
import type { BinaryParams, BinaryQuantized } from '../src/formats/binary.js';
import { laneKernelFits } from '../src/formats/uniform-wasm.js';
import { int8WasmFits } from '../src/formats/uniform-wasm-int8.js';
import { gridInt8Fits } from '../src/formats/mixed-wasm-int8.js';
import { lowbitKernelsOf, nativeBinaryFits, nativeCodebookFits, nativeMixedFits, nativeUniformFits } from '../src/formats/lowbit-kernels.js';
import { int8Activations } from '../src/formats/int8-activations.js';
import type { UniformParams } from '../src/formats/uniform.js';
import type { PackedTensor, WeightFormat } from '../src/formats/types.js';
import { f16BitsToNumber, numberToF16Bits } from '../src/io/safetensors.js';
import { roundToF16, type GroupQuantized } from '../src/formats/quantized.js';
import { bitsPerWeight, formatIds, getFormat, packGroups } from '../src/formats/registry.js';
import { blobBytes } from '../src/formats/types.js';
import { mulberry32 as rng } from '../src/quant/random.js';

const backend = createReferenceBackend();
// the module this process runs: relaxed SIMD under node --experimental-wasm-relaxed-simd (or
// BITCRUSH_WASM_KERNELS=relaxed, which fails without it), else SIMD128 (test/wasm-relaxed.test.ts runs both)
const wasmKind = wasmKernelsKind();
const wasmBytes = wasmKernelBytes(wasmKind);
const splitWasm = () => createWasmBackend({ wasm: wasmBytes, threads: 3, spawn: spawnNodeWorker, parallelMinWork: 1 });
/**
 * Every format's fast kernels run on each backend: the reference one (TypeScript kernels), wasm
 * on the calling thread, wasm with 3 threads splitting even the smallest call (row ranges), and
 * native (OpenBLAS, lending a wasm pool's row kernels) where the addon is built.
 */
const fastBackends: Array<{ label: string; be: Backend }> = [
  { label: 'reference', be: backend },
  { label: `wasm ${wasmKind} x1`, be: createWasmBackend({ wasm: wasmBytes, threads: 1 }) },
  { label: 'wasm x3 split', be: splitWasm() },
];
const native = loadNativeBackend(2, splitWasm).backend;
if (native) fastBackends.push({ label: 'native', be: native });
/** The native low-bit kernels' instruction sets this CPU has; each is checked on every tensor it serves. */
const nativeIsas = native ? ['scalar', 'avx2', 'vnni', 'neon-dotprod'].filter((isa) => native.setIsa(isa)) : [];
native?.setIsa('auto');

const wasmPathsReached = new Set<string>();

/** Whether the wasm kernels of this tensor take int8 activations (uniform-wasm-int8.ts, mixed-wasm-int8.ts). */
function wasmInt8(lin: UniformLinear | MixedLinear, inDim: number, params: UniformParams | MixedParams): boolean {
  if (lin.engine !== 'wasm') return false;
  if (lin instanceof MixedLinear) return gridInt8Fits(inDim, params.groupSize);
  const p = params as UniformParams;
  return int8WasmFits(inDim, p) || (p.bits === 3 && gridInt8Fits(inDim, p.groupSize));
}

/** matvec, matmul (several rows, one row) of the format's Linear on `be` against W·x. */
function checkKernels(format: WeightFormat, t: PackedTensor, w: Float32Array, rand: () => number, be: Backend, label: string, rows = 3): void {
  const { outDim, inDim } = t;
  const lin = format.makeLinear(t, be);
  assert.equal(lin.outDim, outDim);
  assert.equal(lin.inDim, inDim);
  if (lin instanceof UniformLinear && lowbitKernelsOf(be) && nativeUniformFits(inDim, (t.params as UniformParams).groupSize)) {
    assert.equal(lin.engine, 'native', `${label}: the native low-bit kernels serve this tensor`);
  } else if (lin instanceof UniformLinear && rowKernelsOf(be) && (int8WasmFits(inDim, t.params as UniformParams) || laneKernelFits(inDim, t.params as UniformParams))) {
    assert.equal(lin.engine, 'wasm', `${label}: the wasm row kernels serve this tensor`);
  }
  // the wasm kernels of the mixed, binary and codebook formats serve every tensor on row-kernel backends;
  // record which of their paths the examples reach (checked by the last test below)
  if (lin instanceof MixedLinear && lowbitKernelsOf(be)?.mixedSimd && nativeMixedFits(inDim, (t.params as MixedParams).groupSize)) {
    assert.equal(lin.engine, 'native', `${label}: the native low-bit kernels serve this tensor`);
  } else if (lin instanceof MixedLinear && rowKernelsOf(be)) {
    assert.equal(lin.engine, 'wasm', `${label}: the wasm row kernels serve this tensor`);
    const p = t.params as MixedParams;
    const kind = gridInt8Fits(inDim, p.groupSize) ? 'int8' : 'float';
    p.groups.forEach((n, b) => n > 0 && wasmPathsReached.add(`mixed ${kind} ${b + 1}-bit g${p.groupSize}`));
  }
  if (lin instanceof BinaryLinear && lowbitKernelsOf(be)?.binarySimd && nativeBinaryFits((t.params as BinaryParams).blockSize)) {
    assert.equal(lin.engine, 'native', `${label}: the native binary kernels serve this tensor`);
  } else if (lin instanceof BinaryLinear && rowKernelsOf(be)) {
    assert.equal(lin.engine, 'wasm', `${label}: the wasm row kernels serve this tensor`);
  }
  const cp = t.params as CodebookParams;
  if (lin instanceof CodebookLinear && lowbitKernelsOf(be) && nativeCodebookFits(inDim, cp.M, cp.B, cp.g)) {
    assert.equal(lin.engine, 'native', `${label}: the native codebook kernels serve this tensor`);
  } else if (lin instanceof CodebookLinear && rowKernelsOf(be)) {
    assert.equal(lin.engine, 'wasm', `${label}: the wasm row kernels serve this tensor`);
    wasmPathsReached.add(`aqlm ${lin.kernel}`);
  }
  const x = Float32Array.from({ length: rows * inDim }, () => rand() * 2 - 1);
  const y1 = new Float32Array(outDim);
  const int8Wasm = (lin instanceof UniformLinear || lin instanceof MixedLinear) && wasmInt8(lin, inDim, t.params as UniformParams | MixedParams);
  if (int8Wasm && lin instanceof UniformLinear) wasmPathsReached.add(`uniform int8 ${(t.params as UniformParams).bits}-bit`);
  if (int8Wasm && be.name === 'wasm') assert.equal((be as Backend & { kernels?: string }).kernels, wasmKind, `${label}: the ${wasmKind} module runs`);
  if (((lin instanceof UniformLinear || lin instanceof MixedLinear || lin instanceof BinaryLinear) && lin.engine === 'native') || int8Wasm) {
    // int8 activations: the kernels compute W·x̂ (int8-activations.ts), on every instruction set;
    // the binary kernels keep float x on the salient columns
    const salient = lin instanceof BinaryLinear ? (format.unpack(t) as BinaryQuantized).salient : null;
    /** What the kernels multiply W by: x̂, and x itself on the binary format's salient columns. */
    const kernelX = (xr: Float32Array): Float32Array => {
      const xh = int8Activations(xr, inDim, salient ? null : (format.unpack(t) as GroupQuantized).perm ?? null);
      if (salient) for (let j = 0; j < inDim; j++) if (salient[j]) xh[j] = xr[j]!;
      return xh;
    };
    const xhat = kernelX(x.subarray(0, inDim));
    for (const isa of lin.engine === 'native' ? nativeIsas : [`wasm ${wasmKind}`]) {
      if (lin.engine === 'native') native!.setIsa(isa);
      y1.fill(NaN);
      lin.matvec(y1, x.subarray(0, inDim));
      assertProduct(y1, w, xhat, 1, outDim, inDim, `${label} ${isa} matvec (int8 activations)`);
    }
    native?.setIsa('auto');
    lin.matmul(y1, x.subarray(0, inDim), 1);
    assertProduct(y1, w, xhat, 1, outDim, inDim, `${label} matmul, one row (int8 activations)`);
    const k = lowbitKernelsOf(be);
    const gemm = lin.engine === 'native' && k!.int8Prefill;
    // the binary GEMM runs on AVX-512 VNNI only; with the other instruction sets binary prefill dequantizes tiles
    const gemmOn = (isa: string) => !(lin instanceof BinaryLinear) || (native!.setIsa(isa) && k!.binaryGemmSimd);
    // prefill: the native kernels run the int8 GEMM (each row quantized as the matvec does: W·x̂
    // row by row, on every instruction set, with a part-filled 16-row tile and two tiles; the
    // binary GEMM's whole and zero-padded 8-row activation passes); int8Prefill off dequantizes
    // tiles for sgemm (W·x exactly)
    for (const n of gemm ? [8, 37] : [8]) {
      const y = new Float32Array(n * outDim);
      const xn = Float32Array.from({ length: n * inDim }, () => rand() * 2 - 1);
      if (gemm) {
        const xhatN = new Float32Array(n * inDim);
        for (let i = 0; i < n; i++) xhatN.set(kernelX(xn.subarray(i * inDim, (i + 1) * inDim)), i * inDim);
        for (const isa of nativeIsas) {
          const on = gemmOn(isa);
          native!.setIsa(isa);
          y.fill(NaN);
          lin.matmul(y, xn, n);
          if (on) assertProduct(y, w, xhatN, n, outDim, inDim, `${label} ${isa} matmul, ${n} rows (int8 GEMM)`);
          else assertProduct(y, w, xn, n, outDim, inDim, `${label} ${isa} matmul, ${n} rows (dequantized tiles)`);
        }
        native!.setIsa('auto');
        k!.int8Prefill = false;
      }
      y.fill(NaN);
      lin.matmul(y, xn, n);
      if (gemm) k!.int8Prefill = true;
      assertProduct(y, w, xn, n, outDim, inDim, `${label} matmul, ${n} rows (dequantized tiles)`);
    }
    if (int8Wasm) {
      // activations and outputs in backend memory: no staging copies
      const xb = be.alloc(inDim);
      xb.set(x.subarray(0, inDim));
      const yb = be.alloc(outDim);
      lin.matvec(yb, xb);
      assertProduct(yb, w, xhat, 1, outDim, inDim, `${label} matvec in backend memory (int8 activations)`);
      be.free?.(xb);
      be.free?.(yb);
    }
    lin.dispose?.();
    return;
  }
  if (lin instanceof CodebookLinear && lin.engine === 'native' && cp.B === 8) {
    checkCodebookInt8(format, t, w, rand, lin, be, label);
    return;
  }
  if (lin instanceof CodebookLinear && lin.engine === 'native') {
    // B < 8: float32 table, scalar lookups over the file's bitstream; W·x
    const y8 = new Float32Array(8 * outDim);
    const x8 = Float32Array.from({ length: 8 * inDim }, () => rand() * 2 - 1);
    lin.matmul(y8, x8, 8);
    assertProduct(y8, w, x8, 8, outDim, inDim, `${label} matmul, 8 rows`);
  }
  lin.matvec(y1, x.subarray(0, inDim));
  assertProduct(y1, w, x, 1, outDim, inDim, `${label} matvec`);
  const y = new Float32Array(rows * outDim);
  lin.matmul(y, x, rows);
  assertProduct(y, w, x, rows, outDim, inDim, `${label} matmul`);
  const yOne = new Float32Array(outDim);
  lin.matmul(yOne, x.subarray(0, inDim), 1);
  assertProduct(yOne, w, x, 1, outDim, inDim, `${label} matmul, one row`);
  // activations and outputs in backend memory (the runtime's case): no staging copies
  const xb = be.alloc(rows * inDim);
  xb.set(x);
  const yb = be.alloc(rows * outDim);
  lin.matmul(yb, xb, rows);
  assertProduct(yb, w, x, rows, outDim, inDim, `${label} matmul in backend memory`);
  lin.matvec(yb.subarray(0, outDim), xb.subarray(0, inDim));
  assertProduct(yb, w, x, 1, outDim, inDim, `${label} matvec in backend memory`);
  lin.dispose?.();
  be.free?.(xb);
  be.free?.(yb);
}

/**
 * The native 8-bit-code AQLM kernels (int8 lookup tables) on every instruction set and kernel
 * (scalar, AVX2 vpshufb, AVX-512 VBMI) against codebook-int8.ts: matvec, matmul of 1, 3 (one
 * matvec-sized call), 8 and 37 rows (three activation blocks of the GEMM; on kernels below VBMI
 * the dequantized tiles), and with `int8Prefill` off the dequantized tiles (W·x exactly).
 */
function checkCodebookInt8(format: WeightFormat, t: PackedTensor, w: Float32Array, rand: () => number, lin: CodebookLinear, be: Backend, label: string): void {
  const { outDim, inDim } = t;
  const q = format.unpack(t) as CodebookQuantized;
  const k = lowbitKernelsOf(be)!;
  for (const n of [1, 3, 8, 37]) {
    const x = Float32Array.from({ length: n * inDim }, () => rand() * 2 - 1);
    const refs = Array.from({ length: n }, (_, i) => int8TableReference(q, x.subarray(i * inDim, (i + 1) * inDim)));
    const y = new Float32Array(n * outDim);
    for (const isa of nativeIsas) {
      native!.setIsa(isa);
      for (const kernel of [0, 1, 2]) {
        native!.setCodebookKernel(kernel);
        y.fill(NaN);
        if (n === 1) lin.matvec(y, x);
        else lin.matmul(y, x, n);
        const what = `${label} ${isa} kernel ${kernel} ${n === 1 ? 'matvec' : `matmul, ${n} rows`}`;
        // more rows than a few: the int8-table GEMM on VBMI / NEON only, else the exact tiles
        if (n > 4 && k.codebookKernel < 2) assertProduct(y, w, x, n, outDim, inDim, `${what} (dequantized tiles)`);
        else assertInt8Tables(y, refs, w, x, outDim, inDim, what);
      }
    }
    native!.setIsa('auto');
    native!.setCodebookKernel(-1);
    if (n === 8) {
      k.int8Prefill = false;
      y.fill(NaN);
      lin.matmul(y, x, n);
      k.int8Prefill = true;
      assertProduct(y, w, x, n, outDim, inDim, `${label} matmul, ${n} rows (dequantized tiles)`);
    }
  }
  lin.dispose?.();
}

/** Checks y [rows, out] against W·x row by row, tolerance relative to Σ|w||x|. */
function assertProduct(y: Float32Array, w: Float32Array, x: Float32Array, rows: number, out: number, inDim: number, what: string): void {
  for (let i = 0; i < rows; i++) {
    for (let r = 0; r < out; r++) {
      let ref = 0;
      let mag = 0;
      for (let c = 0; c < inDim; c++) {
        ref += w[r * inDim + c]! * x[i * inDim + c]!;
        mag += Math.abs(w[r * inDim + c]! * x[i * inDim + c]!);
      }
      const err = Math.abs(y[i * out + r]! - ref);
      assert.ok(err <= 1e-5 * mag + 1e-30, `${what}: row ${i}, output ${r}: ${y[i * out + r]} vs ${ref} (|w||x| = ${mag})`);
    }
  }
}

describe('packed weight formats (registry-driven)', () => {
  for (const id of formatIds()) {
    const format = getFormat(id);
    for (const [n, ex] of format.examples().entries()) {
      const { outDim, inDim, params } = ex;
      it(`${id} ${JSON.stringify(params)} [${outDim}, ${inDim}]`, () => {
        const rand = rng(1000 + n);
        const payload = format.randomPayload(outDim, inDim, params, rand);
        const t = format.pack(payload);
        assert.equal(t.format, id);

        // header params survive JSON and parse to the same values
        assert.deepEqual(format.parseParams(JSON.parse(JSON.stringify(t.params)), outDim, inDim), params);

        // blobs have exactly the sizes the header implies, and bpw counts every byte
        const specs = format.blobs(outDim, inDim, params);
        assert.deepEqual(Object.keys(t.blobs).sort(), Object.keys(specs).sort());
        let bytes = 0;
        for (const [name, spec] of Object.entries(specs)) {
          const b = t.blobs[name]!;
          assert.equal(b.dtype, spec.dtype, name);
          assert.deepEqual(b.shape, spec.shape, name);
          assert.equal(b.bytes.byteLength, blobBytes(spec), name);
          bytes += b.bytes.byteLength;
        }
        assert.equal(bitsPerWeight(format, outDim, inDim, params), (bytes * 8) / (outDim * inDim));

        // bit-exact round trip and reference dequantization
        assert.equal(format.validate(t), null);
        assert.deepStrictEqual(format.unpack(t), payload);
        const w = format.dequantize(t);
        assert.deepStrictEqual(w, format.payloadWeights(payload));

        // fast kernels vs dequantize-then-multiply, on every backend
        for (const { label, be } of fastBackends) checkKernels(format, t, w, rand, be, label);
      });
    }
  }
  it(`the wasm backends run the ${wasmKind} kernel module`, () => {
    for (const { label, be } of fastBackends.slice(1, 3)) assert.equal((be as Backend & { kernels?: string }).kernels, wasmKind, label);
  });
  it('the examples reach every wasm path of the mixed and codebook kernels', () => {
    const want = ['aqlm lut', 'aqlm direct', 'uniform int8 2-bit', 'uniform int8 3-bit', 'uniform int8 4-bit', 'uniform int8 8-bit'];
    for (let b = 1; b <= 4; b++) want.push(`mixed float ${b}-bit g32`, `mixed int8 ${b}-bit g128`);
    for (const path of want) assert.ok(wasmPathsReached.has(path), `no example reaches ${path}`);
  });
});

describe('uniform wasm kernels: whole blocks, group boundaries inside blocks, TypeScript fallback', () => {
  // [out, in, groupSize]: multi-block rows (two-block steps of the 4-bit loop), groups of 16
  // inside 64-column blocks, a per-channel row with a column tail, and group sizes the lane
  // kernels do not take (24: the TypeScript kernels serve them on wasm too).
  const shapes: Array<[number, number, number]> = [[37, 512, 128], [19, 320, 64], [11, 272, 16], [13, 200, 200], [9, 120, 24]];
  for (const id of ['uniform-asym', 'uniform-sym']) {
    const format = getFormat(id);
    for (const bits of [2, 3, 4, 8]) {
      for (const [outDim, inDim, groupSize] of shapes) {
        const params: UniformParams = { bits, groupSize, actOrder: inDim % 2 === 0 };
        it(`${id} ${bits}-bit [${outDim}, ${inDim}] g${groupSize}`, () => {
          const rand = rng(bits * 1000 + inDim);
          const t = format.pack(format.randomPayload(outDim, inDim, params, rand));
          const w = format.dequantize(t);
          for (const { label, be } of fastBackends.slice(1)) checkKernels(format, t, w, rand, be, label, 5);
        });
      }
    }
  }
});

describe('format choice for grid payloads', () => {
  const uniform = getFormat('uniform-asym');
  const base = uniform.randomPayload(4, 40, { bits: 3, groupSize: 16, actOrder: false }, rng(7)) as GroupQuantized;

  it('picks the symmetric format when every zero is the grid midpoint, else the asymmetric one', () => {
    assert.equal(packGroups(base).format, 'uniform-asym');
    const sym = { ...base, zero: new Float32Array(base.zero.length).fill(4) };
    assert.equal(packGroups(sym).format, 'uniform-sym');
  });

  it('paramsFor gives the params and byte count pack writes (the choice packs only the winner)', () => {
    let checked = 0;
    for (const id of formatIds()) {
      const f = getFormat(id);
      if (!f.paramsFor) continue;
      for (const { outDim, inDim, params } of f.examples()) {
        const g = f.randomPayload(outDim, inDim, params, rng(outDim * 31 + inDim));
        if (!f.accepts!(g)) continue;
        const t = f.pack(g);
        assert.deepEqual(f.paramsFor(g), t.params, `${id} [${outDim}, ${inDim}]`);
        const bytes = Object.values(t.blobs).reduce((s, b) => s + b.bytes.byteLength, 0);
        assert.equal(bitsPerWeight(f, outDim, inDim, f.paramsFor(g)), (bytes * 8) / (outDim * inDim), `${id} [${outDim}, ${inDim}] bytes`);
        checked++;
      }
    }
    assert.ok(checked >= 4, `${checked} payloads checked`);
    // a uniform-width payload that the mixed format also accepts goes to the smaller uniform file
    assert.equal(getFormat('mixed-asym').accepts!(base), true);
    assert.equal(packGroups(base).format, 'uniform-asym');
  });

  it('refuses what no format stores exactly', () => {
    const mixed = { ...base, bits: Uint8Array.from([3, 2, 3]) };
    assert.throws(() => packGroups(mixed), /bit-widths differ/);
    const badZero = { ...base, zero: base.zero.map((z, i) => (i === 5 ? z + 0.5 : z)) };
    assert.throws(() => packGroups(badZero), /zero\[5\]/);
    const badScale = { ...base, scale: base.scale.map((s, i) => (i === 2 ? s + 1e-7 : s)) };
    assert.throws(() => packGroups(badScale), /float16/);
    const badLevel = { ...base, q: base.q.map((v, i) => (i === 9 ? 8 : v)) };
    assert.throws(() => packGroups(badLevel), /level exceeds 7/);
    const badPerm = { ...base, perm: new Int32Array(40) };
    assert.throws(() => packGroups(badPerm), /permutation/);
  });

  it('rejects bad header params with a reason', () => {
    assert.match(String(uniform.parseParams({ bits: 5, groupSize: 8, actOrder: false }, 4, 40)), /bits 5/);
    assert.match(String(uniform.parseParams({ bits: 4, groupSize: 41, actOrder: false }, 4, 40)), /groupSize 41/);
    assert.match(String(uniform.parseParams({ bits: 4, groupSize: 8, actOrder: 1 }, 4, 40)), /actOrder/);
    assert.match(String(uniform.parseParams({ bits: 4, groupSize: 8, actOrder: false, x: 1 }, 4, 40)), /unknown params x/);
    assert.match(String(uniform.parseParams([], 4, 40)), /not an object/);
  });
});

describe('roundToF16', () => {
  it('the bit-level float16 conversion is right on known values', () => {
    const cases: Array<[number, number]> = [
      [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65520, 0x7c00], [2 ** -24, 0x0001], [2 ** -14, 0x0400],
      [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [2 ** -25, 0x0000], [3 * 2 ** -26, 0x0001], [0.1, 0x2e66],
    ];
    for (const [x, bits] of cases) assert.equal(numberToF16Bits(x), bits, `${x}`);
  });

  it('agrees with the bit-level conversion on float32 values of every magnitude', () => {
    const rand = rng(42);
    const f32 = new Float32Array(1);
    const xs: number[] = [0, -0, 65504, 65519, 65520, -65536, 2 ** -24, 2 ** -25, 2 ** -26, 1e-9, Infinity, -Infinity];
    for (let e = -30; e <= 17; e++) {
      for (let k = 0; k < 400; k++) {
        f32[0] = (rand() < 0.5 ? -1 : 1) * 2 ** e * (1 + rand());
        xs.push(f32[0]!);
        // exact ties between two float16 neighbours
        const ulp = e < -14 ? 2 ** -24 : 2 ** (e - 10);
        f32[0] = (Math.floor(rand() * 1024) + 0.5) * ulp + (e < -14 ? 0 : 2 ** e);
        xs.push(f32[0]!);
      }
    }
    for (const x of xs) {
      const got = roundToF16(x);
      const want = f16BitsToNumber(numberToF16Bits(x));
      assert.ok(Object.is(got, want), `roundToF16(${x}) = ${got}, float16 conversion gives ${want}`);
    }
  });
});
