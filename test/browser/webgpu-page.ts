/**
 * The browser side of test/webgpu.test.ts: runs in a chromium page (loaded from dist/ as plain
 * ES modules) with a WebGPU adapter, and returns plain JSON the Node test asserts on.
 *   kernelChecks: every registered format's WGSL linear against its TypeScript reference
 *     (`dequantize`, then a float64 dot) on random tensors, decode (T = 1) and prefill (T = 3),
 *     with bias and accumulate, and the row split forced by a small binding limit (run with
 *     another lane count per row, cycling through all of them); and the row gather (a packed
 *     embedding's rows) against the dequantized rows, unsplit and split.
 *   forwardCheck: a packed file's greedy tokens on the GPU forward pass and on the reference
 *     backend (runtime/model.ts in the page), with the largest logit difference along the way.
 */
import { createReferenceBackend } from '../../src/backend/reference.js';
import { formatIds, getFormat } from '../../src/formats/registry.js';
import type { PackedTensor } from '../../src/formats/types.js';
import { BufferSource } from '../../src/io/bytes.js';
import { mulberry32 } from '../../src/quant/random.js';
import { PackedModel } from '../../src/packed/reader.js';
import { LlamaModel } from '../../src/runtime/model.js';
import { argmax } from '../../src/runtime/sampler.js';
import { acquireGpu, type GpuContext } from '../../src/webgpu/device.js';
import { GpuModel, type GpuModelOptions } from '../../src/webgpu/forward.js';
import { BUFFER, MAP_READ } from '../../src/webgpu/gpu-types.js';
import { packedKernel } from '../../src/webgpu/kernels/index.js';
import { GpuLinear, LANE_COUNTS, LIN_ACCUMULATE, LIN_BIAS } from '../../src/webgpu/linear.js';

/** One device for every check of the page (pipelines compile once per device). */
let shared: Promise<GpuContext | string> | undefined;
function device(): Promise<GpuContext | string> {
  shared ??= acquireGpu();
  return shared;
}

export interface KernelResult {
  format: string;
  family: string;
  shape: [number, number];
  params: string;
  /** max |gpu − ref| / max |ref| over the outputs of the call (decode, prefill). */
  decodeErr: number;
  prefillErr: number;
  /** With bias and accumulate flags, T = 2. */
  fusedErr: number;
  /** The same written at columns 3.. of wider rows, split into parts (Infinity: a column outside its own was written). */
  placedErr: number;
  /** Largest |unsplit − split| with a binding limit of about two rows of the largest per-row blob. */
  splitDiff: number;
  parts: number;
  /** Whether that limit is below the tensor's per-row bytes (so parts must be > 1). */
  expectSplit: boolean;
  /**
   * Row gather (embedding use) of rows first, last, middle: max |gpu − ref| / max |ref|,
   * unsplit and split; null for inDim > 128 (a gathered row is inDim workgroups: slow on SwiftShader).
   */
  gatherErr: number | null;
  gatherSplitErr: number | null;
  /** The device's lanes per row (GpuContext.lanesFor), used above but for the split runs. */
  lanes: number;
  /** The split runs' lanes per row (cycling through LANE_COUNTS case by case), and the split prefill's error against the reference. */
  splitLanes: number;
  splitErr: number;
}

const GATHER_MAX_IN = 128;

/** Rows `rows` of t gathered on the GPU (GpuLinear.gather), [rows.length, inDim]. */
async function gather(ctx: GpuContext, t: PackedTensor, rows: number[], limit?: number, lanes?: number): Promise<Float32Array> {
  const { device } = ctx;
  const lin = new GpuLinear(ctx, t.outDim, t.inDim, packedKernel(t), 0, limit, lanes);
  const T = rows.length;
  const step = ctx.uniform(Uint32Array.from([T, 0, 0, 0]));
  const ids = ctx.storage(Uint32Array.from(rows));
  const yb = ctx.storage(new Float32Array(T * t.inDim));
  const read = device.createBuffer({ size: T * t.inDim * 4, usage: BUFFER.MAP_READ | BUFFER.COPY_DST });
  const op = await ctx.checked(`gather ${lin.label}`, () => lin.gather(step, ids, yb));
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  op(pass, rows);
  pass.end();
  enc.copyBufferToBuffer(yb, 0, read, 0, T * t.inDim * 4);
  await ctx.checked(`run gather ${lin.label}`, () => device.queue.submit([enc.finish()]));
  await read.mapAsync(MAP_READ);
  const y = new Float32Array(read.getMappedRange().slice(0));
  read.unmap();
  for (const b of [step, ids, yb, read]) b.destroy();
  lin.destroy();
  return y;
}

