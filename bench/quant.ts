/**
 * Quantization benchmark (`npm run bench:quant`): wall time and peak RSS of `bitcrush quantize`
 * with GPTQ 2-bit, group 128, on bench-llama (calibration as its README: emma.txt, 128 × 256),
 * then decode tokens/s of packed 2-, 3- and 4-bit files next to fp32, on one backend in one run.
 * The 3- and 4-bit files are RTN (decode speed depends on the format, not the method).
 * Timings on a shared machine are noisy. Options: --nsamples N (default 128), --tokens N
 * decode tokens (default 200), --keep (keep the packed files, printed at the end).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createBackend } from '../src/node/backend.js';
import { benchDecodeTokensPerSecond } from './decode.js';

const shared = (p: string) => fileURLToPath(new URL(`../../../shared/${p}`, import.meta.url));
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const MODEL = shared('models/bench-llama');
const CALIB = shared('data/austen/emma.txt');

const args = process.argv.slice(2);
const arg = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const nsamples = arg('--nsamples', 128);
const tokens = arg('--tokens', 200);
const dir = mkdtempSync(join(tmpdir(), 'bitcrush-bench-quant-'));

interface QuantizeRun {
  file: string;
  wallSeconds: number;
  quantizeSeconds: number;
  peakRssMiB: number;
  linearBpw: number;
  fileBytes: number;
}

function quantize(method: string, bits: number): QuantizeRun {
  const file = join(dir, `${method}-${bits}.bcq`);
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [
    CLI, 'quantize', MODEL, '--method', method, '--bits', String(bits), '--group-size', '128',
    '--calib', CALIB, '--nsamples', String(nsamples), '--seqlen', '256', '--out', file, '--json',
  ], { encoding: 'utf8', maxBuffer: 1 << 26 });
  const wallSeconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`quantize ${method} ${bits}-bit failed:\n${r.stderr}`);
  const s = JSON.parse(r.stdout) as { quantizeSeconds: number; peakRssMiB: number; linearBpw: number; fileBytes: number };
  return { file, wallSeconds, ...s };
}

try {
  const gptq2 = quantize('gptq', 2);
  console.log(`GPTQ 2-bit g128 on bench-llama (${nsamples} × 256 calibration tokens from emma.txt):`);
  console.log(`  wall ${gptq2.wallSeconds.toFixed(1)} s (process incl. start-up), quantize ${gptq2.quantizeSeconds.toFixed(1)} s, peak RSS ${gptq2.peakRssMiB.toFixed(0)} MiB`);
  const files = [
    { label: 'fp32', path: MODEL, bpw: 32, bytes: statSync(join(MODEL, 'model.safetensors')).size },
    { label: 'GPTQ 2-bit g128', path: gptq2.file, bpw: gptq2.linearBpw, bytes: gptq2.fileBytes },
    ...[3, 4].map((b) => {
      const q = quantize('rtn', b);
      return { label: `RTN ${b}-bit g128`, path: q.file, bpw: q.linearBpw, bytes: q.fileBytes };
    }),
  ];
  const backend = createBackend();
  console.log(`\ndecode, greedy, ${tokens} tokens (${backend.name}, ${backend.threads} threads):`);
  console.log(`  ${'weights'.padEnd(18)} ${'linear bpw'.padStart(10)} ${'file MB'.padStart(8)} ${'tokens/s'.padStart(9)}`);
  for (const f of files) {
    const rate = benchDecodeTokensPerSecond(backend, tokens, f.path);
    console.log(`  ${f.label.padEnd(18)} ${f.bpw.toFixed(3).padStart(10)} ${(f.bytes / 1e6).toFixed(2).padStart(8)} ${rate.toFixed(1).padStart(9)}`);
  }
  backend.dispose();
} finally {
  if (args.includes('--keep')) console.log(`packed files kept in ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}
