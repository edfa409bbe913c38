/**
 * The page's side of the model worker: promises for load and generate, a callback per
 * streamed piece. File bytes are transferred to the worker, not copied (the caller's buffers
 * are detached afterwards).
 */
import type { ModelCard } from './card.js';
import type { NamedBytes } from './files.js';
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
}

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
  async load(files: NamedBytes[], threads?: number, backend?: BackendChoice): Promise<{ card: ModelCard; runtime: RuntimeInfo; chat: boolean }> {
    const transfer = files.map((f) => f.bytes.buffer).filter((b): b is ArrayBuffer => b instanceof ArrayBuffer);
    const m = await this.request({ id: 0, type: 'load', files, threads, backend }, transfer);
    if (m.type !== 'loaded') throw new Error(`model worker: unexpected reply ${m.type}`);
    return { card: m.card, runtime: m.runtime, chat: m.chat };
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

  private request(m: Exclude<ToWorker, { type: 'stop' }>, transfer: Transferable[], onPiece?: (text: string) => void): Promise<FromWorker> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onPiece });
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
    this.pending.delete(m.id);
    if (m.type === 'error') p.reject(new ModelWorkerError(m.message, m.file));
    else p.resolve(m);
  }

  private failAll(e: Error): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}
