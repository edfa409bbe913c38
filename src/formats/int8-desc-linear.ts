/**
 * The shared shell of the wasm int8 grid Linears (uniform-wasm-int8.ts, mixed-wasm-int8.ts): one
 * int32 descriptor in kernel memory names every buffer, and three kernels named `<prefix>_act`
 * (x → int8 per 128 columns, reference: int8-activations.ts), `<prefix>_gemv` (rows of y) and
 * `<prefix>_dequant` (row tiles of W for backend.matmul) do the work. Subclasses build the
 * descriptor and the weights; act-order permutes x into stored order first.
 */
import type { Backend, RowKernels } from '../backend/types.js';
import type { Linear } from '../runtime/linear.js';
import { KernelRowTiles, matvecEachRow, permutedRows } from './kernel-tiles.js';

const MATVEC_ROWS = 2;

export abstract class DescInt8Linear implements Linear {
  protected desc!: Int32Array;
  protected bufs: Array<Float32Array | Uint8Array> = [];
  protected perm: Int32Array | null = null;
  protected readonly xs: Float32Array; // [inDim] x in stored order
  protected readonly yOut: Float32Array; // [outDim] y when the caller's is outside kernel memory
  private readonly tiles: KernelRowTiles;
  private xPerm: Float32Array | null = null;

  constructor(
    readonly outDim: number,
    readonly inDim: number,
    protected readonly be: RowKernels,
    backend: Backend,
    private readonly prefix: string,
  ) {
    this.xs = be.alloc(Math.max(1, inDim));
    this.yOut = be.alloc(Math.max(1, outDim));
    this.tiles = new KernelRowTiles(be, backend, outDim, inDim);
  }

  /** The descriptor of `fields` int32s in kernel memory (freed with the Linear). */
  protected newDesc(fields: number): Int32Array {
    const bytes = this.be.allocBytes(4 * fields);
    this.bufs.push(bytes);
    return new Int32Array(bytes.buffer, bytes.byteOffset, fields);
  }

  matvec(y: Float32Array, x: Float32Array): void {
    const { be, inDim, perm, xs, prefix } = this;
    if (perm) for (let j = 0; j < inDim; j++) xs[j] = x[perm[j]!]!;
    else xs.set(x.subarray(0, inDim));
    const desc = be.address(this.desc)!;
    be.runRows(`${prefix}_act`, [desc, be.address(xs)!], 1, { work: 0 });
    const yInMemory = be.address(y) !== undefined;
    const yTarget = yInMemory ? y : this.yOut;
    be.runRows(`${prefix}_gemv`, [desc, be.address(yTarget)!], this.outDim, { work: this.outDim * inDim, align: 4 });
    if (!yInMemory) y.set(this.yOut.subarray(0, this.outDim));
  }

  matmul(y: Float32Array, x: Float32Array, rows: number): void {
    const { outDim, inDim, perm, be, prefix } = this;
    if (rows <= MATVEC_ROWS) {
      matvecEachRow(this, y, x, rows, outDim, inDim);
      return;
    }
    let xs = x;
    if (perm) {
      this.xPerm = permutedRows(be, this.xPerm, x, rows, inDim, perm);
      xs = this.xPerm;
    }
    const desc = be.address(this.desc)!;
    this.tiles.matmul(y, xs, rows, (tile, r0, t) => be.runRows(`${prefix}_dequant`, [desc, tile, r0], t, { work: t * inDim, align: 4 }));
  }

  dispose(): void {
    for (const b of this.bufs) this.be.free(b);
    this.be.free(this.xs);
    this.be.free(this.yOut);
    if (this.xPerm) this.be.free(this.xPerm);
    this.tiles.dispose();
  }
}
