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
 *   await client.generate({ prompt: 'Once', maxTokens: 64, temperature: 0, topP: 1, seed: 1 }, (t) => out.append(t));
 */
export * from '../index.js';
export { createBrowserBackend, servePoolWorker, isCrossOriginIsolated, type BrowserBackend, type BrowserBackendOptions } from './backend.js';
export { modelCard, type ModelCard, type LinearCard } from './card.js';
export { MemoryFs, openTokenizerBytes, sortModelFiles } from './files.js';
export { baseName, fetchBytes, type NamedBytes } from './fetch.js';
export { serveModelWorker, type ModelWorkerOptions } from './model-worker.js';
export { ModelWorkerClient, ModelWorkerError } from './client.js';
export type { GenerateRequest, GenerateResult, RuntimeInfo, ToWorker, FromWorker } from './protocol.js';
