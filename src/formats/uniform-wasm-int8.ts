/**
 * The uniform formats at 2, 4 and 8 bits with whole 128-column groups (or one group per row) on
 * a backend with row kernels (wasm, or native lending a wasm pool's), int8 activations
 * (csrc/lowbit-int8.c, the native kernels' arithmetic on SIMD128): the file's level rows, float16
 * scales and zero bitstream are copied once into kernel memory as they are (no JavaScript loop over
 * the weights; kernel memory = the file's bytes + 128 bytes). matvec quantizes x to int8 per 128
 * columns (`lowbit_i8_act`, reference: int8-activations.ts) and runs `lowbit_i8_gemv` over output
 * rows on the kernels' threads; matmul dequantizes row tiles with `lowbit_i8_dequant` (threaded,
 * exactly the reference values) for backend.matmul. Act-order permutes x into stored order first.
 */
import type { Backend, RowKernels } from '../backend/types.js';
import type { Linear } from '../runtime/linear.js';
import { groupCount } from './quantized.js';
import { KernelRowTiles, matvecEachRow, permutedRows } from './kernel-tiles.js';
import type { UniformArrays, UniformParams } from './uniform.js';

/** Tensors these kernels take. */
export function int8WasmFits(inDim: number, p: UniformParams): boolean {
  return (p.bits === 2 || p.bits === 4 || p.bits === 8) && (p.groupSize >= inDim || p.groupSize % 128 === 0);
}

const MATVEC_ROWS = 2;
const DESC_FIELDS = 14; // csrc/lowbit-int8.c i8_desc

export class UniformInt8WasmKernels implements Linear {
  private readonly desc: Int32Array;
  private readonly bufs: Array<Float32Array | Uint8Array>;
  private readonly xs: Float32Array; // [inDim] x in stored order
  private readonly yOut: Float32Array;
  private readonly perm: Int32Array | null;
  private readonly tiles: KernelRowTiles;
  private xPerm: Float32Array | null = null;

  constructor(
    readonly outDim: number,
    readonly inDim: number,
    p: UniformParams,
    a: UniformArrays,
    private readonly be: RowKernels,
    backend: Backend,
  ) {
    const nGroups = groupCount(inDim, p.groupSize);
    const blocks = Math.ceil(inDim / 128);
    const groupBlocks = p.groupSize >= inDim ? blocks : p.groupSize / 128;
    const copy = (src: Uint8Array, pad: number) => {
      const dst = be.allocBytes(Math.max(1, src.byteLength + pad));
      dst.fill(0, src.byteLength);
      dst.set(src);
      return dst;
    };
    const q = copy(a.q, 128);
    const scaleBytes = new Uint8Array(a.scaleBits.buffer, a.scaleBits.byteOffset, a.scaleBits.byteLength);
    const scale = copy(scaleBytes, 0);
    const zero = a.zeroBits ? copy(a.zeroBits, 0) : null;
    const xq = be.allocBytes(blocks * 128);
    const xsF = be.alloc(blocks);
    const xsum = be.alloc(blocks); // int32 lanes (same size)
    const gx = be.alloc(nGroups);
    this.xs = be.alloc(Math.max(1, inDim));
    this.yOut = be.alloc(Math.max(1, outDim));
    const descBytes = be.allocBytes(4 * DESC_FIELDS);
    this.desc = new Int32Array(descBytes.buffer, descBytes.byteOffset, DESC_FIELDS);
    const at = (v: ArrayBufferView) => be.address(v)!;
    const zbytes = Math.ceil((nGroups * p.bits) / 8);
    this.desc.set([at(q), a.rowBytes, at(scale), zero ? at(zero) : 0, zbytes, inDim, p.bits, blocks, groupBlocks, nGroups, at(xq), at(xsF), at(xsum), at(gx)]);
    this.bufs = [q, scale, ...(zero ? [zero] : []), xq, xsF, xsum, gx, this.xs, this.yOut, descBytes];
    this.perm = a.perm;
    this.tiles = new KernelRowTiles(be, backend, outDim, inDim);
  }

  matvec(y: Float32Array, x: Float32Array): void {
    const { be, inDim, perm, xs } = this;
    if (perm) for (let j = 0; j < inDim; j++) xs[j] = x[perm[j]!]!;
    else xs.set(x.subarray(0, inDim));
    const desc = be.address(this.desc)!;
    be.runRows('lowbit_i8_act', [desc, be.address(xs)!], 1, { work: 0 });
    const yInMemory = be.address(y) !== undefined;
    const yTarget = yInMemory ? y : this.yOut;
    be.runRows('lowbit_i8_gemv', [desc, be.address(yTarget)!], this.outDim, { work: this.outDim * inDim, align: 4 });
    if (!yInMemory) y.set(this.yOut.subarray(0, this.outDim));
  }

  matmul(y: Float32Array, x: Float32Array, rows: number): void {
    const { outDim, inDim, perm, be } = this;
    if (rows <= MATVEC_ROWS) {
      matvecEachRow(this, y, x, rows, outDim, inDim);
      return;
    }
    let xs = x;
    if (perm) {
      this.xPerm = permutedRows(be, this.xPerm, x, rows, inDim, perm);
      xs = this.xPerm;
    }
    const desc = be.address(this.desc)!;
    this.tiles.matmul(y, xs, rows, (tile, r0, t) => be.runRows('lowbit_i8_dequant', [desc, tile, r0], t, { work: t * inDim, align: 4 }));
  }

  dispose(): void {
    for (const b of this.bufs) this.be.free(b);
    if (this.xPerm) this.be.free(this.xPerm);
    this.tiles.dispose();
  }
}
