/**
 * Decode tokens/s of packed files side by side in one run (e.g. the same GPTQ 2-bit bench-llama
 * blocks with a float32 vs a 4-bit embedding/head): greedy from BOS, best of `--repeat` runs per
 * file, interleaved so machine load hits every file alike; prints the load average and the
 * bytes each decoded token reads from the weights (packed tensors + the float ones outside
 * the embedding, which is one row per token).
 * Usage: node dist/bench/whole-decode.js [--steps 128] [--repeat 3] [--backend auto] <file>...
 */
import { loadavg } from 'node:os';
import { createBackend, type BackendKind } from '../src/node/backend.js';
import { FileSource } from '../src/node/fs.js';
import { PackedModel } from '../src/packed/reader.js';
import { sizeReport } from '../src/packed/size.js';
import { statSync } from 'node:fs';
import { benchDecodeTokensPerSecond } from './decode.js';

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(name);
  if (i < 0) return def;
  const v = args[i + 1]!;
  args.splice(i, 2);
  return v;
};
const steps = Number(opt('--steps', '128'));
const repeat = Number(opt('--repeat', '3'));
const backend = createBackend({ kind: opt('--backend', 'auto') as BackendKind });
const files = args;
if (files.length === 0) throw new Error('usage: whole-decode.js [--steps N] [--repeat N] [--backend kind] <packed file>...');

const best = new Map<string, number>();
for (let r = 0; r < repeat; r++) {
  for (const f of files) best.set(f, Math.max(best.get(f) ?? 0, benchDecodeTokensPerSecond(backend, steps, f)));
}
console.log(`backend ${backend.name}; ${steps} greedy steps from BOS, best of ${repeat}; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log('| file | MB | bpw (all weights) | MB read per token | decode tok/s | ÷ first |');
console.log('|---|---:|---:|---:|---:|---:|');
const first = best.get(files[0]!)!;
for (const f of files) {
  const src = new FileSource(f);
  const h = new PackedModel(src).header;
  src.close();
  const s = sizeReport(h, statSync(f).size);
  // every tensor is read whole per token except the embedding, of which one row is gathered (a tied one is the head too)
  const emb = s.roles.embedding;
  const perToken = s.roles.blockLinears.bytes + s.roles.head.bytes + s.roles.other.bytes + (s.tied === 'one tensor' ? emb.bytes : emb.bytes / h.config.vocabSize);
  console.log(`| ${f} | ${(s.fileBytes / 1e6).toFixed(2)} | ${s.bpw.toFixed(3)} | ${(perToken / 1e6).toFixed(2)} | ${best.get(f)!.toFixed(1)} | ${(best.get(f)! / first).toFixed(2)} |`);
}
backend.dispose();
