/**
 * The mixed-precision group format (SliM-LLM) on a backend with row kernels (wasm, or native
 * lending a wasm pool's), float activations (groups that are not whole 128-column blocks, or a
 * floatActivations backend; else mixed-wasm-int8.ts): each row is repacked once, in C
 * (lowbit_pack_mixed on staged file rows), into the lane layout of csrc/lowbit.c, group by group
 * at the group's own width (whole blocks, then one short block; 3-bit groups as 4-bit fields, see
 * laneBits), in kernel memory; matvec runs `lowbit_gemv_mixed` over output
 * rows on the kernels' threads (the group dot it shares with the uniform kernel), matmul
 * dequantizes tiles of rows with `lowbit_dequant_mixed` (threaded) and hands them to
 * backend.matmul.
 */
import type { Backend, RowKernels } from '../backend/types.js';
import type { Linear } from '../runtime/linear.js';
import { KernelRowTiles, packRowsInKernel } from './kernel-tiles.js';
import type { MixedArrays } from './mixed.js';
import { groupParamsInKernel } from './uniform-wasm.js';

/**
 * The field width a group of `bits`-bit levels gets in kernel memory: 3-bit groups are widened
 * to 4-bit fields, whose unpacking is one shift and one mask instead of two planes (3-bit
 * planes measured 1.7x the time of the other widths; the kernels are compute-bound), at a
 * third more kernel memory for those groups.
 */
export const laneBits = (bits: number) => (bits === 3 ? 4 : bits);

const PACK_DESC_FIELDS = 9; // csrc/lowbit.c mixed_pack_desc

/** Columns of a whole kernel block of b-bit fields (b = 1, 2, 4): 16 bytes (csrc/lowbit.c's layout comment). */
const blockCols = (bits: number) => 128 / bits;
/** Lane bits of a short block of `cols` columns: the narrowest of 8, 16 holding its fields. */
const shortLaneBits = (cols: number, bits: number) => (Math.ceil(cols / 4) * bits <= 8 ? 8 : 16);

/** Bytes of a group of `cols` columns of b-bit fields (b = 1, 2, 4) in the kernel layout. */
export function laneGroupBytes(cols: number, bits: number): number {
  const whole = Math.floor(cols / blockCols(bits));
  const rest = cols - whole * blockCols(bits);
  return whole * 16 + (rest > 0 ? shortLaneBits(rest, bits) / 2 : 0);
}

export class MixedWasmKernels implements Linear {
  private readonly groupSize: number;
  private readonly nGroups: number;
  private readonly rowStride: number;
  // kernel memory
  private readonly q: Uint8Array; // [outDim, rowStride] lane layout, group g at goff[g]
  private readonly goffBytes: Uint8Array; // the block holding goff
  private readonly goff: Int32Array; // [nGroups] byte offset of each group in a row
  private readonly widths: Uint8Array; // [nGroups] field width of each group in kernel memory (laneBits)
  private readonly scale: Float32Array; // [outDim, nGroups]
  private readonly zero: Float32Array; // [outDim, nGroups]
  private readonly szero: Float32Array; // [outDim, nGroups] scale·zero
  private readonly xs: Float32Array; // [inDim + 128] x, zero padded (whole fields are read past a group)
  private readonly gsum: Float32Array; // [nGroups]
  private readonly yOut: Float32Array; // [outDim] when the caller's y is outside kernel memory
  private readonly tiles: KernelRowTiles;

