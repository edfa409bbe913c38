/**
 * GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for Generative
 * Pre-trained Transformers", arXiv:2210.17323, §4 and Algorithm 1). Columns are quantized one
 * at a time; the error of each is spread over the columns not yet quantized through the
 * Cholesky factor of the inverse Hessian, so the layer output moves as little as possible.
 * Variants (groups, act-order, static groups) are options of the one function below; where
 * the official code (IST-DASLab gptq.py) fixes a detail the paper leaves open, we follow it.
 *
 * Symbols as in Algorithm 1: W [out, in] weights, H⁻¹ = UᵀU (U upper, "Hinv"), B block size,
 * Q quantized weights, E block errors, d = [H⁻¹]_jj (the diagonal of the factor).
 */
import type { Backend } from '../backend/types.js';
import { groupCount, type GroupQuantized } from '../formats/quantized.js';
import { dequantizeLevel, fitGrid, groupWidth, maxLevel, quantizeLevel } from '../quant/grid.js';
import { dampen, fixDeadInputs, upperCholeskyOfInverse } from '../quant/hessian.js';
import { checkLayerShape, type LayerContext, type LayerResult, type QuantMethod } from '../quant/method.js';
import { UsageError } from '../io/errors.js';

export interface GptqOptions {
  bits: number;
  /** Columns per group; 0 or −1 = one grid per row (per channel). */
  groupSize: number;
  sym: boolean;
  /** λ in H += λ·mean(diag H)·I. */
  percdamp: number;
  /** Quantize columns in order of descending H_jj ("act-order", gptq.py --act-order). */
  actOrder: boolean;
  /** Fit every group's grid up front on the original W (gptq.py --static-groups). */
  staticGroups: boolean;
  /** B: columns per lazy batch update. */
  blockSize: number;
}

export const gptqDefaults: GptqOptions = {
  bits: 4,
  groupSize: 128,
  sym: false,
  percdamp: 0.01,
  actOrder: false,
  staticGroups: false,
  blockSize: 128,
};

/**
 * Extensions for methods built on GPTQ (SliM-LLM): per-group bit-widths and a pluggable fitter
 * of each group's grid. Without them quantizeGptqLayer is plain GPTQ; the error feedback is the
 * same either way.
 */
export interface GptqGroupHooks {
  /** [nGroups] bit-width of each column group (1..8); default opts.bits everywhere. */
  groupBits?: Uint8Array;
  /** The grid of one row of one group, replacing min-max `fitGrid`. */
  fitter?: GroupGridFitter;
}

export interface GroupGridFitter {
  /**
   * Fits the grid of every row of one column group into scale[r], zero[r] (r < rows).
   * @param wt [width, rows] the group's weights as they stand when the grid is fitted, transposed
   *   (column k of the group at wt[k·rows]); read only
   * @param hinvDiag [width] U_jj of the group's columns (the inverse-Hessian factor's diagonal),
   *   or null when grids are fitted before U exists (per-channel or static groups)
   */
  fit(wt: Float32Array, width: number, rows: number, bits: number, hinvDiag: Float64Array | null, scale: Float32Array, zero: Float32Array): void;
  /** The level of w on a grid this fitter made; default `quantizeLevel` (integer zero). */
  level?(w: number, scale: number, zero: number, maxq: number): number;
}

/** Columns per inner sub-block of the in-block update (a speed choice only; results do not depend on it). */
const SUB = 16;

