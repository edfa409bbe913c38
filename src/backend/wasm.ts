/**
 * The WebAssembly SIMD backend (Node and browser): kernels from csrc/ compiled to
 * wasm/kernels.wasm, run on a WasmPool over one shared memory. This module only splits each
 * call into per-thread ranges and moves arrays that are not in wasm memory in and out of
 * scratch; the arithmetic lives in C. No Node imports: bytes and the worker factory are
 * passed in by the platform layer (src/node/backend.ts).
 *
 * Browsers: shared memory needs a cross-origin isolated page (COOP/COEP headers), and the
 * backend must live in a Web Worker (Atomics.wait is refused on the main thread); await
 * `whenReady()` before the first call, since nested workers start only once it yields.
 */
import type { Backend, RowKernels } from './types.js';
import { WasmHeap } from './wasm-heap.js';
import { CONTROL_BYTES, MAX_CHUNKS, MAX_THREADS, WasmPool, type Range, type SpawnWasmWorker } from './wasm-pool.js';
import { evenRanges, linearCostRanges } from './ranges.js';
import type { WasmKernelsKind } from './wasm-kernels.js';

export interface WasmBackendOptions {
  /** The compiled module or the bytes of wasm/kernels.wasm. */
  wasm: WebAssembly.Module | BufferSource;
  /** Threads including the caller (default 1). */
  threads?: number;
  /** Starts worker threads; required when threads > 1. */
  spawn?: SpawnWasmWorker;
  /** How long idle threads spin before sleeping, in microseconds (default 200). */
  spinMicros?: number;
  /** Multiply-adds below which a call runs on the calling thread alone (default 262144). */
  parallelMinWork?: number;
}

export interface WasmBackend extends Backend, RowKernels {
  readonly name: 'wasm';
  /** Which kernel module runs (wasm-kernels.ts), as the module itself reports. */
  readonly kernels: WasmKernelsKind;
  alloc64(length: number): Float64Array;
  /** A zeroed byte buffer in wasm memory (packed low-bit weights). */
  allocBytes(length: number): Uint8Array;
  free(buffer: Float32Array | Float64Array | Uint8Array): void;
  /** The wasm address of a view into this backend's memory, or undefined for any other array. */
  address(view: ArrayBufferView): number | undefined;
  /**
   * Runs exported kernel `name` over output rows [0, rows), split across threads when `work`
   * (multiply-adds in the whole call) is large: name(...args, [scratch], r0, r1). Arguments
   * are int32 values (wasm addresses from `address`, sizes); `scratchBytes` > 0 passes each
   * thread a private block of that many bytes. For kernels added to csrc/ by other modules.
   */
  runRows(name: string, args: number[], rows: number, opts: { work: number; scratchBytes?: number; align?: number }): void;
  /** Resolves when all workers run (Node may call kernels at once; browsers must await). */
  whenReady(): Promise<void>;
  /** Reads n floats split across threads (memory-bandwidth baseline for benchmarks). */
  streamSum(x: Float32Array, chunks: number): number;
}

const MR = 4; // sgemm register tile rows (csrc/gemm.c)
const NR = 8; // sgemm register tile columns
const BLOCK = 64; // Cholesky / triangular-inverse block size
const INITIAL_PAGES = 64; // 4 MiB; grows on demand
const MAX_PAGES = 65536;

