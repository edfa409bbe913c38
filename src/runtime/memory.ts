/**
 * How much backend memory a model takes before it is built, so a model that cannot fit the
 * wasm backend's 4 GiB (wasm32) fails at once with a message instead of after minutes of loading.
 */
import { kvDim, qDim } from '../model/config.js';
import { EMBED, LINEARS, LM_HEAD, layerTensor, type ModelSource } from '../model/weights.js';

/** The wasm32 memory limit (65536 pages of 64 KiB). */
export const WASM_MAX_BYTES = 2 ** 32;

/**
 * Backend bytes of the model's linears and scratch: dense float32 weights in full, 16-bit ones
 * (HalfLinear) one tile, packed ones their blobs (`packedBytes`; kernels may add their group
 * parameters), plus the activations for `maxRows` rows and the first KV capacity.
 */
export function backendBytes(source: ModelSource, maxRows: number, packedBytes?: (name: string) => number | undefined): number {
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
  const positions = Math.min(c.seqLen, Math.max(1024, maxRows));
  const rows = maxRows * (3 * c.dim + Math.max(c.dim, qDim(c)) + qDim(c) + 2 * c.hiddenDim + c.vocabSize);
  const cache = 2 * c.nLayers * positions * kvDim(c);
  return bytes + 4 * (rows + cache);
}

export function formatBytes(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)} GiB` : `${(n / 2 ** 20).toFixed(0)} MiB`;
}
