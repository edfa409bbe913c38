/**
 * The header of a bitcrush packed model file. The file is a plain safetensors container:
 *   u64 LE header length N | N bytes JSON header (space-padded so the data starts at a multiple
 *   of 64) | data section, every blob starting at a multiple of 64 bytes
 * The JSON header's `__metadata__` is { "format": "bitcrush", "bitcrush": <PackedHeader as JSON> }.
 * Tensor entries:
 *   <name>          a tensor stored unquantized (F32, F16 or BF16: the source's dtype, never wider), canonical name and shape
 *   <name>.<blob>   one blob of a packed tensor (dtype and shape as its format's `blobs` says)
 *   __pad.<k>       U8 [n], n < 64: explicit filler, because safetensors forbids holes in the
 *                   data section while we want aligned blobs; readers ignore these
 */
import { ATTENTION_BIASES, type LlamaConfig, type RopeScaling } from '../model/config.js';
import { check } from '../io/errors.js';
import type { FormatParams } from '../formats/types.js';
import { isActBits } from '../quant/act-quant.js';

export const PACKED_FORMAT = 'bitcrush';
export const PACKED_VERSION = 1;
/** Alignment of the data section and of every blob in it (a cache line; enough for any SIMD load). */
export const PACKED_ALIGN = 64;
export const PAD_PREFIX = '__pad.';

export type DenseDtype = 'F32' | 'F16' | 'BF16';
export const DENSE_BITS: Readonly<Record<DenseDtype, number>> = { F32: 32, F16: 16, BF16: 16 };

export type TensorRecord =
  | { format: 'dense'; dtype: DenseDtype; shape: number[]; bpw: number }
  | { format: string; params: FormatParams; shape: [number, number]; bpw: number };

export interface PackedTotals {
  /** Weights of the packed tensors and the bytes of all their blobs. */
  packedWeights: number;
  packedBytes: number;
  /** packedBytes · 8 / packedWeights: the honest average over the packed tensors. */
  packedBpw: number;
  /** Weights and bytes of the tensors stored unquantized. */
  denseWeights: number;
  denseBytes: number;
  /** Alignment filler in the data section. */
  paddingBytes: number;
  /** (packedBytes + denseBytes) · 8 / all weights: the whole model's bits per weight. */
  modelBpw: number;
  /**
   * The source model's parameters (a tied matrix once) when that differs from the stored weights
   * (a tied source stored as two tensors); absent = the stored weights. packed/size.ts.
   */
  modelWeights?: number;
}

export interface PackedHeader {
  format: typeof PACKED_FORMAT;
  version: number;
  /** The method that produced the file and its options, for provenance. */
  method: { name: string; options: Record<string, unknown> };
  /**
   * Activation bits (4, 6 or 8): every linear of the blocks fake-quantizes its input per token
   * (src/quant/act-quant.ts) when the file is run; absent = 16 (none).
   */
  actBits?: number;
  config: LlamaConfig;
  tensors: Record<string, TensorRecord>;
  totals: PackedTotals;
}

export function blobEntryName(tensor: string, blob: string): string {
  return `${tensor}.${blob}`;
}

/** The header from `__metadata__`, with every field of known type (shapes and formats are checked by the reader). */
export function parsePackedHeader(file: string, metadata: Readonly<Record<string, string>>): PackedHeader {
  check(metadata.format === PACKED_FORMAT, file, `not a bitcrush packed model (safetensors __metadata__.format is ${JSON.stringify(metadata.format)})`);
  const text = metadata[PACKED_FORMAT];
  check(text !== undefined, file, `packed model header: __metadata__ has no "${PACKED_FORMAT}" entry`);
  let h: unknown;
  try {
    h = JSON.parse(text);
  } catch (e) {
    check(false, file, `packed model header: bad JSON (${(e as Error).message})`);
  }
  const bad = (what: string) => `packed model header: ${what}`;
  check(isObject(h), file, bad('not an object'));
  check(h.format === PACKED_FORMAT, file, bad(`format ${JSON.stringify(h.format)} is not "${PACKED_FORMAT}"`));
  check(h.version === PACKED_VERSION, file, bad(`version ${JSON.stringify(h.version)} is not supported (this bitcrush reads version ${PACKED_VERSION})`));
  const m = h.method;
  check(isObject(m) && typeof m.name === 'string' && isObject(m.options), file, bad('method is not { name, options }'));
  check(isObject(h.tensors), file, bad('tensors is not an object'));
  for (const [name, t] of Object.entries(h.tensors)) {
    check(isObject(t) && typeof t.format === 'string' && Array.isArray(t.shape) && typeof t.bpw === 'number', file, bad(`tensor ${name} is not { format, shape, bpw, ... }`));
    check(t.shape.every((d) => Number.isSafeInteger(d) && d > 0), file, bad(`tensor ${name} has shape ${JSON.stringify(t.shape)}`));
    if (t.format === 'dense') check(typeof t.dtype === 'string' && Object.hasOwn(DENSE_BITS, t.dtype), file, bad(`tensor ${name} has dense dtype ${JSON.stringify(t.dtype)}`));
    else check(t.shape.length === 2 && isObject(t.params), file, bad(`packed tensor ${name} needs a 2-D shape and params`));
  }
  check(isObject(h.totals), file, bad('totals is not an object'));
  const mw = h.totals.modelWeights;
  check(mw === undefined || (Number.isSafeInteger(mw) && (mw as number) > 0), file, bad(`totals.modelWeights ${JSON.stringify(mw)} is not a positive integer`));
  for (const k of ['packedWeights', 'packedBytes', 'packedBpw', 'denseWeights', 'denseBytes', 'paddingBytes', 'modelBpw']) {
    const v = h.totals[k];
    check(typeof v === 'number' && Number.isFinite(v) && v >= 0, file, bad(`totals.${k} = ${JSON.stringify(v)} is not a number ≥ 0`));
  }
  check(h.actBits === undefined || (isActBits(h.actBits) && h.actBits < 16), file, bad(`actBits ${JSON.stringify(h.actBits)} is not 4, 6 or 8`));
  return { ...(h as unknown as PackedHeader), config: parseConfig(file, h.config) };
}

