/**
 * The WebAssembly backend in a browser: the same kernels.wasm and pool as Node, with Web
 * Workers as the pool's threads. Threads need a cross-origin isolated page (COOP/COEP headers):
 * without it a shared WebAssembly.Memory can still be created (Chromium allows that) but not
 * posted to another worker, so the backend then runs single-threaded on the calling thread.
 *
 * Call this from a Web Worker, never the page's main thread: the pool's caller blocks in
 * Atomics.wait, which main threads refuse.
 */
import { createWasmBackend, type WasmBackend } from '../backend/wasm.js';
import type { SpawnWasmWorker, WasmWorkerInit } from '../backend/wasm-pool.js';
import { runWasmWorker } from '../backend/wasm-pool.js';

export interface BrowserBackendOptions {
  /** The compiled kernels (wasm/kernels.wasm) or their bytes. */
  wasm: WebAssembly.Module | ArrayBuffer | Uint8Array<ArrayBuffer>;
  /** Threads including the caller; default navigator.hardwareConcurrency when isolated, else 1. */
  threads?: number;
  /**
   * Starts one pool thread: a module Web Worker whose script calls servePoolWorker(). Without
   * it the backend is single-threaded. (A bundler must see the worker's URL, so the page
   * constructs it: `() => new Worker(new URL('./pool-worker.ts', import.meta.url), { type: 'module' })`.)
   */
  spawnWorker?: () => Worker;
  /** How long to wait for the pool threads to start before giving up (default 20 s). */
  startTimeoutMs?: number;
}

export interface BrowserBackend {
  backend: WasmBackend;
  /** Whether the page is cross-origin isolated (so threads were possible). */
  isolated: boolean;
}

/** Whether this context may share wasm memory with other workers. */
export function isCrossOriginIsolated(): boolean {
  return (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
}

/** Creates the backend and waits until every pool thread has instantiated the kernels. */
export async function createBrowserBackend(opts: BrowserBackendOptions): Promise<BrowserBackend> {
  const isolated = isCrossOriginIsolated();
  const wanted = opts.threads ?? (isolated ? (globalThis.navigator?.hardwareConcurrency ?? 1) : 1);
  if (!Number.isInteger(wanted) || wanted < 1) throw new RangeError(`threads must be a positive integer (got ${wanted})`);
  const threads = isolated && opts.spawnWorker !== undefined ? wanted : 1;
  const module = opts.wasm instanceof WebAssembly.Module ? opts.wasm : await WebAssembly.compile(opts.wasm);

  // A worker that fails to load would leave whenReady() polling forever: fail instead.
  let failed: ((e: Error) => void) | undefined;
  const failure = new Promise<never>((_, reject) => (failed = reject));
  const spawn: SpawnWasmWorker = (init: WasmWorkerInit) => {
    const worker = opts.spawnWorker!();
    worker.addEventListener('error', (e) => failed?.(new Error(`wasm pool worker failed to start: ${e.message || 'script error'}`)));
    worker.postMessage(init);
    return { terminate: () => worker.terminate() };
  };
  const backend = createWasmBackend({ wasm: module, threads, spawn: threads > 1 ? spawn : undefined });
  const timeout = opts.startTimeoutMs ?? 20_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`wasm pool workers did not start within ${timeout} ms`)), timeout);
  });
  try {
    await Promise.race([backend.whenReady(), failure, late]);
  } catch (e) {
    backend.dispose();
    throw e;
  } finally {
    clearTimeout(timer);
    failed = undefined;
  }
  return { backend, isolated };
}

/** The body of a pool worker script: waits for its init message, then runs the pool loop. */
export function servePoolWorker(scope: { onmessage: ((e: MessageEvent) => void) | null } = globalThis as never): void {
  scope.onmessage = (e: MessageEvent) => {
    scope.onmessage = null;
    runWasmWorker(e.data as WasmWorkerInit);
  };
}
