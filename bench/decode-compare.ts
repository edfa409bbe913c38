/**
 * Decode speed of bench-llama as fp32 and as packed low-bit files, side by side per backend
 * (bench/lowbit.ts and bench/slim.ts). The packed files are made with the CLI with small,
 * quick settings: speed, not quality, is measured here (quality is in docs/slim.md, aqlm.md).
 *
 * Per file and backend it prints tokens/s of greedy decode from BOS, and, from the same loaded
 * model, the time per token of the 56 quantized linear layers alone (one matvec each) and of
 * the classifier [32000, 256] (the tied embedding; its files are made with --head-bits 32
 * --embed-bits 32, so it stays fp32 here and the linears' kernels are compared alone): on
 * bench-llama the fp32 classifier reads 33 MB per token against 27 MB for all linears in fp32,
 * so it hides most of what the low-bit kernels gain in the tokens/s column (bench/whole-decode.ts
 * measures files with a low-bit head).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backend } from '../src/backend/types.js';
import { loadModel } from '../src/node/index.js';
import type { Linear } from '../src/runtime/linear.js';
import { argmax } from '../src/runtime/sampler.js';
import { medianSeconds } from './timing.js';

const shared = (p: string) => fileURLToPath(new URL(`../../../shared/${p}`, import.meta.url));
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
export const BENCH_LLAMA = shared('models/bench-llama');
const CALIB = shared('data/austen/emma.txt');

export type BenchFileKind = 'gptq2' | 'slim2' | 'aqlm2x8';

/** Quick quantize settings: 16 calibration windows; AQLM with a 1-wide beam and one short epoch. */
const RECIPES: Record<BenchFileKind, { label: string; args: string[] }> = {
  gptq2: { label: 'GPTQ 2-bit g128', args: ['--method', 'gptq', '--bits', '2', '--group-size', '128'] },
  slim2: { label: 'SliM 2-bit g128', args: ['--method', 'slim', '--bits', '2', '--group-size', '128'] },
  aqlm2x8: {
    label: 'AQLM 2x8 g8',
    args: ['--method', 'aqlm', '--scheme', '2x8', '--beam-size', '1', '--max-epochs', '1', '--steps-per-epoch', '10', '--kmeans-iters', '5'],
  },
};

export interface BenchFile {
  label: string;
  path: string;
}

/** fp32 bench-llama plus the packed files of `kinds`, made in `dir` unless already there. */
export function benchFiles(dir: string, kinds: BenchFileKind[]): BenchFile[] {
  const files: BenchFile[] = [{ label: 'fp32', path: BENCH_LLAMA }];
  for (const kind of kinds) {
    const { label, args } = RECIPES[kind];
    const path = join(dir, `${kind}.bcq`);
    if (!existsSync(path)) {
      const t0 = performance.now();
      const calib = ['--calib', CALIB, '--nsamples', '16', '--seqlen', '256'];
      const r = spawnSync(process.execPath, [CLI, 'quantize', BENCH_LLAMA, ...args, '--head-bits', '32', '--embed-bits', '32', ...calib, '--out', path], { encoding: 'utf8', maxBuffer: 1 << 26 });
      if (r.status !== 0) throw new Error(`bitcrush quantize ${args.join(' ')} failed:\n${r.stderr}`);
      console.log(`  made ${label}: ${((performance.now() - t0) / 1000).toFixed(0)} s (bitcrush quantize ${args.join(' ')} ${calib.join(' ')})`);
    }
    files.push({ label: `${label} (${(statSync(path).size / 1e6).toFixed(1)} MB)`, path });
  }
  return files;
}

export interface DecodeTiming {
  tokensPerSecond: number;
  /** All linear layers of the blocks, one matvec each: seconds per token. */
  linearSeconds: number;
  /** The classifier matvec: seconds per token. */
  classifierSeconds: number;
}

/** Seconds per call of fn (bench/timing.ts's median of batches unless a benchmark passes its own). */
export type CallTimer = (fn: () => void) => number;
const wallTimer: CallTimer = (fn) => medianSeconds(fn, { minBatchMs: 100, batches: 5 });

/** Best of `reps` greedy runs of `steps` tokens (least slowed by other jobs), then the layer timings. */
export function measureDecode(backend: Backend, path: string, steps: number, reps = 3, timer = wallTimer): DecodeTiming {
  const { model, tokenizer, dispose } = loadModel(path, { backend });
  try {
    const decode = (n: number) => {
      let token = tokenizer.bosId ?? 0;
      for (let pos = 0; pos < n; pos++) token = argmax(model.forward([token], pos, 'last'));
    };
    decode(16); // warm-up: JIT and first touch of the weights
    let best = Infinity;
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      decode(steps);
      best = Math.min(best, (performance.now() - t0) / 1000);
    }
    const { layers, classifier } = model.weights;
    const linears: Linear[] = layers.flatMap((l) => [l.wq, l.wk, l.wv, l.wo, l.w1, l.w2, l.w3]);
    return {
      tokensPerSecond: steps / best,
      linearSeconds: timeMatvecs(backend, linears, timer),
      classifierSeconds: timeMatvecs(backend, [classifier], timer),
    };
  } finally {
    dispose();
  }
}

/** Seconds for one matvec through each of `linears`, activations in backend memory as in decode. */
function timeMatvecs(backend: Backend, linears: Linear[], timer: CallTimer): number {
  const io = linears.map((l) => {
    const x = backend.alloc(l.inDim);
    for (let i = 0; i < l.inDim; i++) x[i] = Math.sin(i) * 0.5;
    return { l, x, y: backend.alloc(l.outDim) };
  });
  const seconds = timer(() => {
    for (const { l, x, y } of io) l.matvec(y, x);
  });
  for (const { x, y } of io) {
    backend.free?.(x);
    backend.free?.(y);
  }
  return seconds;
}

/** The side-by-side table: one row per file, per backend tok/s, ms/token, linears and classifier ms. */
export function printDecodeTable(backends: Array<{ label: string; be: Backend }>, files: BenchFile[], steps: number, timer = wallTimer): void {
  console.log(`\nbench-llama decode: greedy from BOS, best of 3 runs of ${steps} tokens (wall clock); linears = the 56 block`);
  console.log('linears, one matvec each; classifier = the fp32 [32000, 256] output layer (both timed like the kernels above)');
  const head = ['weights', 'backend', 'tok/s', 'ms/token', 'linears ms', 'classifier ms'];
  const widths = [30, 8, 8, 9, 11, 14];
  const line = (cells: string[]) => console.log('  ' + cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' '));
  line(head);
  for (const f of files) {
    for (const { label, be } of backends) {
      const t = measureDecode(be, f.path, steps, 3, timer);
      line([f.label, label, t.tokensPerSecond.toFixed(1), (1000 / t.tokensPerSecond).toFixed(2), (t.linearSeconds * 1000).toFixed(3), (t.classifierSeconds * 1000).toFixed(3)]);
    }
  }
}
