/**
 * `node --experimental-wasm-relaxed-simd dist/bench/wasm-kernels.js [--reps 9] [--calls 20] [--module LABEL=PATH] [--only LABEL-PART] [--json]`:
 * one matvec of the grid formats on TinyLlama-1.1B's MLP shapes ([5632, 2048] and [2048, 5632])
 * on one wasm thread, every kernel module side by side: `simd128` (wasm/kernels.wasm, int8
 * activations), `relaxed` (wasm/kernels-relaxed.wasm; needs an engine with relaxed SIMD), the
 * float kernels (`floatActivations`) on both modules (the relaxed module's float kernels have no
 * relaxed instruction: they show what the other compiler alone changes), any extra module given
 * with --module (e.g. a clang-16 build without relaxed SIMD), and the dense fp32 gemv and sgemm
 * (16 activation rows: prefill's dense path; its µs are per 16-row call).
 * CPU time of the process per matvec (user + system; one thread computes), best of --reps
 * batches of --calls matvecs, engines interleaved within each repeat so they share the machine's
 * load; the load average is printed before and after. Random payloads: speed does not depend on
 * the values.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import type { Backend } from '../src/backend/types.js';
import { createWasmBackend, type WasmBackend } from '../src/backend/wasm.js';
import { relaxedSimdAvailable } from '../src/backend/wasm-kernels.js';
import { getFormat } from '../src/formats/registry.js';
import type { Linear } from '../src/runtime/linear.js';
import { wasmKernelBytes } from '../src/node/backend.js';
import { mulberry32 } from '../src/quant/random.js';

const args = process.argv.slice(2);
const arg = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : fallback);
const reps = Number(arg('--reps', '9'));
const calls = Number(arg('--calls', '20'));
const json = args.includes('--json');
const only = arg('--only', ''); // run only the weights whose label contains this
const log = (s: string) => (json ? process.stderr.write(`${s}\n`) : console.log(s));

const modules: Array<{ label: string; be: WasmBackend }> = [{ label: 'simd128', be: createWasmBackend({ wasm: wasmKernelBytes('simd128'), threads: 1 }) }];
if (relaxedSimdAvailable()) modules.push({ label: 'relaxed', be: createWasmBackend({ wasm: wasmKernelBytes('relaxed'), threads: 1 }) });
else log('relaxed SIMD unavailable in this engine (run node --experimental-wasm-relaxed-simd): relaxed rows skipped');
for (const [i, a] of args.entries()) {
  if (a !== '--module') continue;
  const [label, path] = args[i + 1]!.split('=');
  modules.push({ label: label!, be: createWasmBackend({ wasm: new Uint8Array(readFileSync(path!)), threads: 1 }) });
}

const SHAPES: Array<[number, number]> = [[5632, 2048], [2048, 5632]];
const G = 128;
const SGEMM_ROWS = 16;
const CASES = [
  ...[2, 3, 4, 8].map((bits) => ({ label: `uniform ${bits}-bit g128`, format: 'uniform-asym', params: () => ({ bits, groupSize: G, actOrder: false }) })),
  {
    label: 'mixed 1/2/3-bit g128', // SliM-like: a third of the groups at 1, 2 and 3 bits each (bench/decode-bench.ts)
    format: 'mixed-asym',
    params: (inDim: number) => {
      const nG = Math.ceil(inDim / G), k = Math.round(nG / 3);
      return { groupSize: G, groups: [k, nG - 2 * k, k, 0], lastBits: 2 };
    },
  },
];

/** CPU µs per call of fn, best of reps batches. */
function cpuMicros(fn: () => void): number {
  const c0 = process.cpuUsage();
  for (let i = 0; i < calls; i++) fn();
  const d = process.cpuUsage(c0);
  return (d.user + d.system) / calls;
}

const la0 = loadavg();
log(`wasm-kernels — one thread, CPU time per matvec, best of ${reps} × ${calls} calls; modules ${modules.map((m) => m.label).join(', ')}; load average ${la0.map((v) => v.toFixed(2)).join(' ')}`);
const rows: Array<{ weights: string; shape: string; engine: string; ran: string; us: number }> = [];
for (const [out, inDim] of SHAPES) {
  // dense fp32 gemv on each module (the same C; both compilers)
  const engines: Array<{ weights: string; engine: string; ran: string; run: () => void; dispose: () => void }> = [];
  for (const m of only ? [] : modules) {
    const w = m.be.alloc(out * inDim);
    const rand = mulberry32(3);
    for (let i = 0; i < w.length; i++) w[i] = rand() - 0.5;
    const x = m.be.alloc(inDim).fill(0.5);
    const y = m.be.alloc(out);
    engines.push({ weights: 'fp32 gemv', engine: m.label, ran: 'sgemv', run: () => m.be.gemv(y, w, x, out, inDim), dispose: () => [x, y].forEach((b) => m.be.free(b)) });
    // prefill's dense path (the wasm backend's packed matmul dequantizes tiles for it): 16 rows, per call
    const xr = m.be.alloc(SGEMM_ROWS * inDim).fill(0.25);
    const yr = m.be.alloc(SGEMM_ROWS * out);
    engines.push({ weights: `fp32 sgemm ${SGEMM_ROWS} rows`, engine: m.label, ran: 'sgemm', run: () => m.be.matmul(yr, xr, w, SGEMM_ROWS, out, inDim), dispose: () => [w, xr, yr].forEach((b) => m.be.free(b)) });
  }
  for (const c of CASES.filter((k) => k.label.includes(only))) {
    const f = getFormat(c.format);
    const t = f.pack(f.randomPayload(out, inDim, c.params(inDim) as never, mulberry32(1)));
    for (const m of modules) {
      const x = m.be.alloc(inDim);
      for (let i = 0; i < inDim; i++) x[i] = Math.sin(i);
      const y = m.be.alloc(out);
      for (const [kind, be] of [['int8', m.be], ['float', Object.assign(Object.create(m.be) as Backend, { floatActivations: true })]] as const) {
        const lin: Linear & { engine?: string } = f.makeLinear(t, be);
        engines.push({ weights: c.label, engine: `${m.label} ${kind}`, ran: lin.engine ?? "?", run: () => lin.matvec(y, x), dispose: () => lin.dispose?.() });
      }
    }
  }
  const best = new Map<(typeof engines)[number], number>();
  for (const e of engines) e.run(); // warm-up
  for (let r = 0; r < reps; r++) for (const e of engines) best.set(e, Math.min(best.get(e) ?? Infinity, cpuMicros(e.run)));
  let last = '';
  for (const e of engines) {
    const us = best.get(e)!;
    rows.push({ weights: e.weights, shape: `${out}x${inDim}`, engine: e.engine, ran: e.ran, us });
    log(`  ${(e.weights === last ? '' : e.weights).padEnd(22)} ${`${out}x${inDim}`.padEnd(10)} ${e.engine.padEnd(16)} ${us.toFixed(0).padStart(6)} µs CPU`);
    last = e.weights;
    e.dispose();
  }
}
const la1 = loadavg();
log(`load average after: ${la1.map((v) => v.toFixed(2)).join(' ')}`);
if (json) console.log(JSON.stringify({ reps, calls, loadAverage: { before: la0, after: la1 }, rows }, null, 2));
