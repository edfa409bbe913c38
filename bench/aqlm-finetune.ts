/**
 * AQLM block fine-tuning on stories260K (`node dist/bench/aqlm-finetune.js [--scheme 1x4]
 * [--nsamples 32] [--epochs 5] [--lr 1e-3]`): one pipeline run per scheme with fine-tuning on;
 * the layer-wise result before fine-tuning is the same run's quantizeLayer output (the layer step
 * does not depend on fine-tuning), so "without" and "with" share calibration, codes and
 * everything else. Both are evaluated on tinystories/heldout.txt (seqlen 256, all windows) from
 * the fake-quantized weights, which the pipeline checks equal the packed tensors bit for bit.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { perplexity } from '../src/eval/perplexity.js';
import { findTokenizer, openModel } from '../src/io/load.js';
import { getMethod } from '../src/methods/registry.js';
import { createBackend } from '../src/node/backend.js';
import { nodeFs } from '../src/node/fs.js';
import { calibrationFromText } from '../src/pipeline/calibration.js';
import { quantizeModel } from '../src/pipeline/quantize.js';
import { DenseLinear } from '../src/runtime/dense.js';
import { LlamaModel } from '../src/runtime/model.js';

const shared = (p: string) => fileURLToPath(new URL(`../../../shared/${p}`, import.meta.url));
const args = process.argv.slice(2);
const opt = (name: string, d: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1]! : d;
};
const scheme = opt('--scheme', '2x4');
const nsamples = Number(opt('--nsamples', '32'));
const epochs = Number(opt('--epochs', '5'));
const lr = Number(opt('--lr', '1e-3'));

const STORIES = shared('models/stories260K/stories260K.bin');
const backend = createBackend();
const source = openModel(STORIES, nodeFs);
const tokenizer = findTokenizer(STORIES, nodeFs);
const calibration = calibrationFromText(tokenizer, readFileSync(shared('data/tinystories/calib.txt'), 'utf8'), { count: nsamples, seqLen: 256, seed: 1 });
const heldout = tokenizer.encode(readFileSync(shared('data/tinystories/heldout.txt'), 'utf8'), true);

const { method, opts } = getMethod('aqlm', { scheme, groupSize: 4, finetuneEpochs: epochs, finetuneLr: lr });
const layerWise = new Map<string, Float32Array>();
const tuned = new Map<string, Float32Array>();
let refineSeconds = 0;
const watched = {
  ...method,
  quantizeLayer: (...a: Parameters<typeof method.quantizeLayer>) => {
    const r = method.quantizeLayer(...a);
    layerWise.set(a[5].name, r.dequantized);
    tuned.set(a[5].name, r.dequantized);
    return r;
  },
  refineBlock: (...a: Parameters<NonNullable<typeof method.refineBlock>>) => {
    const t = performance.now();
    const [ctx, o] = a;
    const out = method.refineBlock!({
      ...ctx,
      setNorms: (n) => {
        if (n.attnNorm) tuned.set(`model.layers.${ctx.block}.input_layernorm.weight`, n.attnNorm);
        if (n.ffnNorm) tuned.set(`model.layers.${ctx.block}.post_attention_layernorm.weight`, n.ffnNorm);
        ctx.setNorms?.(n);
      },
    }, o);
    refineSeconds += (performance.now() - t) / 1000;
    for (const [short, r] of out) tuned.set(`model.layers.${ctx.block}.${short}.weight`, r.dequantized);
    return out;
  },
};
const t0 = performance.now();
const r = quantizeModel(source, { backend, method: watched, methodOptions: opts, calibration });
const total = (performance.now() - t0) / 1000;

// weights: fake-quantized linears and (tuned) trained norms by canonical name; the rest from the source
const ppl = (weights: Map<string, Float32Array>) =>
  perplexity(
    new LlamaModel({ name: source.name, config: source.config, tensors: () => source.tensors(), load: (name: string) => weights.get(name) ?? source.load(name) }, {
      backend,
      linear: (name, src) => {
        const [out, inDim] = src.tensors().find((x) => x.name === name)!.shape as [number, number];
        return new DenseLinear(backend, weights.get(name) ?? src.load(name), out, inDim);
      },
    }),
    heldout,
    { seqLen: 256 },
  ).ppl;

console.log(`stories260K AQLM ${scheme} g4, calibration ${nsamples} × 256 (seed 1), fine-tuning ${epochs} epochs at most, lr ${lr}, ${backend.name}`);
console.log(`  without fine-tuning: heldout PPL ${ppl(layerWise).toFixed(4)}`);
console.log(`  with fine-tuning:    heldout PPL ${ppl(tuned).toFixed(4)}`);
for (let b = 0; b < source.config.nLayers; b++) {
  const s = r.layers.find((l) => l.name === `model.layers.${b}.self_attn.q_proj.weight`)!.stats;
  const f = (x: number | undefined) => (x === undefined ? '–' : x.toPrecision(4));
  console.log(`  block ${b}: held-out block MSE ${f(s.ftHeldMseBefore)} → ${f(s.ftHeldMseAfter)}, epochs run ${f(s.ftEpochs)} (the last without gain is dropped)`);
}
console.log(`  quantize ${total.toFixed(1)} s wall, of which block fine-tuning ${refineSeconds.toFixed(1)} s (shared cores: noisy)`);
backend.dispose();
