/**
 * Fast kernels of the uniform group formats, in TypeScript.
 *
 * matvec (decode): per row, unpack the row's levels once into a byte scratch, then per group
 *   y_r = Σ_g s_rg · (Σ_{j∈g} q_rj x_j − z_rg · Σ_{j∈g} x_j)
 * with the group sums of x computed once per call, so W is never expanded to float32.
 * matmul (prefill, evaluation): dequantize a tile of rows into a small float32 scratch and
 * hand it to backend.matmul, so prefill speed follows the dense kernels while memory holds one
 * tile, never the whole matrix.
 * Act-order: the stored columns are permuted; matvec permutes x once per call, matmul writes
 * each tile back in original column order.
 *
 * On the native backend the addon's int8-activation kernels run (uniform-native.ts,
 * native/lowbit.h); on a backend with row kernels (wasm) 2/4/8-bit tensors with whole
 * 128-column groups run the same int8 kernels in WebAssembly SIMD (uniform-wasm-int8.ts,
 * csrc/lowbit-int8.c), others the same algorithms as here (uniform-wasm.ts, csrc/lowbit.c); this TypeScript
 * kernel is their reference and serves the reference backend.
 */
import type { Backend } from '../backend/types.js';
import { KernelChoice } from './kernel-choice.js';
import type { Linear } from '../runtime/linear.js';
import { groupCount } from './quantized.js';
import { unpackBits } from './bitpack.js';
import type { UniformArrays, UniformParams } from './uniform.js';
import { laneKernelFits, UniformWasmKernels } from './uniform-wasm.js';
import { int8WasmFits, UniformInt8WasmKernels } from './uniform-wasm-int8.js';
import { RowTiles } from './row-tiles.js';
import { gridInt8Fits, MixedInt8WasmKernels, uniformInt8Spec } from './mixed-wasm-int8.js';
import { floatActivationsOf, nativeUniformFits } from './lowbit-kernels.js';
import { UniformNativeKernels } from './uniform-native.js';

/** y = W x for a uniform tensor, on the fastest kernels the backend offers. */
export class UniformLinear extends KernelChoice {
  constructor(outDim: number, inDim: number, p: UniformParams, a: UniformArrays, backend: Backend) {
    super(
      backend,
      int8WasmFits(inDim, p) && !floatActivationsOf(backend)
        ? (rk) => new UniformInt8WasmKernels(outDim, inDim, p, a, rk, backend)
        : p.bits === 3 && gridInt8Fits(inDim, p.groupSize) && !floatActivationsOf(backend)
          ? (rk) => new MixedInt8WasmKernels(outDim, inDim, uniformInt8Spec(inDim, p, a), rk, backend)
          : laneKernelFits(inDim, p)
          ? (rk) => new UniformWasmKernels(outDim, inDim, p, a, rk, backend)
          : null,
      () => new UniformTsKernels(outDim, inDim, p, a, backend),
      nativeUniformFits(inDim, p.groupSize) ? (k) => new UniformNativeKernels(outDim, inDim, p, a, k, backend) : null,
    );
  }
}

/** The TypeScript kernels (reference of the wasm ones). */
export class UniformTsKernels implements Linear {
  private readonly bits: number;
  private readonly groupSize: number;
  private readonly nGroups: number;
  private readonly q: Uint8Array; // [outDim, rowBytes]
  private readonly rowBytes: number;
  private readonly scale: Float32Array; // [outDim, nGroups]
  private readonly zero: Float32Array; // [outDim, nGroups]
  private readonly perm: Int32Array | null; // [inDim] stored → original column
  // scratch, allocated once
  private readonly levels: Uint8Array; // [inDim] one row's levels
  private readonly xPerm: Float32Array; // [inDim] x in stored column order
  private readonly groupSums: Float64Array; // [nGroups]
  private readonly tiles: RowTiles; // float32 row tiles for matmul

  constructor(
    readonly outDim: number,
    readonly inDim: number,
    p: UniformParams,
    a: UniformArrays,
    backend: Backend,
  ) {
    this.bits = p.bits;
    this.groupSize = p.groupSize;
    this.nGroups = groupCount(inDim, p.groupSize);
    this.q = a.q.slice(); // own copy: the source may be a view into a file buffer
    this.rowBytes = a.rowBytes;
    this.scale = a.scale;
    this.zero = a.zero;
    this.perm = a.perm;
    this.levels = new Uint8Array(inDim);
    this.xPerm = new Float32Array(inDim);
    this.groupSums = new Float64Array(this.nGroups);
    this.tiles = new RowTiles(backend, outDim, inDim);
  }

  matvec(y: Float32Array, x: Float32Array): void {
    const { inDim, groupSize, nGroups, levels, groupSums, scale, zero } = this;
    let xs = x;
    if (this.perm) {
      const perm = this.perm;
      xs = this.xPerm;
      for (let j = 0; j < inDim; j++) xs[j] = x[perm[j]!]!;
    }
    for (let g = 0; g < nGroups; g++) {
      const end = Math.min(inDim, (g + 1) * groupSize);
      let s = 0;
      for (let j = g * groupSize; j < end; j++) s += xs[j]!;
      groupSums[g] = s;
    }
    for (let r = 0; r < this.outDim; r++) {
      unpackBits(this.q, r * this.rowBytes, levels, inDim, this.bits);
      const base = r * nGroups;
      let acc = 0;
      for (let g = 0; g < nGroups; g++) {
        const end = Math.min(inDim, (g + 1) * groupSize);
        let d = 0;
        for (let j = g * groupSize; j < end; j++) d += levels[j]! * xs[j]!;
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

  /** Rows r0..r0+count-1 as float32 into w [count, inDim], original column order (same values as dequantizeGroups). */
  private dequantizeRows(r0: number, count: number, w: Float32Array): void {
    const { inDim, groupSize, nGroups, levels, scale, zero, perm } = this;
    for (let t = 0; t < count; t++) {
      const r = r0 + t;
      unpackBits(this.q, r * this.rowBytes, levels, inDim, this.bits);
      const out = t * inDim;
      for (let g = 0; g < nGroups; g++) {
        const s = scale[r * nGroups + g]!;
        const z = zero[r * nGroups + g]!;
        const end = Math.min(inDim, (g + 1) * groupSize);
        if (perm) for (let j = g * groupSize; j < end; j++) w[out + perm[j]!] = s * (levels[j]! - z);
        else for (let j = g * groupSize; j < end; j++) w[out + j] = s * (levels[j]! - z);
      }
    }
  }
}
