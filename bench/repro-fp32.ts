/**
 * Reproduces the fp32 reference perplexities of ../shared/models/bench-llama/README.md with
 * bitcrush's own forward pass, from both copies of the weights (HF directory and llama2.c
 * model.bin), and prints them side by side with the README's values.
 *
 *   npm run repro:fp32              held-out TinyStories (205 windows), both formats
 *   npm run repro:fp32 -- --all     also persuasion.txt (481) and WikiText-2 (1,333)
 *   options: --backend auto|native|wasm|reference, --threads N
 *
 * Exits 1 when a perplexity is more than 0.1 % from the README's or a token count differs.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { perplexityOfText } from '../src/eval/perplexity.js';
import { createBackend, type BackendKind } from '../src/node/backend.js';
import { loadModel } from '../src/node/index.js';

const shared = (p: string) => fileURLToPath(new URL(`../../../shared/${p}`, import.meta.url));
const TOLERANCE = 1e-3;

const args = process.argv.slice(2);
const flag = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const backend = createBackend({ kind: (flag('--backend') ?? 'auto') as BackendKind, threads: Number(flag('--threads') ?? availableParallelism()) });

interface Reference {
  text: string; // path under ../shared
  tokens: number;
  windows: number;
  ppl: number;
}

/** The README's table: | `data/…` | tokens (with BOS) | windows | fp32 PPL | */
function readReferences(): Reference[] {
  const readme = readFileSync(shared('models/bench-llama/README.md'), 'utf8');
  const refs: Reference[] = [];
  for (const line of readme.split('\n')) {
    const m = /^\|\s*`(data\/[^`]+)`[^|]*\|\s*([\d,]+)\s*\|\s*([\d,]+)\s*\|\s*([\d.]+)\s*\|\s*$/.exec(line);
    if (m) refs.push({ text: m[1]!, tokens: Number(m[2]!.replace(/,/g, '')), windows: Number(m[3]!.replace(/,/g, '')), ppl: Number(m[4]) });
  }
  if (refs.length === 0) throw new Error('no reference table found in bench-llama/README.md');
  return refs;
}

// shortest text first, so the quick result comes early
const refs = readReferences()
  .filter((r) => args.includes('--all') || r.text.includes('tinystories'))
  .sort((a, b) => a.windows - b.windows);
const formats = [
  { name: 'HF dir', path: shared('models/bench-llama') },
  { name: 'model.bin', path: shared('models/bench-llama/model.bin') },
];
console.log(`backend ${backend.name}, ${backend.threads} threads; seqlen 256; tolerance ${TOLERANCE * 100} %`);
console.log(['text'.padEnd(32), 'weights'.padEnd(10), 'tokens'.padStart(8), 'windows'.padStart(8), 'ppl'.padStart(10), 'README'.padStart(10), 'diff'.padStart(9), 'time'.padStart(8)].join(' '));
let ok = true;
for (const ref of refs) {
  const text = readFileSync(shared(ref.text), 'utf8');
  for (const f of formats) {
    const { model, tokenizer, dispose } = loadModel(f.path, { backend });
    const t0 = performance.now();
    const r = perplexityOfText(model, tokenizer, text, { seqLen: 256 });
    const seconds = (performance.now() - t0) / 1000;
    dispose();
    const diff = r.ppl / ref.ppl - 1;
    const good = Math.abs(diff) <= TOLERANCE && r.tokens === ref.tokens && r.windows === ref.windows;
    ok &&= good;
    console.log(
      [ref.text.padEnd(32), f.name.padEnd(10), String(r.tokens).padStart(8), String(r.windows).padStart(8), r.ppl.toFixed(4).padStart(10),
        ref.ppl.toFixed(4).padStart(10), `${(diff * 100).toFixed(4)}%`.padStart(9), `${seconds.toFixed(0)}s`.padStart(8), good ? '' : ' MISMATCH'].join(' '),
    );
  }
}
backend.dispose();
process.exitCode = ok ? 0 : 1;
