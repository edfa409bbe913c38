/**
 * Speed of the binary-billm kernels (part of `npm run bench:binary`; alone:
 * `npm run bench:binary -- speed [file.bcq]`), on the default backend (native with the wasm
 * row kernels it lends, else wasm), wall clock:
 *  1. decode matvec µs/call of dense fp32 (backend.gemv) vs the binary TypeScript kernel
 *     (subset-sum table, one thread) vs the binary wasm kernel (the same table in wasm SIMD,
 *     rows on the pool's threads) at [4096,4096], [768,256], [256,768]; random binary tensors
 *     with blocks of 128 and SALIENT_FRACTION of the columns salient;
 *  2. greedy decode tokens/s of bench-llama fp32 vs its packed BiLLM file (wasm kernels, and
 *     the TypeScript kernels), with the time per token spent in the block linears and in the
 *     32000×256 float32 classifier (which every file keeps, and which dominates a decode step
 *     of this model), each measured inside the decode. Without a file argument the BiLLM file
 *     is made with `bitcrush quantize --method billm` at the model README's calibration
 *     (austen/emma.txt, 128×256) into a temp dir.
 * Medians of batches after a warm-up; on a shared machine the numbers are noisy.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rowKernelsOf, type Backend } from '../src/backend/types.js';
import { binaryFormat, type BinaryParams } from '../src/formats/binary.js';
import { BinaryTsKernels } from '../src/formats/binary-linear.js';
import { BinaryWasmKernels } from '../src/formats/binary-wasm.js';
import type { PackedTensor } from '../src/formats/types.js';
import { BufferSource } from '../src/io/bytes.js';
import { findTokenizer, openModel } from '../src/io/load.js';
import type { ModelSource } from '../src/model/weights.js';
import { nodeFs } from '../src/node/fs.js';
import { PackedModel } from '../src/packed/reader.js';
import { mulberry32 } from '../src/quant/random.js';
import { DenseLinear, type LinearFactory } from '../src/runtime/dense.js';
import type { Linear } from '../src/runtime/linear.js';
import { LlamaModel } from '../src/runtime/model.js';
import { argmax } from '../src/runtime/sampler.js';
import { medianSeconds } from './timing.js';

/** Salient columns BiLLM chose on bench-llama at blocks of 128 (its 3.05 bpw − 2 planes − 0.875 scales). */
const SALIENT_FRACTION = 0.17;
const SHAPES: Array<[number, number]> = [[4096, 4096], [768, 256], [256, 768]];
const shared = (p: string) => fileURLToPath(new URL(`../../../shared/${p}`, import.meta.url));
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const MODEL = shared('models/bench-llama');

const time = (fn: () => void) => medianSeconds(fn, { minBatchMs: 100, batches: 5 });
const us = (s: number) => (s * 1e6).toFixed(1);

/** µs per matvec of the three kernels at one shape. */
function kernelRow(be: Backend, n: number, k: number): string {
  const rand = mulberry32(n + k);
  const params: BinaryParams = { blockSize: 128, salientColumns: Math.round(SALIENT_FRACTION * k) };
  const t = binaryFormat.pack(binaryFormat.randomPayload(n, k, params, rand));
  const x = be.alloc(k);
  const y = be.alloc(n);
  for (let i = 0; i < k; i++) x[i] = rand() - 0.5;
  const dense = new DenseLinear(be, binaryFormat.dequantize(t), n, k);
  const ts = new BinaryTsKernels(t, be);
  const wasm = new BinaryWasmKernels(t, rowKernelsOf(be)!, be);
  const [d, s, w] = [dense, ts, wasm].map((lin) => time(() => lin.matvec(y, x)));
  for (const lin of [dense, ts, wasm]) lin.dispose?.();
  be.free?.(x);
  be.free?.(y);
  return `| ${n}×${k} | ${us(d!)} | ${us(s!)} (${(d! / s!).toFixed(2)}×) | ${us(w!)} (${(d! / w!).toFixed(2)}×) |`;
}

/** A Linear that adds the wall time of its calls to a counter (decode profile). */
class Timed implements Linear {
  readonly outDim: number;
  readonly inDim: number;
  constructor(
    private readonly inner: Linear,
    private readonly total: { seconds: number },
  ) {
    this.outDim = inner.outDim;
    this.inDim = inner.inDim;
  }
  matvec(y: Float32Array, x: Float32Array): void {
    const t = performance.now();
    this.inner.matvec(y, x);
    this.total.seconds += (performance.now() - t) / 1000;
  }
  matmul(y: Float32Array, x: Float32Array, rows: number): void {
    const t = performance.now();
    this.inner.matmul(y, x, rows);
    this.total.seconds += (performance.now() - t) / 1000;
  }
  dispose(): void {
    this.inner.dispose?.();
  }
}

interface DecodeProfile {
  tokensPerSecond: number;
  /** Seconds per token in the block linears, and in the classifier, measured inside the decode. */
  blockLinears: number;
  classifier: number;
}

