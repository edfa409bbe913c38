/**
 * The binary-billm format on a backend with row kernels (wasm, or native lending a wasm pool's),
 * csrc/binary.c: the sign and split planes stay in the file's layout in kernel memory, the
 * salient columns' signs are repacked once into a compact stream; matvec builds the subset-sum
 * table of x (`binary_lut`) and runs `binary_gemv_lut` over output rows on the kernels' threads
 * (sign selection, W never expanded); matmul expands tiles of rows with `binary_dequant` (also
 * threaded; the exact values of dequantizeBinary) and hands them to backend.matmul, in tiles of
 * a multiple of 16 rows, so that prefill and evaluation compute exactly the products of the
 * dense dequantized model on the same backend (see the tile size below).
 */
import type { Backend, RowKernels } from '../backend/types.js';
import type { Linear } from '../runtime/linear.js';
import { bitstreamBytes } from './bitpack.js';
import { blockCount, type BinaryParams } from './binary.js';
import type { PackedTensor } from './types.js';
import { matvecEachRow } from './kernel-tiles.js';

/** Float32 values per dequantized tile, at most (256 KB, as RowTiles in row-tiles.ts). */
const TILE_FLOATS = 1 << 16;
/** Up to this many activation rows matmul is one matvec per row (a tile costs more than it saves). */
const MATVEC_ROWS = 2;
/** Fields of csrc/binary.c's binary_desc, in order. */
const DESC_FIELDS = 18;
/** Index of the table's address among them (set before every matvec: the table is shared). */
const DESC_LUT = 17;

/**
 * The subset-sum table (1 KB per 8 input columns) is scratch of one matvec at a time, so all
 * binary layers on one set of row kernels share it instead of holding one each (a 4096-wide
 * model would otherwise keep 512 KB per layer). Kept until the row kernels are collected.
 */
const lutScratch = new WeakMap<RowKernels, Float32Array>();

function lutFor(rk: RowKernels, floats: number): Float32Array {
  const have = lutScratch.get(rk);
  if (have && have.length >= floats) return have;
  if (have) rk.free(have);
  const lut = rk.alloc(floats);
  lutScratch.set(rk, lut);
  return lut;
}

/** Sets position `pos` of a lane-sliced stream (csrc/binary.c) starting at byte `offset`. */
function setStreamBit(dst: Uint8Array, offset: number, pos: number): void {
  const bit = 31 - ((pos & 127) >> 2);
  dst[offset + 16 * (pos >> 7) + 4 * (pos & 3) + (bit >> 3)]! |= 1 << (bit & 7);
}

export class BinaryWasmKernels implements Linear {
  readonly outDim: number;
  readonly inDim: number;
  private readonly rk: RowKernels;
  private readonly backend: Backend;
  private readonly nB: number;
  private readonly blockSize: number;
  private readonly salCols: Int32Array; // [S] salient columns, ascending
  private readonly salPosJs: Int32Array; // [S] their positions in the salient stream
  // kernel memory (freed by dispose)
  private readonly owned: Array<Uint8Array | Float32Array> = [];
  private readonly desc: number; // address of the binary_desc
  private readonly descFields: Int32Array; // [DESC_FIELDS] its fields
  private readonly rb: number; // bytes per row of a file plane
  private readonly x: Float32Array; // [8·rb] x with salient columns zeroed, zeros past inDim
  private readonly xsal: Float32Array; // [salient stream length]
  private readonly tsum: Float32Array; // [nB, 2]
  private readonly yOut: Float32Array; // [outDim] when the caller's y is outside kernel memory
  private readonly tileRows: number;
  private wTile: Float32Array | null = null; // [tileRows, inDim]
  private yTile: Float32Array | null = null; // [rows, tileRows]
  private xRows: Float32Array | null = null; // [rows, inDim] activations staged for the wasm matmul

