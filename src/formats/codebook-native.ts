/**
 * The AQLM codebook format on a backend with native kernels (lowbit-kernels.ts, native/codebook.h),
 * codes of B ≤ 8 bits, plus two float32 copies of the codebooks (2·M·2^B·g values, made in C), so
 * loading runs no JavaScript loop over the weights.
 * B = 8 (2x8, 1x8, 4x8 …): the codes are tiled in C at load into a copy of the same size (64-row
 * tiles for the SIMD table lookups); matvec and matmul build per activation row the int8 lookup
 * tables of codebook-int8.ts (results within its stated bound of W·x) and sum each row's entries,
 * matmul reading the codes once per 16 activation rows. With `int8Prefill` off or on AVX2 (whose
 * lookups are slower than sgemm: lowbit-kernels.ts codebookKernel), matmul of more than a few rows
 * dequantizes 1 MiB row tiles in C for backend.matmul (sgemm: W·x exactly).
 * B < 8: the file's code bitstream in place, a float32 table per matvec (W·x up to float32
 * accumulation); matmul one matvec per row for a few rows, else the tiles.
 */
import type { Backend } from '../backend/types.js';
import type { Linear } from '../runtime/linear.js';
import type { CodebookParams } from './codebook.js';
import type { CodebookNativeArgs, LowbitKernels } from './lowbit-kernels.js';
import { RowTiles } from './row-tiles.js';
import type { PackedTensor } from './types.js';
import { matvecEachRow } from './kernel-tiles.js';

const TILE_FLOATS = 1 << 18;
/** The tiled copy of a file's 8-bit codes: the members of an og > 1 tensor (codebook-split.ts) share the codes and so one copy. */
const tiledCodes = new WeakMap<Uint8Array, Uint8Array>();
const MATVEC_ROWS = 4;

/** A blob's bytes as a typed array view (a copy only when the bytes are not aligned for it). */
function u16View(b: Uint8Array): Uint16Array {
  if (b.byteOffset % 2 === 0) return new Uint16Array(b.buffer, b.byteOffset, b.byteLength >> 1);
  return new Uint16Array(b.slice().buffer);
}

export class CodebookNativeKernels implements Linear {
  readonly outDim: number;
  readonly inDim: number;
  readonly kernel = 'lut' as const;
  private readonly args: CodebookNativeArgs;
  private readonly tiles: RowTiles;

  constructor(t: PackedTensor<CodebookParams>, private readonly k: LowbitKernels, backend: Backend) {
    const { outDim, inDim, params: p } = t;
    this.outDim = outDim;
    this.inDim = inDim;
    const cbt = new Float32Array(2 * p.M * 2 ** p.B * p.g); // transposed for the table, then as stored
    k.codebookPrepare(cbt, u16View(t.blobs.codebooks!.bytes), p.M, p.B, p.g);
    let codes = t.blobs.codes!.bytes;
    if (p.B === 8) {
      let tiled = tiledCodes.get(codes);
      if (!tiled) {
        tiled = new Uint8Array(codes.byteLength);
        k.codebookTile(tiled, codes, outDim, inDim, p.M, p.g);
        tiledCodes.set(codes, tiled);
      }
      codes = tiled;
    }
    this.args = [codes, cbt, u16View(t.blobs.scale!.bytes), outDim, inDim, p.M, p.B, p.g];
    this.tiles = new RowTiles(backend, outDim, inDim, TILE_FLOATS);
  }

  matvec(y: Float32Array, x: Float32Array): void {
    this.k.codebookMatvec(y, x, ...this.args);
  }

  matmul(y: Float32Array, x: Float32Array, rows: number): void {
    const { outDim, inDim } = this;
    if (this.args[6] === 8 && (rows <= MATVEC_ROWS || (this.k.int8Prefill && this.k.codebookKernel >= 2))) {
      this.k.codebookGemm(y, x, rows, ...this.args);
      return;
    }
    if (rows <= MATVEC_ROWS) {
      matvecEachRow(this, y, x, rows, outDim, inDim);
      return;
    }
    this.tiles.matmul(y, x, rows, (r0, count, w) => this.k.codebookDequant(w, ...this.args, r0, r0 + count));
  }

  dispose(): void {
    this.tiles.dispose();
  }
}
