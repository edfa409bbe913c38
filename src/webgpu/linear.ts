/**
 * A linear layer on the GPU: y[t, yOff + r] (+)= Σ_j ŵ[r, j] · x[t, j] (+ bias), a
 * workgroup of 64 invocations per (64 / lanes output rows, token row), each of a row's lanes
 * decoding the packed weights of columns lane, lane + lanes, … straight from the uploaded blobs
 * (kernels/*.ts: one per format family) and a sum over the lanes at the end (the device picks
 * the lanes: GpuContext.lanesFor). The same kernel is the decode matvec (T = 1) and the
 * prefill matmul (T rows, the grid's z).
 *
 * Weights are uploaded once, in their packed layout. A tensor whose largest per-row blob
 * exceeds the device's storage binding limit is cut into row ranges, each with its own
 * buffers and dispatch (shared blobs — perm, codebooks, masks — are bound to every part).
 *
 * The same blobs also serve as a row table (`gather`: the token embedding of a packed file, and
 * the head of a tied model read both ways): row r, column j is the format's own `partial` of
 * row r against a one-hot x = e_j, so every format family gathers with no code of its own. The
 * one-hot input is a window into [0…0, 1, 0…0] (2·inDim − 1 floats, the 1 at inDim − 1): x
 * starting at inDim − 1 − j has its 1 at column j. One gathered row costs one row's decode per
 * column (inDim² weight decodes, the work of an [inDim, inDim] matvec: small beside a layer).
 */
import { grid2d, type GpuContext } from './device.js';
import type { GpuBindGroup, GpuBuffer, GpuComputePass, GpuComputePipeline } from './gpu-types.js';
import { REDUCE_64, STEP_STRUCT } from './wgsl.js';

/** What a format family's kernel needs: its WGSL (bindings 5.., fn partial) and its blobs in binding order. */
export interface LinearKernel {
  /** Declares the format's buffers at @binding(5), (6), … in `buffers` order and `fn partial(r: u32, xo: u32, lid: u32) -> f32`. */
  wgsl: string;
  buffers: Array<{ bytes: Uint8Array; perRow: boolean }>;
  /** Up to 8 format-specific u32 words, read in WGSL as lin.p0.xyzw, lin.p1.xyzw. */
  params: number[];
  label: string;
}

/** Bindings 0–3 of both shells: the call, the part's meta, the input x, the output y. */
const LIN_HEAD = `${STEP_STRUCT}
// outDim: floats per row of y; rowOff: the part's first row in the tensor; yOff: the tensor's first column in y
struct Lin { rows: u32, inDim: u32, outDim: u32, rowOff: u32, flags: u32, yOff: u32, q1: u32, q2: u32, p0: vec4<u32>, p1: vec4<u32> }
@group(0) @binding(1) var<uniform> lin: Lin;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
${REDUCE_64}`;

/**
 * The lanes of one output row: a workgroup of 64 invocations computes 64 / LANES rows, each
 * row's lanes splitting its columns (kernels loop j = lane, lane + LANES, …) and summing their
 * partials in workgroup memory. Out-of-range rows still take part in the barriers.
 */
function laneHead(lanes: number): string {
  return `${LIN_HEAD}
const LANES: u32 = ${lanes}u;
const ROWS: u32 = ${64 / lanes}u;
fn reduceLanes(v: f32, lid: u32) -> f32 {
  if (LANES == 1u) { return v; }
  let lane = lid % LANES;
  red[lid] = v;
  workgroupBarrier();
  for (var s = LANES / 2u; s > 0u; s = s >> 1u) {
    if (lane < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  return red[lid - lane];
}`;
}

const shell = (lanes: number) => `${laneHead(lanes)}
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = (wid.x + wid.y * nwg.x) * ROWS + lid / LANES;
  let lane = lid % LANES;
  let t = wid.z;
  if (t >= step.T) { return; }
  var p = 0.0;
  if (r < lin.rows) { p = partial(r, t * lin.inDim, lane); }
  let total = reduceLanes(p, lid);
  if (lane == 0u && r < lin.rows) {
    let col = lin.yOff + lin.rowOff + r;
    let o = t * lin.outDim + col;
    var v = total;
    if ((lin.flags & 1u) != 0u) { v = v + bias[col]; }
    if ((lin.flags & 2u) != 0u) { v = v + y[o]; }
    y[o] = v;
  }
}
`;

