/**
 * The model's side of the page: runs inside a Web Worker, because the wasm pool blocks its
 * caller (Atomics.wait) and a forward pass must not freeze the page. Holds one backend for its
 * lifetime and one model at a time; streams generated pieces back as they are produced.
 */
import { InputError, UsageError } from '../io/errors.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { BufferSource, type ByteSource } from '../io/bytes.js';
import { PackedModel } from '../packed/reader.js';
import { generate, generateAsync, type GenerateStats } from '../runtime/generate.js';
import { LlamaModel } from '../runtime/model.js';
import { createBrowserBackend, type BrowserBackend } from './backend.js';
import { modelCard } from './card.js';
import { budgetRefusal, memoryBudget, packedFromPrefix, type BudgetLimits } from './budget.js';
import { download, MemorySink, type DownloadProgress } from './download.js';
import { openTokenizerBytes, sortModelFiles, sortTokenizerFiles, type NamedBytes } from './files.js';
import { CachedSource, ModelCache, type CacheWriter } from './model-cache.js';
import type { BackendChoice, FromWorker, GenerateRequest, RuntimeInfo, ToWorker } from './protocol.js';
import { acquireGpu, type GpuContext } from '../webgpu/device.js';
import { GpuModel } from '../webgpu/forward.js';
import { baseName } from './fetch.js';

export interface ModelWorkerOptions {
  /** The kernels (wasm/kernels.wasm, or kernels-relaxed.wasm where chooseWasmKernels() says so): fetched once, on the first load. */
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

interface OpenRequest {
  packed: PackedModel;
  tokenizer: Tokenizer;
  tokName: string;
  choice: BackendChoice;
  threads?: number;
  ctx?: number;
  /** When the load started (performance.now()). */
  t0: number;
  sources?: RuntimeInfo['sources'];
  cached?: boolean;
}

/**
 * The header check of a download: parses the packed header from the first bytes (bounds and
 * consistency, as for the whole file) and refuses a model no backend of `choice` can hold.
 * Returns the bytes it still needs (0: done). Without an announced size the header cannot be
 * checked against the file, so the check waits for the whole file (the full parse does it).
 */
function checkHeader(url: string, prefix: Uint8Array, total: number | undefined, lim: BudgetLimits, choice: BackendChoice): number {
  if (total === undefined) return 0;
  const name = decodeURIComponent(baseName(new URL(url, globalThis.location?.href).pathname)) || url;
  const packed = packedFromPrefix(name, prefix, total);
  if (typeof packed === 'number') return packed;
  const refusal = budgetRefusal(memoryBudget(packed, lim), choice);
  if (refusal !== undefined) throw new InputError(name, refusal);
  return 0;
}

/** Runs a download's header check on a file already whole (a cached one): the budget may differ on this visit. */
function inspectWhole(src: ByteSource, inspect: (p: Uint8Array, t: number | undefined) => number): void {
  let need = inspect(src.read(0, Math.min(8, src.size)), src.size);
  if (need > 0 && need <= src.size) need = inspect(src.read(0, need), src.size);
}

/** A small file's bytes as an ArrayBuffer-backed copy (tokenizers). */
function copyBytes(src: ByteSource): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(src.size);
  out.set(src.read(0, src.size));
  return out;
}

