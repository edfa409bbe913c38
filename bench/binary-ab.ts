/**
 * `node dist/bench/binary-ab.js --old ADDON.node [--reps 15] [--calls 20] [--prefill 128] [--tensors 1] [--json]`:
 * the native binary-billm kernels of this checkout against those of another build of the
 * addon (`--old`, e.g. native/build/Release/bitcrush_native.node built at an older commit and
 * copied aside; its binaryPrepare / binaryMatvec / binaryDequant take the file's blobs, the API
 * before the 16-row layout), on TinyLlama-1.1B's MLP shapes, one thread, random payloads
 * (1/32 salient columns, as bench:decode's files), in one process, interleaved:
 *  - matvec: CPU time per call (user + system of the process over --calls calls, best of
 *    --reps), old vs new, per instruction set both builds have (scalar skipped: minutes);
 *    --tensors N cycles through N copies of the tensor (24: 100 MB, so the weights come from
 *    DRAM as in a decode, not from the 32 MB L3; prefill runs with one copy only);
 *  - prefill of --prefill rows: the new binary GEMM (AVX-512 VNNI only) against dequantized tiles
 *    + sgemm, the old path, with the old build's dequantization and with the new one's (CPU time,
 *    best of --reps).
 * CPU time because other jobs load the machine: it removes time-slicing, not cache sharing.
 * The ratios in one run are the evidence; the load average is printed before and after.
 */
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import type { Backend } from '../src/backend/types.js';
import { binaryFormat, blockCount, type BinaryParams } from '../src/formats/binary.js';
import { binaryLayout } from '../src/formats/lowbit-kernels.js';
import { RowTiles } from '../src/formats/row-tiles.js';
import type { PackedTensor } from '../src/formats/types.js';
import { loadNativeBackend } from '../src/node/native.js';
import { mulberry32 } from '../src/quant/random.js';

const args = process.argv.slice(2);
const arg = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : fallback);
const oldPath = arg('--old', '');
const reps = Number(arg('--reps', '15'));
const calls = Number(arg('--calls', '20'));
const prefillRows = Number(arg('--prefill', '128'));
const json = args.includes('--json');
const copies = Number(arg('--tensors', '1'));
const log = (s: string) => (json ? process.stderr.write(`${s}\n`) : console.log(s));
if (!oldPath) {
  console.error('binary-ab: --old ADDON.node is required (a build of the addon before the 16-row layout)');
  process.exit(2);
}

type Fn = (...a: unknown[]) => void;
const old = createRequire(import.meta.url)(resolve(oldPath)) as Record<string, Fn> & { lowbitSetIsa(n: string): boolean; lowbitIsa(): string };
const native = loadNativeBackend(1).backend;
if (!native?.lowbit) {
  console.error('binary-ab: this checkout has no native addon: npm run build:native');
  process.exit(2);
}
old.setThreads!(1);
const k = native.lowbit;

/** CPU ms of fn (best of reps), per call when it runs `n` calls. */
function cpuMs(fn: () => void, n: number): number {
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const c0 = process.cpuUsage();
    for (let j = 0; j < n; j++) fn();
    const c = process.cpuUsage(c0);
    best = Math.min(best, (c.user + c.system) / 1000 / n);
  }
  return best;
}

