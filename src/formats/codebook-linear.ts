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
 *
 * Output groups (og > 1, a codeword spans og rows): the table holds og dot products per
 * codeword, T[j, m, k, a] = C_m[k][a, :] · x_j, and each code of group o feeds its og rows.
 * The wasm and native kernels know og = 1 only; a tensor of og > 1 is og tensors of og = 1
 * (member a of every group: the same codes and scales, codebook slice [:, :, a, :]), so they
 * run once per member and the outputs are scattered to the rows (codebook-split.ts): the same
 * arithmetic, the table work of og = 1 per member, and no per-row dequantization.
 */
import type { Backend } from '../backend/types.js';
import { KernelChoice } from './kernel-choice.js';
import type { Linear } from '../runtime/linear.js';
import { codebookRow, groupShape, type CodebookParams, type CodebookQuantized } from './codebook.js';
import { CodebookNativeKernels } from './codebook-native.js';
import { CodebookWasmKernels } from './codebook-wasm.js';
import { nativeCodebookFits } from './lowbit-kernels.js';
import type { PackedTensor } from './types.js';
import { RowTiles } from './row-tiles.js';
import { CodebookSplitKernels, memberPacked, memberPayload } from './codebook-split.js';

export type CodebookKernel = 'lut' | 'direct';

/** y = W x for a codebook tensor, on the fastest kernels the backend offers. */
export class CodebookLinear extends KernelChoice<CodebookNativeKernels | CodebookWasmKernels | CodebookTsKernels | CodebookSplitKernels> {
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
    const og = p ? groupShape(p).og : groupShape(payload()).og;
    if (og === 1) {
      super(
        backend,
        (rk) => new CodebookWasmKernels(payload(), rk, backend, force),
        () => new CodebookTsKernels(payload(), backend, force),
        native ? (k) => new CodebookNativeKernels(native, k, backend) : null,
      );
      return;
    }
    // og > 1: the og = 1 kernels once per member row of each group (wasm, native), else the TypeScript kernels
    super(
      backend,
      (rk) => {
        const q1 = payload();
        let codes: Uint8Array | undefined; // the members share one copy of the codes in kernel memory
        return new CodebookSplitKernels(q1, backend, (a) => {
          const k = new CodebookWasmKernels(memberPayload(q1, a), rk, backend, force, codes);
          codes ??= k.codes;
          return k;
        });
      },
      () => new CodebookTsKernels(payload(), backend, force),
      native ? (k) => new CodebookSplitKernels(native, backend, (a) => new CodebookNativeKernels(memberPacked(native, a), k, backend)) : null,
    );
  }

  /** Which matvec algorithm this layer runs. */
  get kernel(): CodebookKernel {
    return this.impl.kernel;
  }
}

/** The TypeScript kernels (reference of the wasm ones), any output group size. */
export class CodebookTsKernels implements Linear {
  readonly outDim: number;
  readonly inDim: number;
  /** Which matvec this layer runs (chosen by operation count unless forced). */
  readonly kernel: CodebookKernel;
  private readonly M: number;
  private readonly K: number;
  private readonly g: number;
  private readonly og: number;
  private readonly il: number;
  private readonly nG: number;
  private readonly codes: Uint8Array | Uint16Array; // [out/og, nG, M]
  private readonly codebooks: Float32Array; // [M, K, og, g]
  private readonly scale: Float32Array; // [out/og]
  // scratch, allocated once
  private readonly table: Float32Array; // [nG, M, K, og] (lut only)
  private readonly sums: Float64Array; // [og] matvec sums (doubles, as the og = 1 kernels always summed)
  private readonly acc: Float32Array; // [g] dequantization (float32: the reference arithmetic)
  private readonly tiles: RowTiles; // float32 row tiles for matmul

