/**
 * `npm run bench:int8-ppl`: what the native kernels' int8 activations cost in quality. Packed
 * RTN files of stories260K (per-channel: its widths 64 and 172 are not whole 128-column blocks)
 * and bench-llama (group 128) are made with the CLI in a temp dir, then scored on heldout text
 * token by token (maxRows 1, so every linear runs its decode matvec) twice: on the native
 * backend's int8-activation kernels and with the packed layers on the wasm kernels with float
 * activations (`floatActivations`: the reference kernels' arithmetic). Prints both perplexities and the change.
 * Also a BiLLM file of stories260K (binary-billm, whose native kernels use int8 activations too).
 * `--prefill`: score whole windows instead (maxRows = window length, so the linears run matmul:
 * the native int8 GEMM of the uniform files) against the same backend with `int8Prefill` off
 * (dequantized tiles + sgemm: W·x exactly); the BiLLM file runs the binary GEMM there (AVX-512 VNNI).
 * Options: --windows N (bench-llama windows, default 40; stories260K scores all 386), --only
 * PREFIX (runs whose `model-methodBITS` starts with it: stories260K, stories260K-billm, bench-llama-rtn2), --json.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { perplexityOfText } from '../src/eval/perplexity.js';
import { createWasmBackendNode } from '../src/node/backend.js';
import { loadModel } from '../src/node/index.js';
import { loadNativeBackend } from '../src/node/native.js';
import { shared } from './suite.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const args = process.argv.slice(2);
const json = args.includes('--json');
const wi = args.indexOf('--windows');
const benchWindows = wi >= 0 ? Number(args[wi + 1]) : 40;
const dir = join(tmpdir(), 'bitcrush-int8-ppl');
const log = (s: string) => (json ? process.stderr.write(`${s}\n`) : console.log(s));

const prefillMode = args.includes('--prefill');
const only = args.includes('--only') ? args[args.indexOf('--only') + 1]! : undefined;
const RUNS: Array<{ model: string; bits: number; group: number; seqlen: number; windows: number | undefined; method?: string }> = [
  { model: 'stories260K/stories260K.bin', bits: 8, group: 0, seqlen: 256, windows: undefined as number | undefined },
  { model: 'stories260K/stories260K.bin', bits: 4, group: 0, seqlen: 256, windows: undefined },
  { model: 'stories260K/stories260K.bin', bits: 3, group: 0, seqlen: 256, windows: undefined },
  { model: 'bench-llama', bits: 4, group: 128, seqlen: 256, windows: benchWindows },
  { model: 'bench-llama', bits: 3, group: 128, seqlen: 256, windows: benchWindows },
  { model: 'bench-llama', bits: 2, group: 128, seqlen: 256, windows: benchWindows },
  // BiLLM (binary-billm, block 128): the native kernels' int8 activations on non-salient columns
  { model: 'stories260K/stories260K.bin', bits: 1, group: 128, seqlen: 256, windows: undefined, method: 'billm' },
].filter((r) => !only || `${r.model.split('/')[0]}-${r.method ?? 'rtn'}${r.bits}`.startsWith(only));

mkdirSync(dir, { recursive: true });
const text = readFileSync(shared('data/tinystories/heldout.txt'), 'utf8');
const rows = [];
for (const r of RUNS) {
  const method = r.method ?? 'rtn';
  const name = `${r.model.split('/')[0]}-${method}${r.bits}-g${r.group}.bcq`;
  const out = join(dir, name);
  if (!existsSync(out)) {
    // BiLLM calibrates on the TinyStories calibration text (its default window settings)
    const how = method === 'rtn' ? ['--bits', String(r.bits), '--group-size', String(r.group)] : ['--block-size', String(r.group), '--calib', shared('data/tinystories/calib.txt')];
    const q = spawnSync(process.execPath, [CLI, 'quantize', shared(`models/${r.model}`), '--method', method, ...how, '--out', out], { encoding: 'utf8' });
    if (q.status !== 0) throw new Error(`quantize ${name} failed:\n${q.stderr}`);
  }
  const ppl = (lowbit: boolean) => {
    // --prefill: both runs on the native kernels, the reference with int8Prefill off (exact tiles)
    const be = prefillMode
      ? loadNativeBackend(1, () => createWasmBackendNode(1)).backend!
      : loadNativeBackend(1, () => createWasmBackendNode(1), { lowbit, floatActivations: !lowbit }).backend!;
    // the float run of decode mode has no lowbit kernels (lowbit: false)
    const int8Default = be.lowbit?.int8Prefill;
    if (prefillMode) be.lowbit!.int8Prefill = lowbit;
    const { model, tokenizer, dispose } = loadModel(out, { backend: be, maxRows: prefillMode ? r.seqlen : 1 });
    try {
      return perplexityOfText(model, tokenizer, text, { seqLen: r.seqlen, maxWindows: r.windows }).ppl;
    } finally {
      if (be.lowbit) be.lowbit.int8Prefill = int8Default!;
      dispose();
      be.dispose();
    }
  };
  const int8 = ppl(true);
  const float = ppl(false);
  const row = { path: prefillMode ? 'prefill (matmul)' : 'decode (matvec)', model: r.model.split('/')[0], method, bits: r.bits, group: r.group || 'channel', windows: r.windows ?? 'all', floatPpl: float, int8Ppl: int8, changePct: (100 * (int8 - float)) / float };
  rows.push(row);
  log(`${row.model} ${method.toUpperCase()} ${r.bits}-bit g${row.group}, ${row.windows} windows: float activations ${float.toFixed(4)}, int8 activations ${int8.toFixed(4)} (${row.changePct >= 0 ? '+' : ''}${row.changePct.toFixed(3)} %)`);
}
if (json) console.log(JSON.stringify(rows, null, 2));
