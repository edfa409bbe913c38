/**
 * `npm run fuzz -- --cases N --seed S [--workers W] [--spawn-every K] [--target ID…] [--json]`: runs the seeded
 * fuzz suite (runner.ts) and prints a summary table, or the summary as JSON. Exit code 1 when
 * any case misbehaved.
 */
import { Command, InvalidArgumentError } from 'commander';
import { formatSummary, runFuzz } from './runner.js';

const int = (min: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer ≥ ${min}`);
  return n;
};

const program = new Command('fuzz')
  .option('--cases <n>', 'number of cases', int(1), 2000)
  .option('--seed <n>', 'seed of the mutations', int(0), 1)
  .option('--workers <n>', 'worker processes running cases in parallel', int(1), 2)
  .option('--spawn-every <n>', 'also run every n-th case as a real process and compare (0: never)', int(0), 25)
  .option('--target <ids...>', 'only these inputs (llama2c-model, llama2c-tokenizer, config.json, model.safetensors, tokenizer.json, tokenizer_config.json, resume-manifest.json, resume-inputs-2.f32, resume-block-1.bin, packed-rtn, packed-slim, packed-billm, gguf, gptq-safetensors, gptq-config.json, aqlm-safetensors)')
  .option('--json', 'print the summary as JSON')
  .parse();
const o = program.opts<{ cases: number; seed: number; workers: number; spawnEvery: number; target?: string[]; json?: boolean }>();

let lastPrint = 0;
const summary = await runFuzz({
  cases: o.cases,
  seed: o.seed,
  workers: o.workers,
  spawnEvery: o.spawnEvery,
  targets: o.target,
  onCase: (r, done, total) => {
    if (r.verdict === 'misbehaving') process.stderr.write(`case ${r.index} misbehaved: ${r.detail}\n`);
    const now = performance.now();
    if (now - lastPrint > 5000 || done === total) {
      lastPrint = now;
      process.stderr.write(`fuzz: ${done}/${total} cases\n`);
    }
  },
});
process.stdout.write(o.json ? `${JSON.stringify(summary)}\n` : `${formatSummary(summary)}\n`);
process.exitCode = summary.verdicts.misbehaving > 0 ? 1 : 0;
