/**
 * AQLM benchmark (`npm run bench:aqlm`): `bitcrush quantize` with AQLM schemes (bench-llama: with
 * and without block fine-tuning) next to GPTQ at similar bits per weight, each row: heldout
 * perplexity of the packed file, linear bpw (codes, codebooks and scales all counted), file size,
 * quantize time and where AQLM's time went; then decode tokens/s of the
 * AQLM 2x8 file vs fp32 and GPTQ 2-bit in one run on one backend.
 *   bench-llama: calibration emma.txt 128 × 256 (its README), eval tinystories/heldout.txt,
 *     seqlen 256 (205 windows; WikiText-2's 1,333 windows are too slow on 2 shared cores).
 *   stories260K: calibration tinystories/calib.txt 128 × 256, eval heldout.txt, seqlen 256.
 * Options: --model bench-llama|stories260K|both (default both), --only LABEL[,LABEL] (rows
 * whose label contains one of these), --windows N (evaluate the first N windows only; default
 * all), --no-decode, --keep. Timings on a shared machine are noisy.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backend } from '../src/backend/types.js';
import { perplexity } from '../src/eval/perplexity.js';
import { createBackend } from '../src/node/backend.js';
import { loadModel } from '../src/node/index.js';
import { benchDecodeTokensPerSecond } from './decode.js';

const shared = (p: string) => fileURLToPath(new URL(`../../../shared/${p}`, import.meta.url));
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

const args = process.argv.slice(2);
const opt = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const which = opt('--model') ?? 'both';
const only = opt('--only')?.split(',');
const windows = opt('--windows') === undefined ? undefined : Number(opt('--windows'));
const dir = mkdtempSync(join(tmpdir(), 'bitcrush-bench-aqlm-'));

interface Row { label: string; method: string; flags: string[] }
interface ModelBench { name: string; model: string; modelFile: string; calib: string; eval: string; rows: Row[] }

const aq = (scheme: string, g: number, extra: string[] = []): Row => ({
  label: `AQLM ${scheme} g${g}${extra.length ? ` (${extra.join(' ')})` : ''}`,
  method: 'aqlm',
  flags: ['--scheme', scheme, '--group-size', String(g), ...extra],
});
/**
 * Block fine-tuning as run for docs/aqlm.md: 3 epochs at most on the first 32 calibration windows
 * (29 train, 3 held out) — all 128 would take ~4× longer on 2 shared cores.
 */
const FT = ['--finetune-epochs', '3', '--finetune-windows', '32'];
/** Global fine-tuning as measured in docs/aqlm.md: 10 epochs (finetune.py's default) at the default lr 1e-3. */
const GFT = ['--global-finetune-epochs', '10'];
const gq = (bits: number, g: number): Row => ({ label: `GPTQ ${bits}-bit g${g}`, method: 'gptq', flags: ['--bits', String(bits), '--group-size', String(g)] });

const BENCHES: ModelBench[] = [
  {
    name: 'bench-llama',
    model: shared('models/bench-llama'),
    modelFile: shared('models/bench-llama/model.safetensors'),
    calib: shared('data/austen/emma.txt'),
    eval: shared('data/tinystories/heldout.txt'),
    rows: [
      gq(2, 128), aq('1x8', 8), aq('1x8', 8, FT), aq('2x8', 8), aq('2x8', 8, FT), gq(3, 128),
      // 65,536 codewords: more than any layer here has groups, so the k-means init gives every group
      // its own codeword (exact up to float16); no epochs (a beam step scans 65,536 candidates per row)
      aq('1x16', 8, ['--max-epochs', '0']),
    ],
  },
  {
    name: 'stories260K',
    model: shared('models/stories260K/stories260K.bin'),
    modelFile: shared('models/stories260K/stories260K.bin'),
    calib: shared('data/tinystories/calib.txt'),
    eval: shared('data/tinystories/heldout.txt'),
    rows: [aq('1x4', 4), aq('2x4', 4), gq(2, 32), gq(3, 32), aq('3x4', 4), aq('1x4', 4, GFT), aq('2x4', 4, GFT)],
  },
];

interface Result { label: string; file: string; ppl: number; bpw: number; bytes: number; seconds: number; split: string }

/** Perplexity of a model file (fp32 or packed) on the bench's eval text, seqlen 256, in this process. */
function evaluate(backend: Backend, path: string, text: string): number {
  const { model, tokenizer, dispose } = loadModel(path, { backend });
  try {
    return perplexity(model, tokenizer.encode(readFileSync(text, 'utf8'), true), { seqLen: 256, maxWindows: windows }).ppl;
  } finally {
    dispose();
  }
}