function parseConfig(file: string, c: unknown): LlamaConfig {
  const bad = (what: string) => `packed model header: config ${what}`;
  check(isObject(c), file, bad('is not an object'));
  const int = (k: string, max: number): number => {
    const v = c[k];
    check(Number.isSafeInteger(v) && (v as number) > 0 && (v as number) <= max, file, bad(`${k} = ${JSON.stringify(v)} is not an integer in [1, ${max}]`));
    return v as number;
  };
  const pos = (k: string): number => {
    const v = c[k];
    check(typeof v === 'number' && Number.isFinite(v) && v > 0, file, bad(`${k} = ${JSON.stringify(v)} is not a positive number`));
    return v;
  };
  const dim = int('dim', 1 << 16);
  const nHeads = int('nHeads', dim);
  const nKvHeads = int('nKvHeads', nHeads);
  const headDim = c.headDim === undefined ? undefined : int('headDim', 1 << 12);
  const hs = headDim ?? dim / nHeads;
  check(Number.isInteger(hs) && hs % 2 === 0, file, bad(headDim === undefined ? `dim ${dim} is not a multiple of 2·nHeads (${nHeads})` : `headDim ${headDim} is not even`));
  check(nHeads * hs <= 1 << 17, file, bad(`nHeads ${nHeads} × head size ${hs} is too large`));
  check(nHeads % nKvHeads === 0, file, bad(`nHeads ${nHeads} is not a multiple of nKvHeads ${nKvHeads}`));
  check(typeof c.tiedEmbeddings === 'boolean', file, bad('tiedEmbeddings is not a boolean'));
  const bias = c.attentionBias;
  check(bias === undefined || (ATTENTION_BIASES as readonly unknown[]).includes(bias), file, bad(`attentionBias ${JSON.stringify(bias)} is not one of ${ATTENTION_BIASES.join(', ')}`));
  return {
    dim,
    hiddenDim: int('hiddenDim', 1 << 19),
    nLayers: int('nLayers', 1024),
    nHeads,
    nKvHeads,
    vocabSize: int('vocabSize', 1 << 20),
    seqLen: int('seqLen', 1 << 24),
    normEps: pos('normEps'),
    ropeTheta: pos('ropeTheta'),
    tiedEmbeddings: c.tiedEmbeddings,
    ...(headDim !== undefined ? { headDim } : {}),
    ...(bias !== undefined ? { attentionBias: bias as LlamaConfig['attentionBias'] } : {}),
    ...(c.ropeScaling !== undefined ? { ropeScaling: parseRopeScaling(file, c.ropeScaling, hs / 2) } : {}),
  };
}

function parseRopeScaling(file: string, r: unknown, pairs: number): RopeScaling {
  const bad = `packed model header: config ropeScaling ${JSON.stringify(r)?.slice(0, 200)} is not linear, llama3 or ${pairs} per-pair factors, all positive`;
  check(isObject(r), file, bad);
  if (r.type === 'factors') {
    const f = r.factors;
    check(Array.isArray(f) && f.length === pairs && f.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0), file, bad);
    return { type: 'factors', factors: f as number[] };
  }
  const positive = (k: string) => typeof r[k] === 'number' && Number.isFinite(r[k]) && (r[k] as number) > 0;
  if (r.type === 'linear' && positive('factor')) return { type: 'linear', factor: r.factor as number };
  const llama3 = ['factor', 'lowFreqFactor', 'highFreqFactor', 'originalMaxPositions'];
  check(r.type === 'llama3' && llama3.every(positive) && (r.highFreqFactor as number) > (r.lowFreqFactor as number), file, bad);
  return { type: 'llama3', factor: r.factor as number, lowFreqFactor: r.lowFreqFactor as number, highFreqFactor: r.highFreqFactor as number, originalMaxPositions: r.originalMaxPositions as number };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
