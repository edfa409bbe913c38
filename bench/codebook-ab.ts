/**
 * `node dist/bench/codebook-ab.js --old OLD.node [--reps 30] [--isa vnni,avx2] [--json]`: the native AQLM matvec of
 * an older build of the addon (OLD.node: e.g. main's native/build/Release/bitcrush_native.node
 * copied before rebuilding; its float32 tables and gathers over the file's code rows) next to
 * this build's (int8 tables over tiled codes), interleaved in one process, on TinyLlama-1.1B's
 * two MLP shapes for 2x8, 1x8 and 4x8 g8 random payloads: CPU time of the process per call
 * (user + system, best of --reps samples of 10 calls, both addons on one thread) and the GB/s of codes that implies.
 * Only the codebookMatvec entry point is shared by both builds; the old one reads the file's
 * codes, the new one the tiled copy (codebookTile). --isa: the instruction sets to run, forced in
 * both builds with lowbitSetIsa ("vnni": old AVX-512 gathers, new AVX-512 VBMI where the CPU has it;
 * "avx2": AVX2 gathers vs vpshufb). The load average is printed before and after.
 */
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { getFormat } from '../src/formats/registry.js';
import type { CodebookParams } from '../src/formats/codebook.js';
import { mulberry32 } from '../src/quant/random.js';

const args = process.argv.slice(2);
const arg = (name: string, fallback?: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : fallback);
const reps = Number(arg('--reps', '30'));
const json = args.includes('--json');
const oldPath = arg('--old');
if (!oldPath) {
  console.error('codebook-ab: --old OLD.node (an older build of the addon) is required');
  process.exit(2);
}
const log = (s: string) => (json ? process.stderr.write(`${s}\n`) : console.log(s));
const req = createRequire(import.meta.url);
type Matvec = (y: Float32Array, x: Float32Array, ...c: unknown[]) => void;
interface Addon {
  setThreads(n: number): void;
  codebookPrepare(cbt: Float32Array, cb16: Uint16Array, M: number, B: number, g: number): void;
  codebookMatvec: Matvec;
  lowbitSetIsa(name: string): boolean;
  codebookTile?(dst: Uint8Array, codes: Uint8Array, out: number, inDim: number, M: number, g: number): void;
}
const oldAddon = req(oldPath) as Addon;
const newAddon = req(new URL('../../native/build/Release/bitcrush_native.node', import.meta.url).pathname) as Addon;
oldAddon.setThreads(1);
newAddon.setThreads(1);

/** Calls per sample: a sample of one 0.1 ms call would be mostly the timer and scheduler noise. */
const BATCH = 10;
const cpuMs = (f: () => void) => {
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const c0 = process.cpuUsage();
    for (let k = 0; k < BATCH; k++) f();
    const c1 = process.cpuUsage(c0);
    best = Math.min(best, (c1.user + c1.system) / 1000 / BATCH);
  }
  return best;
};

const u16 = (b: Uint8Array) => new Uint16Array(b.slice().buffer);
log(`codebook-ab — old ${oldPath} vs this build, 1 thread, CPU ms per matvec, best of ${reps}; load average ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
const rows: Array<Record<string, unknown>> = [];
const f = getFormat('aqlm');
for (const isa of arg('--isa', 'vnni,avx2')!.split(',')) {
  if (!oldAddon.lowbitSetIsa(isa) || !newAddon.lowbitSetIsa(isa)) {
    log(`  ${isa}: not on this CPU`);
    continue;
  }
  for (const p of [{ M: 2, B: 8, g: 8 }, { M: 1, B: 8, g: 8 }, { M: 4, B: 8, g: 8 }] as CodebookParams[]) {
    for (const [out, inDim] of [[5632, 2048], [2048, 5632]] as Array<[number, number]>) {
      const t = f.pack(f.randomPayload(out, inDim, p as never, mulberry32(3)));
      const codes = t.blobs.codes!.bytes;
      const cb16 = u16(t.blobs.codebooks!.bytes), scale = u16(t.blobs.scale!.bytes);
      const cbt = new Float32Array(2 * p.M * 256 * p.g);
      newAddon.codebookPrepare(cbt, cb16, p.M, p.B, p.g);
      const tiled = new Uint8Array(codes.byteLength);
      newAddon.codebookTile!(tiled, codes, out, inDim, p.M, p.g);
      const x = Float32Array.from({ length: inDim }, (_, i) => Math.sin(i * 0.37));
      const yOld = new Float32Array(out), yNew = new Float32Array(out);
      const tail = [cbt, scale, out, inDim, p.M, p.B, p.g];
      const runOld = () => oldAddon.codebookMatvec(yOld, x, codes, ...tail);
      const runNew = () => newAddon.codebookMatvec(yNew, x, tiled, ...tail);
      runOld(), runNew();
      let old = Infinity, neu = Infinity;
      for (let round = 0; round < 3; round++) old = Math.min(old, cpuMs(runOld)), neu = Math.min(neu, cpuMs(runNew)); // interleaved
      let err = 0, mag = 0;
      for (let r = 0; r < out; r++) err = Math.max(err, Math.abs(yNew[r]! - yOld[r]!)), mag = Math.max(mag, Math.abs(yOld[r]!));
      const row = { isa, scheme: `${p.M}x8 g${p.g}`, shape: `${out}x${inDim}`, codesMB: codes.byteLength / 1e6, oldCpuMs: old, newCpuMs: neu, speedup: old / neu, newGBs: codes.byteLength / neu / 1e6, maxDiffOfMax: err / mag };
      rows.push(row);
      log(`  ${isa.padEnd(5)} ${row.scheme.padEnd(8)} ${row.shape.padEnd(10)} codes ${row.codesMB.toFixed(2)} MB  old ${old.toFixed(3).padStart(7)} ms  new ${neu.toFixed(3).padStart(7)} ms  ${row.speedup.toFixed(2)}x  (${row.newGBs.toFixed(1)} GB/s of codes; max |new − old| ${(100 * row.maxDiffOfMax).toFixed(2)} % of max |y|)`);
    }
  }
}
log(`load average ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
if (json) console.log(JSON.stringify(rows, null, 1));