/** Row gather: y[t, j] = ŵ[tokens[t], j] for the rows of this part (other parts hold the other rows); ROWS columns j per workgroup. */
const gatherShell = (lanes: number) => `${laneHead(lanes)}
@group(0) @binding(4) var<storage, read> tokens: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let j = (wid.x + wid.y * nwg.x) * ROWS + lid / LANES;
  let lane = lid % LANES;
  let t = wid.z;
  if (t >= step.T) { return; }
  let token = tokens[t];
  if (token < lin.rowOff || token >= lin.rowOff + lin.rows) { return; }
  var p = 0.0;
  if (j < lin.inDim) { p = partial(token - lin.rowOff, lin.inDim - 1u - j, lane); }
  let v = reduceLanes(p, lid);
  if (lane == 0u && j < lin.inDim) { y[t * lin.inDim + j] = v; }
}
`;

/** Lane counts a linear may use (powers of two dividing the workgroup of 64). */
export const LANE_COUNTS = [1, 2, 4, 8, 16, 32, 64] as const;

export const LIN_BIAS = 1;
export const LIN_ACCUMULATE = 2;

interface Part {
  rows: number;
  rowOff: number;
  buffers: GpuBuffer[];
  meta: GpuBuffer;
}

/**
 * One kernel for linears of the same input stacked by rows (q, k, v; gate, up): one dispatch
 * instead of several, where their WGSL, parameters and shared blobs are the same (same format
 * and options, no act-order perm or codebook of their own); undefined otherwise. Per-row blobs
 * are concatenated in order.
 */
export function stackKernels(layers: Array<{ kernel: LinearKernel; outDim: number }>): LinearKernel | undefined {
  const [first] = layers;
  if (first === undefined) return undefined;
  const k0 = first.kernel;
  const same = (a: Uint8Array, b: Uint8Array) => a.byteLength === b.byteLength && a.every((v, i) => v === b[i]);
  for (const { kernel: k } of layers) {
    if (k.wgsl !== k0.wgsl || k.params.length !== k0.params.length || k.params.some((v, i) => v !== k0.params[i])) return undefined;
    if (k.buffers.length !== k0.buffers.length) return undefined;
    for (let i = 0; i < k.buffers.length; i++) {
      const [a, b] = [k.buffers[i]!, k0.buffers[i]!];
      if (a.perRow !== b.perRow || (!a.perRow && !same(a.bytes, b.bytes))) return undefined;
    }
  }
  const buffers = k0.buffers.map((b, i) => {
    if (!b.perRow) return b;
    const parts = layers.map((l) => l.kernel.buffers[i]!.bytes);
    const bytes = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
    let at = 0;
    for (const p of parts) {
      bytes.set(p, at);
      at += p.byteLength;
    }
    return { bytes, perRow: true };
  });
  return { wgsl: k0.wgsl, params: k0.params, buffers, label: `${layers.map((l) => l.kernel.label).join(' + ')}` };
}

export class GpuLinear {
  readonly outDim: number;
  readonly inDim: number;
  readonly label: string;
  /** Bytes uploaded for the weights (all parts). */
  readonly bytes: number;
  private readonly ctx: GpuContext;
  private readonly pipeline: GpuComputePipeline;
  private readonly parts: Part[] = [];
  private readonly wgsl: string;
  /** Invocations per output row (LANE_COUNTS); 64 / lanes rows per workgroup. */
  readonly lanes: number;
  private oneHot: GpuBuffer | undefined;

