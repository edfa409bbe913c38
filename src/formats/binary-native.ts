/**
 * The binary-billm format (BiLLM / DBellQuant) on a backend with native kernels
 * (lowbit-kernels.ts, native/binary.c), blockSize a multiple of 128: the kernels read the
 * file's sign and split planes, residual signs and float16 scales in place; at load C makes the
 * salient index and a compact plane of the salient columns' first-order signs (n_sal/in of a
 * sign plane), so no JavaScript loop touches the weights. matvec (decode) runs sign selection
 * with integer dot products on int8 activations (float x on the salient columns); matmul
 * (prefill) runs one matvec per row for a few rows, else dequantizes 1 MiB row tiles in C for
 * backend.matmul (sgemm).
 */
import type { Backend } from '../backend/types.js';
import type { Linear } from '../runtime/linear.js';
import { blockCount, type BinaryParams } from './binary.js';
import type { BinaryNativeArgs, LowbitKernels } from './lowbit-kernels.js';
import { RowTiles } from './row-tiles.js';
import type { PackedTensor } from './types.js';
import { matvecEachRow } from './kernel-tiles.js';

const TILE_FLOATS = 1 << 18;
const MATVEC_ROWS = 4;

function u16View(b: Uint8Array): Uint16Array {
  if (b.byteOffset % 2 === 0) return new Uint16Array(b.buffer, b.byteOffset, b.byteLength >> 1);
  return new Uint16Array(b.slice().buffer);
}

export class BinaryNativeKernels implements Linear {
  readonly outDim: number;
  readonly inDim: number;
  private readonly args: BinaryNativeArgs;
  private readonly tiles: RowTiles;

  constructor(t: PackedTensor<BinaryParams>, private readonly k: LowbitKernels, backend: Backend) {
    const { outDim, inDim, params: p } = t;
    this.outDim = outDim;
    this.inDim = inDim;
    const nSal = p.salientColumns;
    const salCol = new Int32Array(nSal);
    const salStart = new Int32Array(blockCount(inDim, p.blockSize) + 1);
    const sal1 = nSal > 0 ? new Uint8Array(outDim * Math.ceil(nSal / 8)) : null;
    const sign = t.blobs.signs!.bytes;
    k.binaryPrepare(salCol, salStart, sal1 ?? new Uint8Array(0), t.blobs.salient!.bytes, sign, outDim, inDim, p.blockSize, nSal);
    const residual = nSal > 0 ? t.blobs.residual!.bytes : null;
    this.args = [sign, t.blobs.split!.bytes, sal1, residual, u16View(t.blobs.scales!.bytes), salCol, salStart, outDim, inDim, p.blockSize, nSal];
    this.tiles = new RowTiles(backend, outDim, inDim, TILE_FLOATS);
  }

  matvec(y: Float32Array, x: Float32Array): void {
    this.k.binaryMatvec(y, x, ...this.args);
  }

  matmul(y: Float32Array, x: Float32Array, rows: number): void {
    const { outDim, inDim } = this;
    if (rows <= MATVEC_ROWS) {
      matvecEachRow(this, y, x, rows, outDim, inDim);
      return;
    }
    this.tiles.matmul(y, x, rows, (r0, count, w) => this.k.binaryDequant(w, ...this.args, r0, r0 + count));
  }

  dispose(): void {
    this.tiles.dispose();
  }
}
