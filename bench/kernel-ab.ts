/**
 * `node dist/bench/kernel-ab.js [--threads 1] [--reps 30] [--prefill 128] [--only-prefill] [--only LABEL] [--groups 128] [--only-uniform] [--cpu] [--isas LIST] [--json]`: one matvec of each packed
 * format family on TinyLlama-1.1B's two MLP shapes ([5632, 2048] and [2048, 5632]), every engine
 * side by side in one run: native kernels per instruction set (and, for AQLM, per lookup kernel),
 * the wasm kernels (int8 activations where they exist, then with `floatActivations`: the float
 * kernels that ran before), with µs per call (best of --reps), the tensor's bytes and the GB/s
 * that implies, and the time to build the Linear from the packed tensor (kernel setup at load).
 * Random payloads packed by the registry: speed does not depend on the values. The load average
 * is printed before and after (the machine is shared).
 *
 * Then prefill (`--prefill` rows, 0 skips): one matmul of the uniform, mixed and AQLM 2x8 tensors
 * on the native backend, the int8 GEMM (AQLM: int8 lookup tables) next to the dequantized tiles + sgemm that ran before
 * (`int8Prefill` off), per instruction set, interleaved; best of --reps by wall clock and by the
 * process's CPU time (user + system, all threads: what a loaded machine can still measure), and
 * the tokens/s each implies for this one layer. `--groups 32,64,128`: the uniform cases at each
 * group size (32 and 64: several groups per int8 activation block); `--only-uniform` skips the others.
 * `--cpu`: matvec times are the process's CPU time per call, over batches of 10 calls (best of
 * --reps batches), for a loaded machine; `--isas avx2,vnni` limits the native instruction sets.
 */
import { loadavg } from 'node:os';
import type { Backend } from '../src/backend/types.js';
import { getFormat } from '../src/formats/registry.js';
import { createWasmBackendNode } from '../src/node/backend.js';
import { loadNativeBackend } from '../src/node/native.js';
import { mulberry32 } from '../src/quant/random.js';

const args = process.argv.slice(2);
const arg = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : fallback);
const threads = Number(arg('--threads', '1'));
const reps = Number(arg('--reps', '30'));
const json = args.includes('--json');
const prefillRows = Number(arg('--prefill', '128'));
const onlyPrefill = args.includes('--only-prefill');
const only = arg('--only', ''); // run only the weights whose label contains this
const cpuTime = args.includes('--cpu');
const isas = arg('--isas', 'scalar,avx2,vnni,neon-dotprod').split(',');
const log = (s: string) => (json ? process.stderr.write(`${s}\n`) : console.log(s));

const native = loadNativeBackend(threads).backend;
const wasm = createWasmBackendNode(threads);
const wasmFloat: Backend = Object.assign(Object.create(wasm) as Backend, { floatActivations: true });
const SHAPES: Array<[number, number]> = [[5632, 2048], [2048, 5632]];
const GROUPS = arg('--groups', '128').split(',').map(Number);
const onlyUniform = args.includes('--only-uniform');
const uniformCases = GROUPS.flatMap((groupSize) =>
  [2, 3, 4, 8].map((bits) => ({ label: `uniform ${bits}-bit g${groupSize}`, format: 'uniform-asym', params: (_inDim: number) => ({ bits, groupSize, actOrder: false }) })),
);
const CASES = [
  ...uniformCases,
  ...(onlyUniform ? [] : [
    { label: 'AQLM 2x8 g8', format: 'aqlm', params: () => ({ M: 2, B: 8, g: 8 }) },
    { label: 'BiLLM b128', format: 'binary-billm', params: (inDim: number) => ({ blockSize: 128, salientColumns: Math.round(inDim / 32) }) },
  ]),
];