  constructor(t: PackedTensor<BinaryParams>, rk: RowKernels, backend: Backend) {
    const { outDim, inDim, params: p } = t;
    this.outDim = outDim;
    this.inDim = inDim;
    this.rk = rk;
    this.backend = backend;
    this.blockSize = p.blockSize;
    this.nB = blockCount(inDim, p.blockSize);
    const nB = this.nB;
    const rb = bitstreamBytes(inDim, 1);
    this.rb = rb;

    // salient columns, and their stream positions: each block's list padded to a multiple of 4
    const mask = t.blobs.salient!.bytes;
    const cols: number[] = [];
    const pos: number[] = [];
    const gs = new Int32Array(nB);
    let q = 0;
    for (let b = 0; b < nB; b++) {
      const start = q;
      for (let j = b * p.blockSize; j < Math.min(inDim, (b + 1) * p.blockSize); j++) {
        if ((mask[j >>> 3]! >>> (j & 7)) & 1) (cols.push(j), pos.push(q++));
      }
      gs[b] = Math.ceil((q - start) / 4);
      q = start + 4 * gs[b]!;
    }
    this.salCols = Int32Array.from(cols);
    this.salPosJs = Int32Array.from(pos);
    const streamLen = q;

    // the planes as stored; the salient signs as a lane-sliced stream
    const salStride = 16 * Math.ceil(streamLen / 128);
    const fileSign = t.blobs.signs!.bytes;
    const sign = this.bytes(outDim * rb);
    sign.set(fileSign);
    const split = this.bytes(outDim * rb);
    split.set(t.blobs.split!.bytes);
    const sal1 = this.bytes(outDim * salStride);
    const sal2 = this.bytes(outDim * salStride);
    const res = p.salientColumns > 0 ? t.blobs.residual!.bytes : new Uint8Array(0);
    const resRb = bitstreamBytes(p.salientColumns, 1);
    for (let r = 0; r < outDim; r++) {
      for (let k = 0; k < cols.length; k++) {
        const j = cols[k]!;
        if ((fileSign[r * rb + (j >>> 3)]! >>> (j & 7)) & 1) setStreamBit(sal1, r * salStride, pos[k]!);
        if ((res[r * resRb + (k >>> 3)]! >>> (k & 7)) & 1) setStreamBit(sal2, r * salStride, pos[k]!);
      }
    }
    // the float16 scales as stored, plus the 2 bytes past the end the kernels read
    const scaleBytes = t.blobs.scales!.bytes;
    const scales = this.bytes(scaleBytes.byteLength + 16);
    scales.set(scaleBytes);
    const ints = (a: ArrayLike<number>) => {
      const b = this.bytes(4 * Math.max(1, a.length));
      new Int32Array(b.buffer, b.byteOffset, Math.max(1, a.length)).set(a);
      return b;
    };
    const gsMem = ints(gs);
    const salColMem = ints(this.salCols);
    const salPosMem = ints(this.salPosJs);

    this.x = this.floats(8 * rb);
    this.xsal = this.floats(Math.max(1, streamLen));
    this.tsum = this.floats(2 * nB);
    this.yOut = this.floats(Math.max(1, outDim));
    // whole multiples of 16 rows: OpenBLAS sums a tile whose row count is not a multiple of its
    // register tile in another order (measured: 85-row tiles of a [256, 768] layer change 228 of
    // 65536 products in the last bits), and then the file would not reproduce the dense products
    const fit = Math.floor(TILE_FLOATS / inDim);
    this.tileRows = Math.max(1, Math.min(outDim, fit >= 16 ? fit - (fit % 16) : fit));

    const at = (v: ArrayBufferView) => rk.address(v)!;
    const fields = [
      at(sign), at(split), rb, at(sal1), at(sal2), salStride, at(scales), at(gsMem),
      inDim, p.blockSize, nB, at(this.x), at(this.xsal), at(this.tsum), at(salColMem), at(salPosMem), cols.length, 0,
    ];
    if (fields.length !== DESC_FIELDS) throw new Error('binary_desc field count');
    const desc = ints(fields);
    this.desc = at(desc);
    this.descFields = new Int32Array(desc.buffer, desc.byteOffset, DESC_FIELDS);
  }

