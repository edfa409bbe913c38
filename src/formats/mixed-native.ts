/**
 * SliM-LLM's mixed widths on a backend with native low-bit kernels (lowbit-kernels.ts): the
 * kernels read the file's bytes — each group's levels at its width (3-bit groups repacked once,
 * in C, to the same size), float16 scales, the zero bitstream and the 1-bit groups' float16
 * zeros — so kernel memory is the file's payload. matvec quantizes x to int8 per 128-column
 * group (int8-activations.ts) and runs integer dot products (native/lowbit.h lb_mixed); matmul
 * runs one matvec per row for a few rows, else the int8 GEMM (lb_gemm_mixed), or with
 * `int8Prefill` off dequantizes row tiles in C for backend.matmul.
 */
import type { Backend } from '../backend/types.js';
import type { Linear } from '../runtime/linear.js';
import type { LowbitKernels, MixedNativeArgs } from './lowbit-kernels.js';
import type { MixedArrays } from './mixed.js';
import { RowTiles } from './row-tiles.js';
import { matvecEachRow } from './kernel-tiles.js';

const TILE_FLOATS = 1 << 18; // as uniform-native.ts
const MATVEC_ROWS = 4;

export class MixedNativeKernels implements Linear {
  private readonly args: MixedNativeArgs;
  private readonly tiles: RowTiles;

  constructor(
    readonly outDim: number,
    readonly inDim: number,
    a: MixedArrays,
    private readonly k: LowbitKernels,
    backend: Backend,
  ) {
    const raw = a.raw!;
    const ng = a.nGroups;
    const goff = Int32Array.from(a.groupByte.subarray(0, ng));
    const zbit = new Int32Array(ng); // per group, the same in every row
    for (let g = 0, bit = 0, k1 = 0; g < ng; g++) {
      if (a.widths[g] === 1) zbit[g] = -1 - k1++;
      else {
        zbit[g] = bit;
        bit += a.widths[g]!;
      }
    }
    const rowStride = a.groupByte[ng]!;
    const has3 = a.widths.includes(3);
    const q = has3 ? a.q.slice() : a.q; // 3-bit groups are repacked in place, so into a copy
    this.args = [q, raw.scaleBits, raw.zeroBits, raw.zero1Bits, a.widths, goff, zbit, outDim, inDim, rowStride, raw.zeroBytes, raw.n1];
    if (has3) k.mixedRepack3(...this.args);
    this.tiles = new RowTiles(backend, outDim, inDim, TILE_FLOATS);
  }

  matvec(y: Float32Array, x: Float32Array): void {
    this.k.mixedMatvec(y, x, ...this.args);
  }

  matmul(y: Float32Array, x: Float32Array, rows: number): void {
    const { outDim, inDim } = this;
    if (rows <= MATVEC_ROWS) {
      matvecEachRow(this, y, x, rows, outDim, inDim);
      return;
    }
    if (this.k.int8Prefill) {
      this.k.mixedGemm(y, x, rows, ...this.args);
      return;
    }
    this.tiles.matmul(y, x, rows, (r0, count, w) => this.k.mixedDequant(w, ...this.args, r0, r0 + count));
  }

  dispose(): void {
    this.tiles.dispose();
  }
}
