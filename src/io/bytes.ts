import { check } from './errors.js';

/**
 * Random-access bytes of one file. The core reads files only through this interface so it
 * runs in Node (backed by a file descriptor, read lazily) and in the browser (backed by an
 * ArrayBuffer) alike.
 */
export interface ByteSource {
  /** Name used in error messages (a path or a URL). */
  readonly name: string;
  readonly size: number;
  /** Exactly `length` bytes starting at `offset`; throws InputError past the end. */
  read(offset: number, length: number): Uint8Array;
}

/** How the core finds a file next to another one (tokenizer next to a model, shards). */
export interface FileSystemLike {
  open(path: string): ByteSource;
  exists(path: string): boolean;
  /** `dir` joined with `name`, in the host's path syntax. */
  join(dir: string, name: string): string;
  dirname(path: string): string;
  isDirectory(path: string): boolean;
  /** Names of the entries of a directory (optional: used to find e.g. `tok512.bin` beside a model). */
  list?(dir: string): string[];
}

export class BufferSource implements ByteSource {
  readonly size: number;
  constructor(
    readonly name: string,
    private readonly bytes: Uint8Array,
  ) {
    this.size = bytes.byteLength;
  }

  read(offset: number, length: number): Uint8Array {
    checkRange(this, offset, length);
    return this.bytes.subarray(offset, offset + length);
  }
}

export function checkRange(src: ByteSource, offset: number, length: number): void {
  check(
    Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0 && offset + length <= src.size,
    src.name,
    `truncated: needs bytes ${offset}..${offset + length} but the file has ${src.size}`,
  );
}

export function readText(src: ByteSource): string {
  return new TextDecoder('utf-8').decode(src.read(0, src.size));
}

/**
 * A fresh ArrayBuffer holding a copy of `bytes`. (Not `bytes.slice().buffer`: a Node Buffer's
 * slice is a view, so its `.buffer` would be the whole pooled allocation.)
 */
export function copyToArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  const out = new Uint8Array(bytes.byteLength);
  out.set(bytes);
  return out.buffer;
}
