/**
 * A codebook tensor of og > 1 rows per codeword on kernels that know og = 1 only (the wasm and
 * native ones): member a of every output group is itself an og = 1 tensor [out/og, in] with
 * the same codes and scales and the codebook slice C[:, :, a, :], so
 *   y[row(o, a)] = (W_a x)[o]
 * exactly, with the arithmetic of the og = 1 kernel on W_a. Each member runs its own og = 1
 * kernels (lookup table or direct, their own cost rule on [out/og, in]); the outputs are
 * scattered to the rows. The table work per member is that of og = 1, so a whole matvec builds
 * og tables: the og dot products per codeword the format needs. The wasm members share one copy
 * of the codes in kernel memory; the native ones read the file's codes in place.
 */
import type { Backend } from '../backend/types.js';
import type { Linear } from '../runtime/linear.js';
import { codebookRow, groupShape, type CodebookParams, type CodebookQuantized } from './codebook.js';
import type { CodebookKernel } from './codebook-linear.js';
import type { PackedTensor } from './types.js';

/** Codebook slice a of [M, K, og, g]: [M, K, g]. */
function memberCodebooks<T extends Float32Array | Uint16Array>(cb: T, M: number, K: number, og: number, g: number, a: number, out: T): T {
  for (let c = 0; c < M * K; c++) out.set(cb.subarray((c * og + a) * g, (c * og + a + 1) * g), c * g);
  return out;
}

/** Member a of an og > 1 payload as an og = 1 payload [out/og, in] (codes and scales shared). */
export function memberPayload(q: CodebookQuantized, a: number): CodebookQuantized {
  const { og } = groupShape(q);
  const K = 2 ** q.B;
  const codebooks = memberCodebooks(q.codebooks, q.M, K, og, q.g, a, new Float32Array(q.M * K * q.g));
  return { outDim: q.outDim / og, inDim: q.inDim, M: q.M, B: q.B, g: q.g, codes: q.codes, codebooks, scale: q.scale };
}

/** Member a of an og > 1 packed tensor as an og = 1 one: the file's code and scale bytes, a copy of the codebook slice. */
export function memberPacked(t: PackedTensor<CodebookParams>, a: number): PackedTensor<CodebookParams> {
  const p = t.params;
  const { og } = groupShape(p);
  const K = 2 ** p.B;
  const src = t.blobs.codebooks!.bytes;
  const cb16 = new Uint16Array(src.slice().buffer, 0, src.byteLength >> 1);
  const slice = memberCodebooks(cb16, p.M, K, og, p.g, a, new Uint16Array(p.M * K * p.g));
  return {
    format: t.format,
    outDim: t.outDim / og,
    inDim: t.inDim,
    params: { M: p.M, B: p.B, g: p.g },
    blobs: { ...t.blobs, codebooks: { dtype: 'F16', shape: [p.M, K, p.g], bytes: new Uint8Array(slice.buffer) } },
  };
}

export class CodebookSplitKernels implements Linear {
  readonly outDim: number;
  readonly inDim: number;
  private readonly og: number;
  private readonly il: number;
  private readonly nO: number;
  private readonly members: Array<Linear & { kernel: CodebookKernel }>;
  private part: Float32Array | null = null; // [rows, out/og] one member's outputs, grown on demand

  constructor(
    q: { outDim: number; inDim: number; og?: number; il?: number } | PackedTensor<CodebookParams>,
    private readonly backend: Backend,
    member: (a: number) => Linear & { kernel: CodebookKernel },
  ) {
    const shape = groupShape('params' in q ? q.params : q);
    this.outDim = q.outDim;
    this.inDim = q.inDim;
    this.og = shape.og;
    this.il = shape.il;
    this.nO = q.outDim / shape.og;
    this.members = Array.from({ length: shape.og }, (_, a) => member(a));
  }

  /** The matvec algorithm of the members (the same cost rule on the same shape picks the same one). */
  get kernel(): CodebookKernel {
    return this.members[0]!.kernel;
  }

  matvec(y: Float32Array, x: Float32Array): void {
    this.matmul(y, x, 1);
  }

  matmul(y: Float32Array, x: Float32Array, rows: number): void {
    const { og, il, nO, outDim } = this;
    if (this.part === null || this.part.length < rows * nO) {
      if (this.part !== null) this.backend.free?.(this.part);
      this.part = this.backend.alloc(rows * nO);
    }
    const part = this.part;
    for (let a = 0; a < og; a++) {
      const m = this.members[a]!;
      if (rows === 1) m.matvec(part, x);
      else m.matmul(part, x, rows);
      for (let i = 0; i < rows; i++) {
        const yi = i * outDim;
        const pi = i * nO;
        for (let o = 0; o < nO; o++) y[yi + codebookRow(o, a, og, il)] = part[pi + o]!;
      }
    }
  }

  dispose(): void {
    for (const m of this.members) m.dispose?.();
    if (this.part !== null) this.backend.free?.(this.part);
    this.part = null;
  }
}
