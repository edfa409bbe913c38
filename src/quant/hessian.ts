/**
 * The layer Hessian proxy H = 2·XᵀX/n of a linear's calibration inputs X [n, in], and the
 * factor of its inverse that GPTQ-family methods (GPTQ, SliM-LLM, BiLLM) work with.
 */
import type { Backend } from '../backend/types.js';

/**
 * Streams calibration batches into H = 2·XᵀX/n (float64), like gptq.py's `add_batch`: reading
 * `h` gives the Hessian of all rows added so far, so the pipeline can stop at any point. n
 * counts rows (tokens), not sequences as gptq.py does; GPTQ does not depend on the scale of H,
 * and per-row normalisation keeps H comparable across calibration sizes.
 *
 * Batches are staged (up to STAGE_BYTES of rows) and summed into H one stage at a time: the
 * capture hands over a few hundred rows per forward chunk, and each xᵀx call costs passes over
 * all k² entries of H besides its k²·rows products (for k = 5632 that is 254 MB per pass,
 * most of the time a TinyLlama-sized capture took before staging). A backend with
 * xtxAccumulate32 (native) sums each stage's products in float32 — the precision the official
 * GPTQ keeps all of H in — and adds the stage into the float64 H: float32 error over at most
 * one stage of rows, half the time of float64 products.
 *
 * `sum` holds the raw XᵀX while batches arrive and is scaled to 2/n only when read (and back
 * when more rows come), not on every stage.
 */
export class HessianAccumulator {
  private readonly sum: Float64Array;
  private readonly stage: Float32Array;
  private staged = 0;
  private summed = 0;
  /** Whether `sum` currently holds 2·XᵀX/summed (after a read) rather than XᵀX. */
  private normalized = false;

  constructor(
    private readonly backend: Backend,
    readonly k: number,
  ) {
    // in the backend's memory when it has its own, so Cholesky runs on it without a copy
    this.sum = backend.alloc64?.(k * k) ?? new Float64Array(k * k);
    this.stage = new Float32Array(Math.max(1, Math.min(STAGE_ROWS, Math.floor(STAGE_BYTES / 4 / k))) * k);
  }

  /** Rows added so far. */
  get rows(): number {
    return this.summed + this.staged;
  }

  /** [k, k] 2·XᵀX/n over the rows added so far (zero before the first batch). Free it with
   * backend.free when done (methods may overwrite it). */
  get h(): Float64Array {
    this.flush();
    if (!this.normalized && this.summed > 0) {
      scale(this.sum, 2 / this.summed);
      this.normalized = true;
    }
    return this.sum;
  }

  /** Adds a batch x [rows, k] of layer inputs. */
  add(x: Float32Array, rows: number): void {
    if (rows <= 0) return;
    if (x.length < rows * this.k) throw new RangeError(`HessianAccumulator: batch has ${x.length} values, expected ${rows}×${this.k}`);
    const k = this.k;
    const capacity = this.stage.length / k;
    for (let r = 0; r < rows; ) {
      const n = Math.min(capacity - this.staged, rows - r);
      this.stage.set(x.subarray(r * k, (r + n) * k), this.staged * k);
      this.staged += n;
      r += n;
      if (this.staged === capacity) this.flush();
    }
  }

  /** Sums the staged rows into the raw XᵀX. */
  private flush(): void {
    if (this.staged === 0) return;
    const h = this.sum;
    // back to the raw sum after a read (gptq.py scales x by √(2/n) instead, in float32)
    if (this.normalized) {
      scale(h, this.summed / 2);
      this.normalized = false;
    }
    if (this.backend.xtxAccumulate32) this.backend.xtxAccumulate32(h, this.stage, this.staged, this.k);
    else this.backend.xtxAccumulate(h, this.stage, this.staged, this.k);
    this.summed += this.staged;
    this.staged = 0;
  }
}

/** A stage: up to 4096 rows and 64 MiB of float32 inputs (2979 rows at width 5632). */
const STAGE_ROWS = 4096;
const STAGE_BYTES = 64 << 20;

function scale(a: Float64Array, s: number): void {
  for (let i = 0; i < a.length; i++) a[i] *= s;
}

/**
 * Dead inputs (H_jj = 0: the feature is always zero in the calibration data): set H_jj = 1 so
 * H stays invertible, as gptq.py does; the caller zeroes those weight columns. Returns their
 * indices.
 */
export function fixDeadInputs(h: Float64Array, n: number): number[] {
  const dead: number[] = [];
  for (let j = 0; j < n; j++) {
    if (h[j * n + j] === 0) {
      h[j * n + j] = 1;
      dead.push(j);
    }
  }
  return dead;
}

/** H += λ·mean(diag H)·I (GPTQ's dampening, λ = percdamp). Returns the amount added. */
export function dampen(h: Float64Array, n: number, percdamp: number): number {
  let trace = 0;
  for (let j = 0; j < n; j++) trace += h[j * n + j];
  const damp = (percdamp * trace) / n;
  for (let j = 0; j < n; j++) h[j * n + j] += damp;
  return damp;
}

/**
 * Overwrites a symmetric positive definite h [n, n] with U, the upper Cholesky factor of its
 * inverse: h⁻¹ = UᵀU (gptq.py: cholesky → cholesky_inverse → cholesky(upper=True)).
 *
 * Derivation, with J the reversal permutation (J = Jᵀ = J⁻¹). Let M be the lower Cholesky
 * factor of JhJ, so JhJ = MMᵀ and h = (JMJ)(JMJ)ᵀ. Then h⁻¹ = (JMJ)⁻ᵀ(JMJ)⁻¹ = UᵀU with
 * U = (JMJ)⁻¹ = J·M⁻¹·J, which is upper triangular because M⁻¹ is lower. So: reverse,
 * factor, invert the triangle, reverse back — two n³/3 kernels instead of gptq.py's four, and
 * no explicit inverse. Reversing both indices of a row-major matrix is reversing its buffer.
 *
 * Returns false (h destroyed) when h is not positive definite.
 */
export function upperCholeskyOfInverse(backend: Backend, h: Float64Array, n: number): boolean {
  const a = h.subarray(0, n * n);
  a.reverse();
  if (!backend.cholesky(a, n)) return false;
  backend.triInverse(a, n);
  a.reverse();
  return true;
}
