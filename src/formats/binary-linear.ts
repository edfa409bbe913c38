/**
 * Fast y = W x for the binary format (binary.ts), by sign selection: W is never expanded.
 *
 * With s = ±1 from a bit m, Σ s_j x_j = 2·Σ_{m_j=1} x_j − Σ x_j, so each block of a row needs only
 * sums of x over bit-selected columns. Those come from a table built once per input vector:
 * for every byte position g, lut[g][m] = Σ_{bit k of m set} x[8g + k] (256 entries, built with
 * one addition each), so 8 columns cost one lookup. Per row and block, over non-salient columns:
 *   P = Σ_sign x,  Q = Σ_split x,  R = Σ_{sign ∧ split} x,  T = Σ x (row-independent)
 *   Σ_S s·x = 2R − Q,   Σ_C s·x = (2P − T) − (2R − Q),   Σ_C x = T − Q
 *   y += αc·Σ_C s·x + μc·Σ_C x + αs·Σ_S s·x + μs·Q
 * Salient columns are zeroed in the table's x and added one by one (there are few):
 *   y += α1·Σ s1·x + α2·Σ s2·x + μsal·Σ_sal x.
 * matmul (prefill, evaluation) with several rows: the table costs 256 additions per 8 columns
 * per token, more than the dot products it saves, so instead a tile of rows is expanded into a
 * small float32 scratch (same values as dequantizeBinary) and handed to backend.matmul, as the
 * uniform formats do; memory holds one tile, never the whole matrix.
 *
 * On the native backend (AVX-512 VNNI, AVX2 or NEON dot product), blocks of whole 128 columns run
 * binary-native.ts (int8 activations; prefill a binary GEMM on VNNI). On a
 * backend with row kernels (wasm, or native lending a wasm pool's) the same algebra runs in
 * WebAssembly SIMD on the kernels' threads (binary-wasm.ts, csrc/binary.c); this TypeScript
 * kernel is their reference and serves the reference backend.
 */
import type { Backend } from '../backend/types.js';
import type { Linear } from '../runtime/linear.js';
import { bitstreamBytes, decodeF16 } from './bitpack.js';
import { blockCount, NS, AC, MC, AS, MS, A1, A2, MSAL, type BinaryParams } from './binary.js';
import { BinaryNativeKernels } from './binary-native.js';
import { BinaryWasmKernels } from './binary-wasm.js';
import { lowbitKernelsOf, nativeBinaryFits } from './lowbit-kernels.js';
import { KernelChoice } from './kernel-choice.js';
import { RowTiles } from './row-tiles.js';
import type { PackedTensor } from './types.js';

/**
 * From this many tokens on, matmul expands tiles instead of running matvec per token (the
 * wasm kernels switch at the same count, so the registry test's 3-row matmul covers both paths).
 */
const TILE_MIN_ROWS = 3;

/** y = W x for a binary tensor, on the fastest kernels the backend offers. */
export class BinaryLinear extends KernelChoice {
  constructor(t: PackedTensor<BinaryParams>, backend: Backend) {
    super(
      backend,
      (rk) => new BinaryWasmKernels(t, rk, backend),
      () => new BinaryTsKernels(t, backend),
      lowbitKernelsOf(backend)?.binarySimd && nativeBinaryFits(t.params.blockSize) ? (k) => new BinaryNativeKernels(t, k, backend) : null,
    );
  }
}

/** The TypeScript kernels (reference of the wasm ones). */
export class BinaryTsKernels implements Linear {
  readonly outDim: number;
  readonly inDim: number;
  private readonly rb: number; // bytes per row of a bit-plane
  private readonly bytesPerBlock: number;
  private readonly nB: number;
  private readonly signs: Uint8Array; // [out, rb]
  private readonly split: Uint8Array; // [out, rb]
  private readonly residual: Uint8Array; // [out, resRb]
  private readonly resRb: number;
  private readonly scales: Float32Array; // [out, nB, NS]
  private readonly salCols: Int32Array; // salient columns, ascending
  private readonly salStart: Int32Array; // [nB + 1] range of salCols in each block
  // scratch, allocated once
  private readonly xm: Float32Array; // [rb · 8] x with salient columns zeroed
  private readonly lut: Float32Array; // [rb, 256]
  private readonly blockSum: Float64Array; // [nB] Σ x over non-salient columns
  private readonly salSum: Float64Array; // [nB] Σ x over salient columns
  private readonly blockSize: number;
  private readonly levels = new Float64Array(4); // one row and block's non-salient values
  private readonly tiles: RowTiles; // float32 row tiles for matmul

  constructor(t: PackedTensor<BinaryParams>, backend: Backend) {
    const { outDim, inDim, params: p } = t;
    this.outDim = outDim;
    this.inDim = inDim;
    this.rb = bitstreamBytes(inDim, 1);
    this.bytesPerBlock = p.blockSize / 8;
    this.nB = blockCount(inDim, p.blockSize);
    // own copies: the blobs may be views into a file buffer
    this.signs = t.blobs.signs!.bytes.slice();
    this.split = t.blobs.split!.bytes.slice();
    this.resRb = bitstreamBytes(p.salientColumns, 1);
    this.residual = p.salientColumns > 0 ? t.blobs.residual!.bytes.slice() : new Uint8Array(0);
    this.scales = decodeF16(t.blobs.scales!.bytes);
    const mask = t.blobs.salient!.bytes;
    const cols: number[] = [];
    this.salStart = new Int32Array(this.nB + 1);
    for (let j = 0; j < inDim; j++) {
      if ((mask[j >>> 3]! >>> (j & 7)) & 1) cols.push(j);
      if ((j + 1) % p.blockSize === 0 || j === inDim - 1) this.salStart[Math.floor(j / p.blockSize) + 1] = cols.length;
    }
    this.salCols = Int32Array.from(cols);
    this.blockSize = p.blockSize;
    this.tiles = new RowTiles(backend, outDim, inDim);
    this.xm = new Float32Array(this.rb * 8);
    this.lut = new Float32Array(this.rb * 256);
    this.blockSum = new Float64Array(this.nB);
    this.salSum = new Float64Array(this.nB);
  }

