/**
 * `node dist/bench/matvec-ab.js [--other PATH/bitcrush_native.node] [--isa vnni|avx2|scalar] [--shapes 5632x2048,…] [--reps 7] [--ms 150]`: the
 * native uniform and mixed decode matvecs of this build against another build of the addon (e.g.
 * main's, built in a second worktree) in one process, on the same arrays, interleaved: per
 * TinyLlama-1.1B layer shape and width, µs per call by the process's CPU time (one thread:
 * a loaded machine still measures it; best of --reps batches of ≥ --ms ms), and the GB/s of
 * the tensor's bytes that implies. Random payloads packed by the registry (speed does not depend
 * on the values). Prints the load average before and after (the machine is shared).
 */
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { getFormat } from '../src/formats/registry.js';
import { loadNativeBackend } from '../src/node/native.js';
import { mulberry32 } from '../src/quant/random.js';
import type { Linear } from '../src/runtime/linear.js';

const args = process.argv.slice(2);
const arg = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : fallback);
const reps = Number(arg('--reps', '7'));
const minMs = Number(arg('--ms', '150'));
const otherPath = arg('--other', '');

const be = loadNativeBackend(1).backend;
if (!be?.lowbit) throw new Error('matvec-ab needs the native addon (npm run build:native)');
type AddonLike = { setThreads(t: number): void } & Record<string, (...a: unknown[]) => void>;
const other = otherPath ? (createRequire(import.meta.url)(otherPath) as AddonLike) : undefined;
other?.setThreads(1);
const isa = arg('--isa', 'auto');
if (!be.setIsa(isa) || (other && !(other.lowbitSetIsa as unknown as (n: string) => boolean)(isa))) throw new Error(`instruction set ${isa} unavailable here`);

/** CPU µs per call of fn: best of reps batches of at least minMs. */
function cpuUs(fn: () => void): number {
  fn();
  let n = 1;
  for (;;) {
    const t = performance.now();
    for (let i = 0; i < n; i++) fn();
    if (performance.now() - t >= minMs) break;
    n *= 2;
  }
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const c0 = process.cpuUsage();
    for (let i = 0; i < n; i++) fn();
    const c = process.cpuUsage(c0);
    best = Math.min(best, (c.user + c.system) / n);
  }
  return best;
}

const SHAPES: Array<[number, number]> = (arg("--shapes", "5632x2048,2048x5632,2048x2048")).split(",").map((s) => s.split("x").map(Number) as [number, number]);
const CASES = [
  ...[2, 3, 4].map((bits) => ({ label: `uniform ${bits}-bit g128`, format: 'uniform-asym', params: () => ({ bits, groupSize: 128, actOrder: false }) })),
  {
    label: 'mixed 1/2/3-bit g128',
    format: 'mixed-asym',
    params: (inDim: number) => {
      const nG = inDim / 128, k = Math.round(nG / 3);
      return { groupSize: 128, groups: [k, nG - 2 * k, k, 0], lastBits: 2 };
    },
  },
];

console.log(`matvec-ab — one thread, CPU time, best of ${reps}; this build (isa ${be.lowbit.isa}) vs ${otherPath || '(none)'}; load average ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
for (const c of CASES) {
  const f = getFormat(c.format);
  for (const [out, inDim] of SHAPES) {
    const t = f.pack(f.randomPayload(out, inDim, c.params(inDim) as never, mulberry32(1)));
    let bytes = 0;
    for (const b of Object.values(t.blobs)) bytes += b.bytes.byteLength;
    const x = Float32Array.from({ length: inDim }, (_, i) => Math.sin(i));
    const y = new Float32Array(out), y2 = new Float32Array(out);
    const lin = f.makeLinear(t, be) as Linear;
    // the other build through the same Linear: its kernel memory is this one's (same file layout,
    // 3-bit rows repacked by this build), so only the matvec differs
    let otherCall: (() => void) | undefined;
    if (other) {
      const k = be.lowbit;
      const orig = { u: k.uniformMatvec, m: k.mixedMatvec };
      otherCall = () => {
        k.uniformMatvec = (...a) => other.uniformMatvec!(...a);
        k.mixedMatvec = (...a) => other.mixedMatvec!(...a);
        try {
          lin.matvec(y2, x);
        } finally {
          k.uniformMatvec = orig.u;
          k.mixedMatvec = orig.m;
        }
      };
    }
    const mine = cpuUs(() => lin.matvec(y, x));
    const theirs = otherCall ? cpuUs(otherCall) : NaN;
    let diff = 0, scale = 0;
    if (otherCall) for (let i = 0; i < out; i++) diff = Math.max(diff, Math.abs(y[i]! - y2[i]!)), scale = Math.max(scale, Math.abs(y[i]!));
    const gbs = (us: number) => (bytes / us / 1e3).toFixed(1);
    console.log(`  ${c.label.padEnd(21)} ${`${out}x${inDim}`.padEnd(10)} ${(bytes / 1e6).toFixed(2)} MB  this ${mine.toFixed(0).padStart(5)} µs ${gbs(mine).padStart(5)} GB/s   other ${theirs.toFixed(0).padStart(5)} µs ${gbs(theirs).padStart(5)} GB/s   ${(theirs / mine).toFixed(2)}x  (max |Δy| ${(diff / scale).toExponential(1)} of max |y|)`);
    lin.dispose?.();
  }
}
console.log(`load average after ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
