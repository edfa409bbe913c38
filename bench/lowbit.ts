/**
 * Low-bit kernel benchmark (`npm run bench:lowbit`), one run, everything side by side:
 *  1. decode matvec per backend at [4096, 4096], [768, 256], [256, 768]: dense fp32
 *     (backend.gemv) next to uniform 2-bit g128, SliM mixed 2-bit g128 (a third of the groups
 *     at 1, 2 and 3 bits each), AQLM 2x8, 1x8 and 1x16 g8, each with its TypeScript kernel
 *     (the reference) and its WebAssembly SIMD kernel (what the wasm and native backends run);
 *  2. decode tokens/s of bench-llama fp32, GPTQ 2-bit g128, SliM 2-bit g128 and AQLM 2x8 files
 *     made by the CLI in a temp dir (quick settings: speed only, see decode-compare.ts), with
 *     the time per token of the linear layers alone and of the fp32 classifier.
 *
 * "GB/s fp32-eq" is out·in·4 bytes / time, the bandwidth a dense fp32 gemv would need to match
 * the call, so the column compares formats directly; "GB/s read" counts the bytes the packed
 * format holds (levels, maps, scales, zeros, codes, codebooks). Timings are medians of batches
 * after a warm-up, wall clock, on a machine shared with other jobs: noisy. --cpu times the
 * kernels on one thread by the process's CPU time instead (what a contended machine can still
 * measure: time the thread was not running does not count; cache sharing still does).
 * Options: --threads N (default os.availableParallelism()), --quick (fewer repeats),
 * --tokens N (decode steps, default 200), --no-decode (kernels only), --no-ts (skip the
 * TypeScript rows), --files DIR (make and keep the packed files there; reused when present).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createReferenceBackend } from '../src/backend/reference.js';
import type { Backend } from '../src/backend/types.js';
import { CodebookLinear } from '../src/formats/codebook-linear.js';
import { MixedLinear } from '../src/formats/mixed-linear.js';
import { getFormat, packedBytes } from '../src/formats/registry.js';
import type { PackedTensor } from '../src/formats/types.js';
import { UniformLinear } from '../src/formats/uniform-linear.js';
import type { Linear } from '../src/runtime/linear.js';
import { createWasmBackendNode } from '../src/node/backend.js';
import { loadNativeBackend } from '../src/node/native.js';
import { benchFiles, printDecodeTable } from './decode-compare.js';
import { medianSeconds } from './timing.js';

const args = process.argv.slice(2);
const arg = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const cpu = args.includes('--cpu');
const threads = cpu ? 1 : Number(arg('--threads') ?? availableParallelism());
const quick = args.includes('--quick');
const tokens = Number(arg('--tokens') ?? 200);
const withTs = !args.includes('--no-ts');
const timing = { minBatchMs: quick ? 50 : 150, batches: quick ? 3 : 5 };

/** Median seconds per call over batches: wall clock, or with --cpu this process's CPU time. */
function timeCall(fn: () => void): number {
  if (!cpu) return medianSeconds(fn, timing);
  fn();
  const times: number[] = [];
  for (let b = 0; b < timing.batches; b++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    let reps = 0;
    while (performance.now() - t0 < timing.minBatchMs) {
      fn();
      reps++;
    }
    const c = process.cpuUsage(c0);
    times.push((c.user + c.system) / 1e6 / reps);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
}

const SHAPES: Array<[number, number]> = [[4096, 4096], [768, 256], [256, 768]];
const GROUP = 128;

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** The packed weights of one row of the table. */
interface Variant {
  name: string;
  tensor: PackedTensor;
}

/** SliM-like 2-bit average: round(nG/3) groups at 1 and at 3 bits, the rest at 2, shuffled. */
function mixedParams(inDim: number) {
  const nG = Math.ceil(inDim / GROUP);
  const k = Math.round(nG / 3);
  const groups = [k, nG - 2 * k, k, 0];
  return { groupSize: GROUP, groups, lastBits: groups[1]! > 0 ? 2 : 3 };
}

function variants(n: number, k: number): Variant[] {
  const pack = (id: string, params: object, seed: number): PackedTensor => {
    const f = getFormat(id);
    return f.pack(f.randomPayload(n, k, params as never, seeded(seed)));
  };
  return [
    { name: 'uniform 2-bit', tensor: pack('uniform-asym', { bits: 2, groupSize: GROUP, actOrder: false }, 1) },
    { name: 'SliM mixed 2-bit', tensor: pack('mixed-asym', mixedParams(k), 2) },
    { name: 'AQLM 2x8 g8', tensor: pack('aqlm', { M: 2, B: 8, g: 8 }, 3) },
    { name: 'AQLM 1x8 g8', tensor: pack('aqlm', { M: 1, B: 8, g: 8 }, 4) },
    { name: 'AQLM 1x16 g8', tensor: pack('aqlm', { M: 1, B: 16, g: 8 }, 5) },
  ];
}

/** Which kernel a Linear runs, for the table. */
function kernelName(lin: Linear): string {
  if (lin instanceof CodebookLinear) return `${lin.engine === 'wasm' ? 'wasm' : 'ts'} ${lin.kernel}`;
  if (lin instanceof UniformLinear || lin instanceof MixedLinear) return lin.engine === 'wasm' ? 'wasm' : 'ts';
  return '?';
}

function timeLinear(lin: Linear, be: Backend): number {
  const x = be.alloc(lin.inDim), y = be.alloc(lin.outDim);
  const rand = seeded(9);
  for (let i = 0; i < lin.inDim; i++) x[i] = rand() - 0.5;
  const seconds = timeCall(() => lin.matvec(y, x));
  for (const b of [x, y]) be.free?.(b);
  return seconds;
}

function denseSeconds(be: Backend, n: number, k: number): number {
  const rand = seeded(1);
  const w = be.alloc(n * k), x = be.alloc(k), y = be.alloc(n);
  for (let i = 0; i < w.length; i++) w[i] = rand() - 0.5;
  for (let i = 0; i < k; i++) x[i] = rand() - 0.5;
  const seconds = timeCall(() => be.gemv(y, w, x, n, k));
  for (const b of [w, x, y]) be.free?.(b);
  return seconds;
}

const reference = createReferenceBackend();
const backends: Array<{ label: string; be: Backend }> = [{ label: 'wasm', be: createWasmBackendNode(threads) }];
// packed layers on native run the wasm row kernels it lends (as createBackend sets it up)
const native = loadNativeBackend(threads, () => createWasmBackendNode(threads));
if (native.backend) backends.push({ label: 'native', be: native.backend });
else console.log(`native backend not loaded: ${native.error}`);

console.log(`bitcrush bench:lowbit — ${threads} threads; ${cpu ? 'kernel times are CPU time of one thread' : 'shared machine, timings are noisy'}`);
console.log('decode matvec y = W·x; ts = the TypeScript kernel (one thread, any backend), wasm = the WebAssembly SIMD kernel');
const head = ['shape', 'backend', 'weights', 'kernel', 'bpw', 'µs/call', 'GB/s fp32-eq', 'GB/s read', 'vs fp32'];
const widths = [11, 7, 17, 11, 6, 10, 13, 10, 8];
const line = (cells: string[]) => console.log('  ' + cells.map((c, i) => (i < 4 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' '));
line(head);
for (const [n, k] of SHAPES) {
  const vs = variants(n, k);
  const fp32Bytes = n * k * 4;
  const gbs = (bytes: number, s: number) => (bytes / s / 1e9).toFixed(1);
  const dense = backends.map(({ be }) => denseSeconds(be, n, k));
  backends.forEach(({ label }, i) => line([`${n}x${k}`, label, 'fp32', 'gemv', '32', (dense[i]! * 1e6).toFixed(1), gbs(fp32Bytes, dense[i]!), gbs(fp32Bytes, dense[i]!), '1.00x']));
  for (const v of vs) {
    const f = getFormat(v.tensor.format);
    const bytes = packedBytes(f, n, k, v.tensor.params);
    const bpw = ((bytes * 8) / (n * k)).toFixed(2);
    // the TypeScript kernel once (it runs the same on every backend; "vs fp32" against the first)
    const runs: Array<{ label: string; be: Backend; dense: number }> = withTs ? [{ label: 'any', be: reference, dense: dense[0]! }] : [];
    backends.forEach(({ label, be }, i) => runs.push({ label, be, dense: dense[i]! }));
    for (const { label, be, dense: d } of runs) {
      const lin = f.makeLinear(v.tensor, be);
      const s = timeLinear(lin, be);
      line([`${n}x${k}`, label, v.name, kernelName(lin), bpw, (s * 1e6).toFixed(1), gbs(fp32Bytes, s), gbs(bytes, s), `${(d / s).toFixed(2)}x`]);
      lin.dispose?.();
    }
  }
}

if (!args.includes('--no-decode')) {
  const keep = arg('--files');
  const dir = keep ?? mkdtempSync(join(tmpdir(), 'bitcrush-bench-lowbit-'));
  try {
    console.log(`\npacked bench-llama files in ${dir} (quick quantize settings: speed, not quality, is measured)`);
    const files = benchFiles(dir, ['gptq2', 'slim2', 'aqlm2x8']);
    printDecodeTable(backends, files, tokens, timeCall);
  } finally {
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
}
for (const { be } of backends) be.dispose();
