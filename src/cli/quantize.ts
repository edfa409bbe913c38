/**
 * `bitcrush quantize`: calibrate, quantize block by block (src/pipeline), write the packed file
 * atomically, optionally evaluate it. Progress is checkpointed per block in `<out>.partial/`
 * (checkpoint.ts), so `--resume` continues a killed run with a byte-identical result.
 */
import { DEFAULT_WINDOW, defaultWindow } from '../eval/perplexity.js';
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { basename, dirname, relative, resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { ACT_BITS } from '../quant/act-quant.js';
import { InputError, UsageError } from '../io/errors.js';
import { readText } from '../io/bytes.js';
import { findTokenizer, openModel } from '../io/load.js';
import { getMethod, methodNames } from '../methods/registry.js';
import { writeFileAtomic } from '../node/atomic-write.js';
import { FileSource, nodeFs } from '../node/fs.js';
import { calibrationFromText, type CalibrationSet } from '../pipeline/calibration.js';
import { quantizeModel, type LayerReport } from '../pipeline/quantize.js';
import { planPackedModel } from '../packed/writer.js';
import type { ModelRefineContext, ModelRefineResult, QuantMethod } from '../quant/method.js';
import type { ModelSource } from '../model/weights.js';
import { describeSize, sizeReport, type SizeReport } from '../packed/size.js';
import { expectedShapes, layerTensor, LINEARS } from '../model/weights.js';
import { WorkDir } from './checkpoint.js';
import { addMethodFlags, givenMethodOptions, methodHelp } from './method-flags.js';
import { addWholeFlags, describeWhole, wholeOptions, type WholeFlags } from './whole-flags.js';
import { describeBackend, openBackend } from './load.js';
import { backendArg, intArg, seedArg, FLOAT_ACTIVATIONS_HELP, type RunOptions } from './options.js';
import { PhaseClock, type PhaseFigures } from '../node/phase-clock.js';
import { createProgress, formatDuration } from './progress.js';
import { evaluateFiles, type EvalReport } from './quantize-eval.js';
import { checkOutputFile, checkWorkDirPath, inputFiles } from './output-check.js';

interface QuantizeCliOptions extends RunOptions, WholeFlags {
  method: string;
  out: string;
  calib?: string;
  nsamples: number;
  seqlen?: number;
  seed?: bigint;
  trueSequential?: boolean;
  floatInputs?: boolean;
  eval?: string[];
  evalSeqlen?: number;
  fp32?: boolean;
  resume?: boolean;
  json?: boolean;
  stopAfterBlock?: number;
  actBits: number;
  [key: string]: unknown;
}

export function registerQuantize(program: Command): void {
  const cmd = program
    .command('quantize')
    .description('quantize a model\'s linear layers block by block and write a packed low-bit file')
    .argument('<model>', 'llama2.c .bin file or Hugging Face model directory')
    .requiredOption('--method <name>', `quantization method: ${methodNames.join(', ')}`)
    .requiredOption('--out <file>', 'packed model file to write (work directory: <file>.partial/)')
    .option('--calib <file>', 'UTF-8 calibration text, tokenized whole with BOS (methods that need data: gptq)')
    .option('--nsamples <n>', 'calibration windows', intArg(1), 128)
    .option('--seqlen <n>', `tokens per calibration window (default: the model's context, at most ${DEFAULT_WINDOW})`, intArg(1))
    .option('--seed <n>', 'seed of the calibration window positions (default: 1)', seedArg);
  addMethodFlags(cmd);
  addWholeFlags(cmd);
  cmd
    .option('--true-sequential', 're-capture inputs after each sub-group (qkv → o → gate/up → down)')
    .option('--float-inputs', 'calibrate each block on the float model\'s activations, not the quantized blocks\' outputs')
    .option('--eval <files...>', 'UTF-8 texts to score with the packed file afterwards')
    .option('--eval-seqlen <n>', `evaluation window length (default: the model's context, at most ${DEFAULT_WINDOW})`, intArg(2))
    .option('--fp32', 'also score the --eval texts with the unquantized model, for comparison')
    .option('--resume', 'continue from <out>.partial/ (written by an interrupted run with the same options)')
    .option('--act-bits <n>', 'activation bits (4, 6, 8; 16 = none): every block linear fake-quantizes its input per token when the file runs (recorded in it)', actBitsArg, 16)
    .option('--json', 'print the summary as JSON')
    .option('--tokenizer <file>', 'tokenizer file (default: found beside the model)')
    .option('--backend <kind>', 'compute backend: auto, native, wasm or reference', backendArg, 'auto')
    .option('--threads <n>', 'threads (default: all cores)', intArg(1, 1024))
    .option('--float-activations', FLOAT_ACTIVATIONS_HELP)
    // for tests of --resume: stop as if killed after this block was checkpointed
    .addOption(new Option('--stop-after-block <n>').argParser(intArg(0)).hideHelp())
    .addHelpText('after', `\nMethods:\n${methodHelp()}`)
    .action((modelPath: string, opts: QuantizeCliOptions) => run(modelPath, opts));
}

function run(modelPath: string, opts: QuantizeCliOptions): void {
  const t0 = performance.now();
  const { method, opts: methodOptions } = getMethod(opts.method, givenMethodOptions(opts));
  // before any work: a run must not end in EISDIR after the last block, nor overwrite an input
  const inputs = [modelPath, opts.tokenizer, opts.calib, ...(opts.eval ?? [])].flatMap(inputFiles);
  checkOutputFile('--out', opts.out, inputs);
  checkWorkDirPath(`${opts.out}.partial`);
  const source = openModel(modelPath, nodeFs);
  const tokenizer = findTokenizer(modelPath, nodeFs, opts.tokenizer);
  const c = source.config;
  const overhead = groupOverheadWarning(methodOptions as Record<string, unknown>, c.dim);
  if (overhead) process.stderr.write(`warning: ${overhead}\n`);
  const seqLen = opts.seqlen ?? defaultWindow(c.seqLen);
  if (seqLen > c.seqLen) throw new UsageError(`--seqlen ${seqLen} exceeds the model's context of ${c.seqLen}`);
  const evalSeqLen = opts.evalSeqlen ?? defaultWindow(c.seqLen);
  if (evalSeqLen > c.seqLen) throw new UsageError(`--eval-seqlen ${evalSeqLen} exceeds the model's context of ${c.seqLen}`);
  const seed = opts.seed ?? 1n;
  // RTN reads no data: its result does not depend on a calibration text, so none is recorded
  // (unless the head is calibrated: GPTQ on the head reads the final norm's output)
  const methodNeedsData = method.requires.hessian || method.requires.inputs;
  if (methodNeedsData && opts.calib === undefined) throw new UsageError(`${method.name} needs calibration data: pass --calib <text file>`);
  const whole = wholeOptions(opts, opts.calib !== undefined);
  const needsData = methodNeedsData || whole.head?.method.requires.hessian === true;
  let calibText = '';
  let cal: CalibrationSet | undefined;
  const phases = new PhaseClock();
  if (needsData && opts.calib !== undefined) {
    const calibFile = new FileSource(opts.calib);
    calibText = readText(calibFile);
    calibFile.close();
    const tokenizing = createProgress(process.stderr, 'tokenize calibration text', 'characters');
    try {
      cal = phases.time('tokenize', () => calibrationFromText(tokenizer, calibText, { count: opts.nsamples, seqLen, seed }, (d, t) => tokenizing.update(d, t)));
    } catch (e) {
      // "the calibration text has 1 tokens, fewer than one window": name the file
      if (e instanceof UsageError) throw new InputError(opts.calib, `${e.message} (pass a longer text or a smaller --seqlen)`);
      throw e;
    }
    tokenizing.finish();
  }

  const outDir = dirname(resolve(opts.out));
  // provenance in the header; nothing run-specific (time, output name), so resumed runs match
  const headerOptions: Record<string, unknown> = {
    ...methodOptions,
    ...(cal && opts.calib !== undefined
      ? {
          calibration: { text: basename(opts.calib), textTokens: cal.textTokens, nsamples: cal.count, seqlen: seqLen, seed: String(seed) },
          trueSequential: opts.trueSequential === true,
          floatInputs: opts.floatInputs === true,
        }
      : {}),
    ...(opts.actBits < 16 ? { actBits: opts.actBits } : {}),
    ...describeWhole(whole),
    // relative to the packed file, so `generate`/`eval` find the tokenizer through the original model
    source: { model: relative(outDir, resolve(modelPath)), ...(opts.tokenizer ? { tokenizer: relative(outDir, resolve(opts.tokenizer)) } : {}) },
  };

  const backend = openBackend(opts);
  try {
    const hash = optionsHash(modelPath, method.name, headerOptions, calibText, backend.name);
    const workPath = `${opts.out}.partial`;
    let work: WorkDir;
    let resume: ReturnType<typeof WorkDir.open> = null;
    if (opts.resume) resume = WorkDir.open(workPath, hash, cal ? cal.count * cal.seqLen * c.dim : 0, expectedShapes(c));
    if (resume) work = resume.work;
    else work = WorkDir.create(workPath, hash);
    const resumedBlocks = resume?.resume.blocksDone ?? 0;
    if (resume) process.stderr.write(`resuming after block ${resumedBlocks}/${c.nLayers} from ${workPath}\n`);

    const progress = createProgress(process.stderr, 'quantize', 'M weights');
    const mega = (n: number) => Math.round(n / 1e4) / 100;
    // capture passes report between linears: they repeat the last weight count with their own detail
    const blockWeights = LINEARS.reduce((sum, x) => sum + expectedShapes(c).get(layerTensor(0, x))!.reduce((a, b) => a * b, 1), 0);
    let lastProgress = { done: 0, total: mega((c.nLayers - resumedBlocks) * blockWeights) };
    const setLast = (done: number, total: number): [number, number] => {
      lastProgress = { done, total };
      return [done, total];
    };
    const r = quantizeModel(source, {
      backend,
      method,
      methodOptions,
      calibration: cal,
      trueSequential: opts.trueSequential,
      floatInputs: opts.floatInputs,
      actBits: opts.actBits,
      whole,
      resume: resume ? { block: resumedBlocks, inputs: resume.resume.inputs, dense: resume.resume.dense } : undefined,
      phases,
      // counted in weights so the ETA weighs wide linears (and the block steps after them) by their cost
      onProgress: (e) => progress.update(...setLast(mega(e.weightsDone ?? e.done), mega(e.weightsTotal ?? e.total)), `block ${e.block + 1}/${e.blocks} ${e.linear} (${e.done}/${e.total} linears)`),
      onCapture: (b, d, t) => {
        const last = lastProgress;
        progress.update(last.done, last.total, `block ${b + 1}/${c.nLayers}: block pass over the calibration windows ${d}/${t}`);
      },
      onBlockDone: (b) => {
        work.saveBlock(b.block, b.packed, b.nextInputs, b.dense);
        return opts.stopAfterBlock === undefined || b.block < opts.stopAfterBlock;
      },
    });
    progress.finish();
    if (r.blocksDone < c.nLayers) {
      process.stderr.write(`stopped after block ${r.blocksDone}/${c.nLayers}; continue with --resume\n`);
      return;
    }

    const packed = new Map(resume?.resume.packed ?? []);
    for (const [name, t] of r.packed) packed.set(name, t);
    // a model-level step after the last block (AQLM's global fine-tuning), on every packed tensor
    const refined = method.refineModel && cal ? refineModel(method, methodOptions, { backend, float: source, student: r.source, packed, headTensor: r.layout.headTensor, tokens: cal.tokens, windows: cal.count, seqLen: cal.seqLen }, phases) : null;
    for (const [name, t] of refined?.packed ?? []) packed.set(name, t);
    // r.source: the method's pre-transformed model (DBellQuant rescales norms) whose dense tensors the file stores
    const stored = refined && refined.dense.size > 0 ? withDense(r.source, refined.dense) : r.source;
    const plan = planPackedModel({ config: r.layout.config, method: { name: method.name, options: headerOptions }, source: stored, packed, actBits: opts.actBits, modelWeights: parameterCount(c) });
    const size = phases.time('write', () => writeFileAtomic(opts.out, plan.chunks(), { expectedSize: plan.size }));
    work.remove();
    const quantizeSeconds = (performance.now() - t0) / 1000;
    const sized = sizeReport(plan.header, size);

    const evals: EvalReport[] = opts.eval ? evaluateFiles(opts.out, source, tokenizer, backend, opts.eval, evalSeqLen, opts.fp32 === true) : [];
    const summary = {
      model: modelPath,
      out: opts.out,
      method: method.name,
      options: headerOptions,
      fileBytes: size,
      /** The whole file over all weights: the figure the summary leads with. */
      fileBpw: sized.bpw,
      /** Tensor data (no header or alignment) over all weights. */
      modelBpw: sized.tensorBpw,
      linearBpw: sized.roles.blockLinears.bpw,
      size: sized,
      layout: r.layout.note,
      quantizeSeconds,
      ...(refined ? { globalFinetune: refined.stats } : {}),
      resumedBlocks,
      peakRssMiB: process.resourceUsage().maxRSS / 1024,
      phases: phases.toJSON(),
      backend: describeBackend(backend),
      eval: evals,
      layers: r.layers,
    };
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(summary)}\n`);
      return;
    }
    printSummary(summary, r.layers);
  } finally {
    backend.dispose();
  }
}

function printSummary(s: {
  out: string; method: string; size: SizeReport; layout: string; quantizeSeconds: number;
  resumedBlocks: number; peakRssMiB: number; backend: string; eval: EvalReport[]; phases: Record<string, PhaseFigures>;
}, layers: LayerReport[]): void {
  const [lead, ...roles] = describeSize(s.size);
  const lines = [
    `wrote ${s.out}: ${lead}`,
    ...roles,
    `  ${s.layout}`,
    `${s.method}: ${layers.length} layers quantized in ${formatDuration(s.quantizeSeconds * 1000)}` +
      `${s.resumedBlocks > 0 ? ` (resumed after ${s.resumedBlocks} blocks)` : ''}; peak RSS ${s.peakRssMiB.toFixed(0)} MiB; ${s.backend}`,
    `phases: ${Object.entries(s.phases).map(([name, p]) => `${name} ${p.wallSeconds.toFixed(1)} s (CPU ${p.cpuSeconds.toFixed(1)} s)`).join(', ')}`,
  ];
  for (const e of s.eval) {
    const fp32 = e.fp32 === undefined ? '' : `  (fp32 ${e.fp32.toFixed(4)})`;
    lines.push(`perplexity ${e.ppl.toFixed(4)} on ${e.text}${fp32}; ${e.windows} windows of ${e.seqlen}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** The method's model-level step with a progress line from its first window. */
function refineModel(method: QuantMethod<object>, options: object, ctx: ModelRefineContext, phases: PhaseClock): ModelRefineResult | null {
  const bar = createProgress(process.stderr, 'global fine-tuning', 'windows');
  const r = phases.time('global-finetune', () => method.refineModel!({ ...ctx, onProgress: (_e, d, t, note) => bar.update(d, t, note) }, options));
  bar.finish();
  return r;
}

/** The source with some float tensors replaced (trained norms). */
function withDense(source: ModelSource, dense: ReadonlyMap<string, Float32Array>): ModelSource {
  return { name: source.name, config: source.config, tensors: () => source.tensors(), load: (name) => dense.get(name)?.slice() ?? source.load(name) };
}

/** The source model's parameters (a tied matrix once). */
function parameterCount(c: Parameters<typeof expectedShapes>[0]): number {
  let n = 0;
  for (const shape of expectedShapes(c).values()) n += shape.reduce((a, b) => a * b, 1);
  return n;
}

function actBitsArg(value: string): number {
  const n = intArg(4, 16)(value);
  if (!ACT_BITS.includes(n)) throw new InvalidArgumentError(`expected one of ${ACT_BITS.join(', ')}`);
  return n;
}

/**
 * Small groups can cost more than the weights: each group stores at least a 16-bit scale, so
 * --group-size 7 at 2 bits gives ~6 bits per weight. A warning (the user may want exactly
 * that for an experiment), from the lower bound 16 / groupSize over rows of `dim` columns.
 */
function groupOverheadWarning(o: Record<string, unknown>, dim: number): string | undefined {
  const { bits, groupSize } = o;
  if (typeof bits !== 'number' || typeof groupSize !== 'number' || groupSize <= 0) return undefined;
  const perWeight = (Math.ceil(dim / groupSize) * 16) / dim;
  if (perWeight <= bits) return undefined;
  return `--group-size ${groupSize} stores at least ${perWeight.toFixed(2)} bits per weight of group scales, more than the ${bits} bits of the weights themselves; the file will be far larger than --bits suggests`;
}

/** Everything that determines the result: a work directory from other options cannot be resumed. */
function optionsHash(modelPath: string, method: string, options: Record<string, unknown>, calibText: string, backend: string): string {
  const st = statSync(modelPath);
  const h = createHash('sha256');
  h.update(JSON.stringify({ model: resolve(modelPath), size: st.size, mtime: st.mtimeMs, method, options, backend }));
  h.update(calibText);
  return h.digest('hex');
}
