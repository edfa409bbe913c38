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
  /**
   * Packed layers multiply float32 activations (W·x as the reference kernels compute it) instead
   * of int8-quantized ones: the addon's int8 kernels are hidden, the wasm ones give way to the
   * float kernels. Slower; for evaluations that must not carry the int8 rounding.
   */
  floatActivations?: boolean;
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
  const float = opts.floatActivations === true;
  const wasm = () => (float ? Object.assign(createWasmBackendNode(threads), { floatActivations: true }) : createWasmBackendNode(threads));
  if (kind === 'wasm') return wasm();
  // packed formats and shapes the addon has no kernels for run the lent wasm kernels
  const native = loadNativeBackend(threads, () => createWasmBackendNode(threads), float ? { lowbit: false, floatActivations: true } : {});
  if (native.backend) return native.backend;
  if (kind === 'native') throw new Error(`native backend unavailable: ${native.error}`);
  return wasm();
}
