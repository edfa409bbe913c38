/**
 * Fast kernels of the AQLM codebook format, in TypeScript.
 *
 * matvec (decode), lookup table (AQLM §3.3 / the paper's "Kx8" kernels): per input group j and
 * codebook m, the dot product of every codeword with the activation slice x[j·g : j·g + g] is
 * computed once into T[j, m, k]; then every output row is a sum of nG·M table entries:
 *   y_r = s_r · Σ_j Σ_m T[j, m, b_{r,j,m}]
 * Building T costs M·2^B·in multiply-adds whatever the row count, the lookups out·in·M/g, so it
 * pays off when there are many rows per codeword (2^B ≤ 256 on wide layers). Otherwise (1x16,
 * or few rows) the direct kernel decodes each group (sum of M codewords) and dots it with x.
 * The cheaper of the two is picked per layer from those operation counts.
 * matmul (prefill, evaluation): dequantize a tile of rows into float32 scratch (the reference
 * arithmetic) and hand it to backend.matmul, as the uniform formats do.
 *
 * On a backend with row kernels (wasm, or native lending a wasm pool's) the same algorithms run
 * in WebAssembly SIMD on the kernels' threads (codebook-wasm.ts, csrc/codebook.c, with its own
 * cost rule); these TypeScript kernels are their reference and serve the reference backend.
 */
import type { Backend } from '../backend/types.js';
import { KernelChoice } from './kernel-choice.js';
import type { Linear } from '../runtime/linear.js';
import type { CodebookParams, CodebookQuantized } from './codebook.js';
import { CodebookNativeKernels } from './codebook-native.js';
import { CodebookWasmKernels } from './codebook-wasm.js';
import { nativeCodebookFits } from './lowbit-kernels.js';
import type { PackedTensor } from './types.js';
import { RowTiles } from './row-tiles.js';

export type CodebookKernel = 'lut' | 'direct';

/** y = W x for a codebook tensor, on the fastest kernels the backend offers. */
export class CodebookLinear extends KernelChoice<CodebookNativeKernels | CodebookWasmKernels | CodebookTsKernels> {
  /**
   * `q` (or a function unpacking it, called only when the wasm or TypeScript kernels run);
   * `force` picks the matvec algorithm (tests, benchmarks); `packed`, the file's tensor, lets
   * the native kernels (B ≤ 8, not forced) read its bytes in place.
   */
  constructor(q: CodebookQuantized | (() => CodebookQuantized), backend: Backend, force?: CodebookKernel, packed?: PackedTensor<CodebookParams>) {
    const payload = typeof q === 'function' ? q : () => q;
    const p = packed?.params;
    const native =
      packed && p && force === undefined && nativeCodebookFits(packed.inDim, p.M, p.B, p.g) ? packed : null;
    super(
      backend,
      (rk) => new CodebookWasmKernels(payload(), rk, backend, force),
      () => new CodebookTsKernels(payload(), backend, force),
      native ? (k) => new CodebookNativeKernels(native, k, backend) : null,
    );
  }

  /** Which matvec algorithm this layer runs. */
  get kernel(): CodebookKernel {
    return this.impl.kernel;
  }
}

/** The TypeScript kernels (reference of the wasm ones). */
export class CodebookTsKernels implements Linear {
  readonly outDim: number;
  readonly inDim: number;
  /** Which matvec this layer runs (chosen by operation count unless forced). */
  readonly kernel: CodebookKernel;
  private readonly M: number;
  private readonly K: number;
  private readonly g: number;
  private readonly nG: number;
  private readonly codes: Uint8Array | Uint16Array; // [out, nG, M]
  private readonly codebooks: Float32Array; // [M, K, g]
  private readonly scale: Float32Array; // [out]
  // scratch, allocated once
  private readonly table: Float32Array; // [nG, M, K] (lut only)
  private readonly acc: Float32Array; // [g]
  private readonly tiles: RowTiles; // float32 row tiles for matmul

