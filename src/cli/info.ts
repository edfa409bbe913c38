import type { Command } from 'commander';
import { headSize, type LlamaConfig } from '../model/config.js';
import { LINEARS } from '../model/weights.js';
import { NotFoundError } from '../io/errors.js';
import { nodeFs } from '../node/fs.js';
import { GgufModel } from '../io/gguf.js';
import { sizeReport } from '../packed/size.js';
import { findRunnableTokenizer, openRunnable } from '../node/packed-open.js';

interface InfoOptions {
  tokenizer?: string;
  json?: boolean;
}

export function registerInfo(program: Command): void {
  program
    .command('info')
    .description('show a model\'s architecture, parameter count, tensors and tokenizer')
    .argument('<model>', 'llama2.c .bin file, Hugging Face model directory or packed file from quantize')
    .option('--tokenizer <file>', 'tokenizer file (default: found beside the model)')
    .option('--json', 'machine-readable output')
    .action((modelPath: string, opts: InfoOptions) => info(modelPath, opts));
}

function info(modelPath: string, opts: InfoOptions): void {
  const runnable = openRunnable(modelPath);
  const source = runnable.source;
  const c = source.config;
  const tensors = source.tensors();
  const count = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  const params = tensors.reduce((s, t) => s + count(t.shape), 0);
  const linears = tensors.filter((t) => LINEARS.some((l) => t.name.endsWith(`.${l}.weight`)));
  const linearParams = linears.reduce((s, t) => s + count(t.shape), 0);

  // one row per tensor kind: layer indices folded into "*"
  const kinds = new Map<string, { shape: number[]; count: number }>();
  for (const t of tensors) {
    const kind = t.name.replace(/\.layers\.\d+\./, '.layers.*.');
    const k = kinds.get(kind);
    if (k) k.count++;
    else kinds.set(kind, { shape: t.shape, count: 1 });
  }

  let tokenizer: { vocabSize: number; bosId: number | null; eosIds: readonly number[]; chatTemplate: boolean } | { error: string };
  try {
    const t = findRunnableTokenizer(modelPath, runnable, opts.tokenizer);
    tokenizer = { vocabSize: t.vocabSize, bosId: t.bosId, eosIds: t.eosIds, chatTemplate: t.chat !== undefined };
  } catch (e) {
    // an explicit file must load; one found beside the model but unreadable is an error too
    if (opts.tokenizer !== undefined || !(e instanceof NotFoundError)) throw e;
    tokenizer = { error: (e as Error).message };
  }

  // a packed file: how it was made and what it stores, as `inspect` totals it
  const h = runnable.packed?.header;
  const size = h && sizeReport(h, runnable.packed!.fileBytes);
  const packed = h && size && { method: h.method.name, actBits: h.actBits ?? 16, linearBpw: size.roles.blockLinears.bpw, modelBpw: size.bpw };
  if (opts.json) {
    const tensorList = [...kinds].map(([name, k]) => ({ name, shape: k.shape, count: k.count }));
    process.stdout.write(`${JSON.stringify({ model: modelPath, config: c, params, linearParams, linearTensors: linears.length, ...(packed ? { packed } : {}), tensors: tensorList, tokenizer }, null, 2)}\n`);
    return;
  }
  const lines = [
    `model      ${modelPath} (${runnable.packed ? (nodeFs.isDirectory(modelPath) ? 'quantized Hugging Face directory, run as its packed file' : 'bitcrush packed file') : nodeFs.isDirectory(modelPath) ? 'Hugging Face directory' : source instanceof GgufModel ? `GGUF ${source.arch}, ${ggmlTypeSummary(source)}` : 'llama2.c checkpoint'})`,
    `config     dim ${c.dim}, hidden ${c.hiddenDim}, ${c.nLayers} layers, ${c.nHeads} heads (${c.nKvHeads} kv heads, head size ${headSize(c)}), ` +
      `vocab ${c.vocabSize}, context ${c.seqLen}, norm eps ${c.normEps}, rope theta ${c.ropeTheta}${ropeText(c.ropeScaling)}, ` +
      `${c.attentionBias ? `${c.attentionBias} biases, ` : ''}${c.tiedEmbeddings ? 'tied' : 'untied'} classifier`,
    `params     ${millions(params)} (${millions(linearParams)} in ${linears.length} linear layers)`,
    ...(packed
      ? [`packed     ${packed.method}: ${packed.linearBpw.toFixed(4)} bits per weight in the block linears, ${packed.modelBpw.toFixed(4)} over all weights (whole file)` +
          `${packed.actBits < 16 ? `; ${packed.actBits}-bit activations` : ''} (details: bitcrush inspect)`]
      : []),
    `tensors    ${tensors.length}`,
    ...[...kinds].map(([name, k]) => `  ${name.padEnd(48)} [${k.shape.join(', ')}]${k.count > 1 ? ` ×${k.count}` : ''}`),
    'error' in tokenizer ? `tokenizer  not found: ${tokenizer.error}` : `tokenizer  ${tokenizer.vocabSize} tokens (BOS ${tokenizer.bosId ?? 'none'}, EOS ${tokenizer.eosIds.join(', ')}${tokenizer.chatTemplate ? ', chat template' : ''})`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

function millions(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : `${(n / 1e3).toFixed(1)} K`;
}

/** "Q4_K ×154, F32 ×45": how many tensors of each llama.cpp type a GGUF model holds. */
function ggmlTypeSummary(m: GgufModel): string {
  const counts = new Map<string, number>();
  for (const t of m.tensors()) counts.set(m.ggmlTypeOf(t.name), (counts.get(m.ggmlTypeOf(t.name)) ?? 0) + 1);
  return [...counts].map(([k, n]) => `${k} ×${n}`).join(', ');
}

function ropeText(r: LlamaConfig['ropeScaling']): string {
  if (r === undefined) return '';
  if (r.type === 'factors') return ` (rope_freqs: per-pair factors ${Math.min(...r.factors)}–${Math.max(...r.factors)})`;
  return ` (${r.type} scaling ×${r.factor})`;
}
