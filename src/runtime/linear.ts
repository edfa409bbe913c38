/**
 * A linear layer y = W x with W [outDim, inDim], whatever the storage of W: dense float32
 * through the backend, or a packed low-bit format with its own kernels. The forward pass is
 * written once against this interface (no per-format copies of the model code).
 */
export interface Linear {
  readonly outDim: number;
  readonly inDim: number;
  /** y[outDim] = W · x[inDim] (decode). */
  matvec(y: Float32Array, x: Float32Array): void;
  /** y[rows, outDim] = x[rows, inDim] · Wᵀ (prefill, evaluation, calibration). */
  matmul(y: Float32Array, x: Float32Array, rows: number): void;
  /** Returns backend memory the layer holds (optional; the layer is unusable afterwards). */
  dispose?(): void;
}
