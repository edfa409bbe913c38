/** `bitcrush inspect <packed>`: the format, params and bits per weight of every tensor of a packed file, with totals. */
import { groupBitMap } from '../formats/mixed.js';
import { writeFileAtomic } from '../node/atomic-write.js';
import { bitWidthColor, bitWidthLegend } from '../report/bit-colors.js';
import { heatmap } from '../report/svg.js';
import type { Command } from 'commander';
import { InputError } from '../io/errors.js';
import { FileSource, nodeFs } from '../node/fs.js';
import { openRunnable } from '../node/packed-open.js';
import { isPackedModel, PackedModel } from '../packed/reader.js';
import { describeSize, roleOf, sizeReport } from '../packed/size.js';
import { checkOutputFile } from './output-check.js';

interface InspectOptions {
  json?: boolean;
  plot?: string;
}


export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('show how a packed model file stores each tensor: format, params, bits per weight, totals')
    .argument('<packed>', 'packed model file written by `bitcrush quantize`, or a GPTQ Hugging Face directory')
    .option('--json', 'machine-readable output')
    .option('--plot <file.svg>', 'draw each layer\'s per-group bit-width map as an SVG')
    .action((path: string, opts: InspectOptions) => inspect(path, opts));
}

function inspect(path: string, opts: InspectOptions): void {
  if (opts.plot !== undefined) checkOutputFile('--plot', opts.plot, [path]);
  const m = openInspected(path);
  const h = m.header;
  const fileBytes = m.fileBytes;
  const tensors = Object.entries(h.tensors).map(([name, t]) => ({
    name,
    role: roleOf(name),
    format: t.format === 'dense' ? `dense ${(t as { dtype: string }).dtype}` : t.format,
    shape: t.shape,
    params: 'params' in t ? t.params : undefined,
    bpw: t.bpw,
    bitHistogram: histogram(m, name, t.format),
  }));
  const plotted = opts.plot !== undefined ? plotBitMap(m, opts.plot, path) : undefined;
  const size = sizeReport(h, fileBytes);
  if (opts.json) {
    const plot = plotted ? { plot: opts.plot, plotRows: plotted } : {};
    process.stdout.write(`${JSON.stringify({ file: path, fileBytes, bpw: size.bpw, size, method: h.method, config: h.config, totals: h.totals, ...plot, tensors }, null, 2)}\n`);
    return;
  }
  const t = h.totals;
  const [lead, ...roles] = describeSize(size);
  const lines = [
    `file     ${path}: ${lead}`,
    ...roles,
    `method   ${h.method.name} ${JSON.stringify(h.method.options)}`,
    ...tensors.map((x) => {
      const params = x.params ? ` ${Object.entries(x.params).map(([k, v]) => `${k}=${String(v)}`).join(' ')}` : '';
      const hist = x.bitHistogram ? `  groups ${Object.entries(x.bitHistogram).map(([b, n]) => `${b}b×${n}`).join(' ')}` : '';
      return `  ${x.name.padEnd(40)} [${x.shape.join(', ')}]`.padEnd(60) + ` ${x.format}${params}  ${x.bpw.toFixed(4)} bpw${hist}`;
    }),
    `packed   ${t.packedWeights} weights in ${t.packedBytes} bytes: ${t.packedBpw.toFixed(4)} bits per weight`,
    `dense    ${t.denseWeights} weights in ${t.denseBytes} bytes`,
    `model    ${size.tensorBpw.toFixed(4)} bits per weight over all weights in tensor data, ${size.bpw.toFixed(4)} counting the whole file`,
    ...(plotted !== undefined ? [`plot     wrote ${opts.plot} (${plotted} tensors with a group bit map)`] : []),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** A packed file, or a quantized Hugging Face directory as the packed file it converts to. */
function openInspected(path: string): PackedModel {
  if (nodeFs.isDirectory(path)) {
    const packed = openRunnable(path).packed;
    if (packed === undefined) throw new InputError(path, 'not a quantized Hugging Face directory (no quantization_config in config.json) nor a bitcrush packed file');
    return packed;
  }
  const file = new FileSource(path);
  if (!isPackedModel(file)) throw new InputError(path, 'not a bitcrush packed model file');
  return new PackedModel(file);
}

/** Column groups per bit-width of a grid-format tensor ({ 1: n1, 2: n2, … }), else undefined. */
function histogram(m: PackedModel, name: string, format: string): Record<number, number> | undefined {
  if (format === 'dense') return undefined;
  const map = groupBitMap(m.packed(name));
  if (map === null) return undefined;
  const h: Record<number, number> = {};
  for (const b of map) h[b] = (h[b] ?? 0) + 1;
  return h;
}

/** Writes the SVG; returns how many tensors it draws. */
function plotBitMap(m: PackedModel, out: string, path: string): number {
  const rows = Object.keys(m.header.tensors)
    .filter((name) => m.isPacked(name))
    .map((name) => ({ name, map: groupBitMap(m.packed(name)) }))
    .filter((r): r is { name: string; map: Uint8Array } => r.map !== null)
    .map((r) => ({ label: r.name.replace(/^model\./, '').replace(/\.weight$/, ''), values: r.map }));
  const svg = heatmap({
    title: `${path}: bit-width of each column group (${m.header.method.name})`,
    rows,
    color: bitWidthColor,
    legend: bitWidthLegend(),
  });
  writeFileAtomic(out, [new TextEncoder().encode(svg)]);
  return rows.length;
}
