/** Node worker_threads entry for the wasm backend's pool; the logic lives in the core. */
import { workerData } from 'node:worker_threads';
import { runWasmWorker, type WasmWorkerInit } from '../backend/wasm-pool.js';

runWasmWorker(workerData as WasmWorkerInit);
