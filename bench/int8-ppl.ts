/**
 * `npm run bench:int8-ppl`: what the native kernels' int8 activations cost in quality. Packed
 * RTN files of stories260K (per-channel: its widths 64 and 172 are not whole 128-column blocks)
 * and bench-llama (group 128) are made with the CLI in a temp dir, then scored on heldout text
 * token by token (maxRows 1, so every linear runs its decode matvec) twice: on the native
 * backend's int8-activation kernels and with the packed layers on the wasm kernels with float
 * activations (`floatActivations`: the reference kernels' arithmetic). Prints both perplexities and the change.
 * Also a BiLLM file of stories260K (binary-billm, whose native kernels use int8 activations too)
 * and an AQLM 2x8 g4 one (the native kernels' int8 lookup tables, native/codebook-lut8.c).
 * `--prefill`: score whole windows instead (maxRows = window length, so the linears run matmul:
 * the native int8 GEMM of the uniform files) against the same backend with `int8Prefill` off
 * (dequantized tiles + sgemm: W·x exactly; AQLM: the int8-table GEMM against the same tiles); the
 * BiLLM file runs the binary GEMM there (AVX-512 VNNI).
 * Options: --windows N (bench-llama windows, default 40; stories260K scores all 386), --only
 * PREFIX (runs whose `model-methodBITS-gGROUP` starts with it, group 0 = per channel: stories260K,
 * stories260K-billm, stories260K-aqlm8, bench-llama-rtn2, stories260K-rtn4-g32), --json.
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
  // groups of 32 columns (GGUF Q4_0 / Q8_0, `--group-size 32`): several weight groups per int8 activation block
  { model: 'stories260K/stories260K.bin', bits: 8, group: 32, seqlen: 256, windows: undefined },
  { model: 'stories260K/stories260K.bin', bits: 4, group: 32, seqlen: 256, windows: undefined },
  { model: 'bench-llama', bits: 4, group: 32, seqlen: 256, windows: benchWindows },
  { model: 'bench-llama', bits: 4, group: 128, seqlen: 256, windows: benchWindows },
  { model: 'bench-llama', bits: 3, group: 128, seqlen: 256, windows: benchWindows },
  { model: 'bench-llama', bits: 2, group: 128, seqlen: 256, windows: benchWindows },
  // BiLLM (binary-billm, block 128): the native kernels' int8 activations on non-salient columns
  { model: 'stories260K/stories260K.bin', bits: 1, group: 128, seqlen: 256, windows: undefined, method: 'billm' },
  // AQLM 2x8 g4 (g4: stories260K's 172-wide down_proj input), quick codebooks (2 epochs, 32
  // windows): the native int8 lookup tables against the wasm kernels' float tables
  { model: 'stories260K/stories260K.bin', bits: 8, group: 4, seqlen: 256, windows: undefined, method: 'aqlm' },
].filter((r) => (!only || `${r.model.split('/')[0]}-${r.method ?? 'rtn'}${r.bits}-g${r.group}`.startsWith(only)));

mkdirSync(dir, { recursive: true });
const text = readFileSync(shared('data/tinystories/heldout.txt'), 'utf8');
const rows = [];
for (const r of RUNS) {
  const method = r.method ?? 'rtn';
  const name = `${r.model.split('/')[0]}-${method}${r.bits}-g${r.group}.bcq`;
  const out = join(dir, name);
  if (!existsSync(out)) {
    // BiLLM calibrates on the TinyStories calibration text (its default window settings)
    const calib = shared('data/tinystories/calib.txt');
    const how =
      method === 'rtn' ? ['--bits', String(r.bits), '--group-size', String(r.group)]
      : method === 'aqlm' ? ['--scheme', `2x${r.bits}`, '--group-size', String(r.group), '--max-epochs', '2', '--calib', calib, '--nsamples', '32', '--seqlen', '256', '--seed', '1']
      : ['--block-size', String(r.group), '--calib', calib];
    const q = spawnSync(process.execPath, [CLI, 'quantize', shared(`models/${r.model}`), '--method', method, ...how, '--out', out], { encoding: 'utf8' });
    if (q.status !== 0) throw new Error(`quantize ${name} failed:\n${q.stderr}`);
  }
  const ppl = (lowbit: boolean) => {
    // --prefill: both runs on the native kernels, the reference with int8Prefill off (exact tiles)
    const be = prefillMode
      ? loadNativeBackend(1, () => createWasmBackendNode(1)).backend!
      : loadNativeBackend(1, () => createWasmBackendNode(1), { lowbit, floatActivations: !lowbit }).backend!;
    // the float-activation run hides the addon's low-bit kernels (be.lowbit undefined)
    const k = be.lowbit;
    const int8Default = k?.int8Prefill;
    if (prefillMode) k!.int8Prefill = lowbit;
    const { model, tokenizer, dispose } = loadModel(out, { backend: be, maxRows: prefillMode ? r.seqlen : 1 });
    try {
      return perplexityOfText(model, tokenizer, text, { seqLen: r.seqlen, maxWindows: r.windows }).ppl;
    } finally {
      if (k) k.int8Prefill = int8Default!;
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
