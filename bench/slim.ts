/**
 * `npm run bench:slim`: decode tokens/s of bench-llama as fp32, as uniform 2-bit GPTQ (group
 * 128) and as SliM-LLM mixed 2-bit (group 128), measured in one run on the default backend,
 * with the linear layers' and the classifier's time per token. The same comparison code as
 * `npm run bench:lowbit` (bench/decode-compare.ts), which adds AQLM 2x8 and the per-kernel
 * tables; the packed files are made here with the CLI at quick settings (speed, not quality,
 * is measured; quality is in docs/slim.md). STEPS=N sets the decode steps (default 200).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createBackend } from '../src/node/backend.js';
import { benchFiles, printDecodeTable } from './decode-compare.js';

const STEPS = Number(process.env.STEPS ?? 200);

const dir = mkdtempSync(join(tmpdir(), 'bench-slim-'));
const backend = createBackend();
try {
  console.log(`bitcrush bench:slim — backend ${backend.name} × ${backend.threads} threads; shared machine, timings are noisy`);
  printDecodeTable([{ label: backend.name, be: backend }], benchFiles(dir, ['gptq2', 'slim2']), STEPS);
} finally {
  backend.dispose();
  rmSync(dir, { recursive: true, force: true });
}
