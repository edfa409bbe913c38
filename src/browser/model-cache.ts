/**
 * Downloaded files kept in the origin private file system (OPFS), so a second visit loads a
 * multi-GB model without the network. Each URL has two files in `bitcrush-models/`: the bytes
 * (`<key>.bin`, written chunk by chunk as they arrive, never held whole in memory) and, written
 * last, its record (`<key>.json`: URL, name, size, date). An entry without a record, or whose
 * bytes differ in size from it, is a download that did not finish: it is never served, and it
 * is removed when seen. Reads go through synchronous access handles, which only dedicated
 * workers have; where OPFS or those handles are missing (`openModelCache` returns undefined)
 * the page downloads into memory and caches nothing.
 */
import { checkRange, type ByteSource } from '../io/bytes.js';
import { InputError } from '../io/errors.js';

const DIR = 'bitcrush-models';

export interface CacheEntry {
  url: string;
  /** The file's base name, as the page shows it. */
  name: string;
  bytes: number;
  /** When it was stored (ISO 8601). */
  stored: string;
}

/** The synchronous access handle's methods used here (lib.webworker types it; structural for the page). */
interface SyncHandle {
  read(buffer: Uint8Array, opts: { at: number }): number;
  write(buffer: Uint8Array, opts: { at: number }): number;
  getSize(): number;
  truncate(size: number): void;
  flush(): void;
  close(): void;
}

/** A cached file read lazily through its access handle: no copy of the whole file in memory. */
export class CachedSource implements ByteSource {
  readonly size: number;
  private handle: SyncHandle | undefined;

  constructor(
    readonly name: string,
    handle: SyncHandle,
  ) {
    this.handle = handle;
    this.size = handle.getSize();
  }

  read(offset: number, length: number): Uint8Array {
    checkRange(this, offset, length);
    if (this.handle === undefined) throw new InputError(this.name, 'the cached file was closed (deleted, or another model loaded)');
    const out = new Uint8Array(length);
    const n = this.handle.read(out, { at: offset });
    if (n !== length) throw new InputError(this.name, `the cached file gave ${n} of ${length} bytes at ${offset} (changed on disk?)`);
    return out;
  }

  close(): void {
    this.handle?.close();
    this.handle = undefined;
  }
}

/** One download being written: chunks in order, then `commit` (record written) or `abort` (nothing left). */
export interface CacheWriter {
  write(chunk: Uint8Array): void;
  commit(): Promise<CachedSource>;
  abort(): Promise<void>;
}

export class ModelCache {
  private constructor(private readonly dir: FileSystemDirectoryHandle) {}

  /** The cache, or undefined where OPFS with synchronous handles is unavailable (then nothing is cached). */
  static async open(): Promise<ModelCache | undefined> {
    const storage = (globalThis.navigator as Navigator | undefined)?.storage;
    if (storage?.getDirectory === undefined) return undefined;
    try {
      const root = await storage.getDirectory();
      const dir = await root.getDirectoryHandle(DIR, { create: true });
      const probe = await dir.getFileHandle('.probe', { create: true });
      if (typeof (probe as { createSyncAccessHandle?: unknown }).createSyncAccessHandle !== 'function') return undefined;
      return new ModelCache(dir);
    } catch {
      return undefined;
    }
  }

  /** Complete entries, newest first; unfinished downloads found on the way are removed. */
  async list(): Promise<CacheEntry[]> {
    const out: CacheEntry[] = [];
    const names = new Set<string>();
    for await (const name of (this.dir as unknown as { keys(): AsyncIterable<string> }).keys()) names.add(name);
    for (const name of names) {
      if (!name.endsWith('.bin')) continue;
      const key = name.slice(0, -4);
      const entry = names.has(`${key}.json`) ? await this.record(key) : undefined;
      const size = (await (await this.dir.getFileHandle(name)).getFile()).size;
      if (entry === undefined || entry.bytes !== size) await this.remove(key);
      else out.push(entry);
    }
    for (const name of names) if (name.endsWith('.json') && !names.has(`${name.slice(0, -5)}.bin`)) await this.dir.removeEntry(name).catch(() => undefined);
    return out.sort((a, b) => b.stored.localeCompare(a.stored));
  }

  /** The cached bytes of `url`, opened for reading, or undefined when not cached (or unfinished). */
  async get(url: string): Promise<{ entry: CacheEntry; source: CachedSource } | undefined> {
    const key = await cacheKey(url);
    const entry = await this.record(key);
    if (entry === undefined) return undefined;
    let handle: SyncHandle;
    try {
      handle = await this.syncHandle(`${key}.bin`, false);
    } catch {
      await this.remove(key);
      return undefined;
    }
    if (handle.getSize() !== entry.bytes) {
      handle.close();
      await this.remove(key);
      return undefined;
    }
    return { entry, source: new CachedSource(entry.name, handle) };
  }

  /** Starts storing `url`'s bytes; an older entry of the same URL is dropped first. */
  async begin(url: string, name: string): Promise<CacheWriter> {
    const key = await cacheKey(url);
    await this.remove(key);
    const handle = await this.syncHandle(`${key}.bin`, true);
    handle.truncate(0);
    let at = 0;
    let open = true;
    const drop = async () => {
      if (open) handle.close();
      open = false;
      await this.remove(key);
    };
    return {
      write: (chunk) => {
        const n = handle.write(chunk, { at });
        if (n !== chunk.byteLength) throw new Error(`the browser stored ${n} of ${chunk.byteLength} bytes (storage full?)`);
        at += n;
      },
      commit: async () => {
        handle.flush();
        const entry: CacheEntry = { url, name, bytes: at, stored: new Date().toISOString() };
        try {
          const rec = await this.dir.getFileHandle(`${key}.json`, { create: true });
          const w = await rec.createWritable();
          await w.write(JSON.stringify(entry));
          await w.close();
        } catch (e) {
          await drop();
          throw e;
        }
        return new CachedSource(name, handle);
      },
      abort: drop,
    };
  }

  /** Removes one URL's entry, or every entry. */
  async delete(url?: string): Promise<void> {
    if (url !== undefined) return this.remove(await cacheKey(url));
    const names: string[] = [];
    for await (const name of (this.dir as unknown as { keys(): AsyncIterable<string> }).keys()) names.push(name);
    for (const name of names) await this.dir.removeEntry(name).catch(() => undefined);
  }

  private async record(key: string): Promise<CacheEntry | undefined> {
    try {
      const text = await (await (await this.dir.getFileHandle(`${key}.json`)).getFile()).text();
      const e = JSON.parse(text) as Partial<CacheEntry>;
      const ok = typeof e.url === 'string' && typeof e.name === 'string' && typeof e.stored === 'string' && Number.isSafeInteger(e.bytes) && e.bytes! >= 0;
      return ok ? (e as CacheEntry) : undefined;
    } catch {
      return undefined;
    }
  }

  private async remove(key: string): Promise<void> {
    // the record first: bytes without a record are never served
    for (const name of [`${key}.json`, `${key}.bin`]) await this.dir.removeEntry(name).catch(() => undefined);
  }

  private async syncHandle(name: string, create: boolean): Promise<SyncHandle> {
    const file = await this.dir.getFileHandle(name, { create });
    return (await (file as unknown as { createSyncAccessHandle(): Promise<SyncHandle> }).createSyncAccessHandle());
  }
}

/** The file name of a URL's entry: its SHA-256, hex (URLs may be long and hold any character). */
async function cacheKey(url: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(url));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('').slice(0, 40);
}
