/**
 * The uniform group formats on a backend with native low-bit kernels (lowbit-kernels.ts): the
 * kernels read the file's own bytes — levels (3-bit rows repacked once, in C, to the same
 * size), float16 scales and the b-bit zero bitstream — so kernel memory is the file's payload
 * and loading runs no JavaScript loop over the weights. matvec (decode) quantizes x to int8
 * per 128 columns and runs integer dot products (native/lowbit.h), one per group where groups
 * of 32 or 64 columns split a block; matmul (prefill) runs one
 * matvec per row for a few rows, else the int8 GEMM (every row quantized as the matvec does,
 * lb_gemm), or with `int8Prefill` off dequantizes row tiles in C (on the addon's threads) for
 * backend.matmul (sgemm).
 */
import type { Backend } from '../backend/types.js';
import type { Linear } from '../runtime/linear.js';
import type { LowbitKernels } from './lowbit-kernels.js';
import { RowTiles } from './row-tiles.js';
import type { UniformParams } from './uniform.js';
import { matvecEachRow } from './kernel-tiles.js';

/** The file's blobs of one uniform tensor, as the native kernels take them. */
export interface UniformFileArrays {
  q: Uint8Array; // [outDim, ceil(inDim·bits/8)] bitstream rows
  scaleBits: Uint16Array; // [outDim, nGroups] float16
  zeroBits: Uint8Array | null; // [outDim, ceil(nGroups·bits/8)] bitstream rows; null: midpoint
  perm: Int32Array | null; // [inDim] stored → original column
}

/** Float32 values per prefill tile: 1 MiB, so sgemm sees ≥ 128 weight rows of a 2048-wide layer (64 KiB tiles measured slower). */
const TILE_FLOATS = 1 << 18;

/** Below this many activation rows, matmul is one matvec per row (a tile costs more than it saves). */
const MATVEC_ROWS = 4;

export class UniformNativeKernels implements Linear {
  private readonly q: Uint8Array; // kernel layout (lowbit.h)
  private readonly tiles: RowTiles;

  constructor(
    readonly outDim: number,
    readonly inDim: number,
    private readonly p: UniformParams,
    private readonly a: UniformFileArrays,
    private readonly k: LowbitKernels,
    backend: Backend,
  ) {
    if (p.bits === 3) {
      this.q = new Uint8Array(outDim * Math.ceil(inDim / 128) * 48);
      k.uniformRepack3(this.q, a.q, outDim, inDim);
    } else {
      this.q = a.q;
    }
    this.tiles = new RowTiles(backend, outDim, inDim, TILE_FLOATS);
  }

  matvec(y: Float32Array, x: Float32Array): void {
    const { a, p } = this;
    this.k.uniformMatvec(y, x, this.q, a.scaleBits, a.zeroBits, a.perm, this.outDim, this.inDim, p.groupSize, p.bits);
  }

  matmul(y: Float32Array, x: Float32Array, rows: number): void {
    const { outDim, inDim, a, p } = this;
    if (rows <= MATVEC_ROWS) {
      matvecEachRow(this, y, x, rows, outDim, inDim);
      return;
    }
    if (this.k.int8Prefill) {
      this.k.uniformGemm(y, x, rows, this.q, a.scaleBits, a.zeroBits, a.perm, outDim, inDim, p.groupSize, p.bits);
      return;
    }
    this.tiles.matmul(y, x, rows, (r0, count, w) =>
      this.k.uniformDequant(w, this.q, a.scaleBits, a.zeroBits, a.perm, outDim, inDim, p.groupSize, p.bits, r0, r0 + count),
    );
  }

  dispose(): void {
    this.tiles.dispose();
  }
}
