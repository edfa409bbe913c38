/**
 * The AQLM codebook format on a backend with row kernels (wasm, or native lending a wasm
 * pool's): codes, codebooks and scales are copied once into kernel memory in the layouts of
 * csrc/codebook.c; matvec runs the lookup-table kernel (table build threaded over input
 * groups, then the lookups threaded over output rows) or the direct kernel, whichever the
 * cost rule below picks; matmul dequantizes row tiles with `codebook_dequant` (threaded) and
 * hands them to backend.matmul.
 */
import type { Backend, RowKernels } from '../backend/types.js';
import type { Linear } from '../runtime/linear.js';
import type { CodebookQuantized } from './codebook.js';
import type { CodebookKernel } from './codebook-linear.js';
import { KernelRowTiles } from './kernel-tiles.js';

/**
 * Cost of each matvec in units of one table lookup (about 0.65 ns on one EPYC core), fitted to
 * single-thread CPU times of csrc/codebook.c at 2x8, 1x8 and 1x16 g8 on [4096, 4096],
 * [768, 256] and [256, 768]: a table multiply-add costs 1/12 (four codewords per vector op),
 * and the direct kernel 0.7 per 4 weights of each of its M + 1 passes (M codeword adds, one
 * multiply-add with x) at g = 8, twice that for other g (generic loops). The table won on every
 * Kx8 layer measured, even 256 rows (1.3-3x); the direct kernel serves 1x16 (2^16 table
 * entries per group and codebook) and tiny layers. A table over 16 MiB is never built.
 */
export function codebookWasmKernel(outDim: number, inDim: number, M: number, B: number, g: number): CodebookKernel {
  const nG = inDim / g;
  const K = 2 ** B;
  if (nG * M * K > MAX_TABLE_FLOATS) return 'direct';
  const lut = (M * K * inDim) / 12 + outDim * nG * M;
  const direct = (g === 8 ? 0.7 : 1.4) * outDim * nG * (M + 1) * Math.ceil(g / 4);
  return lut < direct ? 'lut' : 'direct';
}

const MAX_TABLE_FLOATS = 1 << 22;

/**
 * Codes per lookup pass (a multiple of M), so the slice of the table they index (tile·Kp
 * floats, 512 KiB) stays in L2 while the codes stream past: a whole 2x8 table of a 4096-wide
 * layer is 1 MiB. L1-sized slices measured slower: too few lookups per row and pass.
 */
export function lutTile(Kp: number, M: number): number {
  return Math.max(M, Math.floor((1 << 17) / Kp / M) * M);
}

export class CodebookWasmKernels implements Linear {
  readonly outDim: number;
  readonly inDim: number;
  readonly kernel: CodebookKernel;
  private readonly M: number;
  private readonly K: number;
  private readonly Kp: number; // K rounded up to 4 (table and transposed codebook rows)
  private readonly g: number;
  private readonly nG: number;
  private readonly codeBytes: number;
  // kernel memory
  /** [out, nG·M] u8 or u16 codes. */
  readonly codes: Uint8Array;
  private readonly cb: Float32Array; // [M, K, g]
  private readonly cbt: Float32Array | null; // [M, g, Kp] (lut)
  private readonly table: Float32Array | null; // [nG, M, Kp] (lut)
  private readonly scale: Float32Array; // [out]
  private readonly xs: Float32Array; // [in]
  private readonly yOut: Float32Array; // [out] when the caller's y is outside kernel memory
  private readonly tiles: KernelRowTiles;

  /** Whether `codes` was allocated here (else another tensor's, shared: codebook-split.ts's members). */
  private readonly ownsCodes: boolean;