log(`kernel-ab — ${threads} thread(s), best of ${reps}${cpuTime ? ' (matvec: CPU time per call, batches of 10)' : ''}; load average ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
const rows: Array<Record<string, unknown>> = [];
for (const c of onlyPrefill ? [] : CASES.filter((c) => c.label.includes(only))) {
  const f = getFormat(c.format);
  for (const [out, inDim] of SHAPES) {
    const t = f.pack(f.randomPayload(out, inDim, c.params(inDim) as never, mulberry32(1)));
    let bytes = 0;
    for (const b of Object.values(t.blobs)) bytes += b.bytes.byteLength;
    const x = wasm.alloc(inDim);
    for (let i = 0; i < inDim; i++) x[i] = Math.sin(i);
    const y = wasm.alloc(out);
    const run = (engine: string, be: Backend, setup?: () => void) => {
      const t0 = performance.now();
      const lin = f.makeLinear(t, be);
      const loadMs = performance.now() - t0;
      setup?.();
      lin.matvec(y, x);
      let best = Infinity;
      for (let i = 0; i < reps; i++) {
        if (cpuTime) {
          const c0 = process.cpuUsage();
          for (let k = 0; k < 10; k++) lin.matvec(y, x);
          const c = process.cpuUsage(c0);
          best = Math.min(best, (c.user + c.system) / 1e4); // ms per call
          continue;
        }
        const s = performance.now();
        lin.matvec(y, x);
        best = Math.min(best, performance.now() - s);
      }
      lin.dispose?.();
      const us = best * 1000;
      const row = { weights: c.label, shape: `${out}x${inDim}`, engine, ran: (lin as { engine?: string }).engine, us, MB: bytes / 1e6, GBs: bytes / us / 1e3, loadMs };
      rows.push(row);
      log(`  ${c.label.padEnd(20)} ${row.shape.padEnd(10)} ${engine.padEnd(22)} ${us.toFixed(0).padStart(6)} µs${cpuTime ? ' cpu' : ''}  ${row.GBs.toFixed(1).padStart(5)} GB/s  (${row.MB.toFixed(2)} MB, setup ${loadMs.toFixed(0)} ms)`);
    };
    if (native) {
      for (const isa of isas) {
        if (!native.setIsa(isa)) continue;
        if (c.format === 'aqlm') for (const g of [0, 1, 2]) run(`native ${isa} lut${g}`, native, () => native.setCodebookKernel(g));
        else run(`native ${isa}`, native);
      }
      native.setIsa('auto');
      native.setCodebookKernel(-1);
    }
    run('wasm', wasm);
    if (c.format.startsWith('uniform')) run('wasm float activations', wasmFloat);
    wasm.free(x);
    wasm.free(y);
  }
}
const PREFILL_CASES = [
  ...uniformCases,
  ...(onlyUniform ? [] : [{
    label: 'mixed 1/2/3-bit g128',
    format: 'mixed-asym',
    params: (inDim: number) => {
      const nG = inDim / 128, k = Math.round(nG / 3);
      return { groupSize: 128, groups: [k, nG - 2 * k, k, 0], lastBits: 2 };
    },
  },
  // int8 lookup tables, codes read once per 16 activation rows (native/codebook-lut8.c)
  { label: 'AQLM 2x8 g8', format: 'aqlm', params: () => ({ M: 2, B: 8, g: 8 }) },
  ]),
];
if (native?.lowbit && prefillRows > 0) {
  const k = native.lowbit;
  const int8Default = k.int8Prefill;
  log(`prefill, ${prefillRows} rows: int8 GEMM vs dequantized tiles + sgemm (native, ${threads} thread(s))`);
  for (const c of PREFILL_CASES.filter((c) => c.label.includes(only))) {
    const f = getFormat(c.format);
    for (const [out, inDim] of SHAPES) {
      const t = f.pack(f.randomPayload(out, inDim, c.params(inDim) as never, mulberry32(2)));
      const lin = f.makeLinear(t, native);
      const x = new Float32Array(prefillRows * inDim);
      for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.37);
      const y = new Float32Array(prefillRows * out);
      const time = (int8: boolean) => {
        k.int8Prefill = int8;
        let wall = Infinity, cpu = Infinity;
        for (let i = 0; i < reps; i++) {
          const c0 = process.cpuUsage(), w0 = performance.now();
          lin.matmul(y, x, prefillRows);
          const w1 = performance.now(), c1 = process.cpuUsage(c0);
          wall = Math.min(wall, w1 - w0);
          cpu = Math.min(cpu, (c1.user + c1.system) / 1000);
        }
        return { wall, cpu };
      };
      for (const isa of ['avx2', 'vnni', 'neon-dotprod']) {
        if (!native.setIsa(isa)) continue;
        time(true); // warm-up: the first call grows the tiles and the pool
        time(false);
        const tiles = time(false), gemm = time(true);
        const row = {
          weights: c.label, shape: `${out}x${inDim}`, engine: `native ${isa} prefill`, rows: prefillRows,
          tilesMs: tiles.wall, tilesCpuMs: tiles.cpu, gemmMs: gemm.wall, gemmCpuMs: gemm.cpu,
          speedupCpu: tiles.cpu / gemm.cpu, speedupWall: tiles.wall / gemm.wall,
        };
        rows.push(row);
        log(`  ${c.label.padEnd(20)} ${row.shape.padEnd(10)} ${isa.padEnd(6)} tiles+sgemm ${tiles.wall.toFixed(1).padStart(7)} ms (cpu ${tiles.cpu.toFixed(1).padStart(7)})  int8 GEMM ${gemm.wall.toFixed(1).padStart(7)} ms (cpu ${gemm.cpu.toFixed(1).padStart(7)})  ${row.speedupCpu.toFixed(2)}x cpu, ${row.speedupWall.toFixed(2)}x wall; int8 ${((prefillRows / gemm.wall) * 1000).toFixed(0)} tok/s this layer`);
      }
      native.setIsa('auto');
      k.int8Prefill = int8Default;
      lin.dispose?.();
    }
  }
}
log(`load average after ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
if (json) console.log(JSON.stringify(rows, null, 2));
wasm.dispose();
process.exit(0);
