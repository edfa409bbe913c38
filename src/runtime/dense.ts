import type { Backend } from '../backend/types.js';
import type { ModelSource } from '../model/weights.js';
import { HalfLinear } from './half-linear.js';
import type { Linear } from './linear.js';

/** A float32 linear layer computed by the backend's dense kernels. */
export class DenseLinear implements Linear {
  /** [outDim, inDim], in the backend's memory so kernels read it without a copy. */
  private readonly w: Float32Array;

  constructor(
    private readonly backend: Backend,
    weight: Float32Array, // [outDim, inDim]
    readonly outDim: number,
    readonly inDim: number,
  ) {
    if (weight.length !== outDim * inDim) {
      throw new RangeError(`DenseLinear: weight has ${weight.length} values, expected ${outDim}×${inDim}`);
    }
    this.w = backend.alloc(outDim * inDim);
    this.w.set(weight);
  }

  matvec(y: Float32Array, x: Float32Array): void {
    this.backend.gemv(y, this.w, x, this.outDim, this.inDim);
  }

  matmul(y: Float32Array, x: Float32Array, rows: number): void {
    this.backend.matmul(y, x, this.w, rows, this.outDim, this.inDim);
  }

  /** Returns the weight buffer to the backend (the quantization pipeline replaces layers block by block). */
  dispose(): void {
    this.backend.free?.(this.w);
  }
}

/**
 * Builds the Linear for one weight tensor (canonical name, shape [out, in]) of a model. The
 * forward pass gets every linear through a factory, so packed low-bit formats plug into the
 * same forward by supplying their own.
 */
export type LinearFactory = (name: string, source: ModelSource) => Linear;

/**
 * The default factory: every weight dense on `backend`, float32, or kept 16-bit and widened per
 * tile when the source stores it so (BF16/F16 checkpoints: half the memory, same results).
 */
export function denseLinears(backend: Backend): LinearFactory {
  return (name, source) => {
    const info = source.tensors().find((t) => t.name === name);
    if (info === undefined || info.shape.length !== 2) throw new RangeError(`${source.name}: no 2-D tensor ${name}`);
    const [out, inDim] = info.shape as [number, number];
    const half = source.loadHalf?.(name);
    if (half !== undefined) return new HalfLinear(backend, half.bits, half.dtype, out, inDim);
    return new DenseLinear(backend, source.load(name), out, inDim);
  };
}