export function createWasmBackend(opts: WasmBackendOptions): WasmBackend {
  const threads = Math.max(1, Math.min(MAX_THREADS, Math.floor(opts.threads ?? 1)));
  // About 50-100 µs of work: below that, waking a worker costs more than it saves.
  const minWork = opts.parallelMinWork ?? 1 << 18;
  const module = opts.wasm instanceof WebAssembly.Module ? opts.wasm : new WebAssembly.Module(opts.wasm);
  const memory = new WebAssembly.Memory({ initial: INITIAL_PAGES, maximum: MAX_PAGES, shared: true });
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  const heapBase = instance.exports.__heap_base;
  const heap = new WasmHeap(memory, heapBase instanceof WebAssembly.Global ? Number(heapBase.value) : 65536);
  const control = heap.allocBytes(CONTROL_BYTES);
  const pool = new WasmPool(instance, module, memory, control, threads, opts.spawn, opts.spinMicros ?? 200);
  const sgemmScratch = (instance.exports.sgemm_scratch_bytes as () => number)();
  let scratchBytes = 0;
  let scratch: number[] = [];

  /** Per-thread scratch of at least `bytes`, kept between calls and grown on demand. */
  function ensureScratch(bytes: number): void {
    if (bytes <= scratchBytes) return;
    for (const s of scratch) heap.freeBytes(s);
    scratchBytes = bytes;
    scratch = Array.from({ length: threads }, () => heap.allocBytes(bytes, false));
    pool.setScratch(scratch);
  }

  /**
   * How many chunks a call of `work` multiply-adds is split into: one (no dispatch) when small,
   * else a few per thread so a thread that is slow to wake costs little (see WasmPool).
   */
  function chunksFor(work: number, perThread = 4): number {
    if (threads === 1 || work < minWork) return 1;
    return Math.max(2, Math.min(threads * perThread, MAX_CHUNKS, Math.floor(work / minWork)));
  }

  // Arrays outside wasm memory are staged through temporary blocks.
  interface Staged {
    address: number;
    release(copyBack: boolean): void;
  }
  function stage(view: Float32Array | Float64Array, length: number, copyIn: boolean): Staged {
    if (view.length < length) throw new RangeError(`array of length ${view.length} is shorter than ${length}`);
    if (heap.owns(view)) return { address: view.byteOffset, release: () => {} };
    const bytes = length * view.BYTES_PER_ELEMENT;
    const address = heap.allocBytes(bytes, false);
    const inMemory = view instanceof Float32Array ? heap.f32(address, length) : heap.f64(address, length);
    if (copyIn) inMemory.set(view.subarray(0, length));
    return {
      address,
      release(copyBack: boolean) {
        if (copyBack) view.set(view instanceof Float32Array ? heap.f32(address, length) : heap.f64(address, length));
        heap.freeBytes(address);
      },
    };
  }
  function withStaged(
    arrays: [Float32Array | Float64Array, number, 'in' | 'out' | 'inout'][],
    body: (addresses: number[]) => void,
  ): void {
    const staged: Staged[] = [];
    try {
      for (const [view, length, mode] of arrays) staged.push(stage(view, length, mode !== 'out'));
      body(staged.map((s) => s.address));
      staged.forEach((s, i) => s.release(arrays[i][2] !== 'in'));
    } catch (e) {
      staged.forEach((s) => s.release(false));
      throw e;
    }
  }
  const run = (op: string, args: number[], chunks: Range[], withScratch = false) => pool.run(op, args, chunks, withScratch);

  const sgemv = instance.exports.sgemv as (y: number, w: number, x: number, n: number, k: number, r0: number, r1: number) => void;
  function gemvAt(y: number, w: number, x: number, n: number, k: number): void {
    const chunks = chunksFor(n * k);
    if (chunks === 1) sgemv(y, w, x, n, k, 0, n);
    else run('sgemv', [y, w, x, n, k], evenRanges(0, n, chunks, 4));
  }

  const relaxed = instance.exports.kernels_relaxed_simd as (() => number) | undefined;
  const backend: WasmBackend = {
    name: 'wasm',
    kernels: relaxed?.() === 1 ? 'relaxed' : 'simd128',
    threads,
    alloc: (length) => heap.f32(heap.allocBytes(length * 4), length),
    alloc64: (length) => heap.f64(heap.allocBytes(length * 8), length),
    allocBytes: (length) => {
      const address = heap.allocBytes(length); // may grow the memory: take the view after it
      return new Uint8Array(heap.view(), address, length);
    },
    address: (view) => (heap.owns(view) ? view.byteOffset : undefined),
    runRows(name, args, rows, { work, scratchBytes = 0, align = 1 }) {
      if (!Number.isInteger(rows) || rows < 0) throw new RangeError(`bad row count ${rows}`);
      if (rows === 0) return;
      if (scratchBytes > 0) ensureScratch(scratchBytes);
      run(name, args, evenRanges(0, rows, chunksFor(work), align), scratchBytes > 0);
    },
    free: (buffer) => {
      if (!heap.owns(buffer)) throw new Error('free: buffer was not allocated by this backend');
      heap.freeBytes(buffer.byteOffset);
    },
    whenReady: () => pool.whenReady(),

    matmul(c, a, b, m, n, k) {
      checkDims(m, n, k);
      if (m === 0 || n === 0) return;
      withStaged([[c, m * n, 'out'], [a, m * k, 'in'], [b, n * k, 'in']], ([pc, pa, pb]) => {
        if (m <= 2) {
          // Packing b would cost as much as streaming it: one gemv per row instead.
          for (let i = 0; i < m; i++) gemvAt(pc + i * n * 4, pb, pa + i * k * 4, n, k);
          return;
        }
        ensureScratch(sgemmScratch);
        // Few chunks per thread: each chunk packs the other operand's blocks again.
        const parts = chunksFor(m * n * k, 2);
        // Split the larger side.
        if (m >= n) run('sgemm', [pc, pa, pb, m, n, k, 0], evenRanges(0, m, parts, MR), true);
        else run('sgemm', [pc, pa, pb, m, n, k, 1], evenRanges(0, n, parts, NR), true);
      });
    },
    gemv(y, w, x, n, k) {
      checkDims(1, n, k);
      if (n === 0) return;
      // Fast path for decode: buffers from alloc, no staging closures.
      if (heap.owns(y) && heap.owns(w) && heap.owns(x) && y.length >= n && w.length >= n * k && x.length >= k) {
        gemvAt(y.byteOffset, w.byteOffset, x.byteOffset, n, k);
        return;
      }
      withStaged([[y, n, 'out'], [w, n * k, 'in'], [x, k, 'in']], ([py, pw, px]) => gemvAt(py, pw, px, n, k));
    },
    xtxAccumulate(h, x, rows, k) {
      checkDims(rows, k, k);
      if (rows === 0 || k === 0) return;
      withStaged([[h, k * k, 'inout'], [x, rows * k, 'in']], ([ph, px]) => {
        const panels = Math.ceil(k / 4);
        // Row chunk: the float64 panels of one chunk (rc·4·panels doubles) should fit in L2.
        const rc = Math.max(16, Math.min(512, Math.floor((1 << 19) / (panels * 32) / 4) * 4));
        ensureScratch(rc * panels * 32 + 128);
        const parts = chunksFor((rows * k * k) / 2);
        run('xtx', [ph, px, rows, k, rc], linearCostRanges(0, panels, parts, (t) => t + 1), true);
      });
    },
    cholesky(a, n) {
      checkDims(n, n, 1);
      let ok = true;
      withStaged([[a, n * n, 'inout']], ([pa]) => {
        const chol = instance.exports.chol_diag as (a: number, n: number, kb: number, bs: number) => number;
        for (let kb = 0; kb < n && ok; kb += BLOCK) {
          const bs = Math.min(BLOCK, n - kb);
          if (!chol(pa, n, kb, bs)) ok = false;
          else if (kb + bs < n) {
            const rest = n - kb - bs;
            run('chol_panel', [pa, n, kb, bs], evenRanges(kb + bs, n, chunksFor((rest * bs * bs) / 2), 1));
            const parts = chunksFor((rest * rest * bs) / 2);
            run('chol_update', [pa, n, kb, bs], linearCostRanges(kb + bs, n, parts, (i) => i - kb - bs + 1));
          }
        }
      });
      return ok;
    },
    triInverse(l, n) {
      checkDims(n, n, 1);
      if (n === 0) return;
      withStaged([[l, n * n, 'inout']], ([pl]) => {
        const diag = instance.exports.trinv_diag as (a: number, n: number, j0: number, bs: number) => void;
        const t = heap.allocBytes(Math.max(1, n - BLOCK) * BLOCK * 8, false); // T[n - j1, bs]
        try {
          for (let j0 = Math.floor((n - 1) / BLOCK) * BLOCK; j0 >= 0; j0 -= BLOCK) {
            const bs = Math.min(BLOCK, n - j0);
            const j1 = j0 + bs;
            diag(pl, n, j0, bs);
            if (j1 === n) continue;
            const rest = n - j1;
            run('trinv_mul', [pl, n, j0, bs, t], linearCostRanges(j1, n, chunksFor((rest * rest * bs) / 2), (i) => i - j1 + 1));
            run('trinv_store', [pl, n, j0, bs, t], evenRanges(j1, n, chunksFor((rest * bs * bs) / 2), 1));
          }
        } finally {
          heap.freeBytes(t);
        }
      });
    },
    streamSum(x, chunks) {
      const len = Math.floor(x.length / chunks);
      let total = 0;
      withStaged([[x, len * chunks, 'in']], ([px]) => {
        const out = heap.allocBytes(chunks * 4);
        run('stream_sum', [out, px, len], evenRanges(0, chunks, Math.min(threads * 4, chunks), 1));
        for (const v of heap.f32(out, chunks)) total += v;
        heap.freeBytes(out);
      });
      return total;
    },
    dispose() {
      pool.dispose();
    },
  };
  return backend;
}

function checkDims(m: number, n: number, k: number): void {
  for (const d of [m, n, k]) {
    if (!Number.isInteger(d) || d < 0 || d > 0x7fffffff) throw new RangeError(`bad matrix dimension ${d}`);
  }
}
