/** `bitcrush inspect <packed>`: the format, params and bits per weight of every tensor of a packed file, with totals. */
import { statSync } from 'node:fs';
import type { Command } from 'commander';
import { InputError } from '../io/errors.js';
import { FileSource } from '../node/fs.js';
import { isPackedModel, PackedModel } from '../packed/reader.js';

interface InspectOptions {
  json?: boolean;
}

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('show how a packed model file stores each tensor: format, params, bits per weight, totals')
    .argument('<packed>', 'packed model file written by `bitcrush quantize`')
    .option('--json', 'machine-readable output')
    .action((path: string, opts: InspectOptions) => inspect(path, opts));
}

function inspect(path: string, opts: InspectOptions): void {
  const file = new FileSource(path);
  if (!isPackedModel(file)) throw new InputError(path, 'not a bitcrush packed model file');
  const m = new PackedModel(file);
  const h = m.header;
  const fileBytes = statSync(path).size;
  const tensors = Object.entries(h.tensors).map(([name, t]) => ({
    name,
    format: t.format === 'dense' ? `dense ${(t as { dtype: string }).dtype}` : t.format,
    shape: t.shape,
    params: 'params' in t ? t.params : undefined,
    bpw: t.bpw,
  }));
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ file: path, fileBytes, method: h.method, config: h.config, totals: h.totals, tensors }, null, 2)}\n`);
    return;
  }
  const t = h.totals;
  const lines = [
    `file     ${path} (${fileBytes} bytes)`,
    `method   ${h.method.name} ${JSON.stringify(h.method.options)}`,
    ...tensors.map((x) => {
      const params = x.params ? ` ${Object.entries(x.params).map(([k, v]) => `${k}=${String(v)}`).join(' ')}` : '';
      return `  ${x.name.padEnd(40)} [${x.shape.join(', ')}]`.padEnd(60) + ` ${x.format}${params}  ${x.bpw.toFixed(4)} bpw`;
    }),
    `packed   ${t.packedWeights} weights in ${t.packedBytes} bytes: ${t.packedBpw.toFixed(4)} bits per weight`,
    `dense    ${t.denseWeights} weights in ${t.denseBytes} bytes`,
    `model    ${t.modelBpw.toFixed(4)} bits per weight over all weights (${((fileBytes * 8) / (t.packedWeights + t.denseWeights)).toFixed(4)} counting the whole file)`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
