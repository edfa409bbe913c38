/**
 * Grid tensors whose groups each have their own width — SliM-LLM's mixed format, and uniform
 * 3-bit as the case of one width — on a backend with row kernels (wasm, or native lending a wasm
 * pool's), int8 activations (csrc/lowbit-int8-mixed.c), groups of whole 128-column blocks or one
 * group per row. The kernel layout is built in C at load (`lowbit_i8m_pack`, threaded): the file's
 * rows are staged into kernel memory a few at a time, so no JavaScript loop touches a weight and
 * the staging buffer stays small. Scales, zeros and the 1-bit groups' float16 zeros are the file's
 * blobs, copied. matvec quantizes x to int8 per 128 columns (`lowbit_i8m_act`, reference:
 * int8-activations.ts) and runs `lowbit_i8m_gemv` over output rows; matmul dequantizes row tiles
 * with `lowbit_i8m_dequant` (the reference values) for backend.matmul.
 */
import type { Backend, RowKernels } from '../backend/types.js';
import { DescInt8Linear } from './int8-desc-linear.js';
import { groupCount } from './quantized.js';
import { packRowsInKernel } from './kernel-tiles.js';
import type { MixedArrays } from './mixed.js';
import type { UniformArrays, UniformParams } from './uniform.js';

/** A tensor these kernels take, in the file's terms. */
export interface GridInt8Spec {
  groupSize: number; // a multiple of 128, or ≥ inDim
  widths: Uint8Array; // [nGroups] 1..4
  q: Uint8Array; // [outDim, srcStride] the file's rows
  srcStride: number;
  srcGoff: Int32Array; // [nGroups] byte of group g in a file row
  scaleBits: Uint16Array; // [outDim, nGroups] float16
  zeroBits: Uint8Array | null; // [outDim, zbytes] integer zeros, null: the midpoint
  zbytes: number;
  zero1Bits: Uint16Array | null; // [outDim, n1] the 1-bit groups' float16 zeros
  n1: number;
  zbit: Int32Array; // [nGroups] bit of group g's zero in a zero row, or −1 − its index in zero1
  perm: Int32Array | null; // act-order: stored → original column
}

/** Whether the kernels take a tensor of this inDim and group size. */
export const gridInt8Fits = (inDim: number, groupSize: number) => groupSize >= inDim || groupSize % 128 === 0;

/** The spec of a mixed tensor as loaded (null without the raw blobs: arrays made in memory). */
export function mixedInt8Spec(a: MixedArrays): GridInt8Spec | null {
  if (!a.raw) return null;
  const ng = a.nGroups;
  const zbit = new Int32Array(ng);
  for (let g = 0, bit = 0, k1 = 0; g < ng; g++) {
    if (a.widths[g] === 1) zbit[g] = -1 - k1++;
    else {
      zbit[g] = bit;
      bit += a.widths[g]!;
    }
  }
  const { scaleBits, zeroBits, zero1Bits, zeroBytes, n1 } = a.raw;
  return { groupSize: a.groupSize, widths: a.widths, q: a.q, srcStride: a.groupByte[ng]!, srcGoff: a.groupByte.subarray(0, ng), scaleBits, zeroBits, zbytes: zeroBytes, zero1Bits, n1, zbit, perm: null };
}

/** The spec of a uniform tensor (used for 3-bit: one width, its zeros at 3·g). */
export function uniformInt8Spec(inDim: number, p: UniformParams, a: UniformArrays): GridInt8Spec {
  const ng = groupCount(inDim, p.groupSize);
  const gs = Math.min(p.groupSize, inDim);
  return {
    groupSize: p.groupSize,
    widths: new Uint8Array(ng).fill(p.bits),
    q: a.q,
    srcStride: a.rowBytes,
    srcGoff: Int32Array.from({ length: ng }, (_, g) => (g * gs * p.bits) / 8), // whole 128-column groups: byte-aligned
    scaleBits: a.scaleBits,
    zeroBits: a.zeroBits,
    zbytes: Math.ceil((ng * p.bits) / 8),
    zero1Bits: null,
    n1: 0,
    zbit: Int32Array.from({ length: ng }, (_, g) => g * p.bits),
    perm: a.perm,
  };
}

const DESC_FIELDS = 21; // csrc/lowbit-int8-mixed.c i8m_desc
const kernelBits = (b: number) => (b === 3 ? 4 : b);

export class MixedInt8WasmKernels extends DescInt8Linear {
  constructor(outDim: number, inDim: number, s: GridInt8Spec, be: RowKernels, backend: Backend) {
    super(outDim, inDim, be, backend, 'lowbit_i8m');
    const ng = s.widths.length;
    const blocks = Math.ceil(inDim / 128);
    const groupBlocks = s.groupSize >= inDim ? blocks : s.groupSize / 128;
    const bytes = (src: ArrayBufferView) => new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
    const copy = (src: ArrayBufferView) => {
      const dst = be.allocBytes(Math.max(4, src.byteLength));
      dst.set(bytes(src));
      return dst;
    };
    // groups by kernel width (the matvec's three constant-width loops), laid out in that order
    const order = Int32Array.from({ length: ng }, (_, g) => g).sort((a, b) => kernelBits(s.widths[a]!) - kernelBits(s.widths[b]!) || a - b);
    const count = (kw: number) => order.filter((g) => kernelBits(s.widths[g]!) === kw).length;
    const goff = new Int32Array(ng);
    let stride = 0;
    for (const g of order) {
      goff[g] = stride;
      stride += Math.min(groupBlocks, blocks - g * groupBlocks) * 16 * kernelBits(s.widths[g]!);
    }
    const q = be.allocBytes(Math.max(1, outDim * stride));
    const goffK = copy(goff);
    const widths = copy(s.widths);
    const scale = copy(s.scaleBits);
    const zero = s.zeroBits ? copy(s.zeroBits) : null;
    const zero1 = s.zero1Bits ? copy(s.zero1Bits) : null;
    const zbit = copy(s.zbit);
    const orderK = copy(order);
    const xq = be.allocBytes(blocks * 128);
    const xsF = be.alloc(blocks);
    const xsum = be.alloc(blocks); // int32 lanes (same size)
    const gx = be.alloc(Math.max(1, ng));
    this.desc = this.newDesc(DESC_FIELDS);
    const at = (v: ArrayBufferView) => be.address(v)!;
    this.desc.set([
      at(q), stride, at(goffK), at(widths), at(scale), zero ? at(zero) : 0, s.zbytes, zero1 ? at(zero1) : 0, s.n1, at(zbit),
      inDim, blocks, groupBlocks, ng, at(xq), at(xsF), at(xsum), at(gx), at(orderK), count(1), count(2),
    ]);
    this.bufs.push(q, goffK, widths, scale, ...(zero ? [zero] : []), ...(zero1 ? [zero1] : []), zbit, orderK, xq, xsF, xsum, gx);
    this.pack(s);
    this.perm = s.perm;
  }

  /** The file's rows into the kernel layout, in C, a stage of rows at a time. */
  private pack(s: GridInt8Spec): void {
    const { be, outDim, inDim } = this;
    const srcGoff = be.allocBytes(4 * Math.max(1, s.srcGoff.length));
    new Int32Array(srcGoff.buffer, srcGoff.byteOffset, s.srcGoff.length).set(s.srcGoff);
    const desc = be.address(this.desc)!;
    packRowsInKernel(be, s.q, s.srcStride, outDim, (stage, r0, n) =>
      be.runRows('lowbit_i8m_pack', [desc, stage, s.srcStride, be.address(srcGoff)!, r0], n, { work: n * inDim }));
    be.free(srcGoff);
  }
}
