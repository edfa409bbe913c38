/** One thread of the wasm kernel pool, started by the model worker. */
import { servePoolWorker } from '../src/browser/backend.js';

servePoolWorker();
