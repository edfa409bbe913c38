/**
 * Diagnostic for SliM-LLM+ vs SliM-LLM (docs/slim.md): each block's output MSE against the float
 * block, per block of stories260K, for a method's quantized weights, against the two targets
 * SliM-LLM+ can train on: the float block on the quantized model's stream ("quant") and on the
 * float model's stream ("float", OmniQuant's). SliM-LLM+ records the same numbers in its layer
 * stats (blockMseInit*, blockMseFinal*), so the two can be put side by side.
 *
 *   node dist/bench/block-mse.js <method> [--bits B] [--group-size G] [--nsamples N] [--seqlen T]
 *     [--epochs E (slim+)] [--blocks K (stop after the first K blocks)]
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { blockForward, type BlockParams } from '../src/autograd/block.js';
import { BlockKernels } from '../src/autograd/kernels.js';
import { findTokenizer, openModel } from '../src/io/load.js';
import { getMethod } from '../src/methods/registry.js';
import { createBackend } from '../src/node/backend.js';
import { nodeFs } from '../src/node/fs.js';
import { calibrationFromText } from '../src/pipeline/calibration.js';
import { quantizeModel } from '../src/pipeline/quantize.js';
import type { BlockRefineContext, LayerResult, QuantMethod } from '../src/quant/method.js';

const args = process.argv.slice(2);
const flag = (name: string, dflt: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const methodName = args[0] ?? 'slim';
const shared = (p: string) => fileURLToPath(new URL(`../../../shared/${p}`, import.meta.url));
const MODEL = shared('models/stories260K/stories260K.bin');
const source = openModel(MODEL, nodeFs);
const tokenizer = findTokenizer(MODEL, nodeFs);
const calibration = calibrationFromText(tokenizer, readFileSync(shared('data/tinystories/calib.txt'), 'utf8'), {
  count: flag('--nsamples', 128), seqLen: flag('--seqlen', 256), seed: 1,
});
const backend = createBackend();
const given: Record<string, unknown> = { bits: flag('--bits', 3), groupSize: flag('--group-size', 32) };
if (args.includes('--epochs')) given.epochs = flag('--epochs', 0);
const { method, opts } = getMethod(methodName, given);
const blocks = flag('--blocks', source.config.nLayers);

const FIELDS: ReadonlyArray<[string, keyof BlockParams]> = [
  ['self_attn.q_proj', 'wq'], ['self_attn.k_proj', 'wk'], ['self_attn.v_proj', 'wv'], ['self_attn.o_proj', 'wo'],
  ['mlp.gate_proj', 'w1'], ['mlp.down_proj', 'w2'], ['mlp.up_proj', 'w3'],
];

/** Mean squared difference of the quantized block on ctx.inputs against the float block on `X`. */
function blockMse(ctx: BlockRefineContext, quantized: Map<string, Float32Array>, X: Float32Array, kernels: BlockKernels): number {
  const { config: c, seqLen: T, windows } = ctx;
  const D = T * c.dim;
  const floatP = { attnNorm: ctx.norms.attnNorm, ffnNorm: ctx.norms.ffnNorm } as BlockParams;
  const quantP = { ...floatP } as BlockParams;
  for (const [name, field] of FIELDS) {
    floatP[field] = ctx.weights.get(name)!.w;
    quantP[field] = quantized.get(name)!;
  }
  let sum = 0;
  for (let s = 0; s < windows; s++) {
    const target = blockForward(c, floatP, X.subarray(s * D, (s + 1) * D), T, kernels).out.slice();
    const out = blockForward(c, quantP, ctx.inputs.subarray(s * D, (s + 1) * D), T, kernels).out;
    for (let i = 0; i < D; i++) sum += (out[i]! - target[i]!) ** 2;
  }
  return sum / (windows * D);
}

const probe: QuantMethod<object> = {
  ...method,
  requires: { ...method.requires, floatStream: true },
  refineBlock(ctx, o) {
    const refined = method.refineBlock?.(ctx, o);
    // a refinement is a map of linears, or an object holding one (trained norms are not kept: a diagnostic for slim/slim+)
    const linears: ReadonlyMap<string, LayerResult> = (refined instanceof Map ? refined : (refined as { linears?: Map<string, LayerResult> } | undefined)?.linears) ?? new Map();
    const final = new Map(FIELDS.map(([name]) => [name, (linears.get(name) ?? ctx.results.get(name)!).dequantized]));
    const kernels = new BlockKernels(ctx.backend);
    try {
      const q = blockMse(ctx, final, ctx.inputs, kernels);
      const f = blockMse(ctx, final, ctx.floatInputs!, kernels);
      console.log(`  block ${ctx.block}: MSE vs float block on quantized stream ${q.toExponential(4)}, on float stream ${f.toExponential(4)}`);
    } finally {
      kernels.dispose();
    }
    return linears instanceof Map ? linears : new Map(linears);
  },
};
console.log(`${methodName} ${JSON.stringify(opts)} on stories260K, ${calibration.count} × ${calibration.seqLen} calibration windows`);
quantizeModel(source, { backend, method: probe, methodOptions: opts, calibration, onBlockDone: (b) => b.block + 1 < blocks });
backend.dispose();
