/**
 * Writes a file so that its path only ever holds a complete file: the bytes go to
 * `<path>.tmp-<pid>` next to it (same directory, so the rename cannot cross file systems), are
 * flushed to disk, and the temp file is renamed over `path`. On any error the temp file is
 * removed and `path` keeps whatever it held before.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';

export interface AtomicWriteOptions {
  /** When given, a different byte count is an error (the planned size of a packed file). */
  expectedSize?: number;
}

/** Streams `chunks` to `path` atomically; returns the bytes written. */
export function writeFileAtomic(path: string, chunks: Iterable<Uint8Array>, opts: AtomicWriteOptions = {}): number {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  let written = 0;
  try {
    for (const chunk of chunks) {
      let done = 0;
      while (done < chunk.byteLength) done += writeSync(fd, chunk, done, chunk.byteLength - done);
      written += chunk.byteLength;
    }
    if (opts.expectedSize !== undefined && written !== opts.expectedSize) {
      throw new Error(`${path}: wrote ${written} bytes, expected ${opts.expectedSize}`);
    }
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  return written;
}
