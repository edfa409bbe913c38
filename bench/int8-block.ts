/**
 * `node dist/bench/int8-block.js [--model stories260K|bench-llama] [--windows N] [--bits 4,8] [--json]`: does the int8 activation
 * need llama.cpp's 32-column blocks at group 32? The native kernels quantize x with one scale per
 * 128 columns (int8-activations.ts) even where weight groups are 32 columns; llama.cpp's Q8_0
 * activations have one per 32. This scores RTN g32 files of the model (default stories260K) (made as bench:int8-ppl
 * makes them, same temp dir) token by token with every packed linear fed x̂ = the int8
 * reference of x at a block of 128 and of 32 columns, on exact float kernels
 * (`floatActivations`), next to float x: the perplexity cost of each block size, one run.
 * The 128 row is what the native kernels compute (they match W·x̂ to float32 rounding), so it
 * should repeat bench:int8-ppl's int8 figure.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { perplexityOfText } from '../src/eval/perplexity.js';
import { int8Activations } from '../src/formats/int8-activations.js';
import { createBackend } from '../src/node/backend.js';
import { loadModel } from '../src/node/index.js';
import { openRunnable } from '../src/node/packed-open.js';
import type { Linear } from '../src/runtime/linear.js';
import type { LinearFactory } from '../src/runtime/dense.js';
import { shared } from './suite.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const args = process.argv.slice(2);
const arg = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : fallback);
const json = args.includes('--json');
const windows = args.includes('--windows') ? Number(arg('--windows', '0')) : undefined;
const bitsList = arg('--bits', '4,8').split(',').map(Number);
const modelName = arg('--model', 'stories260K');
const MODELS: Record<string, string> = { stories260K: 'models/stories260K/stories260K.bin', 'bench-llama': 'models/bench-llama' };
if (!MODELS[modelName]) {
  console.error(`int8-block: --model must be one of ${Object.keys(MODELS).join(', ')}`);
  process.exit(2);
}
const log = (s: string) => (json ? process.stderr.write(`${s}\n`) : console.log(s));
const dir = join(tmpdir(), 'bitcrush-int8-ppl');

/** Every row of x through the int8 reference at `block` columns per scale, then the exact kernel. */
class Int8Input implements Linear {
  constructor(private readonly inner: Linear, private readonly block: number) {}
  get outDim(): number {
    return this.inner.outDim;
  }
  get inDim(): number {
    return this.inner.inDim;
  }
  matvec(y: Float32Array, x: Float32Array): void {
    this.inner.matvec(y, int8Activations(x, this.inDim, null, this.block));
  }
  matmul(y: Float32Array, x: Float32Array, rows: number): void {
    const q = new Float32Array(rows * this.inDim);
    for (let r = 0; r < rows; r++) q.set(int8Activations(x.subarray(r * this.inDim, (r + 1) * this.inDim), this.inDim, null, this.block), r * this.inDim);
    this.inner.matmul(y, q, rows);
  }
  dispose(): void {
    this.inner.dispose?.();
  }
}

mkdirSync(dir, { recursive: true });
const text = readFileSync(shared('data/tinystories/heldout.txt'), 'utf8');
const rows = [];
log(`int8-block — ${modelName} RTN g32, ${windows ?? 'all'} windows of 256, exact float kernels with int8 inputs`);
for (const bits of bitsList) {
  const out = join(dir, `${modelName}-rtn${bits}-g32.bcq`);
  if (!existsSync(out)) {
    const q = spawnSync(process.execPath, [CLI, 'quantize', shared(MODELS[modelName]!), '--method', 'rtn', '--bits', String(bits), '--group-size', '32', '--out', out], { encoding: 'utf8' });
    if (q.status !== 0) throw new Error(`quantize ${out} failed:\n${q.stderr}`);
  }
  const ppl = (block: number | null) => {
    const backend = createBackend({ threads: 1, floatActivations: true });
    // RTN files have no act-order permutation, so stored order = original order (perm null above)
    const packed = openRunnable(out).packed!.linears(backend);
    const linear: LinearFactory = (name, source) => (block === null ? packed(name, source) : new Int8Input(packed(name, source), block));
    const { model, tokenizer, dispose } = loadModel(out, { backend, linear, maxRows: 1 });
    try {
      return perplexityOfText(model, tokenizer, text, { seqLen: 256, maxWindows: windows }).ppl;
    } finally {
      dispose();
      backend.dispose();
    }
  };
  const float = ppl(null), b128 = ppl(128), b32 = ppl(32);
  const pct = (v: number) => (100 * (v - float)) / float;
  const row = { model: modelName, bits, group: 32, windows: windows ?? 'all', floatPpl: float, int8Block128Ppl: b128, int8Block32Ppl: b32, change128Pct: pct(b128), change32Pct: pct(b32) };
  rows.push(row);
  log(`${bits}-bit g32: float ${float.toFixed(4)}, int8 per 128 ${b128.toFixed(4)} (${pct(b128) >= 0 ? '+' : ''}${pct(b128).toFixed(3)} %), int8 per 32 ${b32.toFixed(4)} (${pct(b32) >= 0 ? '+' : ''}${pct(b32).toFixed(3)} %)`);
}
if (json) console.log(JSON.stringify(rows, null, 2));