const u16 = (b: Uint8Array) => new Uint16Array(b.slice().buffer);
const rows: Array<Record<string, unknown>> = [];
log(`binary-ab — old ${oldPath}, 1 thread, best of ${reps}, ${copies} cop${copies > 1 ? 'ies' : 'y'} of each tensor; load average ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
for (const [out, inDim] of [[5632, 2048], [2048, 5632]] as const) {
  const params: BinaryParams = { blockSize: 128, salientColumns: Math.round(inDim / 32) };
  const t = binaryFormat.pack(binaryFormat.randomPayload(out, inDim, params, mulberry32(1))) as PackedTensor<BinaryParams>;
  let bytes = 0;
  for (const b of Object.values(t.blobs)) bytes += b.bytes.byteLength;
  const nSal = params.salientColumns, nB = blockCount(inDim, 128);
  // the old build: the file's blobs in place, its salient index and compact sign plane
  const oSalCol = new Int32Array(nSal), oSalStart = new Int32Array(nB + 1), sal1 = new Uint8Array(out * Math.ceil(nSal / 8));
  old.binaryPrepare!(oSalCol, oSalStart, sal1, t.blobs.salient!.bytes, t.blobs.signs!.bytes, out, inDim, 128, nSal);
  const oArgs = [t.blobs.signs!.bytes, t.blobs.split!.bytes, sal1, t.blobs.residual!.bytes, u16(t.blobs.scales!.bytes), oSalCol, oSalStart, out, inDim, 128, nSal];
  // copies in their own memory (--tensors): same values, so the same work, from DRAM
  const oList = Array.from({ length: copies }, (_, i) => (i === 0 ? oArgs : oArgs.map((a) => (ArrayBuffer.isView(a) ? (a as Uint8Array).slice() : a))));
  // this checkout: the 16-row layout
  const n = binaryLayout(out, inDim, 128, nSal);
  const planes = new BigUint64Array(n.planes), scalesT = new Uint16Array(n.scales), sal = new Uint32Array(n.sal);
  const salCol = new Int32Array(nSal), salStart = new Int32Array(nB + 1);
  const c0 = process.cpuUsage();
  k.binaryPrepare(planes, scalesT, sal, salCol, salStart, t.blobs.salient!.bytes, t.blobs.signs!.bytes, t.blobs.split!.bytes, t.blobs.residual!.bytes, u16(t.blobs.scales!.bytes), out, inDim, 128, nSal);
  const prepMs = (process.cpuUsage(c0).user + process.cpuUsage(c0).system) / 1000;
  const nArgs = [planes, scalesT, sal, salCol, salStart, out, inDim, 128, nSal] as const;
  const nList = Array.from({ length: copies }, (_, i) => (i === 0 ? nArgs : ([planes.slice(), scalesT.slice(), sal.slice(), salCol, salStart, out, inDim, 128, nSal] as const)));
  const x = Float32Array.from({ length: inDim }, (_, i) => Math.sin(i));
  const y = new Float32Array(out);
  const shape = `${out}x${inDim}`;
  for (const isa of ['avx2', 'vnni']) {
    if (!old.lowbitSetIsa(isa) || !native.setIsa(isa)) continue;
    const oldMs = () => cpuMs(() => oList.forEach((a) => old.binaryMatvec!(y, x, ...a)), calls) / copies;
    const newMs = () => cpuMs(() => nList.forEach((a) => k.binaryMatvec(y, x, ...a)), calls) / copies;
    oldMs(), newMs(); // warm-up
    const o = Math.min(oldMs(), oldMs()), nw = Math.min(newMs(), newMs());
    const row = { shape, isa, tensors: copies, MB: bytes / 1e6, oldUs: o * 1000, newUs: nw * 1000, speedup: o / nw, newGBs: bytes / (nw * 1e6), prepareMs: prepMs };
    rows.push(row);
    log(`  matvec ${shape.padEnd(10)} ${isa.padEnd(5)} old ${row.oldUs.toFixed(0).padStart(6)} µs  new ${row.newUs.toFixed(0).padStart(5)} µs CPU  ${row.speedup.toFixed(2)}x  (${row.MB.toFixed(2)} MB: ${row.newGBs.toFixed(1)} GB/s of CPU; prepare ${prepMs.toFixed(1)} ms)`);
  }
  if (prefillRows > 0 && copies === 1) {
    const X = Float32Array.from({ length: prefillRows * inDim }, (_, i) => Math.sin(i * 0.37));
    const Y = new Float32Array(prefillRows * out);
    const be = (sgemm: Fn) => ({ alloc: (len: number) => new Float32Array(len), free: () => {}, matmul: sgemm }) as unknown as Backend;
    const oldTiles = new RowTiles(be((...a) => old.sgemm!(...a)), out, inDim, 1 << 18);
    const newTiles = new RowTiles(native, out, inDim, 1 << 18);
    for (const isa of ['avx2', 'vnni']) {
      if (!old.lowbitSetIsa(isa) || !native.setIsa(isa)) continue;
      const runs = {
        oldTiles: () => cpuMs(() => oldTiles.matmul(Y, X, prefillRows, (r0, c, w) => old.binaryDequant!(w, ...oArgs, r0, r0 + c)), 1),
        newTiles: () => cpuMs(() => newTiles.matmul(Y, X, prefillRows, (r0, c, w) => k.binaryDequant(w, ...nArgs, r0, r0 + c)), 1),
        gemm: () => (k.binaryGemmSimd ? cpuMs(() => k.binaryGemm(Y, X, prefillRows, ...nArgs), 1) : NaN),
      };
      for (const f of Object.values(runs)) f(); // warm-up
      const r = { oldTiles: runs.oldTiles(), newTiles: runs.newTiles(), gemm: runs.gemm() };
      const row = { shape, isa, prefillRows, oldTilesMs: r.oldTiles, newTilesMs: r.newTiles, gemmMs: r.gemm, speedup: r.oldTiles / r.gemm };
      rows.push(row);
      const gemmText = Number.isNaN(r.gemm) ? 'no binary GEMM on this instruction set (prefill keeps the tiles)' : `binary GEMM ${r.gemm.toFixed(1).padStart(6)} ms CPU  ${row.speedup.toFixed(2)}x`;
      log(`  prefill ${prefillRows} rows ${shape.padEnd(10)} ${isa.padEnd(5)} tiles+sgemm old ${r.oldTiles.toFixed(1).padStart(6)} ms, new layout ${r.newTiles.toFixed(1).padStart(6)} ms; ${gemmText}`);
    }
  }
  old.lowbitSetIsa('auto');
  native.setIsa('auto');
}
log(`load average after ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
if (json) console.log(JSON.stringify(rows, null, 2));
process.exit(0);