  matvec(y: Float32Array, x: Float32Array): void {
    this.prepare(x);
    const yInMemory = this.rk.address(y) !== undefined;
    const target = yInMemory ? y : this.yOut;
    this.descFields[DESC_LUT] = this.rk.address(lutFor(this.rk, 256 * this.rb))!;
    // the table: 64 vector additions per 8 columns; the products: 3 lookups per 8 weights
    this.rk.runRows('binary_lut', [this.desc], this.rb, { work: 64 * this.rb });
    this.rk.runRows('binary_gemv_lut', [this.rk.address(target)!, this.desc], this.outDim, { work: this.outDim * this.inDim });
    if (!yInMemory) y.set(this.yOut.subarray(0, this.outDim));
  }

  matmul(y: Float32Array, x: Float32Array, rows: number): void {
    const { outDim, inDim, tileRows, rk } = this;
    if (rows <= MATVEC_ROWS) {
      matvecEachRow(this, y, x, rows, outDim, inDim);
      return;
    }
    let xs = x;
    // on the wasm backend itself, x outside its memory would be copied in for every tile: once
    if ((this.backend as unknown) === rk && rk.address(x) === undefined) {
      if (this.xRows === null || this.xRows.length < rows * inDim) {
        if (this.xRows) rk.free(this.xRows);
        this.xRows = rk.alloc(rows * inDim);
      }
      xs = this.xRows;
      xs.set(x.subarray(0, rows * inDim));
    }
    this.wTile ??= rk.alloc(tileRows * inDim);
    if (this.yTile === null || this.yTile.length < rows * tileRows) {
      if (this.yTile) rk.free(this.yTile);
      this.yTile = rk.alloc(rows * tileRows);
    }
    const { wTile, yTile } = this;
    for (let r0 = 0; r0 < outDim; r0 += tileRows) {
      const t = Math.min(tileRows, outDim - r0);
      rk.runRows('binary_dequant', [rk.address(wTile)!, this.desc, r0], t, { work: t * inDim });
      this.backend.matmul(yTile, xs, wTile, rows, t, inDim);
      for (let i = 0; i < rows; i++) y.set(yTile.subarray(i * t, (i + 1) * t), i * outDim + r0);
    }
  }

  dispose(): void {
    for (const b of [...this.owned, this.wTile, this.yTile, this.xRows]) if (b) this.rk.free(b);
    this.owned.length = 0;
    this.wTile = this.yTile = this.xRows = null;
  }

  /** x with salient columns zeroed, the salient stream, and the per-block sums (float64, then float32). */
  private prepare(xIn: Float32Array): void {
    const { x, xsal, tsum, salCols, salPosJs, inDim, blockSize, nB } = this;
    x.set(xIn.subarray(0, inDim));
    for (let k = 0; k < salCols.length; k++) {
      xsal[salPosJs[k]!] = x[salCols[k]!]!;
      x[salCols[k]!] = 0;
    }
    let k = 0;
    for (let b = 0; b < nB; b++) {
      const c1 = Math.min(inDim, (b + 1) * blockSize);
      let t = 0;
      for (let j = b * blockSize; j < c1; j++) t += x[j]!;
      let s = 0;
      for (; k < salCols.length && salCols[k]! < c1; k++) s += xsal[salPosJs[k]!]!;
      tsum[2 * b] = t;
      tsum[2 * b + 1] = s;
    }
  }

  private bytes(n: number): Uint8Array {
    const b = this.rk.allocBytes(Math.max(1, n));
    this.owned.push(b);
    return b;
  }

  private floats(n: number): Float32Array {
    const f = this.rk.alloc(n);
    this.owned.push(f);
    return f;
  }
}
