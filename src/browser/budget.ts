/**
 * The memory budget of a packed model per backend, from its header alone (no weights read), so
 * the page refuses a model that cannot fit before downloading or allocating gigabytes, with a
 * message naming what would fit: wasm's kernel memory is capped at 4 GiB (wasm32); WebGPU has
 * no total limit in the API, but each buffer is capped by the adapter's maxBufferSize and each
 * binding by maxStorageBufferBindingSize (weights split by rows, the KV cache per layer is not);
 * navigator.deviceMemory (GiB, rounded and capped by the browser) only warns.
 */
import { headSize, kvDim, qDim, type LlamaConfig } from '../model/config.js';
import { EMBED, LINEARS, LM_HEAD, layerTensor } from '../model/weights.js';
import { checkRange, type ByteSource } from '../io/bytes.js';
import { MAX_HEADER_BYTES } from '../io/safetensors.js';
import { PackedModel } from '../packed/reader.js';
import { GPU_INITIAL_POSITIONS, growthPeakPositions } from '../webgpu/forward.js';
import { backendBytes, FIRST_KV_POSITIONS, formatBytes, WASM_MAX_BYTES } from '../runtime/memory.js';

/** Rows of one wasm forward call the budget counts (the prompt chunk). */
export const WASM_ROWS = 512;
/** GPU forward: rows of one call and the default KV positions (capped by the model's seqLen). */
export const GPU_ROWS = 64;
export const GPU_DEFAULT_POSITIONS = 2048;

export interface GpuLimitsInfo {
  maxBufferBytes: number;
  maxBindingBytes: number;
}

export interface BudgetLimits {
  wasmBytes?: number;
  /** The WebGPU device's limits, or why there is none. */
  gpu: GpuLimitsInfo | string;
  /** navigator.deviceMemory (GiB), when the browser tells. */
  deviceMemoryGiB?: number;
  /** KV positions asked for (?ctx=N); default on WebGPU min(2048, seqLen, what fits), on wasm min(1024, seqLen) (its first KV allocation: no growth). */
  positions?: number;
}

export interface BackendFit {
  fits: boolean;
  /** Bytes of kernel memory (wasm) or GPU buffers (webgpu) the model needs. */
  needBytes: number;
  /** Why it does not fit, naming what would. */
  why?: string;
}

export interface Budget {
  /** positions: the context on wasm (the KV cache grows to it, counted with its growth; generation stops there). */
  wasm: BackendFit & { positions: number };
  webgpu: BackendFit & { positions: number };
  /** A note when the model likely exceeds the device's memory (navigator.deviceMemory). */
  warning?: string;
}

/**
 * The weights backendBytes counts (block linears and the head; the embedding is gathered on
 * the CPU) and their bytes in kernel memory: packed blobs as stored, float tensors as the
 * float32 the wasm backend expands them to.
 */
function kernelWeights(packed: PackedModel): { params: number; bytes: number } {
  const c = packed.config;
  const names = [...Array.from({ length: c.nLayers }, (_, l) => LINEARS.map((x) => layerTensor(l, x))).flat(), c.tiedEmbeddings ? EMBED : LM_HEAD];
  const shapes = new Map(packed.tensors().map((t) => [t.name, t.shape]));
  let bytes = 0;
  let params = 0;
  for (const n of names) {
    const [out = 0, inDim = 0] = shapes.get(n) ?? [];
    params += out * inDim;
    bytes += packed.packedBytes(n) ?? out * inDim * 4;
  }
  return { params, bytes };
}

/**
 * Bytes of the GPU buffers GpuModel creates (webgpu/forward.ts), float tensors uploaded as
 * float32, at their peak: the KV caches and attention scores grow from `initialPositions` to
 * `positions`, and while a growth copies, the old and new buffers are both alive (up to 1.5×
 * their full-context size, growthPeakPositions).
 */
export function gpuBytes(packed: PackedModel, positions: number, rows = GPU_ROWS, initialPositions = GPU_INITIAL_POSITIONS): number {
  const c = packed.config;
  let bytes = 0;
  for (const t of packed.tensors()) {
    if (t.name === EMBED && !c.tiedEmbeddings && !packed.isPacked(EMBED)) continue; // a float table is gathered on the CPU
    const n = t.shape.reduce((a, b) => a * b, 1);
    bytes += packed.packedBytes(t.name) ?? n * 4;
  }
  const R = Math.min(rows, c.seqLen);
  const peak = growthPeakPositions(initialPositions, positions);
  const acts = R * (c.dim + Math.max(c.dim, qDim(c)) + qDim(c) + 2 * kvDim(c) + 3 * c.hiddenDim) + 2 * c.vocabSize;
  const grown = peak * (R * c.nHeads + 2 * c.nLayers * kvDim(c));
  const rope = positions * headSize(c);
  return bytes + 4 * (acts + grown + rope);
}

/** The largest KV positions whose per-buffer allocations fit the binding limit (0: none). */
function gpuMaxPositions(c: LlamaConfig, limit: number): number {
  const R = Math.min(GPU_ROWS, c.seqLen);
  const perPos = 4 * Math.max(c.nLayers * kvDim(c), R * c.nHeads);
  return Math.floor(limit / perPos);
}

/**
 * The budget of `packed` on both backends. The GPU check covers what a buffer may hold (the
 * KV cache and attention scores per position; weights are split by rows) and the adapter's
 * presence; the total GPU memory is not knowable from the API, so the total is only reported.
 */
