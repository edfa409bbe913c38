/**
 * Checks on an output path before any long work starts, so a run cannot end, minutes later,
 * in "EISDIR" — or, worse, overwrite one of its own inputs (the source model) with exit 0.
 */
import { accessSync, constants, existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { UsageError } from '../io/errors.js';

/**
 * The files a run reads from `path`: the file itself, or every file of a directory (a Hugging
 * Face model directory's config, weights and tokenizer), one level deep.
 */
export function inputFiles(path: string | undefined): string[] {
  if (path === undefined || !existsSync(path)) return [];
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path).map((n) => join(path, n));
}

/**
 * Throws a UsageError naming `flag` unless `out` can be written as a file: not a directory, its
 * directory exists and is writable, and it is none of `inputs` (compared by device and inode,
 * so a symlink or hard link to an input is caught too).
 */
export function checkOutputFile(flag: string, out: string, inputs: readonly string[]): void {
  const what = `${flag} ${out}`;
  const abs = resolve(out);
  if (existsSync(abs)) {
    const st = statSync(abs);
    if (st.isDirectory()) throw new UsageError(`${what} is a directory; give a file name`);
    for (const input of inputs) {
      if (!existsSync(input)) continue;
      const ist = statSync(input);
      if (ist.dev === st.dev && ist.ino === st.ino) throw new UsageError(`${what} is the input ${input}: it would be overwritten; write to another file`);
    }
  }
  const dir = dirname(abs);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`${what}: directory ${dir} does not exist`);
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    throw new UsageError(`${what}: directory ${dir} is not writable`);
  }
}

/** A work directory (`<out>.partial/`) can be made: nothing but a directory already holds its name. */
export function checkWorkDirPath(dir: string): void {
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new UsageError(`${dir} exists and is not a directory (it would hold the quantize work files); move it away`);
}
