/**
 * Fast kernels of the mixed-precision group format, in TypeScript.
 *
 * matvec (decode): per row and group, a fused unpack-and-dot specialised for the group's width
 * (1: 8 levels a byte, 2: 4, 3: 8 in 3 bytes, 4: 2), then
 *   y_r = Σ_g s_rg · (Σ_{j∈g} q_rj x_j − z_rg · Σ_{j∈g} x_j)
 * with the group sums of x computed once per call; 1-bit groups use the same formula (their zero
 * is fractional). Groups start on byte boundaries, so each group's loop starts fresh.
 * matmul (prefill, evaluation): dequantize a tile of rows into float32 and hand it to
 * backend.matmul, as the uniform formats do.
 *
 * On a backend with row kernels (wasm, or native lending a wasm pool's) the same algorithms run
 * in WebAssembly SIMD on the kernels' threads: on int8 activations for groups of whole 128-column
 * blocks (mixed-wasm-int8.ts, csrc/lowbit-int8-mixed.c), else on float ones (mixed-wasm.ts,
 * csrc/lowbit.c); these TypeScript kernels are their reference and serve the reference backend.
 */
import type { Backend } from '../backend/types.js';
import { KernelChoice } from './kernel-choice.js';
import type { Linear } from '../runtime/linear.js';
import { unpackBits } from './bitpack.js';
import type { MixedArrays } from './mixed.js';
import { MixedWasmKernels } from './mixed-wasm.js';
import { RowTiles } from './row-tiles.js';
import { floatActivationsOf, lowbitKernelsOf, nativeMixedFits } from './lowbit-kernels.js';
import { gridInt8Fits, MixedInt8WasmKernels, mixedInt8Spec } from './mixed-wasm-int8.js';
import { MixedNativeKernels } from './mixed-native.js';

/** Σ_k level_k · x[x0 + k] over n levels of width `bits` packed from q[o]. */
export function dotPacked(q: Uint8Array, o: number, bits: number, x: Float32Array, x0: number, n: number): number {
  const o0 = o;
  let d = 0;
  let k = 0;
  switch (bits) {
    case 1:
      for (; k + 8 <= n; k += 8) {
        const b = q[o++]!;
        if (b === 0) continue;
        const j = x0 + k;
        d += (b & 1 ? x[j]! : 0) + (b & 2 ? x[j + 1]! : 0) + (b & 4 ? x[j + 2]! : 0) + (b & 8 ? x[j + 3]! : 0) +
          (b & 16 ? x[j + 4]! : 0) + (b & 32 ? x[j + 5]! : 0) + (b & 64 ? x[j + 6]! : 0) + (b & 128 ? x[j + 7]! : 0);
      }
      break;
    case 2:
      for (; k + 4 <= n; k += 4) {
        const b = q[o++]!;
        const j = x0 + k;
        d += (b & 3) * x[j]! + ((b >>> 2) & 3) * x[j + 1]! + ((b >>> 4) & 3) * x[j + 2]! + (b >>> 6) * x[j + 3]!;
      }
      break;
    case 3:
      for (; k + 8 <= n; k += 8) {
        const v = q[o]! | (q[o + 1]! << 8) | (q[o + 2]! << 16);
        o += 3;
        const j = x0 + k;
        d += (v & 7) * x[j]! + ((v >>> 3) & 7) * x[j + 1]! + ((v >>> 6) & 7) * x[j + 2]! + ((v >>> 9) & 7) * x[j + 3]! +
          ((v >>> 12) & 7) * x[j + 4]! + ((v >>> 15) & 7) * x[j + 5]! + ((v >>> 18) & 7) * x[j + 6]! + (v >>> 21) * x[j + 7]!;
      }
      break;
    case 4:
      for (; k + 2 <= n; k += 2) {
        const b = q[o++]!;
        d += (b & 15) * x[x0 + k]! + (b >>> 4) * x[x0 + k + 1]!;
      }
      break;
  }
  // the tail of a group that is not a whole number of bytes: value by value (≤ 2 bytes each)
  const mask = (1 << bits) - 1;
  for (; k < n; k++) {
    const bit = k * bits;
    const byte = o0 + (bit >>> 3);
    const two = q[byte]! | ((q[byte + 1] ?? 0) << 8);
    d += ((two >>> (bit & 7)) & mask) * x[x0 + k]!;
  }
  return d;
}