export function memoryBudget(packed: PackedModel, limits: BudgetLimits): Budget {
  const c = packed.config;
  const cap = limits.wasmBytes ?? WASM_MAX_BYTES;
  const wasmPositions = limits.positions ?? Math.min(c.seqLen, FIRST_KV_POSITIONS);
  const wasmNeed = backendBytes(packed, Math.min(c.seqLen, WASM_ROWS), (n) => packed.packedBytes(n), Math.min(wasmPositions, c.seqLen));
  const wasm: Budget['wasm'] = { fits: wasmNeed <= cap, needBytes: wasmNeed, positions: wasmPositions };
  if (wasmPositions > c.seqLen || wasmPositions < 1) {
    wasm.fits = false;
    wasm.why = `wasm: a context of ${wasmPositions} positions exceeds the model's ${c.seqLen}`;
  } else if (!wasm.fits) {
    // weights scale with the parameters; activations and the KV cache are what is left
    const w = kernelWeights(packed);
    const room = cap - Math.max(0, wasmNeed - w.bytes);
    const bpw = (w.bytes * 8) / w.params;
    const total = packed.header.totals.modelWeights ?? packed.tensors().reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
    const maxParams = room > 0 ? (room * 8) / bpw : 0;
    const bitsFit = room > 0 ? (room * 8) / w.params : 0;
    wasm.why =
      `wasm needs ${formatBytes(wasmNeed)} of kernel memory and holds ${formatBytes(cap)}: at this file's ${bpw.toFixed(2)} bits per weight in kernel memory ` +
      `(float tensors run as float32) about ${formatParams(maxParams)} parameters fit (this model has ${formatParams(total)})` +
      (bitsFit >= 1 ? `, or this model packed at ≤ ${bitsFit.toFixed(1)} bits per weight` : ', and this model does not fit at any bit width') +
      ` (with a context of ${wasmPositions} positions)`;
  }

  let webgpu: Budget['webgpu'];
  if (typeof limits.gpu === 'string') {
    webgpu = { fits: false, needBytes: 0, positions: 0, why: `WebGPU: ${limits.gpu}` };
  } else {
    const maxPos = Math.min(c.seqLen, gpuMaxPositions(c, limits.gpu.maxBindingBytes));
    const positions = limits.positions ?? Math.min(GPU_DEFAULT_POSITIONS, c.seqLen, maxPos);
    const needBytes = gpuBytes(packed, Math.max(positions, 1));
    webgpu = { fits: true, needBytes, positions };
    if (positions > c.seqLen) webgpu = { ...webgpu, fits: false, why: `WebGPU: a context of ${positions} positions exceeds the model's ${c.seqLen}` };
    else if (positions > maxPos || positions < 1) {
      const kv = 4 * c.nLayers * positions * kvDim(c);
      webgpu = { ...webgpu, fits: false, why: `WebGPU: the KV cache of ${positions} positions needs ${formatBytes(kv)} in one buffer, the device binds ${formatBytes(limits.gpu.maxBindingBytes)}: a context of ${maxPos} positions fits` };
    }
  }
  const budget: Budget = { wasm, webgpu };
  if (limits.deviceMemoryGiB !== undefined && limits.deviceMemoryGiB > 0) {
    const need = Math.min(wasm.fits ? wasm.needBytes : Infinity, webgpu.fits ? webgpu.needBytes : Infinity);
    // Chromium caps deviceMemory at 8 GiB, so a larger model may still fit: a warning, never a refusal
    if (Number.isFinite(need) && need > limits.deviceMemoryGiB * 2 ** 30) {
      budget.warning = `the model needs ${formatBytes(need)} and this device reports ${limits.deviceMemoryGiB} GiB of memory (browsers round this down and cap it): loading may fail`;
    }
  }
  return budget;
}

/** Why no backend of `choice` can hold the model (for an InputError naming the file); undefined when one can. */
export function budgetRefusal(b: Budget, choice: 'auto' | 'webgpu' | 'wasm'): string | undefined {
  if (choice === 'wasm') return b.wasm.fits ? undefined : `does not fit: ${b.wasm.why}`;
  if (choice === 'webgpu') return b.webgpu.fits ? undefined : `does not fit: ${b.webgpu.why}`;
  if (b.webgpu.fits || b.wasm.fits) return undefined;
  return `does not fit: ${b.wasm.why}; ${b.webgpu.why}`;
}

function formatParams(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(1)} B` : n >= 1e6 ? `${(n / 1e6).toFixed(0)} M` : `${(n / 1e3).toFixed(0)} K`;
}

/**
 * The packed model described by the first bytes of a file of `total` bytes, or how many bytes
 * its header needs when fewer have arrived. Everything in the header is checked as for the
 * whole file (PackedModel reads nothing past it), so a lying header fails here, before the data
 * is downloaded. `read` past the prefix is a bug, not bad input.
 */
export function packedFromPrefix(name: string, prefix: Uint8Array, total: number): PackedModel | number {
  if (prefix.byteLength < 8) return 8;
  const len = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  // a length past the safetensors limit or the file is the parser's to report
  const need = len <= BigInt(MAX_HEADER_BYTES) && len <= BigInt(total) ? 8 + Number(len) : 8;
  if (prefix.byteLength < need) return need;
  const source: ByteSource = {
    name,
    size: total,
    read: (offset, length) => {
      checkRange(source, offset, length);
      if (offset + length > prefix.byteLength) throw new Error(`${name}: the header check read past the header (bytes ${offset}..${offset + length})`);
      return prefix.subarray(offset, offset + length);
    },
  };
  return new PackedModel(source);
}