/**
 * Greedy decode from BOS with every linear timed where it runs: in a real decode step the
 * float32 weights (27 MB of block linears, 33 MB of classifier) come from memory, not from a
 * cache warmed by repeating one layer, so the per-layer share is measured in place.
 */
function decodeProfile(src: ModelSource, be: Backend, make: LinearFactory, bosId: number, steps: number): DecodeProfile {
  const block = { seconds: 0 };
  const head = { seconds: 0 };
  const model = new LlamaModel(src, { backend: be, linear: (name, s) => new Timed(make(name, s), name.startsWith('model.layers.') ? block : head) });
  const run = (n: number) => {
    let token = bosId;
    for (let pos = 0; pos < n; pos++) token = argmax(model.forward([token], pos, 'last'));
  };
  run(8); // warm-up: JIT and first touch of the weights
  block.seconds = head.seconds = 0;
  const t0 = performance.now();
  run(steps);
  const seconds = (performance.now() - t0) / 1000;
  return { tokensPerSecond: steps / seconds, blockLinears: block.seconds / steps, classifier: head.seconds / steps };
}

/** A BiLLM file of bench-llama at the README's calibration, made by the CLI into `dir`. */
function makeBillmFile(dir: string): string {
  const file = join(dir, 'bench-llama-billm.bcq');
  const args = [CLI, 'quantize', MODEL, '--method', 'billm', '--block-size', '128', '--calib', shared('data/austen/emma.txt'), '--nsamples', '128', '--seqlen', '256', '--out', file];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`bitcrush quantize --method billm failed:\n${r.stderr}`);
  return file;
}

/** Prints both parts; `billm`: a packed BiLLM file of bench-llama (path or bytes), or undefined to make one. */
export function binarySpeed(be: Backend, billm?: string | Uint8Array, steps = 200): void {
  if (!rowKernelsOf(be)) throw new Error(`the ${be.name} backend has no row kernels: the wasm binary kernel cannot run`);
  console.log(`\nbinary-billm decode matvec, µs per call (× = speed relative to fp32); ${be.name} backend, ${be.threads} thread(s); shared machine, noisy`);
  console.log('| shape | fp32 gemv | binary TypeScript | binary wasm |');
  console.log('|---|---|---|---|');
  for (const [n, k] of SHAPES) console.log(kernelRow(be, n, k));

  const dir = billm === undefined ? mkdtempSync(join(tmpdir(), 'bitcrush-bench-binary-')) : undefined;
  try {
    // a plain Uint8Array copy: SafetensorsFile's aligned copies use slice(), which on a Node
    // Buffer is a view (the float32 tensors would then be read from the file's first bytes)
    const bytes = billm instanceof Uint8Array && !Buffer.isBuffer(billm) ? billm : new Uint8Array(billm instanceof Uint8Array ? billm : readFileSync(billm ?? makeBillmFile(dir!)));
    const what = typeof billm === 'string' ? billm : billm ? 'the BiLLM file of this run' : 'bitcrush quantize --method billm';
    const file = new PackedModel(new BufferSource('billm.bcq', bytes));
    const source = openModel(MODEL, nodeFs);
    const bos = findTokenizer(MODEL, nodeFs).bosId ?? 0;
    const ts: LinearFactory = (name) => (file.isPacked(name) ? new BinaryTsKernels(file.packed(name) as PackedTensor<BinaryParams>, be) : file.linearFor(name, be));
    const dense: LinearFactory = (name, s) => {
      const [o, i] = s.tensors().find((t) => t.name === name)!.shape as [number, number];
      return new DenseLinear(be, s.load(name), o, i);
    };
    const runs: Array<[string, DecodeProfile]> = [
      ['fp32', decodeProfile(source, be, dense, bos, steps)],
      ['BiLLM file, wasm kernel', decodeProfile(file, be, file.linears(be), bos, steps)],
      ['BiLLM file, TypeScript kernel', decodeProfile(file, be, ts, bos, steps)],
    ];
    console.log(`\nbench-llama decode, greedy ${steps} tokens from BOS (BiLLM file: ${what}); linears timed in place:`);
    console.log('| weights | decode tok/s | block linears ms/token | block linears alone, tok/s | classifier ms/token |');
    console.log('|---|---|---|---|---|');
    for (const [label, p] of runs) {
      console.log(`| ${label} | ${p.tokensPerSecond.toFixed(1)} | ${(p.blockLinears * 1e3).toFixed(2)} | ${(1 / p.blockLinears).toFixed(0)} | ${(p.classifier * 1e3).toFixed(2)} |`);
    }
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

// run alone: node dist/bench/binary-speed.js [file.bcq]
if (import.meta.url === `file://${process.argv[1]}`) {
  const { createBackend } = await import('../src/node/backend.js');
  const be = createBackend();
  binarySpeed(be, process.argv[2]);
  be.dispose();
}
