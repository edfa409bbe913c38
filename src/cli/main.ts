#!/usr/bin/env node
/**
 * The `bitcrush` command. Every failure the user can fix (bad input file, bad flag) is one
 * line `bitcrush: <message>` on stderr and exit code 2; anything else is a bug: exit code 1,
 * with the stack trace under --verbose.
 */
import { runCli } from './run.js';

// stdout closed early (`bitcrush generate … | head`) is not an error
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});
process.exitCode = await runCli(process.argv);
