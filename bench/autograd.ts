/**
 * `npm run bench:autograd` — one Llama block forward + backward (all parameter gradients, as
 * SliM-LLM+ and AQLM fine-tuning need) at T = 256 tokens, at the widths of stories260K and
 * bench-llama (configs read from the shared model files, random weights): the plain TypeScript
 * loops (src/autograd/ops.ts) against the backend kernels (src/autograd/kernels.ts) on wasm
 * and, when it loads, native OpenBLAS (with N threads and with one), side by side with the speed-up
 * over the loops.
 *
 *   node dist/bench/autograd.js [--threads N] [--seqlen T]
 */
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { blockBackward, blockForward, blockGrads, type BlockParams } from '../src/autograd/block.js';
import { BlockKernels } from '../src/autograd/kernels.js';
import type { Backend } from '../src/backend/types.js';
import { openModel } from '../src/io/load.js';
import { kvDim, type LlamaConfig } from '../src/model/config.js';
import { createWasmBackendNode } from '../src/node/backend.js';
import { nodeFs } from '../src/node/fs.js';
import { loadNativeBackend } from '../src/node/native.js';
import { mulberry32 } from '../src/quant/random.js';
import { medianSeconds } from './timing.js';

const args = process.argv.slice(2);
const flag = (name: string, dflt: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const threads = flag('--threads', availableParallelism());
const T = flag('--seqlen', 256);
const shared = (p: string) => fileURLToPath(new URL(`../../../shared/${p}`, import.meta.url));
const MODELS = [
  { label: 'stories260K', path: shared('models/stories260K/stories260K.bin') },
  { label: 'bench-llama', path: shared('models/bench-llama/model.bin') },
];

function randomBlock(c: LlamaConfig): BlockParams {
  const r = mulberry32(1);
  const m = (n: number, s: number) => Float32Array.from({ length: n }, () => s * (2 * r() - 1));
  const w = 1 / Math.sqrt(c.dim);
  const kd = kvDim(c);
  return {
    attnNorm: m(c.dim, 1), wq: m(c.dim * c.dim, w), wk: m(kd * c.dim, w), wv: m(kd * c.dim, w), wo: m(c.dim * c.dim, w),
    ffnNorm: m(c.dim, 1), w1: m(c.hiddenDim * c.dim, w), w2: m(c.dim * c.hiddenDim, w), w3: m(c.hiddenDim * c.dim, w),
  };
}

/** Median seconds of one forward + backward with every parameter gradient. */
function time(c: LlamaConfig, kernels: BlockKernels | undefined): number {
  const p = randomBlock(c);
  const r = mulberry32(2);
  const x = Float32Array.from({ length: T * c.dim }, () => 2 * r() - 1);
  const dout = Float32Array.from({ length: T * c.dim }, () => 2 * r() - 1);
  const grads = blockGrads(p);
  return medianSeconds(() => {
    const acts = blockForward(c, p, x, T, kernels);
    blockBackward(c, p, acts, dout, grads, kernels);
  }, { minBatchMs: kernels ? 300 : 100, batches: kernels ? 5 : 3 });
}

// Created right before use: OpenBLAS keeps one global thread count, set by the latest native backend.
const backends: Array<{ label: string; make: () => Backend | undefined }> = [{ label: `wasm×${threads}`, make: () => createWasmBackendNode(threads) }];
const probe = loadNativeBackend(threads);
if (probe.backend) {
  probe.backend.dispose();
  backends.push({ label: `native×${threads}`, make: () => loadNativeBackend(threads).backend });
  // one OpenBLAS thread: on a busy machine its threads' spin-waits can cost more than they save at these sizes
  if (threads > 1) backends.push({ label: 'native×1', make: () => loadNativeBackend(1).backend });
} else console.log(`native backend not loaded: ${probe.error}`);

console.log(`bitcrush bench:autograd — one block forward + backward, T = ${T} (ms; shared machine, noisy)`);
console.log(`  ${'model'.padEnd(12)} ${'dim/hidden'.padEnd(11)} ${'loops'.padStart(9)} ${backends.map((b) => b.label.padStart(9) + ' speed-up').join(' ')}`);
for (const m of MODELS) {
  const c = openModel(m.path, nodeFs).config;
  const loops = time(c, undefined);
  const cells = backends.map(({ make }) => {
    const be = make()!;
    const k = new BlockKernels(be);
    try {
      const s = time(c, k);
      return `${(s * 1e3).toFixed(1).padStart(9)} ${`${(loops / s).toFixed(1)}x`.padStart(8)}`;
    } finally {
      k.dispose();
      be.dispose();
    }
  });
  console.log(`  ${m.label.padEnd(12)} ${`${c.dim}/${c.hiddenDim}`.padEnd(11)} ${(loops * 1e3).toFixed(1).padStart(9)} ${cells.join(' ')}`);
}