  constructor(q: CodebookQuantized, backend: Backend, force?: CodebookKernel) {
    this.outDim = q.outDim;
    this.inDim = q.inDim;
    this.M = q.M;
    this.K = 2 ** q.B;
    this.g = q.g;
    ({ og: this.og, il: this.il } = groupShape(q));
    this.nG = q.inDim / q.g;
    this.codes = q.B <= 8 ? Uint8Array.from(q.codes) : q.codes.slice();
    this.codebooks = q.codebooks;
    this.scale = q.scale;
    const lutOps = this.M * this.K * this.og * this.inDim + this.outDim * this.nG * this.M;
    const directOps = this.outDim * this.nG * this.g * (this.M + 1);
    this.kernel = force ?? (lutOps < directOps ? 'lut' : 'direct');
    this.table = new Float32Array(this.kernel === 'lut' ? this.nG * this.M * this.K * this.og : 0);
    this.sums = new Float64Array(this.og);
    this.acc = new Float32Array(this.g);
    this.tiles = new RowTiles(backend, this.outDim, this.inDim);
  }

  matvec(y: Float32Array, x: Float32Array): void {
    if (this.kernel === 'lut') this.lutMatvec(y, x);
    else this.directMatvec(y, x);
  }

  private lutMatvec(y: Float32Array, x: Float32Array): void {
    const { M, K, g, og, il, nG, codebooks, table, codes, scale, sums: acc } = this;
    // T[j, m, k, a] = C_m[k][a, :] · x_j
    const tile = og * g;
    for (let j = 0; j < nG; j++) {
      const x0 = j * g;
      for (let m = 0; m < M; m++) {
        let t0 = (j * M + m) * K * og;
        let c = m * K * tile;
        for (let k = 0; k < K * og; k++, c += g, t0++) {
          let d = 0;
          for (let t = 0; t < g; t++) d += codebooks[c + t]! * x[x0 + t]!;
          table[t0] = d;
        }
      }
    }
    // y_row(o, a) = s_o · Σ_i T[i, b_{o,i}, a] over the group's nG·M codes (code i of a group is table slice i)
    const perRow = nG * M;
    const slice = K * og;
    for (let o = 0; o < this.outDim / og; o++) {
      const base = o * perRow;
      acc.fill(0);
      for (let i = 0, t = 0; i < perRow; i++, t += slice) {
        const e = t + codes[base + i]! * og;
        for (let a = 0; a < og; a++) acc[a] = acc[a]! + table[e + a]!;
      }
      for (let a = 0; a < og; a++) y[codebookRow(o, a, og, il)] = scale[o]! * acc[a]!;
    }
  }

  private directMatvec(y: Float32Array, x: Float32Array): void {
    const { M, K, g, og, il, nG, codebooks, codes, scale, sums: acc } = this;
    const tile = og * g;
    for (let o = 0; o < this.outDim / og; o++) {
      acc.fill(0);
      let ci = o * nG * M;
      for (let j = 0; j < nG; j++) {
        const x0 = j * g;
        for (let m = 0; m < M; m++, ci++) {
          const c = (m * K + codes[ci]!) * tile;
          for (let a = 0; a < og; a++) {
            let sum = acc[a]!;
            for (let t = 0, ca = c + a * g; t < g; t++) sum += codebooks[ca + t]! * x[x0 + t]!;
            acc[a] = sum;
          }
        }
      }
      for (let a = 0; a < og; a++) y[codebookRow(o, a, og, il)] = scale[o]! * acc[a]!;
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
    const { M, K, g, og, il, nG, inDim, codebooks, codes, scale, acc } = this;
    const tile = og * g;
    for (let i = 0; i < count; i++) {
      // row r is member a of group o (codebookRow inverted)
      const r = r0 + i;
      const within = r % (og * il);
      const a = Math.floor(within / il);
      const o = (r - within) / og + (within % il);
      const s = scale[o]!;
      for (let j = 0; j < nG; j++) {
        acc.fill(0);
        for (let m = 0; m < M; m++) {
          const c = (m * K + codes[(o * nG + j) * M + m]!) * tile + a * g;
          for (let t = 0; t < g; t++) acc[t] = acc[t]! + codebooks[c + t]!;
        }
        const at = i * inDim + j * g;
        for (let t = 0; t < g; t++) w[at + t] = s * acc[t]!;
      }
    }
  }
}
