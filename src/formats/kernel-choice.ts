/**
 * The Linear of a packed tensor: its native kernels on a backend that carries them (the Node
 * addon, lowbit-kernels.ts), else its WebAssembly SIMD kernels on a backend with row kernels
 * (wasm, or native lending a wasm pool's), else its TypeScript kernels, which are the wasm
 * kernels' reference and what the reference backend runs. Each format's `…Linear` is this
 * choice made once per tensor.
 */
import { rowKernelsOf, type Backend, type RowKernels } from '../backend/types.js';
import type { Linear } from '../runtime/linear.js';
import { lowbitKernelsOf, type LowbitKernels } from './lowbit-kernels.js';

export class KernelChoice<I extends Linear = Linear> implements Linear {
  protected readonly impl: I;
  /** Which kernels run this layer (tests and benchmarks). */
  readonly engine: 'native' | 'wasm' | 'typescript';

  /** `wasm` and `native` are null where the format's kernels of that kind cannot take this tensor. */
  constructor(backend: Backend, wasm: ((rk: RowKernels) => I) | null, typescript: () => I, native: ((k: LowbitKernels) => I) | null = null) {
    const lk = lowbitKernelsOf(backend);
    const rk = rowKernelsOf(backend);
    if (lk && native) {
      this.engine = 'native';
      this.impl = native(lk);
    } else {
      this.engine = rk && wasm ? 'wasm' : 'typescript';
      this.impl = rk && wasm ? wasm(rk) : typescript();
    }
  }

  get outDim(): number {
    return this.impl.outDim;
  }

  get inDim(): number {
    return this.impl.inDim;
  }

  matvec(y: Float32Array, x: Float32Array): void {
    this.impl.matvec(y, x);
  }

  matmul(y: Float32Array, x: Float32Array, rows: number): void {
    this.impl.matmul(y, x, rows);
  }

  dispose(): void {
    this.impl.dispose?.();
  }
}
