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
import { DescInt8Linear } from './int8-desc-linear.js';
import { groupCount } from './quantized.js';
import type { UniformArrays, UniformParams } from './uniform.js';

/** Tensors these kernels take. */
export function int8WasmFits(inDim: number, p: UniformParams): boolean {
  return (p.bits === 2 || p.bits === 4 || p.bits === 8) && (p.groupSize >= inDim || p.groupSize % 128 === 0);
}

const DESC_FIELDS = 14; // csrc/lowbit-int8.c i8_desc

export class UniformInt8WasmKernels extends DescInt8Linear {
  constructor(outDim: number, inDim: number, p: UniformParams, a: UniformArrays, be: RowKernels, backend: Backend) {
    super(outDim, inDim, be, backend, 'lowbit_i8');
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
    this.desc = this.newDesc(DESC_FIELDS);
    const at = (v: ArrayBufferView) => be.address(v)!;
    const zbytes = Math.ceil((nGroups * p.bits) / 8);
    this.desc.set([at(q), a.rowBytes, at(scale), zero ? at(zero) : 0, zbytes, inDim, p.bits, blocks, groupBlocks, nGroups, at(xq), at(xsF), at(xsum), at(gx)]);
    this.bufs.push(q, scale, ...(zero ? [zero] : []), xq, xsF, xsum, gx);
    this.perm = a.perm;
  }
}
