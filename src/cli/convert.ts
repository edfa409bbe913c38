/** `bitcrush convert <dir> --out x.bcq`: a quantized Hugging Face checkpoint (GPTQ) as a bitcrush packed file, the same numbers (no requantization). */
import { dirname, relative, resolve } from 'node:path';
import type { Command } from 'commander';
import { InputError } from '../io/errors.js';
import { quantizedHfPlan } from '../interop/hf-quantized.js';
import { writeFileAtomic } from '../node/atomic-write.js';
import { nodeFs } from '../node/fs.js';
import { checkOutputFile, inputFiles } from './output-check.js';

interface ConvertOptions {
  out: string;
  json?: boolean;
}

export function registerConvert(program: Command): void {
  program
    .command('convert')
    .description('write a quantized Hugging Face checkpoint (quantization_config: gptq) as a bitcrush packed file, exactly')
    .argument('<dir>', 'Hugging Face directory whose config.json has quantization_config')
    .requiredOption('--out <file>', 'packed model file to write')
    .option('--json', 'machine-readable output')
    .action((dir: string, opts: ConvertOptions) => convert(dir, opts));
}

function convert(dir: string, opts: ConvertOptions): void {
  if (!nodeFs.isDirectory(dir)) throw new InputError(dir, 'not a directory (expected a quantized Hugging Face model directory)');
  checkOutputFile('--out', opts.out, inputFiles(dir));
  const plan = quantizedHfPlan(dir, nodeFs, { model: relative(dirname(resolve(opts.out)), resolve(dir)) || '.' });
  // after the headers are checked, and not with --json: a refused input gets its one error line only
  if (!opts.json) process.stderr.write(`converting ${dir} …\n`);
  const bytes = writeFileAtomic(opts.out, plan.chunks(), { expectedSize: plan.size });
  const t = plan.header.totals;
  const packedTensors = Object.values(plan.header.tensors).filter((r) => r.format !== 'dense').length;
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ model: dir, out: opts.out, fileBytes: bytes, packedTensors, totals: t }, null, 2)}\n`);
    return;
  }
  process.stdout.write(`wrote ${opts.out}: ${bytes} bytes, ${packedTensors} packed tensors at ${t.packedBpw.toFixed(4)} bits per weight, ${t.modelBpw.toFixed(4)} over all weights\n`);
}
