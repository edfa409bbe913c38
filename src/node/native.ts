/**
 * Loads the optional N-API addon (native/, OpenBLAS and its own low-bit kernels) built by
 * `npm run build:native` or the install hook. The addon validates shapes itself; this wrapper
 * only adapts it to Backend, and attaches its low-bit kernels as `lowbit` (lowbit-kernels.ts).
 */
import { createRequire } from 'node:module';
import type { Backend, RowKernels } from '../backend/types.js';
import type { LowbitKernels } from '../formats/lowbit-kernels.js';
import type { LayerOps } from '../runtime/layer-ops.js';

const ADDON_PATH = new URL('../../../native/build/Release/bitcrush_native.node', import.meta.url).pathname;

/** The functions native/bitcrush.c exports. */
interface Addon {
  setThreads(threads: number): void;
  sgemm(c: Float32Array, a: Float32Array, b: Float32Array, m: number, n: number, k: number): void;
  sgemv(y: Float32Array, w: Float32Array, x: Float32Array, n: number, k: number): void;
  xtx(h: Float64Array, x: Float32Array, rows: number, k: number): void;
  xtx32(h: Float64Array, x: Float32Array, rows: number, k: number): void;
  potrf(a: Float64Array, n: number): boolean;
  trtri(a: Float64Array, n: number): void;
  /** The bandwidth probe: sums whole 4 KiB pages on the addon's threads (returns a checksum). */
  streamSum(bytes: Uint8Array): number;
  uniformMatvec: LowbitKernels['uniformMatvec'];
  uniformDequant: LowbitKernels['uniformDequant'];
  uniformRepack3: LowbitKernels['uniformRepack3'];
  uniformGemm: LowbitKernels['uniformGemm'];
  mixedGemm: LowbitKernels['mixedGemm'];
  mixedMatvec: LowbitKernels['mixedMatvec'];
  mixedDequant: LowbitKernels['mixedDequant'];
  mixedRepack3: LowbitKernels['mixedRepack3'];
  codebookPrepare: LowbitKernels['codebookPrepare'];
  codebookMatvec: LowbitKernels['codebookMatvec'];
  codebookTile: LowbitKernels['codebookTile'];
  codebookGemm: LowbitKernels['codebookGemm'];
  codebookDequant: LowbitKernels['codebookDequant'];
  binaryPrepare: LowbitKernels['binaryPrepare'];
  binaryMatvec: LowbitKernels['binaryMatvec'];
  binaryGemm: LowbitKernels['binaryGemm'];
  binaryGemmSimd(): boolean;
  binaryDequant: LowbitKernels['binaryDequant'];
  /** Caps the 8-bit codebook kernel: 0 scalar, 1 AVX2 vpshufb, 2 AVX-512 VBMI (arm64: NEON), −1 the CPU's best. */
  codebookSetKernel(level: number): void;
  codebookKernel(): number;
  decodeAddRmsnorm: LayerOps['addRmsnorm'];
  decodeSiluMul: LayerOps['siluMul'];
  /** LayerOps.attention without the scratch (the addon keeps its own per thread). */
  decodeAttention(
    out: Float32Array, q: Float32Array, keyCache: Float32Array, valueCache: Float32Array,
    layerOff: number, pos: number, nHeads: number, nKvHeads: number, headSize: number, kvDim: number,
  ): void;
  lowbitIsa(): string;
  /** Forces an instruction set the CPU has ('scalar', 'avx2', 'vnni', 'neon-dotprod', 'auto'); false when unavailable. */
  lowbitSetIsa(name: string): boolean;
}

/** The native backend's extras beyond Backend (tests and benchmarks). */
export interface NativeExtras {
  lowbit?: LowbitKernels;
  /** The block's vector steps (runtime/layer-ops.ts), in C. */
  layerOps: LayerOps;
  streamSum(bytes: Uint8Array): number;
  /** See Addon.lowbitSetIsa; process-wide. */
  setIsa(name: string): boolean;
  /** See Addon.codebookSetKernel; process-wide. */
  setCodebookKernel(level: number): void;
}

let cached: { addon?: Addon; error?: string } | undefined;

function loadAddon(): { addon?: Addon; error?: string } {
  if (cached) return cached;
  try {
    cached = { addon: createRequire(import.meta.url)(ADDON_PATH) as Addon };
  } catch (e) {
    cached = { error: `cannot load ${ADDON_PATH} (${(e as Error).message.split('\n')[0]}); run npm run build:native` };
  }
  return cached;
}

/**
 * `opts.lowbit: false` hides the addon's own low-bit kernels (benchmarks compare both paths);
 * `opts.floatActivations` keeps the lent wasm kernels on float activations (formats/lowbit-kernels.ts).
 * `rowKernels`: a factory of the row kernels (a wasm backend) lent to the packed formats the
 * addon has no kernels for (mixed, codebook, binary, and uniform tensors whose groups are not
 * 32, 64 or whole 128-column blocks: lowbit-kernels.ts nativeUniformFits), started on first use;
 * omitted, those use TypeScript kernels.
 */
