/**
 * Where AQLM's layer step spends its time (`node dist/bench/aqlm-speed.js [--schemes 2x8,1x8]
 * [--block 0] [--threads N]`): the Hessians of one bench-llama block (emma.txt 128 × 256, seed 1,
 * as `bitcrush quantize`) are captured once, then each of the block's distinct linear shapes is
 * quantized with default AQLM options and its phases printed side by side: k-means init, Adam on
 * codebooks and scales, beam search on codes (wall seconds), the process CPU seconds, epochs and
 * the loss. Timings on a shared machine are noisy: compare CPU seconds, or run on an idle machine.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { findTokenizer, openModel } from '../src/io/load.js';
import { aqlmDefaults, quantizeAqlmLayer } from '../src/methods/aqlm.js';
import { getMethod } from '../src/methods/registry.js';
import { createBackend } from '../src/node/backend.js';
import { nodeFs } from '../src/node/fs.js';
import { calibrationFromText } from '../src/pipeline/calibration.js';
import { quantizeModel } from '../src/pipeline/quantize.js';

const shared = (p: string) => fileURLToPath(new URL(`../../../shared/${p}`, import.meta.url));
const args = process.argv.slice(2);
const opt = (name: string, d: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1]! : d;
};
const schemes = opt('--schemes', '2x8,1x8').split(',');
const block = Number(opt('--block', '0'));
const threads = args.includes('--threads') ? Number(opt('--threads', '1')) : undefined;

const MODEL = shared('models/bench-llama');
const backend = createBackend({ threads });
const source = openModel(MODEL, nodeFs);
const tokenizer = findTokenizer(MODEL, nodeFs);
const calibration = calibrationFromText(tokenizer, readFileSync(shared('data/austen/emma.txt'), 'utf8'), { count: 128, seqLen: 256, seed: 1 });

// capture W and H of the block's q, gate and down projections (the three shapes) through a cheap method
const SHAPES = ['self_attn.q_proj', 'mlp.gate_proj', 'mlp.down_proj'];
const captured = new Map<string, { W: Float32Array; H: Float64Array; out: number; in: number }>();
const rtn = getMethod('rtn', { bits: 4 });
const capturing = {
  ...rtn.method,
  requires: { hessian: true, inputs: false },
  quantizeLayer: (...a: Parameters<typeof rtn.method.quantizeLayer>) => {
    const [W, out, inDim, H, , ctx] = a;
    const short = SHAPES.find((s) => ctx.name === `model.layers.${block}.${s}.weight`);
    if (short !== undefined) captured.set(short, { W: W.slice(), H: H!.slice(), out, in: inDim });
    return rtn.method.quantizeLayer(W, out, inDim, null, rtn.opts, ctx);
  },
};
quantizeModel(source, { backend, method: capturing, methodOptions: rtn.opts, calibration, onBlockDone: (b) => b.block < block });

console.log(`AQLM layer step on bench-llama block ${block}, default options (beam ${aqlmDefaults.beamSize}, ${aqlmDefaults.stepsPerEpoch} Adam steps/epoch, tolerance ${aqlmDefaults.relativeTolerance}); ${backend.name}, ${backend.threads} threads`);
console.log(`  ${'scheme'.padEnd(6)} ${'layer'.padEnd(22)} ${'wall s'.padStart(7)} ${'k-means'.padStart(8)} ${'Adam'.padStart(7)} ${'beam'.padStart(7)} ${'CPU s'.padStart(7)} ${'epochs'.padStart(6)}  loss init → final`);
for (const scheme of schemes) {
  for (const short of SHAPES) {
    const c = captured.get(short)!;
    const cpu0 = process.cpuUsage();
    const r = quantizeAqlmLayer(c.W, c.out, c.in, c.H.slice(), { ...aqlmDefaults, scheme }, backend, short);
    const cpu = process.cpuUsage(cpu0);
    const s = r.stats as Record<string, number>;
    const f = (x: number | undefined, w: number) => (x ?? NaN).toFixed(2).padStart(w);
    console.log(
      `  ${scheme.padEnd(6)} ${`${short} ${c.out}×${c.in}`.padEnd(22)} ${f(s.seconds, 7)} ${f(s.initSeconds, 8)} ${f(s.adamSeconds, 7)} ${f(s.beamSeconds, 7)} ` +
        `${f((cpu.user + cpu.system) / 1e6, 7)} ${String(s.epochs).padStart(6)}  ${s.initLoss!.toPrecision(5)} → ${s.loss!.toPrecision(5)}`,
    );
  }
}
backend.dispose();
