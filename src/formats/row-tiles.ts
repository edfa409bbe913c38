/**
 * The matmul (prefill, evaluation) shared by packed formats whose matvec is their own fused
 * kernel: dequantize a tile of rows into a small float32 scratch and hand it to
 * backend.matmul, so prefill speed follows the dense kernels while memory holds one tile,
 * never the whole float32 matrix.
 */
import type { Backend } from '../backend/types.js';

/** Float32 values per tile: 256 KB, a tile stays in L2 while the backend streams x past it. */
const TILE_FLOATS = 1 << 16;

/** Writes rows r0..r0+count-1 of W as float32 into w [count, inDim], original column order. */
export type DequantizeRows = (r0: number, count: number, w: Float32Array) => void;

export class RowTiles {
  private readonly tileRows: number;
  private wTile: Float32Array | null = null; // [tileRows, inDim], allocated on the first matmul
  private yTile: Float32Array | null = null; // [rows, tileRows], grown on demand

  constructor(
    private readonly backend: Backend,
    private readonly outDim: number,
    private readonly inDim: number,
    tileFloats = TILE_FLOATS,
  ) {
    this.tileRows = Math.max(1, Math.min(outDim, Math.floor(tileFloats / inDim)));
  }

  /** y[rows, outDim] = x[rows, inDim] · Wᵀ, W produced tile by tile by `dequantizeRows`. */
  matmul(y: Float32Array, x: Float32Array, rows: number, dequantizeRows: DequantizeRows): void {
    const { outDim, inDim, tileRows, backend } = this;
    this.wTile ??= backend.alloc(tileRows * inDim);
    if (this.yTile === null || this.yTile.length < rows * tileRows) {
      if (this.yTile !== null) backend.free?.(this.yTile);
      this.yTile = backend.alloc(rows * tileRows);
    }
    const { wTile, yTile } = this;
    for (let r0 = 0; r0 < outDim; r0 += tileRows) {
      const t = Math.min(tileRows, outDim - r0);
      dequantizeRows(r0, t, wTile);
      backend.matmul(yTile, x, wTile, rows, t, inDim);
      for (let i = 0; i < rows; i++) y.set(yTile.subarray(i * t, (i + 1) * t), i * outDim + r0);
    }
  }

  dispose(): void {
    if (this.wTile !== null) this.backend.free?.(this.wTile);
    if (this.yTile !== null) this.backend.free?.(this.yTile);
    this.wTile = this.yTile = null;
  }
}
