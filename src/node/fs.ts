import { closeSync, existsSync, fstatSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { checkRange, type ByteSource, type FileSystemLike } from '../io/bytes.js';
import { InputError } from '../io/errors.js';

/** A file read lazily through a descriptor, so large models are never read whole. */
export class FileSource implements ByteSource {
  readonly size: number;
  private readonly fd: number;

  constructor(readonly name: string) {
    try {
      this.fd = openSync(name, 'r');
    } catch (e) {
      throw new InputError(name, (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `cannot open (${(e as Error).message})`);
    }
    const st = fstatSync(this.fd);
    if (!st.isFile()) throw new InputError(name, 'not a regular file');
    this.size = st.size;
  }

  read(offset: number, length: number): Uint8Array {
    checkRange(this, offset, length);
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, out, done, length - done, offset + done);
      if (n === 0) throw new InputError(this.name, 'file shrank while reading');
      done += n;
    }
    return out;
  }

  close(): void {
    closeSync(this.fd);
  }
}

export const nodeFs: FileSystemLike = {
  open: (path) => new FileSource(path),
  exists: (path) => existsSync(path),
  join,
  dirname,
  isDirectory: (path) => existsSync(path) && statSync(path).isDirectory(),
  list: (dir) => readdirSync(dir),
};
