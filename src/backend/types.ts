/**
 * The compute backend: the few dense kernels that dominate runtime and quantization.
 * Implementations: `reference` (plain TypeScript, the oracle in tests), `wasm` (C compiled to
 * WebAssembly SIMD, run on a worker pool over shared memory, Node and browser), `native`
 * (N-API addon linking OpenBLAS, Node only, picked automatically when it loads).
 *
 * All calls are synchronous: thread pools block the caller with Atomics.wait, which Node's
 * main thread and any Web Worker allow. Matrices are row-major.
 */
export interface Backend {
  readonly name: 'reference' | 'wasm' | 'native';
  readonly threads: number;

  /**
   * A zeroed float32 buffer the backend operates on without copying (for `wasm` it lives in
   * the shared WebAssembly memory). Any Float32Array is accepted by the kernels, but buffers
   * from `alloc` avoid a copy per call: keep weights and activations in them.
   */
  alloc(length: number): Float32Array;

  /** c[m,n] = a[m,k] · b[n,k]ᵀ — activations times a weight matrix stored [out, in]. */
  matmul(c: Float32Array, a: Float32Array, b: Float32Array, m: number, n: number, k: number): void;

  /** y[n] = w[n,k] · x[k]. */
  gemv(y: Float32Array, w: Float32Array, x: Float32Array, n: number, k: number): void;

  /** h[k,k] += x[rows,k]ᵀ · x[rows,k], accumulated in float64 (Hessian statistics). */
  xtxAccumulate(h: Float64Array, x: Float32Array, rows: number, k: number): void;

  /**
   * h[k,k] += x[rows,k]ᵀ · x[rows,k] with the products summed in float32 (as the official GPTQ
   * keeps H) and that sum added into the float64 h: about twice xtxAccumulate's rate. For
   * batches of a few thousand rows (HessianAccumulator's stages); optional.
   */
  xtxAccumulate32?(h: Float64Array, x: Float32Array, rows: number, k: number): void;

  /**
   * In-place Cholesky factor of a symmetric positive definite a[n,n]: on return the lower
   * triangle holds L with a = L·Lᵀ and the strict upper triangle is zero.
   * Returns false (a left unspecified) when a is not positive definite.
   */
  cholesky(a: Float64Array, n: number): boolean;

  /** In-place inverse of a lower-triangular l[n,n] (upper triangle stays zero). */
  triInverse(l: Float64Array, n: number): void;

  /** Release worker threads (the backend is unusable afterwards). */
  dispose(): void;

  /**
   * A zeroed float64 buffer the backend operates on without copying (Hessians, Cholesky
   * factors). Optional: plain Float64Arrays work everywhere, at the cost of a copy per call.
   */
  alloc64?(length: number): Float64Array;

  /**
   * Return a buffer obtained from `alloc`/`alloc64` (the whole array as returned) to the
   * backend for reuse; using it afterwards is an error. Optional, and a no-op for backends
   * whose buffers are ordinary garbage-collected arrays.
   */
  free?(buffer: Float32Array | Float64Array): void;

  /** Row kernels of another engine this backend lends to packed formats (see RowKernels). */
  readonly rowKernels?: RowKernels;
}

/**
 * Optional capability of a backend: run an exported kernel of wasm/kernels.wasm over ranges
 * of output rows on worker threads, with operands in the kernels' memory. The wasm backend
 * is its own RowKernels; the native backend lends a companion wasm pool's (`rowKernels`), so
 * packed formats get the same kernels there. Formats check for it with `rowKernelsOf` and
 * keep a TypeScript kernel for backends without it (reference).
 */
export interface RowKernels {
  /** A zeroed byte buffer in kernel memory (packed weights). */
  allocBytes(length: number): Uint8Array;
  /** A zeroed float32 buffer in kernel memory; any backend's kernels accept it too. */
  alloc(length: number): Float32Array;
  free(buffer: Float32Array | Float64Array | Uint8Array): void;
  /** The kernel-memory address of a view, or undefined for an array outside that memory. */
  address(view: ArrayBufferView): number | undefined;
  /** name(...args, [scratch], r0, r1) over rows [0, rows), split across threads when `work` (multiply-adds) is large. */
  runRows(name: string, args: number[], rows: number, opts: { work: number; scratchBytes?: number; align?: number }): void;
}

/** The backend's row kernels, or undefined when it has none. */
export function rowKernelsOf(backend: Backend): RowKernels | undefined {
  if (backend.rowKernels) return backend.rowKernels;
  const b = backend as Backend & Partial<RowKernels>;
  return typeof b.runRows === 'function' && typeof b.allocBytes === 'function' && typeof b.address === 'function' && typeof b.free === 'function'
    ? (b as Backend & RowKernels)
    : undefined;
}
