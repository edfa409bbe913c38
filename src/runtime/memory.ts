/**
 * How much backend memory a model takes before it is built, so a model that cannot fit the
 * wasm backend's 4 GiB (wasm32) fails at once with a message instead of after minutes of loading.
 */
import { headSize, kvDim, qDim } from '../model/config.js';
import { EMBED, LINEARS, LM_HEAD, layerTensor, type ModelSource } from '../model/weights.js';

/** The KV capacity a model allocates at first (runtime/scratch.ts), at least its maxRows. */
export const FIRST_KV_POSITIONS = 1024;

/** The wasm32 memory limit (65536 pages of 64 KiB). */
export const WASM_MAX_BYTES = 2 ** 32;

/**
 * Backend bytes of the model's linears and scratch: dense float32 weights in full, 16-bit ones
 * (HalfLinear) one tile, packed ones their blobs (`packedBytes`; kernels may add their group
 * parameters), plus the activations for `maxRows` rows and the first KV capacity (the cache and
 * the attention scratch sized by it) — or, with
 * `positions` (a context the cache may grow to), every K/V capacity on the way there: a growth
 * allocates the new cache while the old one is alive, and the wasm heap never shrinks and may
 * not reuse a freed cache for a larger one, so their sum bounds its high water (1× with no
 * growth, below 2× the full-context cache).
 */
export function backendBytes(source: ModelSource, maxRows: number, packedBytes?: (name: string) => number | undefined, positions?: number): number {
  const c = source.config;
  const shapes = new Map(source.tensors().map((t) => [t.name, t.shape]));
  const names = [...Array.from({ length: c.nLayers }, (_, l) => LINEARS.map((x) => layerTensor(l, x))).flat(), c.tiedEmbeddings ? EMBED : LM_HEAD];
  let bytes = 0;
  for (const name of names) {
    const [out = 0, inDim = 0] = shapes.get(name) ?? [];
    const packed = packedBytes?.(name);
    if (packed !== undefined) bytes += packed;
    else if (source.loadHalf !== undefined && ['F16', 'BF16'].includes(source.dtypeOf?.(name) ?? '')) bytes += 4 << 20; // a tile and its product
    else bytes += out * inDim * 4;
  }
  // a model capped at `positions` (LlamaModel's option) allocates at most that many at first
  const first = Math.min(c.seqLen, positions ?? Infinity, Math.max(FIRST_KV_POSITIONS, maxRows));
  let held = first;
  if (positions !== undefined) for (let cap = first; cap < positions; ) {
    cap = Math.min(positions, 2 * cap); // growScratch's doubling
    held += cap;
  }
  const rows = maxRows * (3 * c.dim + Math.max(c.dim, qDim(c)) + qDim(c) + 2 * c.hiddenDim + c.vocabSize);
  // per position: keys and values of every layer, and the chunk attention's scratch (one kv
  // head's keys and transposed values, the scores of a head group's rows: runtime/scratch.ts)
  const perPosition = 2 * c.nLayers * kvDim(c) + (c.nHeads / c.nKvHeads) * maxRows + 2 * headSize(c);
  const cache = perPosition * held;
  return bytes + 4 * (rows + cache);
}

export function formatBytes(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)} GiB` : `${(n / 2 ** 20).toFixed(0)} MiB`;
}
