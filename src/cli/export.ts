/**
 * `bitcrush export <model> --to <target> --out <path>`: a packed model written in another
 * ecosystem's format. Targets are rows of EXPORT_TARGETS; each checks its output path first,
 * then writes through a temp file or directory + rename.
 */
import type { Command } from 'commander';
import { UsageError } from '../io/errors.js';
import { exportGguf } from './export-gguf.js';
import { exportAqlm, exportGptq } from './export-gptq.js';

export interface ExportOptions {
  to: string;
  out: string;
  tokenizer?: string;
  /** A Hugging Face directory whose tokenizer files (and config.json fields) go with the export. */
  tokenizerFrom?: string;
  /** GPTQ: 'gptq' (v1, zero − 1 stored) or 'gptq_v2'. */
  checkpointFormat?: string;
  /** GGUF: tensors with no exact llama.cpp type as F32 of their dequantized values instead of an error. */
  floatFallback?: boolean;
  json?: boolean;
}

export interface ExportTarget {
  /** One line for --help. */
  summary: string;
  /** What --out names (a file or a directory). */
  out: 'file' | 'directory';
  /** Writes `model` to opts.out; returns what --json reports. */
  run(model: string, opts: ExportOptions): Record<string, unknown>;
}

/** Export targets by --to name. */
export const EXPORT_TARGETS: Record<string, ExportTarget> = {
  gguf: { summary: 'GGUF for llama.cpp / Ollama (uniform grids as Q8_0, Q4_0, Q4_1 or Q5_0, exactly)', out: 'file', run: exportGguf },
  gptq: { summary: 'Hugging Face GPTQ checkpoint for transformers / AutoGPTQ / GPTQModel / vLLM (uniform RTN/GPTQ grids, exactly)', out: 'directory', run: exportGptq },
  aqlm: { summary: 'Hugging Face AQLM checkpoint for transformers + aqlm (codebook files with one MxB scheme, exactly)', out: 'directory', run: exportAqlm },
};

export function registerExport(program: Command): void {
  program
    .command('export')
    .description(`write a packed model in another runtime's format (${Object.entries(EXPORT_TARGETS).map(([k, t]) => `${k}: ${t.summary}`).join('; ')})`)
    .argument('<model>', 'packed model file from quantize (or a quantized Hugging Face directory, or a float model for gguf)')
    .requiredOption('--to <target>', `target format: ${Object.keys(EXPORT_TARGETS).join(', ')}`)
    .requiredOption('--out <path>', 'output file or directory')
    .option('--tokenizer <file>', 'tokenizer file (default: found beside the model, or the one quantize recorded)')
    .option('--tokenizer-from <dir>', 'Hugging Face directory to copy tokenizer files and config fields from (default: the source model quantize recorded)')
    .option('--checkpoint-format <f>', 'gptq: gptq (v1, the default) or gptq_v2')
    .option('--float-fallback', 'gguf: write tensors that have no exact llama.cpp type (e.g. widths not a multiple of 32) as F32 of their dequantized values instead of stopping')
    .option('--json', 'machine-readable summary')
    .action((model: string, opts: ExportOptions) => {
      const target = EXPORT_TARGETS[opts.to];
      if (target === undefined) throw new UsageError(`--to ${opts.to}: unknown target (known: ${Object.keys(EXPORT_TARGETS).join(', ')})`);
      const summary = target.run(model, opts);
      if (opts.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    });
}
