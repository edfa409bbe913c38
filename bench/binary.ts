/**
 * BiLLM and DBellQuant side by side with RTN/GPTQ 2-bit: perplexity at W·A16/A8/A6/A4 (activation
 * bits applied per token to every block linear), honest bits per weight of the packed linears
 * (every blob byte: signs, masks, scales), packed = fake-quantized at A16, and greedy decode
 * tokens/s of the packed BiLLM file against fp32 in the same process.
 *
 *   npm run bench:binary -- [stories260K|bench-llama] [maxWindows]
 * stories260K: calib tinystories/calib.txt 128×256, eval tinystories/heldout.txt, seqlen 256,
 *   binarization blocks of 64 columns (its layers are 64 and 172 wide), grid groups of 32.
 * bench-llama: calib austen/emma.txt 128×256, eval tinystories/heldout.txt (first maxWindows
 *   windows of 256; default 64), blocks and groups of 128.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Backend } from '../src/backend/types.js';
import { perplexity } from '../src/eval/perplexity.js';
import { getFormat } from '../src/formats/registry.js';
import type { PackedTensor } from '../src/formats/types.js';
import { BufferSource } from '../src/io/bytes.js';
import { findTokenizer, openModel } from '../src/io/load.js';
import { getMethod } from '../src/methods/registry.js';
import type { ModelSource } from '../src/model/weights.js';
import { createBackend } from '../src/node/backend.js';
import { nodeFs } from '../src/node/fs.js';
import { PackedModel } from '../src/packed/reader.js';
import { planPackedModel } from '../src/packed/writer.js';
import { calibrationFromText } from '../src/pipeline/calibration.js';
import { quantizeModel } from '../src/pipeline/quantize.js';
import { withActQuant } from '../src/quant/act-quant.js';
import { DenseLinear } from '../src/runtime/dense.js';
import { LlamaModel } from '../src/runtime/model.js';
import { argmax } from '../src/runtime/sampler.js';

const shared = (p: string) => fileURLToPath(new URL(`../../../shared/${p}`, import.meta.url));
const which = process.argv[2] ?? 'stories260K';
const small = which === 'stories260K';
const MODEL = small ? shared('models/stories260K/stories260K.bin') : shared('models/bench-llama');
const CALIB = shared(small ? 'data/tinystories/calib.txt' : 'data/austen/emma.txt');
const EVAL = shared('data/tinystories/heldout.txt');
const maxWindows = process.argv[3] ? Number(process.argv[3]) : small ? undefined : 64;
const block = small ? 64 : 128;
const group = small ? 32 : 128;
const RUNS: Array<[string, string, Record<string, unknown>]> = [
  [`RTN 2-bit g${group}`, 'rtn', { bits: 2, groupSize: group }],
  [`GPTQ 2-bit g${group}`, 'gptq', { bits: 2, groupSize: group }],
  [`BiLLM (block ${block})`, 'billm', { blockSize: block }],
  [`DBellQuant (block ${block})`, 'dbell', { blockSize: block }],
];
const ACT = [16, 8, 6, 4];

const backend = createBackend();
const source = openModel(MODEL, nodeFs);
const tokenizer = findTokenizer(MODEL, nodeFs);
const cal = calibrationFromText(tokenizer, readFileSync(CALIB, 'utf8'), { count: 128, seqLen: 256, seed: 1 });
const tokens = tokenizer.encode(readFileSync(EVAL, 'utf8'), true);
const evalOpts = { seqLen: 256, maxWindows };

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

function packedFile(src: ModelSource, packed: Map<string, PackedTensor>): { file: PackedModel; size: number } {
  const plan = planPackedModel({ config: source.config, method: { name: 'bench', options: {} }, source: src, packed });
  const bytes = new Uint8Array(plan.size);
  let off = 0;
  for (const c of plan.chunks()) (bytes.set(c, off), (off += c.byteLength));
  return { file: new PackedModel(new BufferSource('bench.bcq', bytes)), size: plan.size };
}

function decodeRate(model: LlamaModel, steps: number): number {
  const run = (n: number) => {
    let token = tokenizer.bosId;
    for (let pos = 0; pos < n; pos++) token = argmax(model.forward([token], pos, 'last'));
  };
  run(8);
  const t0 = performance.now();
  run(steps);
  return steps / ((performance.now() - t0) / 1000);
}

function describeBackend(b: Backend): string {
  return `${b.name}, ${b.threads} thread(s)`;
}

const fp32 = perplexity(new LlamaModel(source, { backend }), tokens, evalOpts);
const fp32Size = (() => {
  const plan = planPackedModel({ config: source.config, method: { name: 'bench', options: {} }, source, packed: new Map() });
  return plan.size;
})();
console.log(`${which}: eval ${EVAL.split('/').slice(-2).join('/')} ${fp32.windows} windows of 256; fp32 PPL ${fp32.ppl.toFixed(4)}, fp32 file ${fp32Size} bytes; ${describeBackend(backend)}`);
console.log(`| method | linear bpw | ${ACT.map((a) => `W·A${a}`).join(' | ')} | quantize s | file bytes | packed A16 |`);
console.log(`|---|---|${ACT.map(() => '---').join('|')}|---|---|---|`);
let billmFile: PackedModel | undefined;
for (const [label, name, given] of RUNS) {
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
  const ppl = ACT.map((bits) => perplexity(fakeQuantized(r.source, r.packed, bits), tokens, evalOpts).ppl);
  const { file, size } = packedFile(r.source, r.packed);
  const packedPpl = perplexity(new LlamaModel(file, { backend, linear: file.linears(backend) }), tokens, evalOpts).ppl;
  if (name === 'billm') billmFile = file;
  console.log(`| ${label} | ${((bytes * 8) / weights).toFixed(3)} | ${ppl.map((p) => p.toFixed(2)).join(' | ')} | ${seconds.toFixed(1)} | ${size} | ${packedPpl.toFixed(4)} (fake ${ppl[0]!.toFixed(4)}) |`);
}
if (billmFile) {
  const steps = small ? 255 : 200;
  const f32 = decodeRate(new LlamaModel(source, { backend }), steps);
  const bin = decodeRate(new LlamaModel(billmFile, { backend, linear: billmFile.linears(backend) }), steps);
  console.log(`decode, greedy ${steps} tokens from BOS: fp32 ${f32.toFixed(1)} tok/s, binary (BiLLM file) ${bin.toFixed(1)} tok/s (${describeBackend(backend)})`);
}
backend.dispose();