export function quantizeGptqLayer(
  W: Float32Array, // [out, in]
  outDim: number,
  inDim: number,
  H: Float64Array, // [in, in] 2XᵀX/n; overwritten
  opts: GptqOptions,
  backend: Backend,
  name = 'layer',
  hooks: GptqGroupHooks = {},
): LayerResult {
  const t0 = performance.now();
  const rows = outDim;
  const cols = inDim;
  const g = groupWidth(opts.groupSize, cols);
  const nGroups = groupCount(cols, g);
  const groupBits = hooks.groupBits ?? new Uint8Array(nGroups).fill(opts.bits);
  if (groupBits.length !== nGroups) throw new RangeError(`${name}: ${groupBits.length} group bit-widths for ${nGroups} groups`);
  const fitter = hooks.fitter;
  const levelOf = fitter?.level ?? quantizeLevel;
  let factor: Float64Array | null = null; // U, once it exists (for the fitter)
  // Per channel (gptq.py fits the row's grid once, up front) and static groups: grids belong to
  // groups of *original* columns and are fixed before any error feedback.
  const fixedGrids = nGroups === 1 || opts.staticGroups;
  const scale = new Float32Array(rows * nGroups); // [out, nGroups]
  const zero = new Float32Array(rows * nGroups); // [out, nGroups]

  // Wᵀ [in, out]: column j of W, the unit GPTQ works on, is contiguous at Wt[j·rows].
  let Wt = new Float32Array(cols * rows);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) Wt[c * rows + r] = W[r * cols + c];

  const fitted = fitter ? { scale: new Float32Array(rows), zero: new Float32Array(rows) } : null;
  const fitGroup = (gi: number, firstCol: number, width: number) => {
    const bits = groupBits[gi]!;
    if (fitter && fitted) {
      const u = factor;
      const diag = u === null ? null : Float64Array.from({ length: width }, (_, k) => u[(firstCol + k) * cols + firstCol + k]!);
      fitter.fit(Wt.subarray(firstCol * rows, (firstCol + width) * rows), width, rows, bits, diag, fitted.scale, fitted.zero);
      for (let r = 0; r < rows; r++) {
        scale[r * nGroups + gi] = fitted.scale[r]!;
        zero[r * nGroups + gi] = fitted.zero[r]!;
      }
      return;
    }
    for (let r = 0; r < rows; r++) {
      let min = Infinity;
      let max = -Infinity;
      for (let c = firstCol; c < firstCol + width; c++) {
        const v = Wt[c * rows + r];
        if (v < min) min = v;
        if (v > max) max = v;
      }
      const grid = fitGrid(min, max, bits, opts.sym);
      scale[r * nGroups + gi] = grid.scale;
      zero[r * nGroups + gi] = grid.zero;
    }
  };

  // Dead inputs: H_jj = 1 and the column is zeroed (its input is always 0, so any value is
  // exact; zero keeps it from distorting the grid).
  const dead = fixDeadInputs(H, cols);
  for (const j of dead) Wt.fill(0, j * rows, (j + 1) * rows);

  if (fixedGrids) for (let gi = 0; gi < nGroups; gi++) fitGroup(gi, gi * g, Math.min(g, cols - gi * g));

  // Act-order: the columns with the largest inputs first, while most columns remain to absorb
  // their error. From here on, column j of Wt and H means original column perm[j].
  let perm: Int32Array | null = null;
  if (opts.actOrder) {
    perm = descendingDiagonalOrder(H, cols);
    const permuted = new Float32Array(cols * rows);
    for (let j = 0; j < cols; j++) permuted.set(Wt.subarray(perm[j] * rows, (perm[j] + 1) * rows), j * rows);
    Wt = permuted;
    permuteSymmetric(H, cols, perm);
  }

  const damp = dampen(H, cols, opts.percdamp);
  if (!upperCholeskyOfInverse(backend, H, cols)) {
    throw new UsageError(`${name}: GPTQ: the dampened Hessian is not positive definite; raise percdamp (now ${opts.percdamp})`);
  }
  const U = H; // [in, in] upper: H⁻¹ = UᵀU
  factor = U;

  const q = new Uint8Array(rows * cols); // [out, in] levels, stored column order
  const dequantized = new Float32Array(rows * cols); // [out, in] original column order
  const B = Math.max(1, opts.blockSize);
  const E = new Float32Array(B * rows); // [B, out] scaled errors of the current block
  // operands of the lazy update, in the backend's memory so its matmul needs no copies
  const lazyA = backend.alloc(cols * B); // [in − i2, B] U[i1:i2, i2:]ᵀ
  const lazyB = backend.alloc(rows * B); // [out, B] Eᵀ
  const lazyC = backend.alloc(cols * rows); // [in − i2, out] the update of the later columns
  let loss = 0;

  // W[:, t0:t1] −= E[f0:f1] · U[f0:f1, t0:t1]: the errors of columns f0..f1 (of the block
  // starting at i1) applied to later columns t0..t1 as one matrix product on the backend.
  const applyErrors = (i1: number, f0: number, f1: number, t0: number, t1: number) => {
    const count = f1 - f0;
    const rest = t1 - t0;
    if (rest === 0) return;
    for (let c = 0; c < rest; c++) for (let t = 0; t < count; t++) lazyA[c * count + t] = U[(f0 + t) * cols + t0 + c];
    for (let r = 0; r < rows; r++) for (let t = 0; t < count; t++) lazyB[r * count + t] = E[(f0 - i1 + t) * rows + r];
    backend.matmul(lazyC, lazyA, lazyB, rest, rows, count); // [rest, out]
    const base = t0 * rows;
    for (let i = 0; i < rest * rows; i++) Wt[base + i] -= lazyC[i];
  };

  try {
    for (let i1 = 0; i1 < cols; i1 += B) {
      const i2 = Math.min(i1 + B, cols);
      // gptq.py fits a group's grid on W as it stands at the start of the block (its in-block
      // updates go to a copy), i.e. with the lazy updates of earlier blocks but not those of
      // this block; fitting every group that starts in the block now reproduces that.
      if (!fixedGrids) {
        for (let s = Math.ceil(i1 / g) * g; s < i2; s += g) fitGroup(s / g, s, Math.min(g, cols - s));
      }
      // The column loop of Algorithm 1. Its in-block update is itself done lazily over
      // sub-blocks of SUB columns (same arithmetic, reordered), so that most of it is a matrix
      // product on the backend rather than rank-1 updates in JavaScript.
      for (let s1 = i1; s1 < i2; s1 += SUB) {
        const s2 = Math.min(s1 + SUB, i2);
        for (let j = s1; j < s2; j++) {
          const col = perm ? perm[j] : j; // original column
          const gi = fixedGrids ? Math.floor(col / g) : Math.floor(j / g);
          const stored = fixedGrids ? col : j; // fixed grids are keyed by original column: store unpermuted
          const d = U[j * cols + j];
          const maxq = maxLevel(groupBits[gi]!);
          const w = j * rows;
          const e = (j - i1) * rows;
          for (let r = 0; r < rows; r++) {
            const s = scale[r * nGroups + gi];
            const z = zero[r * nGroups + gi];
            const level = levelOf(Wt[w + r], s, z, maxq);
            const v = dequantizeLevel(level, s, z);
            q[r * cols + stored] = level;
            dequantized[r * cols + col] = v;
            const err = (Wt[w + r] - v) / d;
            loss += err * err;
            E[e + r] = err;
          }
          // w_k −= err · U_jk for the rest of the sub-block
          for (let k = j + 1; k < s2; k++) {
            const u = U[j * cols + k];
            if (u === 0) continue;
            const wk = k * rows;
            for (let r = 0; r < rows; r++) Wt[wk + r] -= E[e + r] * u;
          }
        }
        applyErrors(i1, s1, s2, s2, i2);
      }
      // Lazy batch update: W[:, i2:] −= E · U[i1:i2, i2:], one matrix product per block.
      applyErrors(i1, i1, i2, i2, cols);
    }
  } finally {
    backend.free?.(lazyA);
    backend.free?.(lazyB);
    backend.free?.(lazyC);
  }

  const data: GroupQuantized = {
    outDim,
    inDim,
    groupSize: g,
    bits: groupBits.slice(),
    q,
    scale,
    zero,
    perm: fixedGrids ? null : perm,
  };
  return {
    payload: { format: 'groups', data },
    dequantized,
    // ½ as gptq.py: with H = 2XᵀX/n this is the mean over calibration rows of ‖(Ŵ − W)x‖²
    stats: { loss: loss / 2, deadInputs: dead.length, damp, seconds: (performance.now() - t0) / 1000 },
  };
}

