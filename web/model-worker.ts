/** The model worker: parses the packed file and runs generation on the wasm backend. */
import kernelsUrl from '../wasm/kernels.wasm?url';
import relaxedKernelsUrl from '../wasm/kernels-relaxed.wasm?url';
import { chooseWasmKernels } from '../src/backend/wasm-kernels.js';
import { serveModelWorker } from '../src/browser/model-worker.js';

serveModelWorker({
  wasm: async () => {
    // relaxed SIMD where this browser validates it (Chrome 114+), else the SIMD128 module
    const url = chooseWasmKernels() === 'relaxed' ? relaxedKernelsUrl : kernelsUrl;
    const res = await fetch(url);
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
    return res.arrayBuffer();
  },
  spawnPoolWorker: () => new Worker(new URL('./pool-worker.ts', import.meta.url), { type: 'module' }),
});
