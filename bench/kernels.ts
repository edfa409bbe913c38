/**
 * Kernel benchmark (`npm run bench:kernels`): GFLOP/s of matmul, GB/s of gemv next to a
 * memory-bandwidth baseline measured in the same run, and the float64 kernels used by
 * quantization, for every available backend side by side.
 *
 * Timings are the median of several batches after a warm-up; on a shared machine they are
 * noisy. Options: --threads N (default os.availableParallelism()), --quick (fewer repeats, no
 * one-thread wasm column).
 */
import { availableParallelism } from 'node:os';
import type { Backend } from '../src/backend/types.js';
import { createWasmBackendNode } from '../src/node/backend.js';
import { loadNativeBackend } from '../src/node/native.js';
import type { WasmBackend } from '../src/backend/wasm.js';
import { benchDecodeTokensPerSecond } from './decode.js';
import { medianSeconds } from './timing.js';

interface Row {
  label: string;
  unit: string;
  values: Map<string, number | undefined>;
}

const args = process.argv.slice(2);
const threadsArg = args.indexOf('--threads');
const threads = threadsArg >= 0 ? Number(args[threadsArg + 1]) : availableParallelism();
const quick = args.includes('--quick');
const minBatchMs = quick ? 50 : 200;
const batches = quick ? 3 : 5;

const timeIt = (fn: () => void): number => medianSeconds(fn, { minBatchMs, batches });

function fill(x: Float32Array | Float64Array, seed: number): void {
  let s = seed;
  for (let i = 0; i < x.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    x[i] = s / 2 ** 32 - 0.5;
  }
}

function gemmGflops(be: Backend, m: number, n: number, k: number): number {
  const a = be.alloc(m * k), b = be.alloc(n * k), c = be.alloc(m * n);
  fill(a, 1);
  fill(b, 2);
  const s = timeIt(() => be.matmul(c, a, b, m, n, k));
  [a, b, c].forEach((x) => be.free?.(x));
  return (2 * m * n * k) / s / 1e9;
}

/** Weight bytes streamed per second (the vectors are negligible). */
function gemvGBps(be: Backend, n: number, k: number): number {
  const w = be.alloc(n * k), x = be.alloc(k), y = be.alloc(n);
  fill(w, 3);
  fill(x, 4);
  const s = timeIt(() => be.gemv(y, w, x, n, k));
  [w, x, y].forEach((v) => be.free?.(v));
  return (n * k * 4) / s / 1e9;
}

function xtxGflops(be: Backend, rows: number, k: number): number {
  const x = be.alloc(rows * k);
  const h = be.alloc64?.(k * k) ?? new Float64Array(k * k);
  fill(x, 5);
  const s = timeIt(() => be.xtxAccumulate(h, x, rows, k));
  return (rows * k * k) / s / 1e9; // symmetric: k²/2 pairs, 2 flops each
}

/** Milliseconds for Cholesky followed by the triangular inverse of its factor. */
function cholInvMs(be: Backend, n: number): number {
  const b = new Float64Array(n * n);
  fill(b, 6);
  const spd = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) spd[i * n + j] = (b[i * n + j] + b[j * n + i]) / n + (i === j ? 1 : 0);
  const a = be.alloc64?.(n * n) ?? new Float64Array(n * n);
  const s = timeIt(() => {
    a.set(spd);
    if (!be.cholesky(a, n)) throw new Error('benchmark matrix not SPD');
    be.triInverse(a, n);
  });
  return s * 1000;
}

/** Baselines: a threaded pure-read sum over 256 MiB (wasm) and a single-thread memcpy. */
function bandwidth(wasm: WasmBackend): { read: number; copy: number } {
  const n = 64 << 20;
  const x = wasm.alloc(n);
  fill(x, 7);
  const read = (n * 4) / timeIt(() => wasm.streamSum(x, 1024)) / 1e9;
  wasm.free(x);
  const src = new Float32Array(n / 4), dst = new Float32Array(n / 4);
  fill(src, 8);
  const copy = (2 * src.byteLength) / timeIt(() => dst.set(src)) / 1e9; // read + write bytes
  return { read, copy };
}

// ---- RUNTIME HOOK -------------------------------------------------------------------------
// fp32 decode tokens/s of the benchmark model (../shared/models/bench-llama) on `be`.
// To be filled in by the runtime engineer (src/runtime/): load the model with this backend,
// decode a fixed number of tokens greedily and return tokens per second. Until then the row
// prints "n/a"; no number is made up.
async function decodeTokensPerSecond(be: Backend): Promise<number | undefined> {
  return benchDecodeTokensPerSecond(be);
}
// -------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const backends: Backend[] = [];
  const native = loadNativeBackend(threads);
  if (native.backend) backends.push(native.backend);
  else console.log(`native: unavailable (${native.error})`);
  const wasm = createWasmBackendNode(threads);
  backends.push(wasm);
  // A one-thread wasm column shows how much the pool's splitting buys on this machine.
  if (threads > 1 && !quick) backends.push(createWasmBackendNode(1));
  const columnOf = (be: Backend) => (be.name === 'wasm' && be.threads === 1 && threads > 1 ? 'wasm x1' : be.name);

  const rows: Row[] = [];
  const add = (label: string, unit: string, f: (be: Backend) => number | undefined) => {
    const values = new Map<string, number | undefined>();
    for (const be of backends) values.set(columnOf(be), f(be));
    rows.push({ label, unit, values });
  };
  add('threads', '', (be) => be.threads);
  add('matmul 256x256x256', 'GFLOP/s', (be) => gemmGflops(be, 256, 256, 256));
  add('matmul 1024x1024x1024', 'GFLOP/s', (be) => gemmGflops(be, 1024, 1024, 1024));
  add('matmul 4096x768x256', 'GFLOP/s', (be) => gemmGflops(be, 4096, 768, 256));
  add('gemv 4096x4096', 'GB/s', (be) => gemvGBps(be, 4096, 4096));
  add('gemv 32000x256 (classifier)', 'GB/s', (be) => gemvGBps(be, 32000, 256));
  add('gemv 768x256 (cache-resident)', 'GB/s', (be) => gemvGBps(be, 768, 256));
  add('xtx 2048 rows, k=768', 'GFLOP/s', (be) => xtxGflops(be, 2048, 768));
  add('cholesky+triInverse n=768', 'ms', (be) => cholInvMs(be, 768));
  const decode = new Map<string, number | undefined>();
  for (const be of backends) decode.set(columnOf(be), await decodeTokensPerSecond(be));
  rows.push({ label: 'fp32 decode bench-llama', unit: 'tok/s', values: decode });
  const bw = bandwidth(wasm);

  const names = backends.map(columnOf);
  const fmt = (v: number | undefined) => (v === undefined ? 'n/a' : v >= 100 ? v.toFixed(0) : v.toFixed(2));
  console.log(['kernel'.padEnd(32), ...names.map((n) => n.padStart(10)), '  unit'].join(''));
  for (const r of rows) {
    console.log([r.label.padEnd(32), ...names.map((n) => fmt(r.values.get(n)).padStart(10)), `  ${r.unit}`].join(''));
  }
  console.log(`memory bandwidth baseline: ${bw.read.toFixed(2)} GB/s read (wasm sum, ${wasm.threads} threads), ` +
    `${bw.copy.toFixed(2)} GB/s memcpy (1 thread, read+write bytes)`);
  backends.forEach((b) => b.dispose());
}

await main();
