/**
 * The page's side of the model worker: promises for load and generate, a callback per
 * streamed piece. File bytes are transferred to the worker, not copied (the caller's buffers
 * are detached afterwards).
 */
import type { ModelCard } from './card.js';
import type { DownloadProgress } from './download.js';
import type { NamedBytes } from './files.js';
import type { CacheEntry } from './model-cache.js';
import type { BackendChoice, FromWorker, GenerateRequest, GenerateResult, RuntimeInfo, ToWorker } from './protocol.js';

/** A failure reported by the worker; `file` names the input file at fault, if any. */
export class ModelWorkerError extends Error {
  constructor(
    message: string,
    readonly file?: string,
  ) {
    super(message);
    this.name = 'ModelWorkerError';
  }
}

interface Pending {
  resolve(m: FromWorker): void;
  reject(e: Error): void;
  onPiece?(text: string): void;
  onProgress?(p: DownloadProgress): void;
}

export interface LoadOptions {
  /** Counts only on the first load, which starts the wasm backend. */
  threads?: number;
  backend?: BackendChoice;
  /** KV positions on WebGPU (default min(2048, the model's context, what the device binds)). */
  ctx?: number;
}

export type Loaded = { card: ModelCard; runtime: RuntimeInfo; chat: boolean };

export class ModelWorkerClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly worker: Worker) {
    worker.addEventListener('message', (e: MessageEvent) => this.receive(e.data as FromWorker));
    worker.addEventListener('error', (e) => this.failAll(new ModelWorkerError(`model worker failed: ${e.message || 'script error'}`)));
  }

  /**
   * Opens a packed model with its tokenizer (and companions such as tokenizer_config.json).
   * `threads` counts only on the first load, which starts the backend.
   */
  async load(files: NamedBytes[], threads?: number, backend?: BackendChoice, ctx?: number): Promise<Loaded> {
    const transfer = files.map((f) => f.bytes.buffer).filter((b): b is ArrayBuffer => b instanceof ArrayBuffer);
    const m = await this.request({ id: 0, type: 'load', files, threads, backend, ctx }, transfer);
    if (m.type !== 'loaded') throw new Error(`model worker: unexpected reply ${m.type}`);
    return { card: m.card, runtime: m.runtime, chat: m.chat };
  }

  /**
   * Loads the packed model at urls[0] with its tokenizer files (the rest): streamed download
   * with progress, kept in the browser's cache (`cache`, default true) so the next load of the
   * same URLs needs no network; the model's header is checked against the memory budget as soon
   * as it arrives.
   */
  async loadUrls(urls: string[], opts: LoadOptions & { cache?: boolean } = {}, onProgress?: (p: DownloadProgress) => void): Promise<Loaded> {
    const m = await this.request({ id: 0, type: 'load-urls', urls, ...opts }, [], undefined, onProgress);
    if (m.type !== 'loaded') throw new Error(`model worker: unexpected reply ${m.type}`);
    return { card: m.card, runtime: m.runtime, chat: m.chat };
  }

  /** The cached files (newest first), and whether this browser caches at all. */
  async cacheList(): Promise<{ entries: CacheEntry[]; available: boolean }> {
    const m = await this.request({ id: 0, type: 'cache-list' }, []);
    if (m.type !== 'cache') throw new Error(`model worker: unexpected reply ${m.type}`);
    return { entries: m.entries, available: m.available };
  }

  /** Deletes one URL's cached file (or all); resolves with what is left. */
  async cacheDelete(url?: string): Promise<{ entries: CacheEntry[]; available: boolean }> {
    const m = await this.request({ id: 0, type: 'cache-delete', url }, []);
    if (m.type !== 'cache') throw new Error(`model worker: unexpected reply ${m.type}`);
    return { entries: m.entries, available: m.available };
  }

  /** Generates, calling onPiece for every piece of text as it arrives. */
  async generate(req: GenerateRequest, onPiece: (text: string) => void): Promise<GenerateResult> {
    const m = await this.request({ id: 0, type: 'generate', ...req }, [], onPiece);
    if (m.type !== 'done') throw new Error(`model worker: unexpected reply ${m.type}`);
    return m.result;
  }

  /** Ends the running generation early (its promise resolves with stopped: true). */
  stop(): void {
    this.post({ type: 'stop' }, []);
  }

  terminate(): void {
    this.worker.terminate();
    this.failAll(new ModelWorkerError('model worker terminated'));
  }

  private request(m: Exclude<ToWorker, { type: 'stop' }>, transfer: Transferable[], onPiece?: (text: string) => void, onProgress?: (p: DownloadProgress) => void): Promise<FromWorker> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onPiece, onProgress });
      this.post({ ...m, id }, transfer);
    });
  }

  private post(m: ToWorker, transfer: Transferable[]): void {
    this.worker.postMessage(m, transfer);
  }

  private receive(m: FromWorker): void {
    const p = this.pending.get(m.id);
    if (p === undefined) return;
    if (m.type === 'piece') {
      p.onPiece?.(m.text);
      return;
    }
    if (m.type === 'progress') {
      p.onProgress?.(m.progress);
      return;
    }
    this.pending.delete(m.id);
    if (m.type === 'error') p.reject(new ModelWorkerError(m.message, m.file));
    else p.resolve(m);
  }

  private failAll(e: Error): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}