export function serveModelWorker(opts: ModelWorkerOptions, scope: WorkerScope = globalThis as never): void {
  let runtime: Promise<BrowserBackend> | undefined;
  let loaded: { model: LlamaModel | GpuModel; tokenizer: Tokenizer } | undefined;
  let gpu: Promise<GpuContext | string> | undefined;
  let stopRequested = false;
  let modelCache: Promise<ModelCache | undefined> | undefined;
  const post = (m: FromWorker) => scope.postMessage(m);

  /** Budget limits of this browser: the GPU's (asked for unless `choice` is wasm) and navigator.deviceMemory. */
  async function limits(choice: BackendChoice, ctx: number | undefined): Promise<{ gpuCtx?: GpuContext; limits: BudgetLimits }> {
    let gpuCtx: GpuContext | undefined;
    let gpuInfo: BudgetLimits['gpu'] = 'not asked for (backend wasm)';
    if (choice !== 'wasm') {
      gpu ??= acquireGpu();
      const g = await gpu;
      if (typeof g === 'string') gpuInfo = g;
      else {
        gpuCtx = g;
        gpuInfo = { maxBufferBytes: g.info.maxBufferBytes, maxBindingBytes: g.info.maxBindingBytes };
      }
    }
    const deviceMemoryGiB = (globalThis.navigator as { deviceMemory?: number } | undefined)?.deviceMemory;
    return { gpuCtx, limits: { gpu: gpuInfo, deviceMemoryGiB, positions: ctx } };
  }

  /** Builds the model on the backend `choice` allows and the budget fits; posts 'loaded'. */
  async function open(id: number, o: OpenRequest): Promise<void> {
    const { packed, tokenizer, tokName, choice, threads, t0 } = o;
    if (tokenizer.vocabSize > packed.config.vocabSize) {
      throw new InputError(tokName, `the tokenizer has ${tokenizer.vocabSize} tokens but the model only ${packed.config.vocabSize}: they do not belong together`);
    }
    const { gpuCtx, limits: lim } = await limits(choice, o.ctx);
    const budget = memoryBudget(packed, lim);
    const refusal = budgetRefusal(budget, choice);
    if (refusal !== undefined) throw new InputError(packed.name, refusal);
    const card = modelCard(packed, packed.fileBytes);
    const common = { warning: budget.warning, sources: o.sources, cached: o.cached };
    let webgpuUnavailable = budget.webgpu.why;
    if (gpuCtx !== undefined && budget.webgpu.fits) {
      try {
        loaded?.model.dispose();
        loaded = undefined;
        const positions = budget.webgpu.positions;
        const model = await gpuCtx.checked('model upload', () => new GpuModel(gpuCtx, packed, { positions }));
        loaded = { model, tokenizer };
        const adapter = [gpuCtx.info.vendor, gpuCtx.info.architecture, gpuCtx.info.description].filter((x) => x !== '').join(' ');
        const info = { backend: 'webgpu', adapter, threads: 1, isolated: false, loadMs: performance.now() - t0, positions, needBytes: budget.webgpu.needBytes, ...common };
        post({ id, type: 'loaded', card, runtime: info, chat: tokenizer.chat !== undefined });
        return;
      } catch (e) {
        webgpuUnavailable = e instanceof Error ? e.message : String(e);
      }
    }
    if (choice === 'webgpu') throw new UsageError(`WebGPU cannot run this model: ${webgpuUnavailable}`);
    if (!budget.wasm.fits) throw new InputError(packed.name, `does not fit: ${budget.wasm.why}; and ${webgpuUnavailable}`);
    runtime ??= opts.wasm().then((wasm) => createBrowserBackend({ wasm, threads, spawnWorker: opts.spawnPoolWorker }));
    let backend: BrowserBackend['backend'];
    let isolated: boolean;
    try {
      ({ backend, isolated } = await runtime);
    } catch (e) {
      runtime = undefined; // the next load tries again
      throw e;
    }
    loaded?.model.dispose();
    loaded = undefined;
    // the context the budget counted: the KV cache never grows past it
    const positions = budget.wasm.positions;
    const model = new LlamaModel(packed, { backend, linear: packed.linears(backend), positions });
    loaded = { model, tokenizer };
    const info = { backend: backend.name, kernels: backend.kernels, threads: backend.threads, isolated, loadMs: performance.now() - t0, webgpuUnavailable, positions, needBytes: budget.wasm.needBytes, ...common };
    post({ id, type: 'loaded', card, runtime: info, chat: tokenizer.chat !== undefined });
  }

  async function load(id: number, files: NamedBytes[], threads: number | undefined, choice: BackendChoice = 'auto', ctx?: number): Promise<void> {
    const t0 = performance.now();
    // files first: a bad input fails before any thread starts
    const { model: file, tokenizer: tokFile, others } = sortModelFiles(files);
    const packed = new PackedModel(new BufferSource(file.name, file.bytes));
    const tokenizer = openTokenizerBytes(tokFile, others);
    await open(id, { packed, tokenizer, tokName: tokFile.name, choice, threads, ctx, t0 });
  }

  /**
   * urls[0] is the packed model, the rest its tokenizer files. Each comes from the cache when
   * stored there, else is downloaded (into the cache when there is one); the model's header is
   * parsed and its budget checked as soon as its bytes arrive, aborting a download that would
   * not fit. The model is read from the cache through an access handle, not copied whole.
   */
  async function loadUrls(id: number, m: Extract<ToWorker, { type: 'load-urls' }>): Promise<void> {
    const t0 = performance.now();
    const choice = m.backend ?? 'auto';
    if (m.urls.length < 2) throw new UsageError('give the packed model URL and its tokenizer URL(s)');
    const cache = m.cache === false ? undefined : await (modelCache ??= ModelCache.open());
    const { limits: lim } = await limits(choice, m.ctx);
    const sources: NonNullable<RuntimeInfo['sources']> = [];
    const opened: ByteSource[] = [];
    try {
      for (const [i, url] of m.urls.entries()) {
        const inspect = i === 0 ? (prefix: Uint8Array, total: number | undefined) => checkHeader(url, prefix, total, lim, choice) : undefined;
        const src = await fetchSource(id, url, cache, inspect);
        opened.push(src.source);
        sources.push({ url, name: src.source.name, bytes: src.source.size, fromCache: src.fromCache });
      }
      const [modelSrc, ...tokSrcs] = opened as [ByteSource, ...ByteSource[]];
      const tokFiles = tokSrcs.map((s) => ({ name: s.name, bytes: copyBytes(s) }));
      const { tokenizer: tokFile, others } = sortTokenizerFiles(modelSrc.name, tokFiles);
      const packed = new PackedModel(modelSrc);
      const tokenizer = openTokenizerBytes(tokFile, others);
      await open(id, { packed, tokenizer, tokName: tokFile.name, choice, threads: m.threads, ctx: m.ctx, t0, sources, cached: cache !== undefined });
    } finally {
      // every weight is in the backend now (or the load failed): release the cached files
      for (const s of opened) if (s instanceof CachedSource) s.close();
    }
  }

  async function fetchSource(id: number, url: string, cache: ModelCache | undefined, inspect?: (p: Uint8Array, t: number | undefined) => number): Promise<{ source: ByteSource; fromCache: boolean }> {
    const hit = await cache?.get(url);
    if (hit !== undefined) {
      try {
        if (inspect !== undefined) inspectWhole(hit.source, inspect);
      } catch (e) {
        hit.source.close();
        throw e;
      }
      const b = hit.entry.bytes;
      post({ id, type: 'progress', progress: { url, name: hit.entry.name, loaded: b, total: b, bytesPerSecond: 0, fromCache: true, done: true } });
      return { source: hit.source, fromCache: true };
    }
    let writer: CacheWriter | undefined;
    let memory: MemorySink | undefined;
    const onProgress = (progress: DownloadProgress) => post({ id, type: 'progress', progress });
    const got = await download(
      url,
      async (name, total) => {
        if (cache !== undefined) return (writer = await cache.begin(url, name));
        return (memory = new MemorySink(total));
      },
      { onProgress, inspect },
    );
    if (writer !== undefined) return { source: await writer.commit(), fromCache: false };
    return { source: new BufferSource(got.name, memory!.bytes()), fromCache: false };
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
        if (m.type === 'load') await load(m.id, m.files, m.threads, m.backend, m.ctx);
        else if (m.type === 'load-urls') await loadUrls(m.id, m);
        else if (m.type === 'cache-list' || m.type === 'cache-delete') {
          const cache = await (modelCache ??= ModelCache.open());
          if (m.type === 'cache-delete') await cache?.delete(m.url);
          post({ id: m.id, type: 'cache', entries: (await cache?.list()) ?? [], available: cache !== undefined });
        } else await run(m.id, m);
      } catch (err) {
        const file = err instanceof InputError ? err.file : undefined;
        post({ id: m.id, type: 'error', message: err instanceof Error ? err.message : String(err), file });
      }
    });
  };
}