  matvec(y: Float32Array, x: Float32Array): void {
    this.prepare(x);
    const { rb, nB, bytesPerBlock, signs, split, residual, resRb, scales, salCols, salStart, lut, blockSum, salSum } = this;
    for (let r = 0; r < this.outDim; r++) {
      const row = r * rb;
      let acc = 0;
      for (let b = 0; b < nB; b++) {
        const g1 = Math.min(rb, (b + 1) * bytesPerBlock);
        let P = 0;
        let Q = 0;
        let R = 0;
        for (let g = b * bytesPerBlock; g < g1; g++) {
          const sb = signs[row + g]!;
          const pb = split[row + g]!;
          const base = g << 8;
          P += lut[base + sb]!;
          Q += lut[base + pb]!;
          R += lut[base + (sb & pb)]!;
        }
        const sc = (r * nB + b) * NS;
        const T = blockSum[b]!;
        const sS = 2 * R - Q;
        acc += scales[sc + AC]! * (2 * P - T - sS) + scales[sc + MC]! * (T - Q) + scales[sc + AS]! * sS + scales[sc + MS]! * Q;
        const k1 = salStart[b + 1]!;
        if (k1 === salStart[b]) continue;
        let v1 = 0;
        let v2 = 0;
        for (let k = salStart[b]!; k < k1; k++) {
          const j = salCols[k]!;
          const xj = x[j]!;
          v1 += (signs[row + (j >>> 3)]! >>> (j & 7)) & 1 ? xj : -xj;
          v2 += (residual[r * resRb + (k >>> 3)]! >>> (k & 7)) & 1 ? xj : -xj;
        }
        acc += scales[sc + A1]! * v1 + scales[sc + A2]! * v2 + scales[sc + MSAL]! * salSum[b]!;
      }
      y[r] = acc;
    }
  }

  matmul(y: Float32Array, x: Float32Array, rows: number): void {
    const { inDim, outDim } = this;
    if (rows < TILE_MIN_ROWS) {
      for (let i = 0; i < rows; i++) this.matvec(y.subarray(i * outDim, (i + 1) * outDim), x.subarray(i * inDim, (i + 1) * inDim));
      return;
    }
    this.tiles.matmul(y, x, rows, (r0, count, w) => this.dequantizeRows(r0, count, w));
  }

  dispose(): void {
    this.tiles.dispose();
  }

  /** Rows r0..r0+count-1 as float32 into w [count, inDim], the same values as dequantizeBinary. */
  private dequantizeRows(r0: number, count: number, w: Float32Array): void {
    const { inDim, rb, nB, blockSize, signs, split, residual, resRb, scales, salCols } = this;
    const v = this.levels;
    for (let t = 0; t < count; t++) {
      const r = r0 + t;
      const row = r * rb;
      const out = t * inDim;
      for (let b = 0; b < nB; b++) {
        // the four non-salient values of this row and block, indexed by sign bit | split bit << 1
        const sc = (r * nB + b) * NS;
        v[0] = -scales[sc + AC]! + scales[sc + MC]!;
        v[1] = scales[sc + AC]! + scales[sc + MC]!;
        v[2] = -scales[sc + AS]! + scales[sc + MS]!;
        v[3] = scales[sc + AS]! + scales[sc + MS]!;
        const c1 = Math.min(inDim, (b + 1) * blockSize);
        for (let j = b * blockSize; j < c1; j++) {
          const g = row + (j >>> 3);
          const k = j & 7;
          w[out + j] = v[((signs[g]! >>> k) & 1) | (((split[g]! >>> k) & 1) << 1)]!;
        }
      }
      for (let k = 0; k < salCols.length; k++) {
        const j = salCols[k]!;
        const sc = (r * nB + Math.floor(j / blockSize)) * NS;
        const s1 = (signs[row + (j >>> 3)]! >>> (j & 7)) & 1 ? 1 : -1;
        const s2 = (residual[r * resRb + (k >>> 3)]! >>> (k & 7)) & 1 ? 1 : -1;
        w[out + j] = scales[sc + A1]! * s1 + scales[sc + A2]! * s2 + scales[sc + MSAL]!;
      }
    }
  }

  /** The subset-sum table of x and the per-block sums. */
  private prepare(x: Float32Array): void {
    const { xm, lut, blockSum, salSum, salCols, salStart, inDim } = this;
    xm.set(x.subarray(0, inDim));
    for (let b = 0; b < this.nB; b++) {
      let s = 0;
      for (let k = salStart[b]!; k < salStart[b + 1]!; k++) {
        s += x[salCols[k]!]!;
        xm[salCols[k]!] = 0;
      }
      salSum[b] = s;
      let t = 0;
      const c1 = Math.min(inDim, (b + 1) * this.bytesPerBlock * 8);
      for (let j = b * this.bytesPerBlock * 8; j < c1; j++) t += xm[j]!;
      blockSum[b] = t;
    }
    for (let g = 0; g < this.rb; g++) {
      const base = g << 8;
      const x8 = g * 8;
      lut[base] = 0;
      for (let m = 1; m < 256; m++) {
        const low = m & -m;
        lut[base + m] = lut[base + (m ^ low)]! + xm[x8 + 31 - Math.clz32(low)]!;
      }
    }
  }
}
