/**
 * The uniform group formats on a backend with row kernels (wasm, or native lending a wasm
 * pool's): weights are repacked once into the kernel layout of csrc/lowbit.c in kernel
 * memory, matvec runs `lowbit_gemv_uniform` over output rows on the kernels' threads, and
 * matmul dequantizes tiles of rows with `lowbit_dequant_uniform` (also threaded) and hands
 * them to backend.matmul (kernel-tiles.ts: the tile exists only once a matmul has run).
 * Act-order is handled on the activation side: x is permuted into stored column order once per
 * call, so W stays in stored order.
 */
import type { Backend, RowKernels } from '../backend/types.js';
import { groupCount } from './quantized.js';
import { unpackBits } from './bitpack.js';
import { KernelRowTiles, matvecEachRow, permutedRows } from './kernel-tiles.js';
import type { UniformArrays, UniformParams } from './uniform.js';

/** Columns per kernel block and its bytes (csrc/lowbit.c's layout comment). */
function laneBlock(bits: number): { cols: number; bytes: number } {
  if (bits === 2) return { cols: 64, bytes: 16 };
  if (bits === 3) return { cols: 64, bytes: 24 };
  if (bits === 4) return { cols: 32, bytes: 16 };
  if (bits === 8) return { cols: 16, bytes: 16 };
  throw new RangeError(`no lane layout for ${bits}-bit levels`);
}

/** Group boundaries the kernels handle: multiples of 16 columns, or a single group per row. */
export function laneKernelFits(inDim: number, p: UniformParams): boolean {
  return groupCount(inDim, p.groupSize) === 1 || p.groupSize % 16 === 0;
}

/** Writes one row's levels [inDim] into dst[offset..] in the lane layout; dst must be zero there. */
export function packLaneRow(levels: Uint8Array, dst: Uint8Array, offset: number, bits: number): void {
  const { cols, bytes } = laneBlock(bits);
  for (let c = 0; c < levels.length; c++) {
    const v = levels[c]!;
    const base = offset + Math.floor(c / cols) * bytes;
    const l = c & 3;
    const k = (c % cols) >> 2; // column 4k + l of the block
    if (bits === 3) {
      dst[base + 4 * l + (k >> 2)]! |= (v & 3) << ((2 * k) & 7);
      dst[base + 16 + 2 * l + (k >> 3)]! |= (v >> 2) << (k & 7);
    } else {
      const bit = k * bits;
      dst[base + 4 * l + (bit >> 3)]! |= v << (bit & 7);
    }
  }
}

/** Below this many activation rows, matmul is one matvec per row (a tile costs more than it saves). */
const MATVEC_ROWS = 2;

/**
 * The per-group scales and zeros [n] in kernel memory, plus scale·zero (exact: an f16 times an
 * integer < 256), which the matvec kernels subtract once per group (shared with mixed-wasm.ts).
 */
export function groupParamsInKernel(be: RowKernels, a: { scale: Float32Array; zero: Float32Array }, n: number): { scale: Float32Array; zero: Float32Array; szero: Float32Array } {
  const scale = be.alloc(Math.max(1, n));
  scale.set(a.scale.subarray(0, n));
  const zero = be.alloc(Math.max(1, n));
  zero.set(a.zero.subarray(0, n));
  const szero = be.alloc(Math.max(1, n));
  for (let i = 0; i < n; i++) szero[i] = a.scale[i]! * a.zero[i]!;
  return { scale, zero, szero };
}

export class UniformWasmKernels {
  private readonly be: RowKernels;
  private readonly backend: Backend;
  private readonly bits: number;
  private readonly groupSize: number;
  private readonly nGroups: number;
  private readonly cols: number; // inDim rounded up to 16
  private readonly rowStride: number;
  private readonly perm: Int32Array | null; // [inDim]
  // backend memory
  private readonly q: Uint8Array; // [outDim, rowStride] lane layout
  private readonly scale: Float32Array; // [outDim, nGroups]
  private readonly zero: Float32Array; // [outDim, nGroups]
  private readonly szero: Float32Array; // [outDim, nGroups] scale·zero (exact: an f16 times an integer < 256)
  private readonly xs: Float32Array; // [inDim rounded up to 64] x in stored order, zero past inDim (whole blocks read it)
  private readonly gsum: Float32Array; // [nGroups]
  private readonly yOut: Float32Array; // [outDim] when the caller's y is outside backend memory
  private readonly tiles: KernelRowTiles; // matmul: dequantized row tiles, allocated on first use
  private xPerm: Float32Array | null = null; // [rows, inDim] act-order activations in stored column order

