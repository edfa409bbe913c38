/**
 * RTN — round to nearest: every group of `groupSize` consecutive columns of a row gets its own
 * min-max grid (src/quant/grid.ts) and each weight is snapped to it. No calibration data.
 */
import { groupCount, type GroupQuantized } from '../formats/quantized.js';
import { dequantizeLevel, fitGrid, groupWidth, maxLevel, quantizeLevel, rangeOf } from '../quant/grid.js';
import { checkLayerShape, type LayerContext, type LayerResult, type QuantMethod } from '../quant/method.js';

export interface RtnOptions {
  bits: number;
  /** Columns per group; 0 or −1 = one group per row (per channel). */
  groupSize: number;
  /** Symmetric grid (zero = 2^(bits−1)) instead of asymmetric min-max. */
  sym: boolean;
}

export const rtnDefaults: RtnOptions = { bits: 4, groupSize: 128, sym: false };

export function quantizeRtnLayer(
  W: Float32Array, // [out, in]
  outDim: number,
  inDim: number,
  opts: RtnOptions,
): LayerResult {
  const t0 = performance.now();
  const g = groupWidth(opts.groupSize, inDim);
  const nGroups = groupCount(inDim, g);
  const maxq = maxLevel(opts.bits);
  const q = new Uint8Array(outDim * inDim);
  const scale = new Float32Array(outDim * nGroups);
  const zero = new Float32Array(outDim * nGroups);
  const dequantized = new Float32Array(outDim * inDim);
  let sqErr = 0;
  for (let r = 0; r < outDim; r++) {
    for (let gi = 0; gi < nGroups; gi++) {
      const c0 = gi * g;
      const c1 = Math.min(c0 + g, inDim);
      const [min, max] = rangeOf(W, r * inDim + c0, c1 - c0);
      const grid = fitGrid(min, max, opts.bits, opts.sym);
      scale[r * nGroups + gi] = grid.scale;
      zero[r * nGroups + gi] = grid.zero;
      for (let c = c0; c < c1; c++) {
        const i = r * inDim + c;
        const level = quantizeLevel(W[i], grid.scale, grid.zero, maxq);
        q[i] = level;
        dequantized[i] = dequantizeLevel(level, grid.scale, grid.zero);
        sqErr += (dequantized[i] - W[i]) ** 2;
      }
    }
  }
  const data: GroupQuantized = {
    outDim,
    inDim,
    groupSize: g,
    bits: new Uint8Array(nGroups).fill(opts.bits),
    q,
    scale,
    zero,
    perm: null,
  };
  return { payload: { format: 'groups', data }, dequantized, stats: { weightSqError: sqErr, seconds: (performance.now() - t0) / 1000 } };
}

export const rtn: QuantMethod<RtnOptions> = {
  name: 'rtn',
  describe:
    'Round to nearest: per group of consecutive input columns, an asymmetric min-max grid ' +
    '(range widened to include 0, as in GPTQ\'s reference quantizer), scale stored as float16. ' +
    'Needs no calibration data.',
  defaults: rtnDefaults,
  options: {
    bits: { kind: 'int', help: 'bits per weight', choices: [2, 3, 4, 8] },
    groupSize: { kind: 'int', help: 'columns per group (0 or -1: per output channel)', min: -1 },
    sym: { kind: 'boolean', help: 'symmetric grid instead of asymmetric min-max' },
  },
  requires: { hessian: false, inputs: false },
  quantizeLayer(W: Float32Array, outDim: number, inDim: number, H: Float64Array | null, opts: RtnOptions, ctx: LayerContext): LayerResult {
    checkLayerShape(ctx, W, outDim, inDim, H);
    return quantizeRtnLayer(W, outDim, inDim, opts);
  },
};
