/**
 * AQLM output groups (og rows per codeword) on each engine, side by side in one run
 * (`node dist/bench/codebook-og.js [--shape 2048x2048] [--schemes 2x8g8,1x8g8] [--og 1,2,4]`):
 * matvec and a 16-row matmul of one random [out, in] tensor per scheme and og, on the
 * TypeScript kernels (the reference backend: what og > 1 would fall back to without the split
 * path), and on the wasm and native og = 1 kernels run once per member row (codebook-split.ts),
 * all on one thread. Process CPU milliseconds per call (best of 3 batches of ≥ 150 ms of CPU), so
 * that other processes on a shared machine count less than in wall time; the load average is
 * printed too.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { createReferenceBackend } from '../src/backend/reference.js';
import type { Backend } from '../src/backend/types.js';
import { createWasmBackend } from '../src/backend/wasm.js';
import { codebookFormat } from '../src/formats/codebook.js';
import type { CodebookLinear } from '../src/formats/codebook-linear.js';
import { loadNativeBackend } from '../src/node/native.js';
import { mulberry32 } from '../src/quant/random.js';

const args = process.argv.slice(2);
const opt = (name: string, d: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1]! : d;
};
const [outDim, inDim] = opt('--shape', '2048x2048').split('x').map(Number) as [number, number];
const schemes = opt('--schemes', '2x8g8,1x8g8').split(',');
const ogs = opt('--og', '1,2,4').split(',').map(Number);
const wasmBytes = readFileSync(new URL('../../wasm/kernels.wasm', import.meta.url));
const backends: Array<[string, Backend]> = [
  ['typescript', createReferenceBackend()],
  ['wasm x1', createWasmBackend({ wasm: wasmBytes, threads: 1 })],
];
const native = loadNativeBackend(1, () => createWasmBackend({ wasm: wasmBytes, threads: 1 })).backend;
if (native) backends.push(['native x1', native]);
/** Best process CPU ms per call over 3 batches, each at least 150 ms of CPU. */
function cpuMs(fn: () => void): number {
  fn();
  const cpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e3;
  };
  let reps = 1;
  for (;;) {
    const t = cpu();
    for (let i = 0; i < reps; i++) fn();
    if (cpu() - t >= 150) break;
    reps *= 2;
  }
  let best = Infinity;
  for (let b = 0; b < 3; b++) {
    const t = cpu();
    for (let i = 0; i < reps; i++) fn();
    best = Math.min(best, (cpu() - t) / reps);
  }
  return best;
}
const ROWS = 16;

console.log(`AQLM og on [${outDim}, ${inDim}], one thread; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
console.log(`  ${'scheme'.padEnd(14)}${backends.map(([n]) => `${n} matvec CPU ms`.padStart(26) + `${n} mm${ROWS} CPU ms`.padStart(24)).join('')}`);
for (const s of schemes) {
  const [, M, B, g] = /^(\d+)x(\d+)g(\d+)$/.exec(s)!.map(Number) as [number, number, number, number];
  for (const og of ogs) {
    const params = { M, B, g, ...(og > 1 ? { og } : {}) };
    const t = codebookFormat.pack(codebookFormat.randomPayload(outDim, inDim, params, mulberry32(og)));
    const x = Float32Array.from({ length: ROWS * inDim }, (_, i) => Math.sin(i));
    const cells: string[] = [];
    for (const [, be] of backends) {
      const lin = codebookFormat.makeLinear(t, be) as CodebookLinear;
      const y = be.alloc(ROWS * outDim);
      const xb = be.alloc(ROWS * inDim);
      xb.set(x);
      const mv = cpuMs(() => lin.matvec(y, xb));
      const mm = cpuMs(() => lin.matmul(y, xb, ROWS));
      cells.push(`${mv.toFixed(3)} (${lin.engine} ${lin.kernel})`.padStart(26), mm.toFixed(3).padStart(24));
      lin.dispose();
    }
    console.log(`  ${`${s} og${og}`.padEnd(14)}${cells.join('')}`);
  }
}
process.exit(0);
