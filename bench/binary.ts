/**
 * BiLLM and DBellQuant side by side with RTN/GPTQ 2-bit: perplexity at W·A16/A8/A6/A4 (activation
 * bits applied per token to every block linear), honest bits per weight of the packed linears
 * (every blob byte: signs, masks, scales), and the perplexity of the binarizations' packed
 * files with 6-bit activations against their fake-quantized models'.
 *
 *   npm run bench:binary -- [stories260K|bench-llama] [maxWindows] [--save DIR] [--methods billm,dbell,gptq,rtn,fp32] [--no-speed]
 * stories260K: calib tinystories/calib.txt 128×256, eval tinystories/heldout.txt, seqlen 256,
 *   binarization blocks of 64 columns (its layers are 64 and 172 wide), grid groups of 32.
 * bench-llama: calib austen/emma.txt 128×256, eval tinystories/heldout.txt (first maxWindows
 *   windows of 256; default all 205), blocks and groups of 128.
 * DBellQuant calibrates on quantized activations (its default): it is quantized once per width.
 * --save DIR writes the BiLLM file (A16) to DIR/<model>-billm.bcq. --methods runs only those rows
 * (several processes can then share a long bench-llama run), --no-speed skips the speed part.
 * On bench-llama the run ends with bench/binary-speed.ts (kernel µs/call, decode tokens/s of the
 * BiLLM file just made vs fp32). `npm run bench:binary -- speed [file.bcq]` runs that part alone.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { perplexity } from '../src/eval/perplexity.js';
import { getFormat } from '../src/formats/registry.js';
import type { PackedTensor } from '../src/formats/types.js';
import { BufferSource } from '../src/io/bytes.js';
import { findTokenizer, openModel } from '../src/io/load.js';
import { getMethod } from '../src/methods/registry.js';
import type { ModelSource } from '../src/model/weights.js';
import { writeFileAtomic } from '../src/node/atomic-write.js';
import { createBackend } from '../src/node/backend.js';
import { nodeFs } from '../src/node/fs.js';
import { PackedModel } from '../src/packed/reader.js';
import { planPackedModel } from '../src/packed/writer.js';
import { calibrationFromText } from '../src/pipeline/calibration.js';
import { quantizeModel } from '../src/pipeline/quantize.js';
import { withActQuant } from '../src/quant/act-quant.js';
import { DenseLinear } from '../src/runtime/dense.js';
import { LlamaModel } from '../src/runtime/model.js';
import { binarySpeed } from './binary-speed.js';

const shared = (p: string) => fileURLToPath(new URL(`../../../shared/${p}`, import.meta.url));
const args = process.argv.slice(2);
const saveAt = args.indexOf('--save');
const saveDir = saveAt >= 0 ? args.splice(saveAt, 2)[1] : undefined;
const methodsAt = args.indexOf('--methods');
const only = methodsAt >= 0 ? args.splice(methodsAt, 2)[1]!.split(',') : ['billm', 'dbell', 'gptq', 'rtn', 'fp32'];
const noSpeedAt = args.indexOf('--no-speed');
const speed = noSpeedAt < 0 || args.splice(noSpeedAt, 1).length === 0;
const which = args[0] ?? 'stories260K';
const small = which === 'stories260K';
const MODEL = small ? shared('models/stories260K/stories260K.bin') : shared('models/bench-llama');
const CALIB = shared(small ? 'data/tinystories/calib.txt' : 'data/austen/emma.txt');
const EVAL = shared('data/tinystories/heldout.txt');
const maxWindows = args[1] ? Number(args[1]) : undefined;
const block = small ? 64 : 128;
const group = small ? 32 : 128;
// the binarizations first: on a loaded machine a run cut short still answers the issue's question
const RUNS: Array<[string, string, Record<string, unknown>]> = [
  [`BiLLM (block ${block})`, 'billm', { blockSize: block }],
  [`DBellQuant (block ${block})`, 'dbell', { blockSize: block }],
  [`GPTQ 2-bit g${group}`, 'gptq', { bits: 2, groupSize: group }],
  [`RTN 2-bit g${group}`, 'rtn', { bits: 2, groupSize: group }],
];
const ACT = [16, 8, 6, 4];

const backend = createBackend();
if (which === 'speed') {
  binarySpeed(backend, args[1]);
  backend.dispose();
  process.exit(0);
}
const source = openModel(MODEL, nodeFs);
const tokenizer = findTokenizer(MODEL, nodeFs);
const cal = calibrationFromText(tokenizer, readFileSync(CALIB, 'utf8'), { count: 128, seqLen: 256, seed: 1 });
const tokens = tokenizer.encode(readFileSync(EVAL, 'utf8'), true);
const evalOpts = { seqLen: 256, maxWindows };

/** The paper's fake-quantized model: dense dequantized Ŵ, activations quantized before every block linear. */
function fakeQuantized(src: ModelSource, packed: Map<string, PackedTensor>, bits: number): LlamaModel {
  return new LlamaModel(src, {
    backend,
    linear: (name, s) => {
      const t = packed.get(name);
      const [o, i] = s.tensors().find((x) => x.name === name)!.shape as [number, number];
      return withActQuant(new DenseLinear(backend, t ? getFormat(t.format).dequantize(t) : s.load(name), o, i), name, bits, backend);
    },
  });
}

