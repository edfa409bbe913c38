/**
 * `node dist/bench/decode-profile.js FILE [--threads 1] [--tokens 32] [--reps 5] [--other ADDON.node]`: where one decoded
 * token's time goes on a packed file (decode-bench's `--cache` files): every Linear's matvec is
 * timed, split into the block linears and the head, and the rest of the token (embedding row,
 * norms, RoPE, attention, SwiGLU, residual adds, the JavaScript between kernels) is the remainder.
 * Two engines interleaved run by run in one process: the native backend's layer ops
 * (native/decode-ops.c) and the reference ops (runtime/layer-ops.ts) on the same backend, the
 * same linears; with --other (another build of the addon, e.g. main's in a second worktree) a
 * third: that build's uniform and mixed matvecs with the reference ops (what main ran, when the
 * file's kernel memory is the same: the weights are this build's, the matvec that build's). Per token, best of --reps runs of --tokens tokens from position 0: wall ms and
 * the process's CPU ms (user + system, all threads; every phase is timed both ways — on one
 * thread the CPU figures are what a loaded machine can still measure), with the load average
 * before and after (the machine is shared). At one thread it also reads the bandwidth probe's
 * 512 MiB streaming sum by CPU time (best of 5), and prints each engine's weight bytes per token
 * (block linears, head, one embedding row: the packed sizes) over CPU time against it.
 */
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { FileSource } from '../src/node/fs.js';
import { loadNativeBackend } from '../src/node/native.js';
import { createWasmBackendNode } from '../src/node/backend.js';
import { PackedModel } from '../src/packed/reader.js';
import { LlamaModel } from '../src/runtime/model.js';
import type { Linear } from '../src/runtime/linear.js';
import { LM_HEAD, EMBED } from '../src/model/weights.js';
import { referenceLayerOps } from '../src/runtime/layer-ops.js';

const args = process.argv.slice(2);
const arg = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : fallback);
const file = args[0];
if (!file || file.startsWith('--')) {
  console.error('usage: decode-profile FILE [--threads 1] [--tokens 32] [--reps 5]');
  process.exit(2);
}
const threads = Number(arg('--threads', '1'));
const tokens = Number(arg('--tokens', '32'));
const reps = Number(arg('--reps', '5'));

