/**
 * A linear layer whose weights stay in their stored 16-bit form (BF16 or F16, as checkpoints
 * ship them) and are widened to float32 one tile of rows at a time, right before the backend's
 * dense kernel reads them. The fp32 reference forward of a 7B BF16 model then holds 13.5 GB of
 * weights instead of 27 GB, and none of them in the wasm heap (only the tile is). The widening
 * is exact, so the results are the float32 model's (up to the summation order of a tiled sgemm).
 */
import type { Backend } from '../backend/types.js';
import { f16ToF32 } from '../io/safetensors.js';
import type { Linear } from './linear.js';

export type HalfDtype = 'BF16' | 'F16';

/** About 1 MiB of widened weights per tile: large enough for the kernels, small beside any model. */
const TILE_FLOATS = 1 << 18;

export class HalfLinear implements Linear {
  private readonly tileRows: number;
  private readonly tile: Float32Array; // [tileRows, inDim] widened rows, backend memory
  private out: Float32Array; // [rows, tileRows] one tile's product (prefill)

  constructor(
    private readonly backend: Backend,
    private readonly w: Uint16Array, // [outDim, inDim] raw 16-bit values
    private readonly dtype: HalfDtype,
    readonly outDim: number,
    readonly inDim: number,
  ) {
    if (w.length !== outDim * inDim) throw new RangeError(`HalfLinear: weight has ${w.length} values, expected ${outDim}×${inDim}`);
    this.tileRows = Math.max(1, Math.min(outDim, Math.floor(TILE_FLOATS / inDim)));
    this.tile = backend.alloc(this.tileRows * inDim);
    this.out = backend.alloc(0);
  }

  matvec(y: Float32Array, x: Float32Array): void {
    for (let r0 = 0; r0 < this.outDim; r0 += this.tileRows) {
      const n = this.widen(r0);
      this.backend.gemv(y.subarray(r0, r0 + n), this.tile.subarray(0, n * this.inDim), x, n, this.inDim);
    }
  }

  matmul(y: Float32Array, x: Float32Array, rows: number): void {
    if (this.out.length < rows * this.tileRows) {
      this.backend.free?.(this.out);
      this.out = this.backend.alloc(rows * this.tileRows);
    }
    for (let r0 = 0; r0 < this.outDim; r0 += this.tileRows) {
      const n = this.widen(r0);
      const o = this.out.subarray(0, rows * n);
      this.backend.matmul(o, x, this.tile.subarray(0, n * this.inDim), rows, n, this.inDim);
      // the tile's columns of y [rows, outDim]
      for (let r = 0; r < rows; r++) y.set(o.subarray(r * n, (r + 1) * n), r * this.outDim + r0);
    }
  }

  dispose(): void {
    this.backend.free?.(this.tile);
    this.backend.free?.(this.out);
  }

  /** Widens rows r0.. into the tile; returns how many. */
  private widen(r0: number): number {
    const n = Math.min(this.tileRows, this.outDim - r0);
    const src = this.w.subarray(r0 * this.inDim, (r0 + n) * this.inDim);
    if (this.dtype === 'BF16') {
      // bf16 is the top half of a float32
      const bits = new Uint32Array(this.tile.buffer, this.tile.byteOffset, src.length);
      for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
    } else {
      f16ToF32(src, this.tile.subarray(0, src.length));
    }
    return n;
  }
}
