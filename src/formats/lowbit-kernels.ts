/**
 * Native low-bit kernels a backend may carry (the Node addon, native/lowbit.h): the uniform
 * formats' decode matvec with int8 activations and integer dot products, and their row
 * dequantization for prefill tiles. Declared here, in the core, so format files can use them
 * without importing Node code; src/node/native.ts attaches an implementation to the native
 * backend (AQLM codebooks: codebook-native.ts). Arrays are the file's own bytes: levels [outDim, rowBytes] (3-bit repacked by
 * `uniformRepack3`), float16 scale bits [outDim, nGroups], the b-bit zero bitstream
 * [outDim, zeroBytes] or null (symmetric), perm [inDim] stored → original column or null.
 */
import type { Backend } from '../backend/types.js';

export interface LowbitKernels {
  /** The instruction set the kernels run on: 'vnni', 'avx2', 'neon-dotprod' or 'scalar'. */
  readonly isa: string;
  /** y [outDim] = W x [inDim]; x quantized to int8 per 128-column block (int8-activations.ts); groupSize as nativeUniformFits. */
  uniformMatvec(
    y: Float32Array, x: Float32Array, q: Uint8Array, scale: Uint16Array, zero: Uint8Array | null, perm: Int32Array | null,
    outDim: number, inDim: number, groupSize: number, bits: number,
  ): void;
  /** Rows [r0, r1) of W as float32 into w [r1 − r0, inDim], original column order. */
  uniformDequant(
    w: Float32Array, q: Uint8Array, scale: Uint16Array, zero: Uint8Array | null, perm: Int32Array | null,
    outDim: number, inDim: number, groupSize: number, bits: number, r0: number, r1: number,
  ): void;
  /**
   * y [rows, outDim] = x [rows, inDim] · Wᵀ (prefill), every row of x quantized to int8 as the
   * matvec does it (native/lowbit.h lb_gemm): each output row equals that row's matvec up to
   * float32 accumulation order.
   */
  uniformGemm(
    y: Float32Array, x: Float32Array, rows: number, q: Uint8Array, scale: Uint16Array, zero: Uint8Array | null, perm: Int32Array | null,
    outDim: number, inDim: number, groupSize: number, bits: number,
  ): void;
  /**
   * Whether matmul (more than a few rows) runs the int8 GEMM or dequantizes float32 row tiles
   * for sgemm, which computes W·x exactly (what ran before; benchmarks compare). Default: on
   * where the GEMM has SIMD panels (x86-64 with AVX2 or AVX-512 VNNI), off elsewhere (arm64:
   * no NEON panel yet). Process-wide, like the instruction set.
   */
  int8Prefill: boolean;
  /** 3-bit file rows src [outDim, ceil(3·inDim/8)] into the kernel layout dst [outDim, ceil(inDim/128)·48]. */
  uniformRepack3(dst: Uint8Array, src: Uint8Array, outDim: number, inDim: number): void;
  /** Whether the mixed kernels run SIMD code here (x86-64 today; elsewhere the wasm kernels are faster). */
  readonly mixedSimd: boolean;
  /** Mixed widths (SliM-LLM, 128-column groups): the same three, with the tensor's blobs as `MixedNativeArgs`. */
  mixedMatvec(y: Float32Array, x: Float32Array, ...m: MixedNativeArgs): void;
  mixedDequant(w: Float32Array, ...m: [...MixedNativeArgs, number, number]): void;
  mixedGemm(y: Float32Array, x: Float32Array, rows: number, ...m: MixedNativeArgs): void;
  /** Repacks the 3-bit groups of q (a copy of the file's rows) in place. */
  mixedRepack3(...m: MixedNativeArgs): void;
  /** AQLM codebooks (B ≤ 8, native/codebook.h): the file's float16 codebooks [M, 2^B, g] into cbt [2·M·2^B·g] float32 ([M, g, 2^B], then [M, 2^B, g]). */
  codebookPrepare(cbt: Float32Array, cb16: Uint16Array, M: number, B: number, g: number): void;
  /**
   * The 8-bit-code kernel in use: 0 scalar, 1 AVX2, 2 AVX-512 VBMI or NEON. Prefill takes the
   * int8-table GEMM only at 2: the AVX2 lookups (sixteen vpshufb per 32 codes) are slower per
   * token than the dequantized tiles + sgemm (kernel-ab: 0.85x), so AVX2 CPUs keep the tiles.
   */
  readonly codebookKernel: number;
  /** B = 8: the file's code rows codes [outDim, nG·M] into the kernels' tiled layout dst (same size, native/codebook.h). */
  codebookTile(dst: Uint8Array, codes: Uint8Array, outDim: number, inDim: number, M: number, g: number): void;
  /** y [outDim] = W x: B = 8 int8 lookup tables (codebook-int8.ts), B < 8 float32 table. */
  codebookMatvec(y: Float32Array, x: Float32Array, ...c: CodebookNativeArgs): void;
  /** B = 8: y [rows, outDim] = x [rows, inDim]·Wᵀ, each row's int8 tables as codebookMatvec's, codes read once per 16 rows. */
  codebookGemm(y: Float32Array, x: Float32Array, rows: number, ...c: CodebookNativeArgs): void;
  /** Rows [r0, r1) of W as float32 into w [r1 − r0, inDim]. */
  codebookDequant(w: Float32Array, ...c: [...CodebookNativeArgs, number, number]): void;
  /** Whether the binary kernels run SIMD code here (AVX-512 VNNI, AVX2 or NEON dot product; their scalar C is far slower than the wasm kernels). */
  readonly binarySimd: boolean;
  /**
   * binary-billm (blockSize % 128 == 0, native/binary.h): the file's blobs (sign, split, residual or
   * null without salient columns, float16 scale bits, salient mask) into the kernel layout —
   * planes, scalesT, sal, salCol, salStart, sized by `binaryLayout` — in C, at load.
   */
  binaryPrepare(
    planes: BigUint64Array, scalesT: Uint16Array, sal: Uint32Array, salCol: Int32Array, salStart: Int32Array,
    salient: Uint8Array, sign: Uint8Array, split: Uint8Array, residual: Uint8Array | null, scales: Uint16Array,
    outDim: number, inDim: number, blockSize: number, nSal: number,
  ): void;
  /** y [outDim] = W x̃: x on salient columns, int8 activations (int8-activations.ts) elsewhere. */
  binaryMatvec(y: Float32Array, x: Float32Array, ...b: BinaryNativeArgs): void;
  /**
   * Whether binaryGemm runs here (AVX-512 VNNI, the instruction set now in use); elsewhere the
   * per-row dot products cost more than dequantized tiles + sgemm, which binary prefill keeps.
   */
  readonly binaryGemmSimd: boolean;
  /** y [rows, outDim] = x [rows, inDim] · W̃ᵀ, each row of x as binaryMatvec takes it (prefill; where binaryGemmSimd). */
  binaryGemm(y: Float32Array, x: Float32Array, rows: number, ...b: BinaryNativeArgs): void;
  /** Rows [r0, r1) of W as float32 into w [r1 − r0, inDim]. */
  binaryDequant(w: Float32Array, ...b: [...BinaryNativeArgs, number, number]): void;
}

