/**
 * The binary-billm format (BiLLM / DBellQuant) on a backend with native kernels
 * (lowbit-kernels.ts, native/binary.c), blockSize a multiple of 128. At load C copies the file's
 * sign and split planes, residual signs and float16 scales into the kernel layout (native/binary.h:
 * 16-row groups whose 64-bit words feed one integer dot product each, scales as 16-row vectors;
 * the same bytes as the file's, padded to 16 rows), so no JavaScript loop touches the weights
 * and the kernels never read the file's blobs. matvec (decode) runs sign selection with integer
 * dot products on int8 activations (float x on the salient columns); matmul (prefill) runs one
 * matvec per row for a few rows, else the binary GEMM on the same words (each row of x quantized
 * as the matvec does) while `int8Prefill` is on and the CPU has AVX-512 VNNI, or dequantizes 1 MiB row tiles in C for
 * backend.matmul (sgemm, W·x exactly: the path before the GEMM, kept for comparison).
 */
import type { Backend } from '../backend/types.js';
import type { Linear } from '../runtime/linear.js';
import { blockCount, type BinaryParams } from './binary.js';
import { binaryLayout, type BinaryNativeArgs, type LowbitKernels } from './lowbit-kernels.js';
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
    const n = binaryLayout(outDim, inDim, p.blockSize, nSal);
    const planes = new BigUint64Array(n.planes);
    const scalesT = new Uint16Array(n.scales);
    const sal = new Uint32Array(n.sal);
    const salCol = new Int32Array(nSal);
    const salStart = new Int32Array(blockCount(inDim, p.blockSize) + 1);
    const residual = nSal > 0 ? t.blobs.residual!.bytes : null;
    k.binaryPrepare(
      planes, scalesT, sal, salCol, salStart, t.blobs.salient!.bytes, t.blobs.signs!.bytes, t.blobs.split!.bytes, residual,
      u16View(t.blobs.scales!.bytes), outDim, inDim, p.blockSize, nSal,
    );
    this.args = [planes, scalesT, sal, salCol, salStart, outDim, inDim, p.blockSize, nSal];
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
    if (this.k.int8Prefill && this.k.binaryGemmSimd) {
      this.k.binaryGemm(y, x, rows, ...this.args);
      return;
    }
    this.tiles.matmul(y, x, rows, (r0, count, w) => this.k.binaryDequant(w, ...this.args, r0, r0 + count));
  }

  dispose(): void {
    this.tiles.dispose();
  }
}