  constructor(
    readonly outDim: number,
    readonly inDim: number,
    p: UniformParams,
    a: UniformArrays,
    be: RowKernels,
    backend: Backend,
  ) {
    this.be = be;
    this.backend = backend;
    this.bits = p.bits;
    this.groupSize = p.groupSize;
    this.nGroups = groupCount(inDim, p.groupSize);
    this.cols = Math.ceil(inDim / 16) * 16;
    const block = laneBlock(p.bits);
    this.rowStride = Math.ceil(inDim / block.cols) * block.bytes;
    this.perm = a.perm;
    this.q = be.allocBytes(Math.max(1, outDim * this.rowStride));
    const levels = new Uint8Array(inDim);
    for (let r = 0; r < outDim; r++) {
      unpackBits(a.q, r * a.rowBytes, levels, inDim, p.bits);
      packLaneRow(levels, this.q, r * this.rowStride, p.bits);
    }
    ({ scale: this.scale, zero: this.zero, szero: this.szero } = groupParamsInKernel(be, a, outDim * this.nGroups));
    this.xs = be.alloc(Math.ceil(inDim / 64) * 64);
    this.gsum = be.alloc(this.nGroups);
    this.yOut = be.alloc(Math.max(1, outDim));
    this.tiles = new KernelRowTiles(be, backend, outDim, inDim);
  }

  matvec(y: Float32Array, x: Float32Array): void {
    const { inDim, groupSize, nGroups, xs, gsum, perm } = this;
    if (perm) for (let j = 0; j < inDim; j++) xs[j] = x[perm[j]!]!;
    else xs.set(x.subarray(0, inDim));
    for (let g = 0; g < nGroups; g++) {
      const end = Math.min(inDim, (g + 1) * groupSize);
      let s = 0; // float64: the offset term is subtracted from the level sums
      for (let j = g * groupSize; j < end; j++) s += xs[j]!;
      gsum[g] = s;
    }
    const at = (v: ArrayBufferView) => this.be.address(v)!;
    const yInMemory = this.be.address(y) !== undefined;
    const yTarget = yInMemory ? y : this.yOut;
    this.be.runRows(
      'lowbit_gemv_uniform',
      [at(yTarget), at(this.q), this.rowStride, at(this.scale), at(this.szero), at(xs), at(gsum), this.cols, groupSize, nGroups, this.bits],
      this.outDim,
      // a packed weight costs about twice a dense multiply-add (shift, mask, convert), so count it twice
      { work: 2 * this.outDim * inDim, align: 16 },
    );
    if (!yInMemory) y.set(this.yOut.subarray(0, this.outDim));
  }

  matmul(y: Float32Array, x: Float32Array, rows: number): void {
    const { outDim, inDim, perm, be } = this;
    if (rows <= MATVEC_ROWS) {
      matvecEachRow(this, y, x, rows, outDim, inDim);
      return;
    }
    let xs = x;
    if (perm) {
      // stored column order, so the tiles stay in stored order
      this.xPerm = permutedRows(be, this.xPerm, x, rows, inDim, perm);
      xs = this.xPerm;
    }
    const q = be.address(this.q)!;
    const scale = be.address(this.scale)!;
    const zero = be.address(this.zero)!;
    this.tiles.matmul(y, xs, rows, (tile, r0, t) => {
      const g0 = r0 * this.nGroups * 4;
      be.runRows(
        'lowbit_dequant_uniform',
        [tile, q + r0 * this.rowStride, this.rowStride, scale + g0, zero + g0, inDim, this.groupSize, this.nGroups, this.bits],
        t,
        { work: t * inDim, align: 4 },
      );
    });
  }

  dispose(): void {
    for (const b of [this.q, this.scale, this.zero, this.szero, this.xs, this.gsum, this.yOut, this.xPerm]) {
      if (b) this.be.free(b);
    }
    this.tiles.dispose();
  }
}
