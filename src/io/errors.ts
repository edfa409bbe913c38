/**
 * Errors about untrusted inputs. The CLI prints these as one line
 * (`bitcrush: <file>: <problem>`) and exits with code 2; anything else is a bug.
 */
export class InputError extends Error {
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${file}: ${problem}`);
    this.name = 'InputError';
  }
}

/** A file that was looked for and is absent (a tokenizer beside a model): callers may fall back, unlike on a bad file. */
export class NotFoundError extends InputError {
  constructor(file: string, problem: string) {
    super(file, problem);
    this.name = 'NotFoundError';
  }
}

/** Bad command-line usage (unknown flag, value out of range). Also exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Throw an InputError naming `file` unless `ok`. */
export function check(ok: boolean, file: string, problem: string): asserts ok {
  if (!ok) throw new InputError(file, problem);
}
