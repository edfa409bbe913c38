/**
 * RowTiles for formats whose dequantization runs as a row kernel (csrc/, threaded by
 * RowKernels.runRows): tiles of rows are expanded to float32 in kernel memory and handed to
 * backend.matmul, which reads kernel memory without a copy on both the wasm backend (its own
 * memory) and native (a typed array over the lent pool's memory). Used by uniform-wasm.ts,
 * mixed-wasm.ts and codebook-wasm.ts; the TypeScript kernels use row-tiles.ts.
 */
import type { Backend, RowKernels } from '../backend/types.js';

/** Float32 values per tile: 1 MiB, stays in L2 while sgemm packs it. */
const TILE_FLOATS = 1 << 18;

/** Expands rows [r0, r0 + count) into the tile at kernel address `tile` ([count, inDim]). */
export type KernelDequantize = (tile: number, r0: number, count: number) => void;

export class KernelRowTiles {
  readonly tileRows: number;
  private wTile: Float32Array | null = null; // [tileRows, inDim], allocated on the first matmul (decode never needs it)
  private yTile: Float32Array | null = null; // [rows, tileRows]
  private xRows: Float32Array | null = null; // [rows, inDim] activations copied into kernel memory

  constructor(
    private readonly be: RowKernels,
    private readonly backend: Backend,
    private readonly outDim: number,
    private readonly inDim: number,
  ) {
    this.tileRows = Math.max(1, Math.min(outDim, Math.floor(TILE_FLOATS / Math.max(1, inDim))));
  }

  /** y[rows, outDim] = x[rows, inDim] · Wᵀ. */
  matmul(y: Float32Array, x: Float32Array, rows: number, dequantize: KernelDequantize): void {
    const { be, outDim, inDim, tileRows } = this;
    let xs = x;
    if ((be as object) === this.backend && be.address(x) === undefined) {
      // the wasm backend would copy x into its memory once per tile otherwise (native reads x as is)
      if (this.xRows === null || this.xRows.length < rows * inDim) {
        if (this.xRows) be.free(this.xRows);
        this.xRows = be.alloc(rows * inDim);
      }
      xs = this.xRows;
      xs.set(x.subarray(0, rows * inDim));
    }
    if (this.yTile === null || this.yTile.length < rows * tileRows) {
      if (this.yTile) be.free(this.yTile);
      this.yTile = be.alloc(rows * tileRows);
    }
    this.wTile ??= be.alloc(tileRows * inDim);
    const { yTile, wTile } = this;
    const tile = be.address(wTile)!;
    for (let r0 = 0; r0 < outDim; r0 += tileRows) {
      const t = Math.min(tileRows, outDim - r0);
      dequantize(tile, r0, t);
      this.backend.matmul(yTile, xs, wTile, rows, t, inDim);
      for (let i = 0; i < rows; i++) y.set(yTile.subarray(i * t, (i + 1) * t), i * outDim + r0);
    }
  }

  dispose(): void {
    for (const b of [this.wTile, this.yTile, this.xRows]) if (b) this.be.free(b);
    this.wTile = this.yTile = this.xRows = null;
  }
}

/**
 * x [rows, inDim] with its columns in stored order (act-order: xs[r, j] = x[r, perm[j]]) in
 * kernel memory: `held` when it is large enough, else a new buffer (`held` freed). The caller
 * keeps what this returns for the next call and frees it on dispose.
 */
export function permutedRows(be: RowKernels, held: Float32Array | null, x: Float32Array, rows: number, inDim: number, perm: Int32Array): Float32Array {
  let xs = held;
  if (xs === null || xs.length < rows * inDim) {
    if (xs) be.free(xs);
    xs = be.alloc(rows * inDim);
  }
  for (let i = 0; i < rows; i++) {
    const o = i * inDim;
    for (let j = 0; j < inDim; j++) xs[o + j] = x[o + perm[j]!]!;
  }
  return xs;
}

/**
 * Builds a kernel layout from a file's rows q [outDim, srcStride] in C: the rows are copied a
 * stage of about 1 MiB at a time into kernel memory and `pack(stage, r0, n)` runs the format's
 * threaded pack kernel on rows [r0, r0 + n) (no JavaScript loop over the weights, a small staging
 * buffer instead of a second copy of the tensor).
 */
export function packRowsInKernel(be: RowKernels, q: Uint8Array, srcStride: number, outDim: number, pack: (stage: number, r0: number, n: number) => void): void {
  const stageRows = Math.max(1, Math.min(outDim, Math.floor((1 << 20) / Math.max(1, srcStride))));
  const stage = be.allocBytes(Math.max(1, stageRows * srcStride));
  try {
    for (let r0 = 0; r0 < outDim; r0 += stageRows) {
      const n = Math.min(stageRows, outDim - r0);
      stage.set(q.subarray(r0 * srcStride, (r0 + n) * srcStride));
      pack(be.address(stage)!, r0, n);
    }
  } finally {
    be.free(stage);
  }
}

/** y[rows, outDim] = x[rows, inDim]·Wᵀ as one matvec per row: the kernels' path for the few-row matmuls of decode. */
export function matvecEachRow(
  lin: { matvec(y: Float32Array, x: Float32Array): void }, y: Float32Array, x: Float32Array, rows: number, outDim: number, inDim: number,
): void {
  for (let i = 0; i < rows; i++) lin.matvec(y.subarray(i * outDim, (i + 1) * outDim), x.subarray(i * inDim, (i + 1) * inDim));
}