/** A binary tensor in the native kernel layout (binaryPrepare's outputs), outDim, inDim, blockSize, nSal. */
export type BinaryNativeArgs = [
  planes: BigUint64Array, scalesT: Uint16Array, sal: Uint32Array, salCol: Int32Array, salStart: Int32Array,
  outDim: number, inDim: number, blockSize: number, nSal: number,
];

/** Element counts of the native binary layout (native/binary.h): 16-row groups, 128-column chunks. */
export function binaryLayout(outDim: number, inDim: number, blockSize: number, nSal: number): { planes: number; scales: number; sal: number } {
  const groups = Math.ceil(outDim / 16);
  return { planes: groups * Math.ceil(inDim / 128) * 64, scales: groups * Math.ceil(inDim / blockSize) * 7 * 16, sal: groups * nSal };
}

/** Binary tensors the native kernels take: blocks of whole 128-column activation blocks. */
export function nativeBinaryFits(blockSize: number): boolean {
  return blockSize % 128 === 0;
}

/**
 * A codebook tensor for the native kernels: codes [outDim, ceil(nG·M·B/8)] (B < 8: the file's
 * bitstream rows; B = 8: tiled by codebookTile), cbt (codebookPrepare), scale float16 bits
 * [outDim], outDim, inDim, M, B, g.
 */
export type CodebookNativeArgs = [
  codes: Uint8Array, cbt: Float32Array, scale: Uint16Array, outDim: number, inDim: number, M: number, B: number, g: number,
];

/** Codebook tensors the native kernels take: codes of at most 8 bits, a table of at most 2^26 floats. */
export function nativeCodebookFits(inDim: number, M: number, B: number, g: number): boolean {
  return B <= 8 && (inDim / g) * M * 2 ** B <= 1 << 26;
}

/**
 * A mixed tensor for the native kernels (native/lowbit.h lb_mixed): q [outDim, rowStride], scale
 * float16 bits [outDim, nGroups], the ≥2-bit groups' zero bitstream [outDim, zeroBytes] (or null),
 * the 1-bit groups' float16 zeros [outDim, n1] (or null), widths [nGroups], goff [nGroups] byte
 * offset of each group in a row, zbit [nGroups] bit offset of its zero (−1 − index for 1-bit
 * groups), outDim, inDim, rowStride, zeroBytes, n1.
 */
export type MixedNativeArgs = [
  q: Uint8Array, scale: Uint16Array, zero: Uint8Array | null, zero1: Uint16Array | null,
  widths: Uint8Array, goff: Int32Array, zbit: Int32Array,
  outDim: number, inDim: number, rowStride: number, zeroBytes: number, n1: number,
];

/** The backend's native low-bit kernels, or undefined. */
export function lowbitKernelsOf(backend: Backend): LowbitKernels | undefined {
  return (backend as Backend & { lowbit?: LowbitKernels }).lowbit;
}

/** Mixed tensors the native kernels take: 128-column groups and rows of whole groups. */
export function nativeMixedFits(inDim: number, groupSize: number): boolean {
  return groupSize === 128 && inDim % 128 === 0;
}

/**
 * Groups the native kernels take: whole 128-column blocks, 32 or 64 columns (GGUF Q4_0/Q8_0,
 * GPTQ g32/g64: several groups per int8 activation block, one integer dot each), or one group
 * per row. Groups of 16 and other sizes keep the wasm kernels.
 */
export function nativeUniformFits(inDim: number, groupSize: number): boolean {
  return groupSize >= inDim || groupSize % 128 === 0 || groupSize === 32 || groupSize === 64;
}

/**
 * Whether a backend asks for float activations everywhere (`floatActivations: true` on the backend
 * object): the int8-activation wasm kernels then give way to the float ones (bench:int8-ppl's
 * reference run). The native kernels are hidden separately (loadNativeBackend's `lowbit: false`).
 */
export function floatActivationsOf(backend: Backend): boolean {
  return (backend as Backend & { floatActivations?: boolean }).floatActivations === true;
}
