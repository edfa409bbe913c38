/**
 * The `bitcrush` command as a function: parses `argv`, runs the command, resolves to the exit
 * code. Every failure the user can fix (bad input file, bad flag) is one line
 * `bitcrush: <message>` on stderr and exit code 2; anything else is a bug: exit code 1, with
 * the stack trace under --verbose. main.ts runs it as the process; the fuzz suite calls it in
 * process, many cases per worker.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { InputError, UsageError } from '../io/errors.js';
import { registerEval } from './eval.js';
import { registerExport } from './export.js';
import { registerGenerate } from './generate.js';
import { registerInfo } from './info.js';
import { registerInspect } from './inspect.js';
import { registerQuantize } from './quantize.js';

const USAGE_EXIT = 2;
const BUG_EXIT = 1;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function buildProgram(): Command {
  const program = new Command('bitcrush')
    .description('Crush Llama-family language models to 1-3 bits per weight and run them')
    .version(version())
    .option('--verbose', 'timings, and stack traces on errors')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      // commander's own usage errors ("error: unknown option ...") become our one-line format
      outputError: (str, write) => write(`bitcrush: ${str.trim().replace(/^error: /, '').split('\n')[0]}\n`),
    });
  // subcommands inherit exitOverride and the output configuration from here
  registerInfo(program);
  registerGenerate(program);
  registerEval(program);
  registerQuantize(program);
  registerInspect(program);
  registerExport(program);
  return program;
}

/** Runs the CLI; resolves to the exit code. */
export async function runCli(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : USAGE_EXIT; // already printed
    const verbose = program.opts().verbose === true || argv.includes('--verbose');
    const usage = e instanceof InputError || e instanceof UsageError;
    const message = e instanceof Error ? e.message : String(e);
    process.stderr.write(`bitcrush: ${usage ? message : `internal error: ${message}`}\n`);
    if (verbose && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
    else if (!usage) process.stderr.write('bitcrush: run with --verbose for the stack trace\n');
    return usage ? USAGE_EXIT : BUG_EXIT;
  }
}

