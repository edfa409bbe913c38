/**
 * bitcrush for the browser (the package's "browser" export): the core library plus the Web
 * Worker runtime. Files come in as bytes (picked, dropped or fetched); the model runs in a
 * worker on the wasm kernels, threaded when the page is cross-origin isolated.
 *
 * A page needs two worker scripts, because bundlers must see worker URLs in the page's code:
 *
 *   // model-worker.ts
 *   serveModelWorker({
 *     wasm: () => fetch(kernelsUrl).then((r) => r.arrayBuffer()),
 *     spawnPoolWorker: () => new Worker(new URL('./pool-worker.ts', import.meta.url), { type: 'module' }),
 *   });
 *   // pool-worker.ts
 *   servePoolWorker();
 *   // page
 *   const client = new ModelWorkerClient(new Worker(new URL('./model-worker.ts', import.meta.url), { type: 'module' }));
 *   const { card } = await client.load([packedFile, tokenizerFile]);
 *   // or by URL: streamed with progress, cached in OPFS, budget-checked from the header
 *   await client.loadUrls([modelUrl, tokenizerUrl], { backend: 'auto' }, (p) => show(p.loaded, p.total));
 *   await client.generate({ prompt: 'Once', maxTokens: 64, temperature: 0, topP: 1, seed: 1 }, (t) => out.append(t));
 */
export * from '../index.js';
export { createBrowserBackend, servePoolWorker, isCrossOriginIsolated, type BrowserBackend, type BrowserBackendOptions } from './backend.js';
export { modelCard, type ModelCard, type LinearCard } from './card.js';
export { MemoryFs, openTokenizerBytes, sortModelFiles } from './files.js';
export { baseName, fetchBytes, type NamedBytes } from './fetch.js';
export { serveModelWorker, type ModelWorkerOptions } from './model-worker.js';
export { ModelWorkerClient, ModelWorkerError, type LoadOptions } from './client.js';
export { download, MemorySink, type DownloadProgress, type DownloadSink, type DownloadOptions } from './download.js';
export { ModelCache, CachedSource, type CacheEntry, type CacheWriter } from './model-cache.js';
export { memoryBudget, budgetRefusal, packedFromPrefix, gpuBytes, type Budget, type BackendFit, type BudgetLimits } from './budget.js';
export type { GenerateRequest, GenerateResult, RuntimeInfo, ToWorker, FromWorker } from './protocol.js';