  constructor(q: CodebookQuantized, backend: Backend, force?: CodebookKernel) {
    this.outDim = q.outDim;
    this.inDim = q.inDim;
    this.M = q.M;
    this.K = 2 ** q.B;
    this.g = q.g;
    this.nG = q.inDim / q.g;
    this.codes = q.B <= 8 ? Uint8Array.from(q.codes) : q.codes.slice();
    this.codebooks = q.codebooks;
    this.scale = q.scale;
    const lutOps = this.M * this.K * this.inDim + this.outDim * this.nG * this.M;
    const directOps = this.outDim * this.nG * this.g * (this.M + 1);
    this.kernel = force ?? (lutOps < directOps ? 'lut' : 'direct');
    this.table = new Float32Array(this.kernel === 'lut' ? this.nG * this.M * this.K : 0);
    this.acc = new Float32Array(this.g);
    this.tiles = new RowTiles(backend, this.outDim, this.inDim);
  }

  matvec(y: Float32Array, x: Float32Array): void {
    if (this.kernel === 'lut') this.lutMatvec(y, x);
    else this.directMatvec(y, x);
  }

  private lutMatvec(y: Float32Array, x: Float32Array): void {
    const { M, K, g, nG, codebooks, table, codes, scale } = this;
    // T[j, m, k] = C_m[k] · x_j
    for (let j = 0; j < nG; j++) {
      const x0 = j * g;
      for (let m = 0; m < M; m++) {
        const t0 = (j * M + m) * K;
        let c = m * K * g;
        for (let k = 0; k < K; k++, c += g) {
          let d = 0;
          for (let t = 0; t < g; t++) d += codebooks[c + t]! * x[x0 + t]!;
          table[t0 + k] = d;
        }
      }
    }
    // y_r = s_r · Σ_i T[i, b_{r,i}] over the row's nG·M codes (code i of a row is table slice i)
    const perRow = nG * M;
    for (let r = 0; r < this.outDim; r++) {
      const base = r * perRow;
      let sum = 0;
      for (let i = 0, t = 0; i < perRow; i++, t += K) sum += table[t + codes[base + i]!]!;
      y[r] = scale[r]! * sum;
    }
  }

  private directMatvec(y: Float32Array, x: Float32Array): void {
    const { M, K, g, nG, codebooks, codes, scale } = this;
    for (let r = 0; r < this.outDim; r++) {
      let sum = 0;
      let ci = r * nG * M;
      for (let j = 0; j < nG; j++) {
        const x0 = j * g;
        for (let m = 0; m < M; m++, ci++) {
          const c = (m * K + codes[ci]!) * g;
          for (let t = 0; t < g; t++) sum += codebooks[c + t]! * x[x0 + t]!;
        }
      }
      y[r] = scale[r]! * sum;
    }
  }

  matmul(y: Float32Array, x: Float32Array, rows: number): void {
    if (rows === 1) return this.matvec(y, x);
    this.tiles.matmul(y, x, rows, (r0, count, w) => this.dequantizeRows(r0, count, w));
  }

  dispose(): void {
    this.tiles.dispose();
  }

  /** Rows r0..r0+count-1 into w [count, in], the same float32 arithmetic as dequantizeCodebook. */
  private dequantizeRows(r0: number, count: number, w: Float32Array): void {
    const { M, K, g, nG, inDim, codebooks, codes, scale, acc } = this;
    for (let i = 0; i < count; i++) {
      const r = r0 + i;
      const s = scale[r]!;
      for (let j = 0; j < nG; j++) {
        acc.fill(0);
        for (let m = 0; m < M; m++) {
          const c = (m * K + codes[(r * nG + j) * M + m]!) * g;
          for (let t = 0; t < g; t++) acc[t] = acc[t]! + codebooks[c + t]!;
        }
        const o = i * inDim + j * g;
        for (let t = 0; t < g; t++) w[o + t] = s * acc[t]!;
      }
    }
  }
}
