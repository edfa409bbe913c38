/** The model worker: parses the packed file and runs generation on the wasm backend. */
import kernelsUrl from '../wasm/kernels.wasm?url';
import { serveModelWorker } from '../src/browser/model-worker.js';

serveModelWorker({
  wasm: async () => {
    const res = await fetch(kernelsUrl);
    if (!res.ok) throw new Error(`${kernelsUrl}: HTTP ${res.status}`);
    return res.arrayBuffer();
  },
  spawnPoolWorker: () => new Worker(new URL('./pool-worker.ts', import.meta.url), { type: 'module' }),
});
