/**
 * Perplexity of several model files (float or packed) on one text, tokenized once, with the
 * protocol of `bitcrush eval` (src/eval/perplexity.ts): `node dist/bench/ppl.js --text <file>
 * --seqlen N [--max-windows N] <model>...`. Used for the bench-llama table of
 * docs/quantization.md, where tokenizing WikiText-2 once per model would dominate the run.
 */
import { readFileSync } from 'node:fs';
import { perplexity } from '../src/eval/perplexity.js';
import { createBackend } from '../src/node/backend.js';
import { loadModel } from '../src/node/index.js';

const args = process.argv.slice(2);
const take = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args.splice(i, 2)[1] : undefined;
};
const textPath = take('--text');
const seqLen = Number(take('--seqlen') ?? 256);
const maxWindows = take('--max-windows');
if (textPath === undefined || args.length === 0) throw new Error('usage: ppl.js --text <file> --seqlen N [--max-windows N] <model>...');
const backend = createBackend();
let tokens: number[] | undefined;
for (const path of args) {
  const { model, tokenizer, dispose } = loadModel(path, { backend });
  tokens ??= tokenizer.encode(readFileSync(textPath, 'utf8'), true);
  const t0 = performance.now();
  const r = perplexity(model, tokens, { seqLen, maxWindows: maxWindows === undefined ? undefined : Number(maxWindows) });
  console.log(JSON.stringify({ model: path, text: textPath, seqLen, ...r, seconds: (performance.now() - t0) / 1000 }));
  dispose();
}
backend.dispose();
