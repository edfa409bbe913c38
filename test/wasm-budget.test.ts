/**
 * The wasm side of the memory budget with a growing KV cache (runtime/memory.ts backendBytes
 * with `positions`, used by the browser budget for its wasm context): a small random model with
 * a 4096-position context on the wasm backend in Node, its cache grown 1024 → 2048 → 4096 by
 * forward calls, and the wasm memory it took (the memory never shrinks: its size is the high
 * water) against the budget. A growth allocates the new cache while the old one is alive, and
 * a freed cache is too small for the next, so counting only the first capacity (what the budget
 * did) is far below; the sum of the capacities is not. LlamaModel's `positions` caps the context.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LlamaConfig } from '../src/model/config.js';
import { expectedShapes, type ModelSource } from '../src/model/weights.js';
import { createBackend } from '../src/node/index.js';
import { mulberry32 } from '../src/quant/random.js';
import { backendBytes } from '../src/runtime/memory.js';
import { LlamaModel } from '../src/runtime/model.js';

const config: LlamaConfig = { dim: 64, hiddenDim: 64, nLayers: 4, nHeads: 1, nKvHeads: 1, vocabSize: 16, seqLen: 4096, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true };

function randomSource(c: LlamaConfig): ModelSource {
  const shapes = expectedShapes(c);
  const rand = mulberry32(5);
  return {
    name: 'random-4096',
    config: c,
    tensors: () => [...shapes].map(([name, shape]) => ({ name, shape })),
    load: (name) => Float32Array.from({ length: shapes.get(name)!.reduce((a, b) => a * b, 1) }, () => (name.endsWith('norm.weight') ? 1 : (rand() - 0.5) * 0.1)),
  };
}

describe('wasm budget with a growing KV cache', () => {
  it('counts every capacity the cache grows through: the wasm memory stays within it, not within the first capacity', (t) => {
    const backend = createBackend({ kind: 'wasm', threads: 1 });
    try {
      // the memory's size now: a view's buffer is the memory's at the time it was made
      const memoryBytes = () => backend.alloc(1).buffer.byteLength;
      const before = memoryBytes();
      const source = randomSource(config);
      const model = new LlamaModel(source, { backend, positions: 4096 });
      for (const pos of [0, 1024, 2048, 4095]) model.forward([1], pos, 'last');
      const grown = memoryBytes() - before;
      const budget = backendBytes(source, model.maxRows, undefined, 4096);
      const firstOnly = backendBytes(source, model.maxRows);
      // the heap grows by at least 1/8 of its size at a time (wasm-heap.ts): slack, not need
      assert.ok(grown <= budget * 1.125 + 65536, `wasm memory grew by ${grown} bytes, the budget counts ${budget}`);
      assert.ok(grown > firstOnly, `the first capacity alone (${firstOnly} bytes) already covers the ${grown} bytes the memory grew`);
      t.diagnostic(`wasm memory grew ${grown} bytes; budget ${budget} (first capacity alone ${firstOnly})`);
      model.dispose();
    } finally {
      backend.dispose();
    }
  });

  it('without growth (positions within the first capacity) the count is that capacity\'s', () => {
    const source = randomSource({ ...config, seqLen: 1024 });
    assert.equal(backendBytes(source, 512, undefined, 1024), backendBytes(source, 512));
    const kvPerPosition = (2 * config.nLayers * config.dim + 512 + 2 * config.dim) * 4; // K/V, scores of 512 rows, one head's keys and values
    assert.equal(backendBytes(source, 512) - backendBytes(source, 512, undefined, 700), (1024 - 700) * kvPerPosition);
  });

  it('LlamaModel positions caps the context: the cache never grows past it, a forward past it throws', () => {
    const backend = createBackend({ kind: 'wasm', threads: 1 });
    try {
      const model = new LlamaModel(randomSource(config), { backend, positions: 1500 });
      assert.equal(model.config.seqLen, 1500);
      model.forward([1], 1499, 'last');
      assert.throws(() => model.forward([1], 1500, 'last'), /exceed the model's context length 1500/);
      model.dispose();
    } finally {
      backend.dispose();
    }
  });
});
