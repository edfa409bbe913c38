/**
 * `npm run bench:slim`: decode tokens/s of bench-llama as fp32, as uniform 2-bit GPTQ (group
 * 128) and as SliM-LLM mixed 2-bit (group 128), measured in one run on one backend, with each
 * file's size and bits per weight. The packed files are made here with the CLI (a small
 * calibration set: speed, not quality, is measured; quality is in docs/slim.md).
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
const MODEL = shared('models/bench-llama/model.bin');
const STEPS = Number(process.env.STEPS ?? 200);

const dir = mkdtempSync(join(tmpdir(), 'bench-slim-'));
try {
  const files: Array<{ label: string; path: string }> = [{ label: 'fp32', path: shared('models/bench-llama') }];
  for (const method of ['gptq', 'slim']) {
    const out = join(dir, `${method}.bcq`);
    const r = spawnSync(process.execPath, [
      CLI, 'quantize', MODEL, '--method', method, '--bits', '2', '--group-size', '128',
      '--calib', shared('data/austen/emma.txt'), '--nsamples', '16', '--seqlen', '256', '--out', out, '--json',
    ], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`quantize ${method} failed: ${r.stderr}`);
    const s = JSON.parse(r.stdout) as { linearBpw: number };
    files.push({ label: `${method} 2-bit g128 (${s.linearBpw.toFixed(3)} bpw in the linears)`, path: out });
  }
  const backend = createBackend();
  try {
    console.log(`bench-llama decode, ${STEPS} greedy steps from BOS, backend ${backend.name} × ${backend.threads} threads`);
    for (const f of files) {
      const rate = benchDecodeTokensPerSecond(backend, STEPS, f.path);
      const size = f.label === 'fp32' ? '' : `  ${(statSync(f.path).size / 1e6).toFixed(2)} MB`;
      console.log(`  ${f.label.padEnd(44)} ${rate.toFixed(1).padStart(8)} tok/s${size}`);
    }
  } finally {
    backend.dispose();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