async function run(ctx: GpuContext, t: PackedTensor, x: Float32Array, T: number, flags = 0, bias?: Float32Array, y0?: Float32Array, limit?: number, lanes?: number, out?: { stride: number; offset: number }): Promise<{ y: Float32Array; parts: number }> {
  const { device } = ctx;
  const lin = new GpuLinear(ctx, t.outDim, t.inDim, packedKernel(t), flags, limit, lanes, out);
  const width = out?.stride ?? t.outDim;
  const step = ctx.uniform(Uint32Array.from([T, 0, 0, 0]));
  const xb = ctx.storage(x);
  const yb = ctx.storage(y0 ?? new Float32Array(T * width));
  const bb = ctx.storage(bias ?? new Float32Array(1));
  const read = device.createBuffer({ size: T * width * 4, usage: BUFFER.MAP_READ | BUFFER.COPY_DST });
  const groups = await ctx.checked(`bind ${lin.label}`, () => lin.bind(step, xb, yb, bb));
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  lin.dispatch(pass, groups, T);
  pass.end();
  enc.copyBufferToBuffer(yb, 0, read, 0, T * width * 4);
  await ctx.checked(`run ${lin.label}`, () => device.queue.submit([enc.finish()]));
  await read.mapAsync(MAP_READ);
  const y = new Float32Array(read.getMappedRange().slice(0));
  read.unmap();
  for (const b of [step, xb, yb, bb, read]) b.destroy();
  const parts = lin.partCount;
  lin.destroy();
  return { y, parts };
}

/** y[T, out] = x[T, in] · Wᵀ in float64 from the reference dequantization. */
function reference(w: Float32Array, x: Float32Array, T: number, out: number, inDim: number): Float64Array {
  const y = new Float64Array(T * out);
  for (let t = 0; t < T; t++) for (let r = 0; r < out; r++) {
    let s = 0;
    for (let j = 0; j < inDim; j++) s += w[r * inDim + j]! * x[t * inDim + j]!;
    y[t * out + r] = s;
  }
  return y;
}

function relErr(got: Float32Array, ref: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    num = Math.max(num, Math.abs(got[i]! - ref[i]!));
    den = Math.max(den, Math.abs(ref[i]!));
  }
  return den === 0 ? num : num / den;
}

