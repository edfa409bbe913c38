import type { Command } from 'commander';
import { InputError, UsageError } from '../io/errors.js';
import { readText } from '../io/bytes.js';
import { FileSource } from '../node/fs.js';
import { DEFAULT_WINDOW, defaultWindow, perplexityOfText, TextTooShortError } from '../eval/perplexity.js';
import { describeBackend, withModel } from './load.js';
import { backendArg, intArg, FLOAT_ACTIVATIONS_HELP, type RunOptions } from './options.js';
import { createProgress } from './progress.js';

interface EvalCliOptions extends RunOptions {
  text: string;
  seqlen?: number;
  maxWindows?: number;
  json?: boolean;
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('perplexity of a text: BOS + whole text tokenized, non-overlapping windows, remainder dropped')
    .argument('<model>', 'llama2.c .bin file, Hugging Face model directory or packed file from quantize')
    .requiredOption('--text <file>', 'UTF-8 text file to score')
    .option('--seqlen <n>', `window length in tokens (default: the model's context, at most ${DEFAULT_WINDOW})`, intArg(2))
    .option('--max-windows <n>', 'score only the first n windows (quick checks)', intArg(1))
    .option('--json', 'print the result as JSON')
    .option('--tokenizer <file>', 'tokenizer file (default: found beside the model)')
    .option('--backend <kind>', 'compute backend: auto, native, wasm or reference', backendArg, 'auto')
    .option('--threads <n>', 'threads (default: all cores)', intArg(1, 1024))
    .option('--float-activations', FLOAT_ACTIVATIONS_HELP)
    .action((modelPath: string, opts: EvalCliOptions, cmd: Command) => run(modelPath, opts, cmd.optsWithGlobals().verbose === true));
}

function run(modelPath: string, opts: EvalCliOptions, verbose: boolean): void {
  const textFile = new FileSource(opts.text);
  const text = readText(textFile);
  textFile.close();
  withModel(modelPath, opts, ({ model, tokenizer, backend }, loadSeconds) => {
    const seqLen = opts.seqlen ?? defaultWindow(model.config.seqLen);
    if (seqLen > model.config.seqLen) throw new UsageError(`--seqlen ${seqLen} exceeds the model's context of ${model.config.seqLen}`);
    if (verbose) process.stderr.write(`loaded ${modelPath} in ${loadSeconds.toFixed(2)} s (${describeBackend(backend)})\n`);
    const tokenizing = createProgress(process.stderr, 'tokenize', 'characters');
    const progress = createProgress(process.stderr, 'eval', 'windows');
    const t0 = performance.now();
    let tokenized = false;
    const r = namingText(opts.text, () => perplexityOfText(model, tokenizer, text, {
      seqLen,
      maxWindows: opts.maxWindows,
      onTokenize: (d, t) => tokenizing.update(d, t),
      onProgress: (d, t) => {
        if (!tokenized) tokenizing.finish();
        tokenized = true;
        progress.update(d, t);
      },
    }));
    progress.finish();
    const seconds = (performance.now() - t0) / 1000;
    if (opts.json) {
      const out = { model: modelPath, text: opts.text, seqlen: seqLen, ...r, seconds, backend: backend.name, threads: backend.threads };
      process.stdout.write(`${JSON.stringify(out)}\n`);
      return;
    }
    process.stdout.write(
      `perplexity ${r.ppl.toFixed(4)}  (mean NLL ${r.nll.toFixed(6)} nats over ${r.predicted} predicted tokens; ` +
        `${r.windows} windows of ${seqLen}; text ${r.textComplete ? '' : 'tokenized as far as needed: '}${r.tokens} tokens ${r.bos ? 'with BOS' : 'without BOS (the tokenizer has none)'}; ${seconds.toFixed(1)} s, ${describeBackend(backend)})\n`,
    );
  });
}

/** Runs `f`; a text too short to score becomes an input error naming its file. */
export function namingText<T>(file: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof TextTooShortError) throw new InputError(file, `${e.message} (pass a longer text or a smaller --seqlen)`);
    throw e;
  }
}
