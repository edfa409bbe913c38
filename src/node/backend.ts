/**
 * Node's backend factory: `native` (OpenBLAS addon, when it was built and loads), else `wasm`
 * (worker_threads pool), or the `reference` loops. BITCRUSH_BACKEND=auto|native|wasm|reference
 * overrides the requested kind; BITCRUSH_WASM_KERNELS the wasm kernel module (wasmKernelsKind).
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { createReferenceBackend } from '../backend/reference.js';
import type { Backend } from '../backend/types.js';
import { createWasmBackend, type WasmBackend } from '../backend/wasm.js';
import type { SpawnWasmWorker } from '../backend/wasm-pool.js';
import { loadNativeBackend } from './native.js';
import { chooseWasmKernels, WASM_KERNEL_FILES, WASM_KERNELS_KINDS, type WasmKernelsKind } from '../backend/wasm-kernels.js';

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

const WORKER_URL = new URL('./wasm-worker.js', import.meta.url);
const wasmModules = new Map<WasmKernelsKind, WebAssembly.Module>();

/**
 * The kernel module this process runs (wasm-kernels.ts): relaxed SIMD where the engine has it
 * (node --experimental-wasm-relaxed-simd), else SIMD128; BITCRUSH_WASM_KERNELS=auto|simd128|relaxed
 * overrides (relaxed without the engine's support is an error).
 */
export function wasmKernelsKind(): WasmKernelsKind {
  const env = process.env.BITCRUSH_WASM_KERNELS;
  if (env !== undefined && env !== '' && env !== 'auto' && !WASM_KERNELS_KINDS.includes(env as WasmKernelsKind)) {
    throw new Error(`BITCRUSH_WASM_KERNELS must be one of auto, ${WASM_KERNELS_KINDS.join(', ')} (got '${env}')`);
  }
  return chooseWasmKernels(env ? (env as WasmKernelsKind | 'auto') : 'auto');
}

/** The bytes of a kernel module (wasm/). */
export function wasmKernelBytes(kind: WasmKernelsKind = wasmKernelsKind()): Uint8Array<ArrayBuffer> {
  return readFileSync(new URL(`../../../wasm/${WASM_KERNEL_FILES[kind]}`, import.meta.url)) as Uint8Array<ArrayBuffer>;
}

/** Starts pool workers that never keep the process alive. */
export const spawnNodeWorker: SpawnWasmWorker = (init) => {
  const worker = new Worker(WORKER_URL, { workerData: init });
  worker.unref();
  return { terminate: () => void worker.terminate() };
};

/** The wasm backend on `kind`'s module (default: wasmKernelsKind()). */
export function createWasmBackendNode(threads: number, kind: WasmKernelsKind = wasmKernelsKind()): WasmBackend {
  let module = wasmModules.get(kind);
  if (module === undefined) wasmModules.set(kind, (module = new WebAssembly.Module(wasmKernelBytes(kind))));
  return createWasmBackend({ wasm: module, threads, spawn: spawnNodeWorker });
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