  constructor(
    readonly outDim: number,
    readonly inDim: number,
    a: MixedArrays,
    private readonly be: RowKernels,
    backend: Backend,
  ) {
    const { groupSize, nGroups, widths, groupByte } = a;
    this.groupSize = groupSize;
    this.nGroups = nGroups;
    this.goffBytes = be.allocBytes(4 * nGroups);
    this.goff = new Int32Array(this.goffBytes.buffer, this.goffBytes.byteOffset, nGroups);
    this.widths = be.allocBytes(nGroups);
    for (let g = 0; g < nGroups; g++) this.widths[g] = laneBits(widths[g]!);
    let stride = 0;
    for (let g = 0; g < nGroups; g++) {
      this.goff[g] = stride;
      stride += laneGroupBytes(Math.min(groupSize, inDim - g * groupSize), this.widths[g]!);
    }
    this.rowStride = stride;
    this.q = be.allocBytes(Math.max(1, outDim * stride));
    // the lane layout is built in C (lowbit_pack_mixed) from staged file rows
    const rowBytes = groupByte[nGroups]!;
    const descBytes = be.allocBytes(4 * PACK_DESC_FIELDS);
    const fileBits = be.allocBytes(nGroups);
    fileBits.set(widths);
    const srcGoff = be.allocBytes(4 * nGroups);
    new Int32Array(srcGoff.buffer, srcGoff.byteOffset, nGroups).set(groupByte.subarray(0, nGroups));
    const at = (v: ArrayBufferView) => be.address(v)!;
    new Int32Array(descBytes.buffer, descBytes.byteOffset, PACK_DESC_FIELDS).set([at(this.q), stride, at(this.goff), at(this.widths), at(fileBits), at(srcGoff), inDim, groupSize, nGroups]);
    packRowsInKernel(be, a.q, rowBytes, outDim, (stage, r0, n) => be.runRows('lowbit_pack_mixed', [at(descBytes), stage, rowBytes, r0], n, { work: n * inDim }));
    for (const b of [descBytes, fileBits, srcGoff]) be.free(b);
    ({ scale: this.scale, zero: this.zero, szero: this.szero } = groupParamsInKernel(be, a, outDim * nGroups));
    this.xs = be.alloc(inDim + 128);
    this.gsum = be.alloc(Math.max(1, nGroups));
    this.yOut = be.alloc(Math.max(1, outDim));
    this.tiles = new KernelRowTiles(be, backend, outDim, inDim);
  }

  matvec(y: Float32Array, x: Float32Array): void {
    const { be, inDim, groupSize, nGroups, xs, gsum } = this;
    xs.set(x.subarray(0, inDim));
    for (let g = 0; g < nGroups; g++) {
      const end = Math.min(inDim, (g + 1) * groupSize);
      let s = 0; // float64: the offset term is subtracted from the level sums
      for (let j = g * groupSize; j < end; j++) s += xs[j]!;
      gsum[g] = s;
    }
    const at = (v: ArrayBufferView) => be.address(v)!;
    const yInMemory = be.address(y) !== undefined;
    const yTarget = yInMemory ? y : this.yOut;
    be.runRows(
      'lowbit_gemv_mixed',
      [at(yTarget), at(this.q), this.rowStride, at(this.goff), at(this.widths), at(this.scale), at(this.szero), at(xs), at(gsum), inDim, groupSize, nGroups],
      this.outDim,
      // a packed weight costs about twice a dense multiply-add (shift, mask, convert), so count it twice
      { work: 2 * this.outDim * inDim, align: 2 },
    );
    if (!yInMemory) y.set(this.yOut.subarray(0, this.outDim));
  }

  matmul(y: Float32Array, x: Float32Array, rows: number): void {
    if (rows === 1) return this.matvec(y, x);
    const { be, inDim, groupSize, nGroups, rowStride } = this;
    const q = be.address(this.q)!;
    const goff = be.address(this.goff)!;
    const widths = be.address(this.widths)!;
    const scale = be.address(this.scale)!;
    const zero = be.address(this.zero)!;
    this.tiles.matmul(y, x, rows, (tile, r0, count) => {
      const g0 = r0 * nGroups * 4;
      be.runRows(
        'lowbit_dequant_mixed',
        [tile, q + r0 * rowStride, rowStride, goff, widths, scale + g0, zero + g0, inDim, groupSize, nGroups],
        count,
        { work: count * inDim, align: 4 },
      );
    });
  }

  dispose(): void {
    for (const b of [this.q, this.goffBytes, this.widths, this.scale, this.zero, this.szero, this.xs, this.gsum, this.yOut]) this.be.free(b);
    this.tiles.dispose();
  }
}