function fileBytes(src: ModelSource, packed: Map<string, PackedTensor>, actBits: number): Uint8Array {
  const plan = planPackedModel({ config: source.config, method: { name: 'bench', options: {} }, source: src, packed, actBits });
  const bytes = new Uint8Array(plan.size);
  let off = 0;
  for (const c of plan.chunks()) (bytes.set(c, off), (off += c.byteLength));
  return bytes;
}

/** Perplexity of the packed file (its own kernels, activation bits from its header). */
function packedPpl(what: string, bytes: Uint8Array): number {
  const file = new PackedModel(new BufferSource('bench.bcq', bytes));
  return ppl(what, new LlamaModel(file, { backend, linear: file.linears(backend) }));
}

let billmBytes: Uint8Array | undefined;
const rel = (a: number, b: number) => Math.abs(a - b) / b;
const t00 = performance.now();
const fp32Size = planPackedModel({ config: source.config, method: { name: 'bench', options: {} }, source, packed: new Map() }).size;
console.log(`${which}: eval ${EVAL.split('/').slice(-2).join('/')}, windows of 256 (${maxWindows ?? 'all'}); fp32 file ${fp32Size} bytes; ${backend.name}, ${backend.threads} thread(s)`);
console.log(`| method | linear bpw | ${ACT.map((a) => `W·A${a}`).join(' | ')} | quantize s | file bytes | packed file A6 (rel. diff to W·A6) |`);
console.log(`|---|---|${ACT.map(() => '---').join('|')}|---|---|---|`);
/** Perplexity, with a progress line to stderr (a long run cut short keeps what it measured). */
function ppl(what: string, model: LlamaModel): number {
  const p = perplexity(model, tokens, evalOpts).ppl;
  console.error(`  ${what}: ${p} (${((performance.now() - t00) / 60000).toFixed(1)} min)`);
  return p;
}
for (const [label, name, given] of RUNS.filter(([, n]) => only.includes(n))) {
  const { method, opts } = getMethod(name, given);
  const t0 = performance.now();
  const r = quantizeModel(source, { backend, method, methodOptions: opts, calibration: cal });
  const seconds = (performance.now() - t0) / 1000;
  let bytes = 0;
  let weights = 0;
  for (const t of r.packed.values()) {
    for (const b of Object.values(t.blobs)) bytes += b.bytes.byteLength;
    weights += t.outDim * t.inDim;
  }
  console.error(`${label}: quantized in ${seconds.toFixed(1)} s`);
  // a method that calibrates on quantized activations (DBellQuant) is quantized once per width
  const perWidth = (bits: number) => (bits < 16 && method.calibrationActBits?.(opts, bits) !== undefined && method.calibrationActBits(opts, bits) < 16
    ? quantizeModel(source, { backend, method, methodOptions: opts, calibration: cal, actBits: bits })
    : r);
  const rs = ACT.map(perWidth);
  const fake = ACT.map((bits, i) => ppl(`${label} fake-quantized A${bits}`, fakeQuantized(rs[i]!.source, rs[i]!.packed, bits)));
  const a16 = fileBytes(r.source, r.packed, 16);
  if (name === 'billm') billmBytes = a16;
  if (saveDir && name === 'billm') writeFileAtomic(join(saveDir, `${which}-billm.bcq`), [a16]);
  // the packed file of the binarizations at A6 (their format and kernels are this bench's
  // subject; with quantized activations float-order differences would show most)
  let cell = '';
  if (name === 'billm' || name === 'dbell') {
    const r6 = rs[ACT.indexOf(6)]!;
    const p6 = packedPpl(`${label} packed A6`, fileBytes(r6.source, r6.packed, 6));
    cell = `${p6.toFixed(6)} (${rel(p6, fake[2]!).toExponential(1)})`;
  }
  console.log(`| ${label} | ${((bytes * 8) / weights).toFixed(3)} | ${fake.map((p) => p.toFixed(4)).join(' | ')} | ${seconds.toFixed(1)} | ${a16.byteLength} | ${cell} |`);
}
if (only.includes('fp32')) console.log(`| fp32 | 32 | ${ppl('fp32', new LlamaModel(source, { backend })).toFixed(4)} | | | | | ${fp32Size} | |`);
console.log(`(relative differences against the unrounded fake-quantized perplexities; the table took ${((performance.now() - t00) / 60000).toFixed(1)} min)`);
if (!small && speed && billmBytes) binarySpeed(backend, billmBytes);
backend.dispose();