/** y = W x for a mixed-width tensor, on the fastest kernels the backend offers. */
export class MixedLinear extends KernelChoice {
  constructor(outDim: number, inDim: number, a: MixedArrays, backend: Backend) {
    super(
      backend,
      (rk) => {
        const spec = !floatActivationsOf(backend) && gridInt8Fits(inDim, a.groupSize) ? mixedInt8Spec(a) : null;
        return spec ? new MixedInt8WasmKernels(outDim, inDim, spec, rk, backend) : new MixedWasmKernels(outDim, inDim, a, rk, backend);
      },
      () => new MixedTsKernels(outDim, inDim, a, backend),
      a.raw && nativeMixedFits(inDim, a.groupSize) && lowbitKernelsOf(backend)?.mixedSimd ? (k) => new MixedNativeKernels(outDim, inDim, a, k, backend) : null,
    );
  }
}

/** The TypeScript kernels (reference of the wasm ones). */
export class MixedTsKernels implements Linear {
  private readonly a: MixedArrays;
  private readonly rowBytes: number;
  private readonly groupSums: Float64Array; // [nGroups]
  private readonly levels: Uint8Array; // [groupSize] one group's levels (tiles)
  private readonly tiles: RowTiles; // float32 row tiles for matmul

  constructor(
    readonly outDim: number,
    readonly inDim: number,
    a: MixedArrays,
    backend: Backend,
  ) {
    this.a = { ...a, q: a.q.slice() }; // own copy: the source may be a view into a file buffer
    this.rowBytes = a.groupByte[a.nGroups]!;
    this.groupSums = new Float64Array(a.nGroups);
    this.levels = new Uint8Array(a.groupSize);
    this.tiles = new RowTiles(backend, outDim, inDim);
  }

  matvec(y: Float32Array, x: Float32Array): void {
    const { inDim, groupSums } = this;
    const { groupSize, nGroups, widths, groupByte, q, scale, zero } = this.a;
    for (let g = 0; g < nGroups; g++) {
      const end = Math.min(inDim, (g + 1) * groupSize);
      let s = 0;
      for (let j = g * groupSize; j < end; j++) s += x[j]!;
      groupSums[g] = s;
    }
    for (let r = 0; r < this.outDim; r++) {
      const row = r * this.rowBytes;
      const base = r * nGroups;
      let acc = 0;
      for (let g = 0; g < nGroups; g++) {
        const c0 = g * groupSize;
        const d = dotPacked(q, row + groupByte[g]!, widths[g]!, x, c0, Math.min(groupSize, inDim - c0));
        acc += scale[base + g]! * (d - zero[base + g]! * groupSums[g]!);
      }
      y[r] = acc;
    }
  }

  matmul(y: Float32Array, x: Float32Array, rows: number): void {
    if (rows === 1) return this.matvec(y, x);
    this.tiles.matmul(y, x, rows, (r0, count, w) => this.dequantizeRows(r0, count, w));
  }

  dispose(): void {
    this.tiles.dispose();
  }

  /** Rows r0..r0+count-1 as float32 into w [count, inDim] (same values as dequantizeGroups). */
  private dequantizeRows(r0: number, count: number, w: Float32Array): void {
    const { inDim, levels } = this;
    const { groupSize, nGroups, widths, groupByte, q, scale, zero } = this.a;
    for (let t = 0; t < count; t++) {
      const r = r0 + t;
      const out = t * inDim;
      for (let g = 0; g < nGroups; g++) {
        const c0 = g * groupSize;
        const n = Math.min(groupSize, inDim - c0);
        unpackBits(q, r * this.rowBytes + groupByte[g]!, levels, n, widths[g]!);
        const s = scale[r * nGroups + g]!;
        const z = zero[r * nGroups + g]!;
        for (let k = 0; k < n; k++) w[out + c0 + k] = s * (levels[k]! - z);
      }
    }
  }
}
