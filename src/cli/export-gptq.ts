/** `bitcrush export <packed> --to gptq|aqlm --out <dir>`: the Hugging Face export targets (src/interop/gptq-export.ts, aqlm-export.ts), written to a temp directory and renamed into place. */
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync, accessSync, constants } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { InputError, UsageError } from '../io/errors.js';
import { parseJson } from '../io/hf.js';
import { readText } from '../io/bytes.js';
import { ExportError, gptqCheckpoint, hfConfigJson, type HfQuantizedCheckpoint } from '../interop/gptq-export.js';
import { aqlmCheckpoint } from '../interop/aqlm-export.js';
import type { PackedModel } from '../packed/reader.js';
import { GPTQ_CHECKPOINT_FORMATS, type GptqCheckpointFormat } from '../interop/gptq.js';
import { safetensorsChunks } from '../interop/safetensors-write.js';
import { writeFileAtomic } from '../node/atomic-write.js';
import { nodeFs } from '../node/fs.js';
import { openRunnable } from '../node/packed-open.js';
import type { ExportOptions } from './export.js';
import { createProgress } from './progress.js';

/** Files of a Hugging Face directory that belong to its tokenizer and generation defaults. */
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'tokenizer.model', 'special_tokens_map.json', 'added_tokens.json', 'generation_config.json'];

/** An output directory that does not exist yet, in a writable directory. */
export function checkOutputDir(flag: string, out: string): void {
  const abs = resolve(out);
  if (existsSync(abs)) throw new UsageError(`${flag} ${out} already exists; give a new directory name`);
  const parent = dirname(abs);
  if (!existsSync(parent) || !statSync(parent).isDirectory()) throw new UsageError(`${flag} ${out}: directory ${parent} does not exist`);
  try {
    accessSync(parent, constants.W_OK);
  } catch {
    throw new UsageError(`${flag} ${out}: directory ${parent} is not writable`);
  }
}

export function exportGptq(modelPath: string, opts: ExportOptions): Record<string, unknown> {
  const fmt = (opts.checkpointFormat ?? 'gptq') as GptqCheckpointFormat;
  if (!GPTQ_CHECKPOINT_FORMATS.includes(fmt)) throw new UsageError(`--checkpoint-format ${opts.checkpointFormat}: expected ${GPTQ_CHECKPOINT_FORMATS.join(' or ')}`);
  return exportHfQuantized(modelPath, opts, 'gptq', (m) => gptqCheckpoint(m, fmt));
}

export function exportAqlm(modelPath: string, opts: ExportOptions): Record<string, unknown> {
  if (opts.checkpointFormat !== undefined) throw new UsageError('--checkpoint-format is a gptq option');
  return exportHfQuantized(modelPath, opts, 'aqlm', aqlmCheckpoint);
}

function exportHfQuantized(modelPath: string, opts: ExportOptions, to: 'gptq' | 'aqlm', build: (m: PackedModel) => HfQuantizedCheckpoint): Record<string, unknown> {
  checkOutputDir('--out', opts.out);
  if (opts.tokenizerFrom !== undefined && !nodeFs.isDirectory(opts.tokenizerFrom)) throw new UsageError(`--tokenizer-from ${opts.tokenizerFrom} is not a directory`);
  const runnable = openRunnable(modelPath);
  const m = runnable.packed;
  if (m === undefined) throw new InputError(modelPath, 'is not a packed model: quantize it first (`bitcrush quantize --method gptq|rtn`)');
  let ckpt;
  try {
    ckpt = build(m);
  } catch (e) {
    if (e instanceof ExportError) throw new InputError(modelPath, `cannot export to ${to.toUpperCase()}: ${e.message}`);
    throw e;
  }
  const sourceDir = opts.tokenizerFrom ?? recordedSourceDir(modelPath, m.header.method.options);
  const baseConfigPath = sourceDir && join(sourceDir, 'config.json');
  const base = baseConfigPath && existsSync(baseConfigPath) ? (parseJson(baseConfigPath, readText(nodeFs.open(baseConfigPath))) as Record<string, unknown>) : {};
  const config = hfConfigJson(m.config, ckpt.quantizationConfig, typeof base === 'object' && base !== null && !Array.isArray(base) ? base : {});

  const tmp = `${resolve(opts.out)}.tmp-${process.pid}`;
  mkdirSync(tmp);
  const copied: string[] = [];
  let bytes = 0;
  try {
    const progress = createProgress(process.stderr, `export ${to}`, 'tensors');
    let done = 0;
    const n = ckpt.tensors.length;
    const counted = ckpt.tensors.map((t) => ({ ...t, bytes: () => (progress.update(done++, n, t.name), t.bytes()) }));
    const st = safetensorsChunks(counted, { format: 'pt' });
    bytes = writeFileAtomic(join(tmp, 'model.safetensors'), st.chunks(), { expectedSize: st.size });
    progress.update(n, n);
    progress.finish();
    writeFileSync(join(tmp, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    // AutoGPTQ reads its options from quantize_config.json, transformers from config.json
    if (to === 'gptq') writeFileSync(join(tmp, 'quantize_config.json'), `${JSON.stringify(ckpt.quantizationConfig, null, 2)}\n`);
    for (const f of sourceDir ? TOKENIZER_FILES : []) {
      const from = join(sourceDir!, f);
      if (existsSync(from) && statSync(from).isFile()) {
        copyFileSync(from, join(tmp, f));
        copied.push(f);
      }
    }
    renameSync(tmp, resolve(opts.out));
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  const q = ckpt.quantizationConfig;
  const summary = { model: modelPath, out: opts.out, to, modelBytes: bytes, quantizationConfig: q, tokenizerFiles: copied, expandedToF32: ckpt.expanded };
  if (!opts.json) {
    process.stderr.write(
      `wrote ${opts.out}/: model.safetensors ${bytes} bytes (${Object.entries(q).filter(([k, v]) => k !== 'quant_method' && !Array.isArray(v)).map(([k, v]) => `${k} ${String(v)}`).join(', ')}), config.json${to === 'gptq' ? ', quantize_config.json' : ''}` +
        `${copied.length ? `, ${copied.join(', ')}` : ' — no tokenizer files (pass --tokenizer-from <hf dir>)'}` +
        `${ckpt.expanded.length ? `; ${ckpt.expanded.join(', ')} written as float32 (exact dequantized values)` : ''}\n`,
    );
  }
  return summary;
}

/** The Hugging Face directory the packed file came from, when quantize (or convert) recorded one. */
function recordedSourceDir(modelPath: string, options: Record<string, unknown>): string | undefined {
  if (nodeFs.isDirectory(modelPath)) return modelPath; // a quantized HF directory exported again
  const model = (options['source'] as { model?: unknown } | undefined)?.model;
  if (typeof model !== 'string') return undefined;
  const dir = join(dirname(modelPath), model);
  return nodeFs.isDirectory(dir) ? dir : undefined;
}