export async function kernelChecks(seed = 1): Promise<KernelResult[] | string> {
  const ctx = await device();
  if (typeof ctx === 'string') return ctx;
  const out: KernelResult[] = [];
  const rand = mulberry32(seed);
  let n = 0;
  for (const id of formatIds()) {
    const f = getFormat(id);
    for (const ex of f.examples()) {
      if (ex.outDim * ex.inDim > 200_000) continue; // the int32-perm case and such: covered by smaller shapes' code paths
      const t = f.pack(f.randomPayload(ex.outDim, ex.inDim, ex.params, rand)) as PackedTensor;
      const w = f.dequantize(t);
      const x = Float32Array.from({ length: 3 * ex.inDim }, () => rand() * 2 - 1);
      const dec = await run(ctx, t, x.subarray(0, ex.inDim), 1);
      const pre = await run(ctx, t, x, 3);
      const bias = Float32Array.from({ length: ex.outDim }, () => rand() - 0.5);
      const y0 = Float32Array.from({ length: 2 * ex.outDim }, () => rand() - 0.5);
      const fused = await run(ctx, t, x.subarray(0, 2 * ex.inDim), 2, LIN_BIAS | LIN_ACCUMULATE, bias, y0);
      const ref3 = reference(w, x, 3, ex.outDim, ex.inDim);
      const refFused = Float64Array.from({ length: 2 * ex.outDim }, (_, i) => ref3[i]! + bias[i % ex.outDim]! + y0[i]!);
      // a binding limit of about two rows of the largest blob: several parts
      // (shared blobs and tables are bound whole to every part: the limit must hold them)
      const bufs = packedKernel(t).buffers;
      const perRow = Math.max(...bufs.filter((b) => b.perRow).map((b) => b.bytes.byteLength / ex.outDim));
      const shared = Math.max(0, ...bufs.filter((b) => !b.perRow).map((b) => b.bytes.byteLength));
      const limit = Math.max(Math.ceil(2 * perRow) + 8, shared);
      // the same, placed at columns 3.. of rows of outDim + 5 (q, k, v side by side in the forward pass), bias read at 3 + r
      const stride = ex.outDim + 5;
      const wideBias = Float32Array.from({ length: stride }, (_, c) => (c >= 3 && c < 3 + ex.outDim ? bias[c - 3]! : 1e3));
      const wideY0 = Float32Array.from({ length: 2 * stride }, (_, i) => { const c = i % stride; return c >= 3 && c < 3 + ex.outDim ? y0[Math.floor(i / stride) * ex.outDim + c - 3]! : 7; });
      const placed = await run(ctx, t, x.subarray(0, 2 * ex.inDim), 2, LIN_BIAS | LIN_ACCUMULATE, wideBias, wideY0, limit, undefined, { stride, offset: 3 });
      const placedCols = Float32Array.from({ length: 2 * ex.outDim }, (_, i) => placed.y[Math.floor(i / ex.outDim) * stride + 3 + (i % ex.outDim)]!);
      const untouched = Array.from(placed.y).every((v, i) => { const c = i % stride; return (c >= 3 && c < 3 + ex.outDim) || v === 7; });
      const splitLanes = LANE_COUNTS[n++ % LANE_COUNTS.length]!;
      const split = await run(ctx, t, x, 3, 0, undefined, undefined, limit, splitLanes);
      const splitDiff = Math.max(...Array.from(split.y, (v, i) => Math.abs(v - pre.y[i]!)));
      const rows = [0, ex.outDim - 1, ex.outDim >> 1];
      const refRows = Float32Array.from(rows.flatMap((r) => Array.from(w.subarray(r * ex.inDim, (r + 1) * ex.inDim))));
      out.push({
        format: id,
        family: f.family,
        shape: [ex.outDim, ex.inDim],
        params: JSON.stringify(ex.params),
        decodeErr: relErr(dec.y, ref3.subarray(0, ex.outDim)),
        prefillErr: relErr(pre.y, ref3),
        fusedErr: relErr(fused.y, refFused),
        placedErr: untouched ? relErr(placedCols, refFused) : Infinity,
        splitDiff,
        parts: split.parts,
        expectSplit: limit < perRow * ex.outDim,
        gatherErr: ex.inDim <= GATHER_MAX_IN ? relErr(await gather(ctx, t, rows), refRows) : null,
        gatherSplitErr: ex.inDim <= GATHER_MAX_IN ? relErr(await gather(ctx, t, rows, limit, splitLanes), refRows) : null,
        lanes: ctx.lanesFor(ex.inDim),
        splitLanes,
        splitErr: relErr(split.y, ref3),
      });
    }
  }
  return out;
}

export interface ForwardResult {
  gpuTokens: number[];
  refTokens: number[];
  /** Largest |gpu − ref| logit over the steps where both saw the same tokens, and the largest |ref| logit. */
  maxLogitDiff: number;
  maxLogit: number;
  adapter: string;
  weightBytes: number;
  /** Wall ms of the upload, and of all GPU / reference forward calls. */
  uploadMs: number;
  gpuMs: number;
  refMs: number;
  /** With a growing KV cache (opts.initialPositions): the capacities it held, call by call, and the largest |Δlogit| against a cache allocated at full size up front. */
  capacities?: number[];
  growDiff?: number;
}

/**
 * Greedy continuation of `prompt` (token ids) for `steps` tokens on the GPU and on the reference
 * backend. With opts.initialPositions, a second GPU model with its KV cache at full size from the
 * start runs the same calls, and its logits are compared with the growing one's.
 */
