/**
 * A streamed download (fetch + the body's ReadableStream): progress as bytes arrive (bytes,
 * total when the server says, speed, ETA), the bytes handed to a sink chunk by chunk (the OPFS
 * cache, or memory when there is none), and a look at the first bytes before the rest is
 * fetched, so a packed model's header is checked (bounds, memory budget) before gigabytes
 * arrive. A body shorter than its Content-Length, a network error mid-way, or a refusal by the
 * check aborts the request and leaves the sink aborted (no half-written cache entry).
 */
import { InputError } from '../io/errors.js';
import { baseName } from './fetch.js';

export interface DownloadProgress {
  /** The URL as given. */
  url: string;
  name: string;
  loaded: number;
  /** Bytes the server announced (Content-Length of an unencoded body), else undefined. */
  total?: number;
  /** Average since the download started, bytes/s. */
  bytesPerSecond: number;
  /** Seconds left at that speed, when the total is known. */
  etaSeconds?: number;
  /** The bytes came from the cache, not the network. */
  fromCache: boolean;
  done: boolean;
}

export interface DownloadSink {
  write(chunk: Uint8Array): void;
  abort(): Promise<void>;
}

export interface DownloadOptions {
  onProgress?: (p: DownloadProgress) => void;
  /** Least time between two progress calls, ms (the last one always comes). */
  progressMs?: number;
  /**
   * Called with the first bytes once at least the count it last asked for have arrived (first:
   * 8); returns how many bytes it needs in all to decide, or 0 when done. Throwing refuses the
   * file (the download is aborted). `total` is the announced size.
   */
  inspect?: (prefix: Uint8Array, total: number | undefined) => number;
  init?: RequestInit;
}

/** Most bytes `inspect` is given: a header longer than this is read after the download. */
const INSPECT_LIMIT = 64 << 20;

/** Streams `url` into the sink made by `sink(name, total)`; resolves with the byte count. */
export async function download(url: string, sink: (name: string, total: number | undefined) => Promise<DownloadSink>, opts: DownloadOptions = {}): Promise<{ name: string; bytes: number }> {
  const controller = new AbortController();
  let res: Response;
  try {
    res = await fetch(url, { ...opts.init, signal: controller.signal });
  } catch (e) {
    throw new InputError(url, `cannot fetch: ${(e as Error).message}`);
  }
  if (!res.ok) throw new InputError(url, `HTTP ${res.status} ${res.statusText}`.trim());
  const name = decodeURIComponent(baseName(new URL(url, globalThis.location?.href).pathname)) || url;
  const length = Number(res.headers.get('content-length') ?? NaN);
  const encoded = !['', 'identity'].includes((res.headers.get('content-encoding') ?? '').toLowerCase());
  const total = Number.isSafeInteger(length) && length >= 0 && !encoded ? length : undefined;
  const out = await sink(name, total);
  const t0 = performance.now();
  let loaded = 0;
  let lastReport = -Infinity;
  const report = (done: boolean) => {
    const now = performance.now();
    if (!done && now - lastReport < (opts.progressMs ?? 100)) return;
    lastReport = now;
    const bytesPerSecond = loaded / Math.max((now - t0) / 1000, 1e-3);
    const etaSeconds = total !== undefined && bytesPerSecond > 0 ? Math.max(0, total - loaded) / bytesPerSecond : undefined;
    opts.onProgress?.({ url, name, loaded, total, bytesPerSecond, etaSeconds, fromCache: false, done });
  };
  // the first bytes, kept until inspect has seen enough
  let head: Uint8Array[] | undefined = opts.inspect ? [] : undefined;
  let headBytes = 0;
  let wanted = 8;
  try {
    if (res.body === null) throw new InputError(url, 'the response has no body');
    const reader = res.body.getReader();
    try {
      for (;;) {
        let r: ReadableStreamReadResult<Uint8Array>;
        try {
          r = await reader.read();
        } catch (e) {
          const of = total !== undefined ? ` of ${total}` : '';
          throw new InputError(url, `download failed after ${loaded}${of} bytes: ${(e as Error).message}`);
        }
        if (r.done) break;
        loaded += r.value.byteLength;
        if (total !== undefined && loaded > total) throw new InputError(url, `the server sent more than the ${total} bytes it announced`);
        out.write(r.value);
        if (head !== undefined) {
          head.push(r.value.slice());
          headBytes += r.value.byteLength;
          if (headBytes >= wanted) {
            const prefix = concat(head, headBytes);
            head = [prefix];
            wanted = opts.inspect!(prefix, total);
            if (wanted <= headBytes || wanted > INSPECT_LIMIT) head = undefined;
          }
        }
        report(false);
      }
    } finally {
      reader.releaseLock();
    }
    if (total !== undefined && loaded !== total) throw new InputError(url, `download stopped at ${loaded} of ${total} bytes`);
  } catch (e) {
    controller.abort();
    await out.abort();
    throw e;
  }
  report(true);
  return { name, bytes: loaded };
}

/** A sink holding the bytes in memory: one buffer of the announced size, else chunks joined at the end. */
export class MemorySink implements DownloadSink {
  private readonly chunks: Uint8Array[] = [];
  private buffer: Uint8Array<ArrayBuffer> | undefined;
  private at = 0;

  constructor(total?: number) {
    if (total !== undefined) this.buffer = new Uint8Array(total);
  }

  write(chunk: Uint8Array): void {
    if (this.buffer !== undefined) this.buffer.set(chunk, this.at);
    else this.chunks.push(chunk.slice());
    this.at += chunk.byteLength;
  }

  async abort(): Promise<void> {
    this.chunks.length = 0;
    this.buffer = undefined;
  }

  bytes(): Uint8Array<ArrayBuffer> {
    return this.buffer !== undefined ? this.buffer.subarray(0, this.at) : concat(this.chunks, this.at);
  }
}

function concat(chunks: Uint8Array[], bytes: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(bytes);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.byteLength;
  }
  return out;
}
