/**
 * Low-bit kernel benchmark (`npm run bench:lowbit`): decode matvec of dense fp32 (backend.gemv)
 * next to packed uniform 2/3/4-bit (uniform-asym, group 128) at the benchmark shapes, per
 * backend, then decode tokens/s of bench-llama fp32 vs packed RTN 2/3/4-bit files (made with
 * `bitcrush quantize --method rtn` into a temp dir) in the same run.
 *
 * "GB/s fp32-eq" is out·in·4 bytes / time: the bandwidth a dense fp32 gemv would need to match
 * the call, so the columns compare directly; "GB/s read" counts the bytes the packed kernel
 * actually reads (levels, scales, zeros). Timings are medians of batches after a warm-up, on
 * a machine shared with other jobs: noisy. Options: --threads N (default
 * os.availableParallelism()), --quick (fewer repeats), --tokens N (decode steps, default 200),
 * --no-decode (kernels only).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backend } from '../src/backend/types.js';
import { getFormat, packedBytes } from '../src/formats/registry.js';
import { UniformLinear } from '../src/formats/uniform-linear.js';
import type { UniformParams } from '../src/formats/uniform.js';
import { createWasmBackendNode } from '../src/node/backend.js';
import { loadNativeBackend } from '../src/node/native.js';
import { benchDecodeTokensPerSecond } from './decode.js';
import { medianSeconds } from './timing.js';

const args = process.argv.slice(2);
const arg = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const threads = arg('--threads', availableParallelism());
const quick = args.includes('--quick');
const tokens = arg('--tokens', 200);
const minBatchMs = quick ? 50 : 150;
const batches = quick ? 3 : 5;

const SHAPES: Array<[number, number]> = [[4096, 4096], [768, 256], [256, 768], [32000, 256]];
const BITS = [2, 3, 4];
const GROUP = 128;

const timeIt = (fn: () => void): number => medianSeconds(fn, { minBatchMs, batches });

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

interface Cell {
  seconds: number;
  bytesRead: number;
  kernel: string;
}

function denseCell(be: Backend, n: number, k: number): Cell {
  const rand = seeded(1);
  const w = be.alloc(n * k), x = be.alloc(k), y = be.alloc(n);
  for (let i = 0; i < w.length; i++) w[i] = rand() - 0.5;
  for (let i = 0; i < k; i++) x[i] = rand() - 0.5;
  const seconds = timeIt(() => be.gemv(y, w, x, n, k));
  for (const b of [w, x, y]) be.free?.(b);
  return { seconds, bytesRead: n * k * 4, kernel: 'gemv' };
}

function packedCell(be: Backend, n: number, k: number, bits: number): Cell {
  const format = getFormat('uniform-asym');
  const params: UniformParams = { bits, groupSize: GROUP, actOrder: false };
  const t = format.pack(format.randomPayload(n, k, params, seeded(bits)));
  const lin = format.makeLinear(t, be);
  const x = be.alloc(k), y = be.alloc(n);
  const rand = seeded(2);
  for (let i = 0; i < k; i++) x[i] = rand() - 0.5;
  const seconds = timeIt(() => lin.matvec(y, x));
  const kernel = lin instanceof UniformLinear ? lin.kernel : '?';
  lin.dispose?.();
  for (const b of [x, y]) be.free?.(b);
  return { seconds, bytesRead: packedBytes(format, n, k, params), kernel };
}

function kernelTable(label: string, be: Backend): void {
  console.log(`\n${label} (${be.threads} threads): decode matvec, uniform-asym g${GROUP}`);
  const head = ['shape', 'weights', 'kernel', 'µs/call', 'GB/s fp32-eq', 'GB/s read', 'vs fp32'];
  const widths = [11, 9, 10, 9, 13, 10, 8];
  const line = (cells: string[]) => console.log('  ' + cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' '));
  line(head);
  for (const [n, k] of SHAPES) {
    const dense = denseCell(be, n, k);
    const rows: Array<[string, Cell]> = [['fp32', dense], ...BITS.map((b): [string, Cell] => [`${b}-bit`, packedCell(be, n, k, b)])];
    for (const [name, c] of rows) {
      line([
        `${n}x${k}`,
        name,
        c.kernel,
        (c.seconds * 1e6).toFixed(1),
        ((n * k * 4) / c.seconds / 1e9).toFixed(1),
        (c.bytesRead / c.seconds / 1e9).toFixed(1),
        `${(dense.seconds / c.seconds).toFixed(2)}x`,
      ]);
    }
  }
}

const shared = (p: string) => fileURLToPath(new URL(`../../../shared/${p}`, import.meta.url));
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const MODEL = shared('models/bench-llama');

/** Packed RTN files of bench-llama (uniform-asym, group 128). */
function rtnFiles(dir: string): Array<{ label: string; path: string }> {
  return BITS.map((bits) => {
    const file = join(dir, `rtn-${bits}.bcq`);
    const r = spawnSync(process.execPath, [CLI, 'quantize', MODEL, '--method', 'rtn', '--bits', String(bits), '--group-size', String(GROUP), '--out', file], {
      encoding: 'utf8',
      maxBuffer: 1 << 26,
    });
    if (r.status !== 0) throw new Error(`bitcrush quantize --method rtn --bits ${bits} failed:\n${r.stderr}`);
    return { label: `RTN ${bits}-bit g${GROUP}`, path: file };
  });
}

const backends: Array<{ label: string; be: Backend }> = [{ label: 'wasm', be: createWasmBackendNode(threads) }];
// packed layers on native run the wasm row kernels it lends (as createBackend sets it up)
const native = loadNativeBackend(threads, () => createWasmBackendNode(threads));
if (native.backend) backends.push({ label: 'native', be: native.backend });
else console.log(`native backend not loaded: ${native.error}`);

console.log(`bitcrush bench:lowbit — ${threads} threads; shared machine, timings are noisy`);
for (const { label, be } of backends) kernelTable(label, be);

if (!args.includes('--no-decode')) {
  const dir = mkdtempSync(join(tmpdir(), 'bitcrush-bench-lowbit-'));
  try {
    const files = [{ label: 'fp32', path: MODEL }, ...rtnFiles(dir)];
    console.log(`\nbench-llama decode, greedy, ${tokens} tokens from BOS (tokens/s):`);
    console.log(`  ${'weights'.padEnd(16)} ${backends.map((b) => b.label.padStart(8)).join(' ')}`);
    for (const f of files) {
      const rates = backends.map(({ be }) => benchDecodeTokensPerSecond(be, tokens, f.path));
      console.log(`  ${f.label.padEnd(16)} ${rates.map((r) => r.toFixed(1).padStart(8)).join(' ')}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
for (const { be } of backends) be.dispose();
