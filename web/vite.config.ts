/**
 * The bitcrush web page (`npm run web`): built to dist/web and served with the COOP/COEP
 * headers that make the page cross-origin isolated, which the wasm backend needs for threads
 * (shared memory across workers). Served without them, the page still works, single-threaded.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const isolation = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  // relative asset URLs: the page works from any path it is served under
  base: './',
  build: {
    outDir: fileURLToPath(new URL('../dist/web', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
  },
  // the pool workers are started from the model worker: nested module workers
  worker: { format: 'es' },
  server: { host: '127.0.0.1', headers: isolation },
  preview: { host: '127.0.0.1', port: 5173, headers: isolation },
});
