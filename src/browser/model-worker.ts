/**
 * The model's side of the page: runs inside a Web Worker, because the wasm pool blocks its
 * caller (Atomics.wait) and a forward pass must not freeze the page. Holds one backend for its
 * lifetime and one model at a time; streams generated pieces back as they are produced.
 */
import { InputError, UsageError } from '../io/errors.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { BufferSource } from '../io/bytes.js';
import { PackedModel } from '../packed/reader.js';
import { generate, generateAsync, type GenerateStats } from '../runtime/generate.js';
import { backendBytes, formatBytes, WASM_MAX_BYTES } from '../runtime/memory.js';
import { LlamaModel } from '../runtime/model.js';
import { createBrowserBackend, type BrowserBackend } from './backend.js';
import { modelCard } from './card.js';
import { openTokenizerBytes, sortModelFiles, type NamedBytes } from './files.js';
import type { BackendChoice, FromWorker, GenerateRequest, ToWorker } from './protocol.js';
import { acquireGpu, type GpuContext } from '../webgpu/device.js';
import { GpuModel } from '../webgpu/forward.js';

export interface ModelWorkerOptions {
  /** The kernels (wasm/kernels.wasm): fetched once, on the first load. */
  wasm: () => Promise<WebAssembly.Module | ArrayBuffer>;
  /** Starts one wasm pool thread (see createBrowserBackend); omit for single-threaded. */
  spawnPoolWorker?: () => Worker;
}

interface WorkerScope {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(message: unknown): void;
}

/** How often a generation lets queued messages (stop) in, in ms. */
const YIELD_MS = 20;

export function serveModelWorker(opts: ModelWorkerOptions, scope: WorkerScope = globalThis as never): void {
  let runtime: Promise<BrowserBackend> | undefined;
  let loaded: { model: LlamaModel | GpuModel; tokenizer: Tokenizer } | undefined;
  let gpu: Promise<GpuContext | string> | undefined;
  let stopRequested = false;
  const post = (m: FromWorker) => scope.postMessage(m);

  async function load(id: number, files: NamedBytes[], threads: number | undefined, choice: BackendChoice = 'auto'): Promise<void> {
    const t0 = performance.now();
    // files first: a bad input fails before any thread starts
    const { model: file, tokenizer: tokFile, others } = sortModelFiles(files);
    const packed = new PackedModel(new BufferSource(file.name, file.bytes));
    const tokenizer = openTokenizerBytes(tokFile, others);
    if (tokenizer.vocabSize > packed.config.vocabSize) {
      throw new InputError(tokFile.name, `the tokenizer has ${tokenizer.vocabSize} tokens but the model only ${packed.config.vocabSize}: they do not belong together`);
    }
    let webgpuUnavailable: string | undefined;
    if (choice !== 'wasm') {
      gpu ??= acquireGpu();
      const ctx = await gpu;
      if (typeof ctx === 'string') webgpuUnavailable = ctx;
      else {
        try {
          loaded?.model.dispose();
          loaded = undefined;
          const model = await ctx.checked('model upload', () => new GpuModel(ctx, packed));
          loaded = { model, tokenizer };
          const adapter = [ctx.info.vendor, ctx.info.architecture, ctx.info.description].filter((x) => x !== '').join(' ');
          const info = { backend: 'webgpu', adapter, threads: 1, isolated: false, loadMs: performance.now() - t0 };
          post({ id, type: 'loaded', card: modelCard(packed, file.bytes.byteLength), runtime: info, chat: tokenizer.chat !== undefined });
          return;
        } catch (e) {
          webgpuUnavailable = e instanceof Error ? e.message : String(e);
        }
      }
      if (choice === 'webgpu') throw new UsageError(`WebGPU cannot run this model: ${webgpuUnavailable}`);
    }
    runtime ??= opts.wasm().then((wasm) => createBrowserBackend({ wasm, threads, spawnWorker: opts.spawnPoolWorker }));
    let backend: BrowserBackend['backend'];
    let isolated: boolean;
    try {
      ({ backend, isolated } = await runtime);
    } catch (e) {
      runtime = undefined; // the next load tries again
      throw e;
    }
    const need = backendBytes(packed, Math.min(packed.config.seqLen, 512), (n) => packed.packedBytes(n));
    if (need > WASM_MAX_BYTES) throw new InputError(file.name, `needs ${formatBytes(need)} of kernel memory; the browser's wasm backend holds ${formatBytes(WASM_MAX_BYTES)}: use fewer bits or a smaller model`);
    loaded?.model.dispose();
    loaded = undefined;
    const model = new LlamaModel(packed, { backend, linear: packed.linears(backend) });
    loaded = { model, tokenizer };
    const info = { backend: backend.name, threads: backend.threads, isolated, loadMs: performance.now() - t0, webgpuUnavailable };
    post({ id, type: 'loaded', card: modelCard(packed, file.bytes.byteLength), runtime: info, chat: tokenizer.chat !== undefined });
  }

  async function run(id: number, req: GenerateRequest): Promise<void> {
    if (loaded === undefined) throw new UsageError('no model loaded');
    stopRequested = false;
    const t0 = performance.now();
    const { prompt, maxTokens, temperature, topP, seed, chat } = req;
    const messages = chat ? [...(chat.system ? [{ role: 'system' as const, content: chat.system }] : []), { role: 'user' as const, content: prompt }] : undefined;
    const gopts = { prompt, messages, maxTokens, temperature, topP, seed };
    const gen = loaded.model instanceof GpuModel ? generateAsync(loaded.model, loaded.tokenizer, gopts) : generate(loaded.model, loaded.tokenizer, gopts);
    let pieces = 0;
    let lastYield = t0;
    let stats: GenerateStats | undefined;
    for (;;) {
      const r = await gen.next();
      if (r.done) {
        stats = r.value;
        break;
      }
      pieces++;
      post({ id, type: 'piece', text: r.value });
      if (performance.now() - lastYield > YIELD_MS) {
        await new Promise((resolve) => setTimeout(resolve, 0));
        lastYield = performance.now();
        if (stopRequested) {
          await gen.return(undefined as never);
          break;
        }
      }
    }
    const wallSeconds = (performance.now() - t0) / 1000;
    const result = stats
      ? { ...stats, stopped: false, wallSeconds }
      : { promptTokens: 0, generatedTokens: pieces, stop: 'max-tokens' as const, prefillSeconds: NaN, tokensPerSecond: pieces / wallSeconds, stopped: true, wallSeconds };
    post({ id, type: 'done', result });
  }

  // one request at a time, in order; `stop` is handled at once
  let queue: Promise<void> = Promise.resolve();
  scope.onmessage = (e: MessageEvent) => {
    const m = e.data as ToWorker;
    if (m.type === 'stop') {
      stopRequested = true;
      return;
    }
    queue = queue.then(async () => {
      try {
        if (m.type === 'load') await load(m.id, m.files, m.threads, m.backend);
        else await run(m.id, m);
      } catch (err) {
        const file = err instanceof InputError ? err.file : undefined;
        post({ id: m.id, type: 'error', message: err instanceof Error ? err.message : String(err), file });
      }
    });
  };
}
