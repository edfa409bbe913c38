/**
 * Activation quantization (W·A settings of BiLLM/DBellQuant tables): every linear's input is
 * fake-quantized per token, symmetric absmax, to b bits before the product:
 *   s = max_j |x_j| / (2^(b−1) − 1),   x̂_j = s · round(x_j / s)   (ties to even, as torch.round)
 * (SmoothQuant's per-token quantizer, which DBellQuant's released code uses). It wraps a Linear,
 * so the fake-quantized evaluation (dense dequantized weights) and the packed runtime (format
 * kernels) run the very same code on the input: only the wrapped product differs.
 */
import type { Backend } from '../backend/types.js';
import type { Linear } from '../runtime/linear.js';

/** Activation widths the tools accept; 16 means no activation quantization. */
export const ACT_BITS: readonly number[] = [4, 6, 8, 16];

export function isActBits(b: unknown): b is number {
  return typeof b === 'number' && ACT_BITS.includes(b);
}

/** out[rows, n] = per-row symmetric absmax b-bit fake quantization of x[rows, n] (out may be x). */
export function fakeQuantizeRows(out: Float32Array, x: Float32Array, rows: number, n: number, bits: number): void {
  const qmax = 2 ** (bits - 1) - 1;
  for (let r = 0; r < rows; r++) {
    const off = r * n;
    let m = 0;
    for (let j = 0; j < n; j++) m = Math.max(m, Math.abs(x[off + j]!));
    if (m === 0) {
      out.fill(0, off, off + n);
      continue;
    }
    const s = m / qmax;
    for (let j = 0; j < n; j++) out[off + j] = s * roundHalfEven(x[off + j]! / s);
  }
}

/** Rounding with ties to even, as torch.round (Math.round sends −3.5 to −3). */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** A Linear whose input is fake-quantized to `bits` per token before `inner` multiplies it. */
export class ActQuantLinear implements Linear {
  readonly outDim: number;
  readonly inDim: number;
  private buf: Float32Array; // [rows, inDim] the quantized input, grown on demand

  constructor(
    private readonly inner: Linear,
    readonly bits: number,
    private readonly backend?: Backend,
  ) {
    if (!isActBits(bits) || bits === 16) throw new RangeError(`activation bits must be one of 4, 6, 8 (got ${bits})`);
    this.outDim = inner.outDim;
    this.inDim = inner.inDim;
    this.buf = this.alloc(inner.inDim);
  }

  matvec(y: Float32Array, x: Float32Array): void {
    fakeQuantizeRows(this.buf, x, 1, this.inDim, this.bits);
    this.inner.matvec(y, this.buf.subarray(0, this.inDim));
  }

  matmul(y: Float32Array, x: Float32Array, rows: number): void {
    const n = rows * this.inDim;
    if (this.buf.length < n) {
      this.backend?.free?.(this.buf);
      this.buf = this.alloc(n);
    }
    fakeQuantizeRows(this.buf, x, rows, this.inDim, this.bits);
    this.inner.matmul(y, this.buf.subarray(0, n), rows);
  }

  dispose(): void {
    this.backend?.free?.(this.buf);
    this.inner.dispose?.();
  }

  // in the backend's memory when given, so dense kernels read it without a copy
  private alloc(n: number): Float32Array {
    return this.backend ? this.backend.alloc(n) : new Float32Array(n);
  }
}

/**
 * Wraps the linears of the transformer blocks (not the classifier: the papers keep the LM head
 * in full precision) when bits < 16; otherwise returns the linear unchanged.
 */
export function withActQuant(linear: Linear, tensorName: string, bits: number, backend?: Backend): Linear {
  if (bits >= 16 || !tensorName.startsWith('model.layers.')) return linear;
  return new ActQuantLinear(linear, bits, backend);
}