  /**
   * `maxBindingBytes` below the device's limit forces the row split (tests); `lanes` overrides
   * the device's choice (tests of every lane count); `out` places the rows in a wider output
   * (y[t, offset + r] of rows of `stride` floats, and the bias at offset + r: several linears of
   * one input into one buffer), default the layer's own [T, outDim].
   */
  constructor(ctx: GpuContext, outDim: number, inDim: number, k: LinearKernel, flags = 0, maxBindingBytes = ctx.info.maxBindingBytes, lanes = ctx.lanesFor(inDim), out = { stride: outDim, offset: 0 }) {
    if (!(LANE_COUNTS as readonly number[]).includes(lanes)) throw new RangeError(`lanes must be one of ${LANE_COUNTS.join(', ')}, got ${lanes}`);
    this.ctx = ctx;
    this.outDim = outDim;
    this.inDim = inDim;
    this.label = k.label;
    this.lanes = lanes;
    this.pipeline = ctx.pipeline(shell(lanes) + k.wgsl, `${k.label} lanes ${lanes}`);
    this.wgsl = k.wgsl;
    const limit = Math.min(maxBindingBytes, ctx.info.maxBindingBytes);
    let rowBytes = 0;
    for (const b of k.buffers) {
      if (b.perRow) rowBytes = Math.max(rowBytes, b.bytes.byteLength / outDim);
      else if (b.bytes.byteLength > limit) throw new RangeError(`${k.label}: a shared blob of ${b.bytes.byteLength} bytes exceeds the storage binding limit ${limit}`);
    }
    // rows per part: whole words per part are not needed (each part is its own buffer)
    const perPart = rowBytes === 0 ? outDim : Math.max(1, Math.min(outDim, Math.floor((limit - 4) / rowBytes)));
    const shared = new Map<number, GpuBuffer>();
    let bytes = 0;
    for (let r0 = 0; r0 < outDim; r0 += perPart) {
      const rows = Math.min(perPart, outDim - r0);
      const buffers = k.buffers.map((b, i) => {
        if (!b.perRow) {
          let s = shared.get(i);
          if (s === undefined) {
            s = ctx.storage(b.bytes, `${k.label} shared ${i}`);
            shared.set(i, s);
            bytes += b.bytes.byteLength;
          }
          return s;
        }
        const per = b.bytes.byteLength / outDim;
        bytes += rows * per;
        return ctx.storage(b.bytes.subarray(r0 * per, (r0 + rows) * per), `${k.label} rows ${r0}..`);
      });
      const p = [...k.params, 0, 0, 0, 0, 0, 0, 0, 0].slice(0, 8);
      const meta = ctx.uniform(Uint32Array.from([rows, inDim, out.stride, r0, flags, out.offset, 0, 0, ...p]));
      this.parts.push({ rows, rowOff: r0, buffers, meta });
    }
    this.bytes = bytes;
  }

  /** How many row ranges the weights were split into (1 unless a blob exceeds the binding limit). */
  get partCount(): number {
    return this.parts.length;
  }

  /** Bind groups for one (step, x, y, bias) binding: create once, dispatch every call. */
  bind(step: GpuBuffer, x: GpuBuffer, y: GpuBuffer, bias: GpuBuffer): GpuBindGroup[] {
    return this.parts.map((p) => this.ctx.bindGroup(this.pipeline, [step, p.meta, x, y, bias, ...p.buffers]));
  }

  /** Records the layer for `T` token rows with bind groups from `bind`. */
  dispatch(pass: GpuComputePass, groups: GpuBindGroup[], T: number): void {
    pass.setPipeline(this.pipeline);
    for (let i = 0; i < this.parts.length; i++) {
      const [gx, gy] = grid2d(Math.ceil(this.parts[i]!.rows / (64 / this.lanes)));
      pass.setBindGroup(0, groups[i]!);
      pass.dispatchWorkgroups(gx, gy, T);
    }
  }

  /**
   * A row gather of this layer's weights: `run(pass, ids)` writes rows ids[0..T−1] (ids < outDim,
   * the caller checks; the same ids already written to `tokens` as u32) as y[T, inDim] float32.
   * Only the row parts holding some id are dispatched.
   */
  gather(step: GpuBuffer, tokens: GpuBuffer, y: GpuBuffer): (pass: GpuComputePass, ids: ArrayLike<number>) => void {
    const pipeline = this.ctx.pipeline(gatherShell(this.lanes) + this.wgsl, `${this.label} gather lanes ${this.lanes}`);
    if (this.oneHot === undefined) {
      const window = new Float32Array(2 * this.inDim - 1);
      window[this.inDim - 1] = 1;
      this.oneHot = this.ctx.storage(window, `${this.label} one-hot`);
    }
    const groups = this.parts.map((p) => this.ctx.bindGroup(pipeline, [step, p.meta, this.oneHot!, y, tokens, ...p.buffers]));
    const [gx, gy] = grid2d(Math.ceil(this.inDim / (64 / this.lanes)));
    return (pass, ids) => {
      pass.setPipeline(pipeline);
      for (let i = 0; i < this.parts.length; i++) {
        const { rowOff, rows } = this.parts[i]!;
        if (!Array.prototype.some.call(ids, (id: number) => id >= rowOff && id < rowOff + rows)) continue;
        pass.setBindGroup(0, groups[i]!);
        pass.dispatchWorkgroups(gx, gy, ids.length);
      }
    };
  }

  destroy(): void {
    const seen = new Set<GpuBuffer>();
    for (const p of this.parts) for (const b of [...p.buffers, p.meta]) seen.add(b);
    if (this.oneHot !== undefined) seen.add(this.oneHot);
    for (const b of seen) b.destroy();
  }
}
