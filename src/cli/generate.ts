import type { Command } from 'commander';
import { UsageError } from '../io/errors.js';
import { generate } from '../runtime/generate.js';
import { describeBackend, withModel } from './load.js';
import { backendArg, floatArg, intArg, seedArg, FLOAT_ACTIVATIONS_HELP, type RunOptions } from './options.js';

interface GenerateCliOptions extends RunOptions {
  prompt: string;
  maxTokens: number;
  temperature: number;
  topP: number;
  seed?: bigint;
  chat?: boolean;
  system?: string;
  json?: boolean;
}

export function registerGenerate(program: Command): void {
  program
    .command('generate')
    .description('continue a prompt, streaming the text to stdout (tokens/s on stderr)')
    .argument('<model>', 'llama2.c .bin file, Hugging Face model directory or packed file from quantize')
    .option('-p, --prompt <text>', 'text to continue', '')
    .option('-n, --max-tokens <n>', 'most tokens to generate (also bounded by the context)', intArg(1), 256)
    .option('-t, --temperature <t>', '0 = greedy (most likely token); higher = more random', floatArg(0, 100), 1)
    .option('--top-p <p>', 'nucleus sampling: sample among the most likely tokens covering p; 1 = off', floatArg(0, 1, true), 0.9)
    .option('-s, --seed <n>', 'random seed, a positive integer (default: the current time)', seedArg)
    .option('--chat', "chat mode: the prompt is the user's message, formatted with the model's chat template; prints the answer")
    .option('--system <text>', 'system message for --chat')
    .option('--json', 'print one JSON object (text, token counts, stop reason, tokens/s) instead of streaming')
    .option('--tokenizer <file>', 'tokenizer file (default: found beside the model)')
    .option('--backend <kind>', 'compute backend: auto, native, wasm or reference', backendArg, 'auto')
    .option('--threads <n>', 'threads (default: all cores)', intArg(1, 1024))
    .option('--float-activations', FLOAT_ACTIVATIONS_HELP)
    .action((modelPath: string, opts: GenerateCliOptions, cmd: Command) => run(modelPath, opts, cmd.optsWithGlobals().verbose === true));
}

function run(modelPath: string, opts: GenerateCliOptions, verbose: boolean): void {
  withModel(modelPath, opts, ({ model, tokenizer, backend }, loadSeconds) => {
    if (verbose) process.stderr.write(`loaded ${modelPath} in ${loadSeconds.toFixed(2)} s (${describeBackend(backend)})\n`);
    const seed = opts.seed ?? BigInt(Date.now());
    if (opts.system !== undefined && !opts.chat) throw new UsageError('--system needs --chat');
    const messages = opts.chat ? [...(opts.system !== undefined ? [{ role: 'system' as const, content: opts.system }] : []), { role: 'user' as const, content: opts.prompt }] : undefined;
    const it = generate(model, tokenizer, { prompt: opts.prompt, messages, maxTokens: opts.maxTokens, temperature: opts.temperature, topP: opts.topP, seed });
    if (opts.json) {
      let text = '';
      let r = it.next();
      for (; !r.done; r = it.next()) text += r.value;
      const s = r.value;
      const out = {
        model: modelPath, prompt: opts.prompt, ...(opts.chat ? { chat: true } : {}), text, ...s,
        tokensPerSecond: Number.isNaN(s.tokensPerSecond) ? null : s.tokensPerSecond,
        seed: String(seed), backend: backend.name, threads: backend.threads,
      };
      process.stdout.write(`${JSON.stringify(out)}\n`);
      return;
    }
    // like run.c, the output shows the prompt followed by its continuation (in chat mode: the answer alone)
    if (!opts.chat) process.stdout.write(opts.prompt);
    let r = it.next();
    for (; !r.done; r = it.next()) process.stdout.write(r.value);
    process.stdout.write('\n');
    const s = r.value;
    const rate = Number.isNaN(s.tokensPerSecond) ? 'n/a' : s.tokensPerSecond.toFixed(1);
    process.stderr.write(
      `${rate} tokens/s (decode; ${s.generatedTokens} tokens generated, stop: ${s.stop}; ` +
        `prompt ${s.promptTokens} tokens in ${s.prefillSeconds.toFixed(3)} s; ${describeBackend(backend)}; seed ${seed})\n`,
    );
  });
}