const be = loadNativeBackend(threads, () => createWasmBackendNode(threads)).backend;
if (!be) throw new Error('decode-profile needs the native addon (npm run build:native)');
const packed = new PackedModel(new FileSource(file));
const factory = packed.linears(be);
const spent = { block: 0, head: 0, blockCpu: 0, headCpu: 0 };
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
/** Times every matvec of a Linear into spent[kind] (wall) and spent[kind + 'Cpu']. */
const timed = (lin: Linear, kind: 'block' | 'head'): Linear => ({
  outDim: lin.outDim,
  inDim: lin.inDim,
  matvec(y, x) {
    const c = cpuMs();
    const t = performance.now();
    lin.matvec(y, x);
    spent[kind] += performance.now() - t;
    spent[`${kind}Cpu`] += cpuMs() - c;
  },
  matmul: (y, x, rows) => lin.matmul(y, x, rows),
  dispose: () => lin.dispose?.(),
});
const referenceOps = Object.assign(Object.create(be) as typeof be, { layerOps: referenceLayerOps });
const engines: Array<{ name: string; be: typeof be; swap?: () => () => void }> = [
  { name: 'native layer ops', be },
  { name: 'reference layer ops', be: referenceOps },
];
const otherPath = arg('--other', '');
if (otherPath) {
  const other = createRequire(import.meta.url)(otherPath) as Record<string, (...a: unknown[]) => void>;
  other.setThreads!(threads);
  const k = be.lowbit!;
  engines.push({
    name: `other build's matvecs + reference ops`,
    be: referenceOps,
    swap: () => {
      const orig = { u: k.uniformMatvec, m: k.mixedMatvec };
      k.uniformMatvec = (...a) => other.uniformMatvec!(...a);
      k.mixedMatvec = (...a) => other.mixedMatvec!(...a);
      return () => {
        k.uniformMatvec = orig.u;
        k.mixedMatvec = orig.m;
      };
    },
  });
}
const models = engines.map((e) => new LlamaModel(packed, {
  backend: e.be,
  maxRows: 16,
  linear: (name, src) => timed(factory(name, src), name === LM_HEAD || name === EMBED ? 'head' : 'block'),
}));
const c = models[0]!.config;
const la0 = loadavg();
const tok = (i: number) => (i * 7919 + 1) % c.vocabSize;
const run = (model: LlamaModel) => {
  for (let pos = 0; pos < tokens; pos++) model.forward([tok(pos)], pos, 'last');
};
interface Best { wall: number; cpu: number; block: number; head: number; blockCpu: number; headCpu: number }
const best: Best[] = models.map(() => ({ wall: Infinity, cpu: Infinity, block: 0, head: 0, blockCpu: 0, headCpu: 0 }));
for (const [i, m] of models.entries()) {
  const restore = engines[i]!.swap?.();
  run(m); // warm-up: JIT, first touch
  restore?.();
}
for (let r = 0; r < reps; r++) {
  for (const [i, model] of models.entries()) {
    spent.block = spent.head = spent.blockCpu = spent.headCpu = 0;
    const restore = engines[i]!.swap?.();
    const c0 = cpuMs();
    const t0 = performance.now();
    run(model);
    const wall = performance.now() - t0;
    const cpu = cpuMs() - c0;
    restore?.();
    // best by CPU time: on a loaded machine the wall clock counts other processes' slices
    if (cpu < best[i]!.cpu) best[i] = { wall, cpu, ...spent };
  }
}
const per = (v: number) => (v / tokens).toFixed(3);
// bytes one token reads: every block linear and the head as packed, one embedding row
const names = packed.tensors().map((t) => t.name);
let bytes = 0;
for (const n of names) if (n !== EMBED && packed.isPacked(n) && packed.packedBytes(n) !== undefined) bytes += packed.packedBytes(n)!;
if (packed.isPacked(EMBED)) bytes += packed.packedBytes(EMBED)! / c.vocabSize;
let probeCpu = NaN;
if (threads === 1) {
  const buf = new Uint8Array(512 << 20).fill(1);
  be.streamSum(buf);
  let bestCpu = Infinity;
  for (let r = 0; r < 5; r++) {
    const c0 = cpuMs();
    be.streamSum(buf);
    bestCpu = Math.min(bestCpu, cpuMs() - c0);
  }
  probeCpu = buf.length / bestCpu / 1e6; // GB/s
}
console.log(`decode-profile ${file}: ${c.nLayers} layers, ${threads} thread(s), isa ${be.lowbit?.isa ?? '-'}, best of ${reps} × ${tokens} tokens (by CPU time)`);
console.log(`load average before ${la0.map((v) => v.toFixed(2)).join(' ')}, after ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
for (const [i, e] of engines.entries()) {
  const b = best[i]!;
  const gbs = (bytes * tokens) / b.cpu / 1e6;
  const vsProbe = threads === 1 ? ` = ${((100 * gbs) / probeCpu).toFixed(0)} % of the CPU-time probe (${probeCpu.toFixed(1)} GB/s)` : ' (CPU time of all threads: no probe)';
  console.log(`${e.name}: ${(bytes / 1e6).toFixed(1)} MB/token over CPU time ${gbs.toFixed(1)} GB/s${vsProbe}; wall ${((bytes * tokens) / b.wall / 1e6).toFixed(1)} GB/s`);
  console.log(`  per token CPU ${per(b.cpu)} ms = block linears ${per(b.blockCpu)} + head ${per(b.headCpu)} + rest ${per(b.cpu - b.blockCpu - b.headCpu)}; wall ${per(b.wall)} ms (${(1000 * tokens / b.wall).toFixed(1)} tok/s) = ${per(b.block)} + ${per(b.head)} + ${per(b.wall - b.block - b.head)}`);
}
for (const m of models) m.dispose();
be.dispose();