  /** `sharedCodes`: the kernel-memory codes of a tensor with the same codes (not copied, not freed here). */
  constructor(
    q: CodebookQuantized,
    private readonly be: RowKernels,
    backend: Backend,
    force?: CodebookKernel,
    sharedCodes?: Uint8Array,
  ) {
    const { outDim, inDim, M, B, g } = q;
    this.outDim = outDim;
    this.inDim = inDim;
    this.M = M;
    this.K = 2 ** B;
    this.Kp = Math.ceil(this.K / 4) * 4;
    this.g = g;
    this.nG = inDim / g;
    this.kernel = force ?? codebookWasmKernel(outDim, inDim, M, B, g);
    this.codeBytes = B <= 8 ? 1 : 2;
    const n = outDim * this.nG * M;
    this.ownsCodes = sharedCodes === undefined;
    if (sharedCodes !== undefined) {
      if (sharedCodes.byteLength !== Math.max(1, n * this.codeBytes)) throw new RangeError('codebook wasm: shared codes of another size');
      this.codes = sharedCodes;
    } else {
      this.codes = be.allocBytes(Math.max(1, n * this.codeBytes));
      if (this.codeBytes === 1) this.codes.set(q.codes);
      else new Uint16Array(this.codes.buffer, this.codes.byteOffset, n).set(q.codes);
    }
    this.cb = be.alloc(M * this.K * g);
    this.cb.set(q.codebooks);
    this.cbt = this.table = null;
    if (this.kernel === 'lut') {
      const { K, Kp } = this;
      this.cbt = be.alloc(M * g * Kp);
      for (let m = 0; m < M; m++) {
        for (let k = 0; k < K; k++) for (let t = 0; t < g; t++) this.cbt[(m * g + t) * Kp + k] = q.codebooks[(m * K + k) * g + t]!;
      }
      this.table = be.alloc(this.nG * M * Kp);
    }
    this.scale = be.alloc(Math.max(1, outDim));
    this.scale.set(q.scale);
    this.xs = be.alloc(Math.max(1, inDim));
    this.yOut = be.alloc(Math.max(1, outDim));
    this.tiles = new KernelRowTiles(be, backend, outDim, inDim);
  }

  matvec(y: Float32Array, x: Float32Array): void {
    const { be, outDim, inDim, M, nG } = this;
    const at = (v: ArrayBufferView) => be.address(v)!;
    let xAddr = be.address(x);
    if (xAddr === undefined) {
      this.xs.set(x.subarray(0, inDim));
      xAddr = at(this.xs);
    }
    const yInMemory = be.address(y) !== undefined;
    const yTarget = yInMemory ? y : this.yOut;
    if (this.kernel === 'lut') {
      const { Kp } = this;
      be.runRows('codebook_lut_table', [at(this.table!), at(this.cbt!), xAddr, this.g, M, Kp], nG, { work: M * Kp * inDim });
      be.runRows('codebook_lut_gemv', [at(yTarget), at(this.codes), at(this.table!), at(this.scale), nG * M, Kp, this.codeBytes, lutTile(Kp, M)], outDim, {
        work: outDim * nG * M,
      });
    } else {
      be.runRows(
        'codebook_direct_gemv',
        [at(yTarget), at(this.codes), at(this.cb), at(this.scale), xAddr, nG, M, this.K, this.g, this.codeBytes],
        outDim,
        { work: outDim * inDim * (M + 1) },
      );
    }
    if (!yInMemory) y.set(this.yOut.subarray(0, outDim));
  }

  matmul(y: Float32Array, x: Float32Array, rows: number): void {
    const { be, inDim, nG, M } = this;
    if (rows === 1) return this.matvec(y, x);
    const codes = be.address(this.codes)!;
    const cb = be.address(this.cb)!;
    const scale = be.address(this.scale)!;
    this.tiles.matmul(y, x, rows, (tile, r0, count) =>
      be.runRows(
        'codebook_dequant',
        [tile, codes + r0 * nG * M * this.codeBytes, cb, scale + 4 * r0, nG, M, this.K, this.g, this.codeBytes],
        count,
        { work: count * inDim * M },
      ),
    );
  }

  dispose(): void {
    for (const b of [this.ownsCodes ? this.codes : null, this.cb, this.cbt, this.table, this.scale, this.xs, this.yOut]) if (b) this.be.free(b);
    this.tiles.dispose();
  }
}