/** Column order by descending H_jj; ties keep the lower index first (deterministic). */
export function descendingDiagonalOrder(h: Float64Array, n: number): Int32Array {
  const order = Array.from({ length: n }, (_, j) => j);
  order.sort((a, b) => h[b * n + b] - h[a * n + a] || a - b);
  return Int32Array.from(order);
}

/** In place h ← h[perm][:, perm] with O(n) extra memory (H can be a gigabyte). */
function permuteSymmetric(h: Float64Array, n: number, perm: Int32Array): void {
  const tmp = new Float64Array(n);
  // rows: new row i = old row perm[i], following each cycle of the permutation once
  const done = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    if (done[i]) continue;
    tmp.set(h.subarray(i * n, (i + 1) * n));
    let k = i;
    while (perm[k] !== i) {
      h.copyWithin(k * n, perm[k] * n, (perm[k] + 1) * n);
      done[k] = 1;
      k = perm[k];
    }
    h.set(tmp, k * n);
    done[k] = 1;
  }
  // columns, row by row
  for (let i = 0; i < n; i++) {
    const row = h.subarray(i * n, (i + 1) * n);
    tmp.set(row);
    for (let j = 0; j < n; j++) row[j] = tmp[perm[j]];
  }
}

export const gptq: QuantMethod<GptqOptions> = {
  name: 'gptq',
  describe:
    'GPTQ (Frantar et al. 2022, Algorithm 1): column-by-column quantization with second-order ' +
    'error feedback through the Cholesky factor of the inverse Hessian, lazy batch updates every ' +
    'blockSize columns. As the official gptq.py: asymmetric min-max grids whose range includes 0, ' +
    'dampening 1% of mean(diag H), a group\'s grid fitted when the group starts (on the weights ' +
    'as of the start of the current block), optional act-order and static groups.',
  defaults: gptqDefaults,
  options: {
    bits: { kind: 'int', help: 'bits per weight', choices: [2, 3, 4, 8] },
    groupSize: { kind: 'int', help: 'columns per group (0 or -1: per output channel)', min: -1 },
    sym: { kind: 'boolean', help: 'symmetric grid instead of asymmetric min-max' },
    percdamp: { kind: 'number', help: 'dampening λ: H += λ·mean(diag H)·I', min: 0, max: 1 },
    actOrder: { kind: 'boolean', help: 'quantize columns in order of descending H_jj' },
    staticGroups: { kind: 'boolean', help: 'fit all group grids on the original weights up front (with actOrder)' },
    blockSize: { kind: 'int', help: 'columns per lazy batch update', min: 1, max: 4096 },
  },
  requires: { hessian: true, inputs: false },
  quantizeLayer(W: Float32Array, outDim: number, inDim: number, H: Float64Array | null, opts: GptqOptions, ctx: LayerContext): LayerResult {
    checkLayerShape(ctx, W, outDim, inDim, H);
    if (H === null) throw new RangeError(`${ctx.name}: GPTQ needs the layer Hessian`);
    return quantizeGptqLayer(W, outDim, inDim, H, opts, ctx.backend, ctx.name);
  },
};