export async function forwardCheck(url: string, prompt: number[], steps: number, chunk: number, opts: GpuModelOptions = {}): Promise<ForwardResult | string> {
  const ctx = await device();
  if (typeof ctx === 'string') return ctx;
  const res = await fetch(url);
  if (!res.ok) return `${url}: HTTP ${res.status}`;
  const packed = new PackedModel(new BufferSource(url, new Uint8Array(await res.arrayBuffer())));
  const t0 = performance.now();
  const gpu = await ctx.checked('model upload', () => new GpuModel(ctx, packed, { maxRows: chunk, ...opts }));
  const uploadMs = performance.now() - t0;
  const full = opts.initialPositions === undefined ? undefined : new GpuModel(ctx, packed, { maxRows: chunk, ...opts, initialPositions: gpu.positions });
  const capacities: number[] = [];
  let growDiff = 0;
  const gpuForward = async (tokens: number[], pos: number): Promise<Float32Array> => {
    const g = await ctx.checked('forward', () => gpu.forward(tokens, pos));
    const logits = await g;
    capacities.push(gpu.capacity);
    if (full !== undefined) {
      const f = await full.forward(tokens, pos);
      for (let v = 0; v < f.length; v++) growDiff = Math.max(growDiff, Math.abs(f[v]! - logits[v]!));
    }
    return logits;
  };
  let gpuMs = 0;
  let refMs = 0;
  const timed = async <T>(fn: () => T | Promise<T>, add: (ms: number) => void): Promise<T> => {
    const s = performance.now();
    const r = await fn();
    add(performance.now() - s);
    return r;
  };
  const backend = createReferenceBackend();
  const ref = new LlamaModel(packed, { backend, linear: packed.linears(backend), maxRows: chunk });
  let maxLogitDiff = 0;
  let maxLogit = 0;
  const gpuTokens: number[] = [];
  const refTokens: number[] = [];
  let gl: Float32Array = new Float32Array(0);
  let rl: Float32Array = new Float32Array(0);
  for (let s = 0; s < prompt.length; s += chunk) {
    const part = prompt.slice(s, s + chunk);
    gl = await timed(() => gpuForward(part, s), (ms) => (gpuMs += ms));
    rl = await timed(() => ref.forward(part, s, 'last').slice(), (ms) => (refMs += ms));
  }
  let same = true;
  for (let i = 0; i < steps; i++) {
    if (same) for (let v = 0; v < rl.length; v++) {
      maxLogitDiff = Math.max(maxLogitDiff, Math.abs(gl[v]! - rl[v]!));
      maxLogit = Math.max(maxLogit, Math.abs(rl[v]!));
    }
    const g = argmax(gl);
    const r = argmax(rl);
    gpuTokens.push(g);
    refTokens.push(r);
    same &&= g === r;
    const pos = prompt.length + i;
    if (pos >= Math.min(packed.config.seqLen, gpu.positions)) break;
    gl = await timed(() => gpuForward([g], pos), (ms) => (gpuMs += ms));
    rl = await timed(() => ref.forward([r], pos, 'last').slice(), (ms) => (refMs += ms));
  }
  const a = ctx.info;
  const out: ForwardResult = { gpuTokens, refTokens, maxLogitDiff, maxLogit, adapter: `${a.vendor} ${a.architecture}`.trim(), weightBytes: gpu.weightBytes, uploadMs, gpuMs, refMs };
  if (full !== undefined) Object.assign(out, { capacities, growDiff });
  gpu.dispose();
  full?.dispose();
  ref.dispose();
  return out;
}

export interface LogitsResult {
  /** The last token's logits of each call, as plain arrays. */
  logits: number[][];
  adapter: string;
  lanes: number;
  weightBytes: number;
  uploadMs: number;
  /** Wall ms of each forward call (the first compiles the pipelines). */
  callMs: number[];
}

/** The GPU forward's logits for `calls` (tokens at positions pos.., one sequence) of the packed file at `url`. */
export async function logitsCheck(url: string, calls: Array<{ tokens: number[]; pos: number }>, maxRows: number): Promise<LogitsResult | string> {
  const ctx = await device();
  if (typeof ctx === 'string') return ctx;
  const res = await fetch(url);
  if (!res.ok) return `${url}: HTTP ${res.status}`;
  const packed = new PackedModel(new BufferSource(url, new Uint8Array(await res.arrayBuffer())));
  const t0 = performance.now();
  const gpu = await ctx.checked('model upload', () => new GpuModel(ctx, packed, { maxRows }));
  const uploadMs = performance.now() - t0;
  const logits: number[][] = [];
  const callMs: number[] = [];
  for (const c of calls) {
    const s = performance.now();
    logits.push(Array.from(await (await ctx.checked('forward', () => gpu.forward(c.tokens, c.pos)))));
    callMs.push(performance.now() - s);
  }
  const a = ctx.info;
  const out = { logits, adapter: `${a.vendor} ${a.architecture}`.trim(), lanes: ctx.lanesFor(packed.config.dim), weightBytes: gpu.weightBytes, uploadMs, callMs };
  gpu.dispose();
  return out;
}
