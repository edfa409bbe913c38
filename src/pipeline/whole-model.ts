/**
 * The two large tensors outside the blocks (issue 13): the token embedding [vocab, dim] and the
 * output head [vocab, dim]. The head is quantized with the block linears' machinery: its
 * calibration input is the final RMSNorm's output over the calibration windows (what
 * GPTQModel's `lm_head` option does), its payload packed by the same format registry, so the
 * runtime runs it with the formats' fused matvec. The embedding is quantized row by row with
 * RTN: each token's row is one row of groups, so the runtime gathers one row per token
 * without expanding the table (the formats' `rowGather`).
 *
 * Tied models (one matrix is both): when embedding and head get the same bits and group size,
 * ONE stored tensor serves both roles (the head's GPTQ result, read row-wise as the embedding);
 * otherwise the file stores them separately and its config says untied.
 */
import type { Backend } from '../backend/types.js';
import type { LlamaConfig } from '../model/config.js';
import { EMBED, FINAL_NORM, LM_HEAD, type ModelSource } from '../model/weights.js';
import { HessianAccumulator } from '../quant/hessian.js';
import type { LayerResult, QuantMethod } from '../quant/method.js';
import { rmsnorm } from '../runtime/forward.js';

/** How one of the two tensors is quantized: a grid method (rtn, gptq) with its resolved options ({ bits, groupSize, … }). */
export interface TensorQuant {
  method: QuantMethod<object>;
  options: object;
}

export interface WholeModelOptions {
  /** The output head; undefined = keep it float. */
  head?: TensorQuant;
  /** The token embedding (data-free methods only: it is quantized before any block); undefined = keep float. */
  embed?: TensorQuant;
}

/** Where the embedding and head live in the file. */
export interface WholeModelLayout {
  /** The packed file's config: untied when a tied source's two roles are stored apart. */
  config: LlamaConfig;
  /** Tied source, one stored tensor (EMBED) serving as embedding and head. */
  shared: boolean;
  /** Name of the stored head tensor (EMBED when shared or when the file is tied and the head float). */
  headTensor: string;
  /** Why this layout, one line for the summary. */
  note: string;
}

/** The grid options the two tensors are compared by (bits and group size, the rest is the method's). */
function gridOf(q: TensorQuant | undefined): string {
  if (q === undefined) return 'float';
  const o = q.options as { bits?: unknown; groupSize?: unknown };
  return `${q.method.name} ${String(o.bits)}-bit g${String(o.groupSize)}`;
}

export function wholeModelLayout(c: LlamaConfig, o: WholeModelOptions): WholeModelLayout {
  if (!c.tiedEmbeddings) {
    return { config: c, shared: false, headTensor: LM_HEAD, note: `embedding ${gridOf(o.embed)}, head ${gridOf(o.head)}` };
  }
  if (o.head === undefined && o.embed === undefined) {
    return { config: c, shared: false, headTensor: EMBED, note: 'tied: one float tensor serves as embedding and head' };
  }
  const grid = (q: TensorQuant | undefined) => (q === undefined ? undefined : (q.options as { bits?: unknown; groupSize?: unknown }));
  const h = grid(o.head);
  const e = grid(o.embed);
  // one tensor when both roles ask for the same grid: the head's (calibrated) result serves both
  // (on stories260K it beat two tensors of the same total size: docs/quantization.md)
  if (h !== undefined && e !== undefined && h.bits === e.bits && h.groupSize === e.groupSize) {
    return { config: c, shared: true, headTensor: EMBED, note: `tied: one ${gridOf(o.head)} tensor serves as embedding and head` };
  }
  return {
    config: { ...c, tiedEmbeddings: false },
    shared: false,
    headTensor: LM_HEAD,
    note: `tied source stored as two tensors (different grids asked): embedding ${gridOf(o.embed)}, head ${gridOf(o.head)}`,
  };
}

/**
 * The source as the packed file sees it: a tied source stored untied reads its head from the
 * embedding matrix.
 */
export function sourceForLayout(source: ModelSource, layout: WholeModelLayout): ModelSource {
  if (layout.config.tiedEmbeddings === source.config.tiedEmbeddings) return source;
  return {
    name: source.name,
    config: layout.config,
    tensors: () => [...source.tensors(), { name: LM_HEAD, shape: [source.config.vocabSize, source.config.dim] }],
    load: (name) => source.load(name === LM_HEAD ? EMBED : name),
    ...(source.dtypeOf ? { dtypeOf: (name: string) => source.dtypeOf!(name === LM_HEAD ? EMBED : name) } : {}),
  };
}

/** RTN (or any data-free grid method) on the embedding rows. */
export function quantizeEmbedding(source: ModelSource, q: TensorQuant, backend: Backend): LayerResult {
  const { vocabSize, dim } = source.config;
  if (q.method.requires.hessian || q.method.requires.inputs) throw new RangeError(`${q.method.name} needs calibration data: the embedding takes a data-free method (rtn)`);
  return q.method.quantizeLayer(source.load(EMBED), vocabSize, dim, null, q.options, { backend, name: EMBED });
}

/**
 * The head quantized on the final norm's output: X [rows, dim] is the residual stream after the
 * last block over all calibration windows (empty when the head method needs no data).
 */
export function quantizeHead(source: ModelSource, q: TensorQuant, X: Float32Array, backend: Backend): LayerResult {
  const { vocabSize, dim, normEps } = source.config;
  const W = source.load(source.config.tiedEmbeddings ? EMBED : LM_HEAD); // [vocab, dim]
  let H: Float64Array | null = null;
  let acc: HessianAccumulator | undefined;
  if (q.method.requires.inputs) throw new RangeError(`${q.method.name} cannot quantize the head (it needs every input row; use gptq or rtn)`);
  if (q.method.requires.hessian) {
    const rows = X.length / dim;
    if (rows < 1) throw new RangeError(`${q.method.name} on the head needs the calibration stream`);
    const norm = source.load(FINAL_NORM); // [dim]
    acc = new HessianAccumulator(backend, dim);
    // in chunks, so the normed copy stays small whatever the calibration size
    const chunk = 4096;
    const xn = new Float32Array(Math.min(chunk, rows) * dim);
    for (let r0 = 0; r0 < rows; r0 += chunk) {
      const n = Math.min(chunk, rows - r0);
      rmsnorm(xn, X.subarray(r0 * dim, (r0 + n) * dim), norm, n, dim, normEps);
      acc.add(xn, n);
    }
    H = acc.h;
  }
  const r = q.method.quantizeLayer(W, vocabSize, dim, H, q.options, { backend, name: LM_HEAD });
  if (acc) backend.free?.(acc.h);
  return r;
}