/**
 * The native backends' lowbit.int8Prefill: shared, as the addon's instruction set is
 * (lowbit-kernels.ts). On by default where the GEMM has SIMD panels (AVX-512 VNNI, AVX2); on
 * arm64 and other CPUs its scalar panel would be slower than the tiles + sgemm, so off there.
 */
let int8Prefill: boolean | undefined;

export function loadNativeBackend(
  threads: number,
  rowKernels?: () => RowKernels & { dispose(): void },
  opts: { lowbit?: boolean; floatActivations?: boolean } = {},
): { backend?: Backend & NativeExtras; error?: string } {
  const { addon, error } = loadAddon();
  if (!addon) return { error };
  // OpenBLAS keeps one global thread count; the latest backend created sets it.
  addon.setThreads(threads);
  let lent: (RowKernels & { dispose(): void }) | undefined;
  int8Prefill ??= ['vnni', 'avx2'].includes(addon.lowbitIsa());
  const lowbit: LowbitKernels = {
    get isa() {
      return addon.lowbitIsa();
    },
    get binarySimd() {
      return ['vnni', 'avx2', 'neon-dotprod'].includes(addon.lowbitIsa());
    },
    get binaryGemmSimd() {
      return addon.binaryGemmSimd();
    },
    get codebookKernel() {
      return addon.codebookKernel();
    },
    get mixedSimd() {
      return ['vnni', 'avx2'].includes(addon.lowbitIsa());
    },
    uniformMatvec: (...a) => addon.uniformMatvec(...a),
    uniformDequant: (...a) => addon.uniformDequant(...a),
    uniformRepack3: (...a) => addon.uniformRepack3(...a),
    uniformGemm: (...a) => addon.uniformGemm(...a),
    get int8Prefill() {
      return int8Prefill!;
    },
    set int8Prefill(on: boolean) {
      int8Prefill = on;
    },
    mixedGemm: (...a) => addon.mixedGemm(...a),
    mixedMatvec: (...a) => addon.mixedMatvec(...a),
    mixedDequant: (...a) => addon.mixedDequant(...a),
    mixedRepack3: (...a) => addon.mixedRepack3(...a),
    codebookPrepare: (...a) => addon.codebookPrepare(...a),
    codebookMatvec: (...a) => addon.codebookMatvec(...a),
    codebookTile: (...a) => addon.codebookTile(...a),
    codebookGemm: (...a) => addon.codebookGemm(...a),
    codebookDequant: (...a) => addon.codebookDequant(...a),
    binaryPrepare: (...a) => addon.binaryPrepare(...a),
    binaryMatvec: (...a) => addon.binaryMatvec(...a),
    binaryGemm: (...a) => addon.binaryGemm(...a),
    binaryDequant: (...a) => addon.binaryDequant(...a),
  };
  const backend: Backend & NativeExtras = {
    name: 'native',
    // lowbit: false leaves every packed format to the lent wasm kernels (the benchmarks' comparison)
    ...(opts.lowbit === false ? {} : { lowbit }),
    // floatActivations: the lent wasm kernels run float activations too (bench:int8-ppl's reference)
    ...(opts.floatActivations ? { floatActivations: true } : {}),
    // the block's vector steps in C (native/decode-ops.c; reference: runtime/layer-ops.ts)
    layerOps: {
      addRmsnorm: (o, x, d, w, n, eps) => addon.decodeAddRmsnorm(o, x, d, w, n, eps),
      siluMul: (h, u, n) => addon.decodeSiluMul(h, u, n),
      attention: (out, q, k, v, off, pos, nh, nkv, hs, kv) => addon.decodeAttention(out, q, k, v, off, pos, nh, nkv, hs, kv),
    } satisfies LayerOps,
    streamSum: (bytes) => addon.streamSum(bytes),
    setIsa: (name) => addon.lowbitSetIsa(name),
    setCodebookKernel: (level) => addon.codebookSetKernel(level),
    threads,
    alloc: (length) => new Float32Array(length),
    alloc64: (length) => new Float64Array(length),
    free: () => {},
    matmul: (c, a, b, m, n, k) => addon.sgemm(c, a, b, m, n, k),
    gemv: (y, w, x, n, k) => addon.sgemv(y, w, x, n, k),
    xtxAccumulate: (h, x, rows, k) => addon.xtx(h, x, rows, k),
    xtxAccumulate32: (h, x, rows, k) => addon.xtx32(h, x, rows, k),
    cholesky: (a, n) => addon.potrf(a, n),
    triInverse: (l, n) => addon.trtri(l, n),
    get rowKernels() {
      if (rowKernels) lent ??= rowKernels();
      return lent;
    },
    dispose: () => lent?.dispose(),
  };
  return { backend };
}