function quantize(b: ModelBench, row: Row, backend: Backend): Result {
  const file = join(dir, `${b.name}-${row.label.replace(/[^A-Za-z0-9]+/g, '_')}.bcq`);
  const r = spawnSync(process.execPath, [
    CLI, 'quantize', b.model, '--method', row.method, ...row.flags,
    '--calib', b.calib, '--nsamples', '128', '--seqlen', '256', '--out', file,
    '--json',
  ], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${b.name} ${row.label} failed:\n${r.stderr}`);
  const s = JSON.parse(r.stdout) as {
    quantizeSeconds: number; linearBpw: number; fileBytes: number;
    layers: Array<{ stats: Record<string, number> }>;
  };
  // where AQLM's time goes, summed over the linears (init = k-means, adam = codebooks, beam = codes)
  const sum = (k: string) => s.layers.reduce((a, l) => a + (l.stats[k] ?? 0), 0);
  const epochs = s.layers.reduce((a, l) => a + (l.stats.epochs ?? 0), 0) / s.layers.length;
  // fine-tuning stats are per block, repeated on its 7 linears
  const ft = sum('ftSeconds') / 7;
  const split = row.method === 'aqlm'
    ? `layers ${sum('seconds').toFixed(1)} s = k-means ${sum('initSeconds').toFixed(1)} + Adam ${sum('adamSeconds').toFixed(1)} + beam ${sum('beamSeconds').toFixed(1)}; ${epochs.toFixed(1)} epochs/layer${ft > 0 ? `; block fine-tuning ${ft.toFixed(1)} s` : ''}`
    : `layers ${sum('seconds').toFixed(1)} s`;
  return { label: row.label, file, ppl: evaluate(backend, file, b.eval), bpw: s.linearBpw, bytes: s.fileBytes, seconds: s.quantizeSeconds, split };
}

const results = new Map<string, Result[]>();
const backend = createBackend();
try {
  for (const b of BENCHES) {
    if (which !== 'both' && which !== b.name) continue;
    const rows = b.rows.filter((r) => only === undefined || only.some((o) => r.label.includes(o)));
    console.log(`\n${b.name}: calibration ${b.calib.split('/').pop()} 128 × 256, perplexity on ${b.eval.split('/').pop()} (seqlen 256, ${windows ?? 'all'} windows; ${backend.name})`);
    console.log(`  ${'weights'.padEnd(44)} ${'PPL'.padStart(9)} ${'linear bpw'.padStart(10)} ${'file MB'.padStart(8)} ${'quantize s'.padStart(10)}`);
    const out: Result[] = [];
    const fp32 = evaluate(backend, b.model, b.eval);
    console.log(`  ${'fp32'.padEnd(44)} ${fp32.toFixed(4).padStart(9)} ${'32'.padStart(10)} ${(statSync(b.modelFile).size / 1e6).toFixed(3).padStart(8)} ${'-'.padStart(10)}`);
    for (const row of rows) {
      const r = quantize(b, row, backend);
      console.log(`  ${r.label.padEnd(44)} ${r.ppl.toFixed(4).padStart(9)} ${r.bpw.toFixed(3).padStart(10)} ${(r.bytes / 1e6).toFixed(3).padStart(8)} ${r.seconds.toFixed(1).padStart(10)}   ${r.split}`);
      out.push(r);
    }
    results.set(b.name, out);
  }

  const llama = results.get('bench-llama') ?? [];
  const gptq2 = llama.find((r) => r.label.startsWith('GPTQ 2-bit'));
  const aqlm2x8 = llama.find((r) => r.label.startsWith('AQLM 2x8'));
  if (!args.includes('--no-decode') && gptq2 && aqlm2x8) {
    const tokens = 200;
    console.log(`\ndecode on bench-llama, greedy, ${tokens} tokens (${backend.name}, ${backend.threads} threads):`);
    for (const f of [{ label: 'fp32', file: shared('models/bench-llama') }, gptq2, aqlm2x8]) {
      console.log(`  ${f.label.padEnd(20)} ${benchDecodeTokensPerSecond(backend, tokens, f.file).toFixed(1).padStart(8)} tokens/s`);
    }
  }
} finally {
  backend.dispose();
  if (args.includes('--keep')) console.log(`packed files kept in ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}
