/**
 * Node's backend factory: `native` (OpenBLAS addon, when it was built and loads), else `wasm`
 * (worker_threads pool), or the `reference` loops. BITCRUSH_BACKEND=auto|native|wasm|reference
 * overrides the requested kind.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { createReferenceBackend } from '../backend/reference.js';
import type { Backend } from '../backend/types.js';
import { createWasmBackend, type WasmBackend } from '../backend/wasm.js';
import type { SpawnWasmWorker } from '../backend/wasm-pool.js';
import { loadNativeBackend } from './native.js';

export type BackendKind = 'auto' | 'native' | 'wasm' | 'reference';
export const BACKEND_KINDS: readonly BackendKind[] = ['auto', 'native', 'wasm', 'reference'];

export interface BackendOptions {
  kind?: BackendKind;
  /** Threads including the caller; default os.availableParallelism(). */
  threads?: number;
}

const WASM_URL = new URL('../../../wasm/kernels.wasm', import.meta.url);
const WORKER_URL = new URL('./wasm-worker.js', import.meta.url);
let wasmModule: WebAssembly.Module | undefined;

/** Starts pool workers that never keep the process alive. */
export const spawnNodeWorker: SpawnWasmWorker = (init) => {
  const worker = new Worker(WORKER_URL, { workerData: init });
  worker.unref();
  return { terminate: () => void worker.terminate() };
};

export function createWasmBackendNode(threads: number): WasmBackend {
  wasmModule ??= new WebAssembly.Module(readFileSync(WASM_URL));
  return createWasmBackend({ wasm: wasmModule, threads, spawn: spawnNodeWorker });
}

export function createBackend(opts: BackendOptions = {}): Backend {
  const env = process.env.BITCRUSH_BACKEND;
  if (env !== undefined && env !== '' && !BACKEND_KINDS.includes(env as BackendKind)) {
    throw new Error(`BITCRUSH_BACKEND must be one of ${BACKEND_KINDS.join(', ')} (got '${env}')`);
  }
  const kind = env ? (env as BackendKind) : (opts.kind ?? 'auto');
  const threads = opts.threads ?? availableParallelism();
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`threads must be a positive integer (got ${threads})`);
  if (kind === 'reference') return createReferenceBackend();
  if (kind === 'wasm') return createWasmBackendNode(threads);
  // packed low-bit layers on native run the wasm kernels (the addon has none of its own)
  const native = loadNativeBackend(threads, () => createWasmBackendNode(threads));
  if (native.backend) return native.backend;
  if (kind === 'native') throw new Error(`native backend unavailable: ${native.error}`);
  return createWasmBackendNode(threads);
}
