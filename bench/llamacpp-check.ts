/**
 * `npm run check:llamacpp [-- --tokens N --gen N --threads N --only NAME]`: the GGUF files
 * `bitcrush export --to gguf` writes, run by llama.cpp itself (node-llama-cpp's prebuilt
 * binaries, installed on first use into .cache/llamacpp, never a dependency of the project),
 * against bitcrush running the packed file they came from. Per model × quantization:
 * tokenization of a text in both (identical?), teacher-forced logits of the same tokens (bitcrush:
 * the packed file's dequantized weights in float32, its exact numbers)
 * (max and mean |Δlogit|, argmax agreement, perplexity of each), greedy continuations (same
 * tokens?) and decode tokens/s of both side by side (same thread count, one run, under
 * whatever load the machine has; llama.cpp's KV cache in F32 as bitcrush's), by wall clock and
 * per CPU second of the process (both run in it; on a loaded machine the CPU-time ratio is the one to read). Models: stories260K (llama2.c tokenizer.bin), bench-llama
 * (HF tokenizer.json, SentencePiece-style BPE) and a random-weight Llama 3.2 shaped HF
 * directory (byte-level BPE tokenizer trained here, llama3 RoPE scaling → rope_freqs).
 * llama.cpp's CPU kernels quantize activations to 8 bits for its quantized types, so logits
 * of Q4/Q5/Q8 files differ by that rounding; a layout error (tensor order, q/k rows, RoPE,
 * scales) shows as argmax agreement far below 1. Exit code 1 when a check fails.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ggufChunks } from '../src/io/gguf-file.js';
import { createBackend } from '../src/node/backend.js';
import { loadModel, type LoadedModel } from '../src/node/index.js';
import { LlamaModel } from '../src/runtime/model.js';
import { writeFileAtomic } from '../src/node/atomic-write.js';
import { openRunnable, findRunnableTokenizer } from '../src/node/packed-open.js';
import { ggufMetadata, ggufTensors } from '../src/interop/gguf-write.js';
import { vocabForGguf } from '../src/cli/export-gguf.js';
import { byteBpeTokenizerJson } from './byte-bpe.js';
import { randomHfDir, shared } from './random-hf.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/main.js');
const CACHE = join(ROOT, '.cache/llamacpp');
const NODE_LLAMA_CPP = '3.22.1';
const WORK = join(ROOT, '.cache/llamacpp-check');

const args = process.argv.slice(2);
const opt = (name: string, fallback: string): string => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
};
const nTokens = Number(opt('--tokens', '128'));
const nGen = Number(opt('--gen', '64'));
// llama.cpp's threads spin at barriers: on a machine busier than its cores, 2 threads decode
// ~200× slower than 1, so one thread each is the default here
const threads = Number(opt('--threads', '1'));
const only = opt('--only', '');

/** The part of node-llama-cpp's API used here (it is not a dependency, so its types are not either). */
interface LlamaSequence {
  controlledEvaluate(input: Array<[number, { generateNext: { logits: true } }]>): Promise<Array<{ next?: { logits?: Map<number, number> } } | undefined>>;
  clearHistory(): Promise<void>;
  evaluate(tokens: number[], opts: { temperature: number }): AsyncGenerator<number, void, void | number | number[]>;
}
interface LlamaCppModel {
  tokenize(text: string, specialTokens?: boolean): readonly number[];
  createContext(opts: { contextSize: number; threads: number; batchSize: number; experimentalKvCacheKeyType: string; experimentalKvCacheValueType: string; flashAttention: boolean }): Promise<{ getSequence(): LlamaSequence; dispose(): Promise<void> }>;
  dispose(): Promise<void>;
}
interface NodeLlamaCpp {
  LlamaLogLevel: { error: unknown };
  getLlama(opts: Record<string, unknown>): Promise<{ loadModel(opts: { modelPath: string }): Promise<LlamaCppModel>; dispose(): Promise<void> }>;
}

/** node-llama-cpp (and this platform's prebuilt llama.cpp) from the cache, installed there on first use. */
async function nodeLlamaCpp(): Promise<NodeLlamaCpp> {
  const entry = join(CACHE, 'node_modules/node-llama-cpp/dist/index.js');
  if (!existsSync(entry)) {
    const os = process.platform === 'darwin' ? 'mac' : process.platform === 'win32' ? 'win' : process.platform;
    const prebuilt = `@node-llama-cpp/${os}-${process.arch}${os === 'mac' && process.arch === 'arm64' ? '-metal' : ''}`;
    mkdirSync(CACHE, { recursive: true });
    if (!existsSync(join(CACHE, 'package.json'))) writeFileSync(join(CACHE, 'package.json'), JSON.stringify({ name: 'bitcrush-llamacpp-cache', private: true }));
    console.error(`installing node-llama-cpp@${NODE_LLAMA_CPP} and ${prebuilt} into ${CACHE} (no scripts: the prebuilt binaries are used, nothing is built or downloaded)`);
    const r = spawnSync('npm', ['install', '--prefix', CACHE, '--ignore-scripts', '--omit=optional', '--no-audit', '--no-fund', `node-llama-cpp@${NODE_LLAMA_CPP}`, `${prebuilt}@${NODE_LLAMA_CPP}`], {
      stdio: 'inherit',
      env: { ...process.env, NODE_LLAMA_CPP_SKIP_DOWNLOAD: 'true' },
    });
    if (r.status !== 0 || !existsSync(entry)) throw new Error(`npm install of node-llama-cpp into ${CACHE} failed (exit ${r.status})`);
  }
  return (await import(pathToFileURL(entry).href)) as NodeLlamaCpp;
}

function cli(argv: string[]): void {
  const r = spawnSync(process.execPath, [CLI, ...argv], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bitcrush ${argv.join(' ')} failed (${r.status}): ${r.stderr}`);
}

interface Model {
  name: string;
  /** A model path bitcrush reads. */
  source: string;
  tokenizerArgs: string[];
  variants: Array<{ name: string; quantize?: string[]; control?: 'no-rope-freqs' }>;
}

function llama3Dir(): string {
  const dir = join(WORK, 'llama32-random');
  const text = readFileSync(shared('data/tinystories/heldout.txt'), 'utf8').slice(0, 200_000);
  const tok = byteBpeTokenizerJson(text, 1500);
  mkdirSync(WORK, { recursive: true });
  const tokPath = join(WORK, 'byte-bpe-tokenizer.json');
  writeFileSync(tokPath, JSON.stringify(tok.json));
  // Llama 3.2 1B's config (llama3 RoPE scaling, GQA, head_dim 64, tied embeddings), narrower,
  // and with an original context of 64 instead of 8192, so the scaling changes most
  // frequencies already within the few hundred positions checked here
  randomHfDir(dir, 'llama32', 2, tokPath, {
    hidden_size: 256, intermediate_size: 512, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 64,
    vocab_size: tok.vocabSize, bos_token_id: tok.bos, eos_token_id: tok.eos,
    rope_scaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 },
  });
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<|begin_of_text|>', eos_token: '<|end_of_text|>', add_bos_token: true }));
  return dir;
}

const STORIES = shared('models/stories260K/stories260K.bin');
const MODELS: Model[] = [
  {
    name: 'stories260K',
    source: STORIES,
    tokenizerArgs: ['--tokenizer', shared('models/stories260K/tok512.bin')],
    variants: [
      { name: 'f32' },
      { name: 'rtn4-asym-g32', quantize: ['--method', 'rtn', '--bits', '4', '--group-size', '32'] },
      { name: 'rtn8-sym-g32', quantize: ['--method', 'rtn', '--bits', '8', '--sym', '--group-size', '32'] },
      { name: 'gptq4-asym-g32', quantize: ['--method', 'gptq', '--bits', '4', '--group-size', '32', '--calib', shared('data/tinystories/heldout.txt'), '--nsamples', '16', '--seqlen', '128'] },
    ],
  },
  {
    name: 'bench-llama',
    source: shared('models/bench-llama'),
    tokenizerArgs: [],
    variants: [
      { name: 'rtn4-sym-g32', quantize: ['--method', 'rtn', '--bits', '4', '--sym', '--group-size', '32', '--embed-bits', '16', '--head-bits', '16'] },
      { name: 'rtn8-sym-g32', quantize: ['--method', 'rtn', '--bits', '8', '--sym', '--group-size', '32'] },
    ],
  },
  {
    name: 'llama32-random',
    source: '', // made on demand
    tokenizerArgs: [],
    variants: [
      { name: 'bf16' },
      { name: 'rtn4-asym-g32', quantize: ['--method', 'rtn', '--bits', '4', '--group-size', '32'] },
      { name: 'rtn8-sym-g32', quantize: ['--method', 'rtn', '--bits', '8', '--sym', '--group-size', '32'] },
      { name: 'bf16 without rope_freqs (control: must disagree)', control: 'no-rope-freqs' },
    ],
  },
];

function logSoftmaxAt(row: Float32Array, t: number): number {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let s = 0;
  for (const v of row) s += Math.exp(v - max);
  return row[t]! - max - Math.log(s);
}

const argmax = (row: Float32Array): number => row.reduce((b, v, i, a) => (v > a[b]! ? i : b), 0);

/** CPU seconds of the whole process (every thread: llama.cpp's run in-process) since c0. */
function cpuSeconds(c0: NodeJS.CpuUsage): number {
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1e6;
}

/**
 * Greedy continuation by bitcrush, and its decode tokens/s (one token per forward), by wall clock
 * and by the process's CPU time (what a loaded machine can compare: time-slicing by other jobs
 * does not count).
 */
function bitcrushGreedy(m: LoadedModel, prompt: number[], n: number): { tokens: number[]; tokPerS: number; cpuTokPerS: number } {
  let logits = m.model.forward(prompt, 0, 'last');
  const out: number[] = [];
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const t = argmax(logits);
    out.push(t);
    if (i + 1 < n) logits = m.model.forward([t], prompt.length + i, 'last');
  }
  return { tokens: out, tokPerS: (n - 1) / ((performance.now() - t0) / 1000), cpuTokPerS: (n - 1) / cpuSeconds(c0) };
}

async function main(): Promise<void> {
  const nlc = await nodeLlamaCpp();
  const llama = await nlc.getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, progressLogs: false, logLevel: nlc.LlamaLogLevel.error });
  const text = readFileSync(shared('data/tinystories/heldout.txt'), 'utf8').slice(1000, 4000);
  const backend = createBackend({ threads });
  mkdirSync(WORK, { recursive: true });
  let failed = 0;
  const rows: string[] = [];
  for (const m of MODELS) {
    if (only !== '' && !m.name.includes(only)) continue;
    const source = m.name === 'llama32-random' ? llama3Dir() : m.source;
    for (const v of m.variants) {
      const base = join(WORK, `${m.name}-${v.name.split(' ')[0]}`);
      const packed = v.quantize ? `${base}.bcq` : source;
      if (v.quantize && !existsSync(packed)) cli(['quantize', source, ...v.quantize, '--out', packed]);
      const gguf = `${base}${v.control ? '-control' : ''}.gguf`;
      if (v.control === 'no-rope-freqs') {
        const r = openRunnable(source);
        const vocab = vocabForGguf(findRunnableTokenizer(source, r), source);
        const tensors = ggufTensors(r.source, r.packed).filter((t) => t.name !== 'rope_freqs.weight');
        writeFileAtomic(gguf, ggufChunks(ggufMetadata(r.source.config, vocab, m.name), tensors));
      } else cli(['export', packed, '--to', 'gguf', '--out', gguf, '--float-fallback', ...m.tokenizerArgs]);

      const bc = loadModel(packed, { backend, tokenizer: m.tokenizerArgs[1] });
      const ours = bc.tokenizer.encode(text, false);
      const lm = await llama.loadModel({ modelPath: gguf });
      const theirs = Array.from(lm.tokenize(text, false));
      const firstDiff = ours.findIndex((t, i) => t !== theirs[i]);
      const sameTokens = firstDiff < 0 && ours.length === theirs.length;
      const bos = bc.tokenizer.bosId!;
      const tokens = [bos, ...ours].slice(0, nTokens + 1);
      // teacher-forced logits of the same tokens
      const ctx = await lm.createContext({ contextSize: Math.max(256, nTokens + nGen + 8), threads, batchSize: nTokens + 1, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32', flashAttention: false });
      const seq = ctx.getSequence();
      const res = await seq.controlledEvaluate(tokens.map((t) => [t, { generateNext: { logits: true } }]));
      const V = bc.source.config.vocabSize;
      // the file's exact numbers: its weights dequantized, dense float32 (the packed kernels,
      // used for the greedy run and its speed, may round activations to int8 in prefill)
      const exact = new LlamaModel(bc.source, { backend });
      const ref = exact.forward(tokens, 0, 'all');
      exact.dispose();
      let maxAbs = 0;
      let sumAbs = 0;
      let agree = 0;
      let nllOurs = 0;
      let nllTheirs = 0;
      for (let p = 0; p < tokens.length; p++) {
        const map = res[p]?.next?.logits;
        if (!map) throw new Error(`llama.cpp gave no logits at position ${p}`);
        const row = new Float32Array(V);
        for (const [t, l] of map) row[t as number] = l;
        const mine = ref.subarray(p * V, (p + 1) * V);
        for (let i = 0; i < V; i++) {
          const d = Math.abs(row[i]! - mine[i]!);
          maxAbs = Math.max(maxAbs, d);
          sumAbs += d;
        }
        if (argmax(row) === argmax(mine)) agree++;
        if (p + 1 < tokens.length) {
          nllOurs -= logSoftmaxAt(mine, tokens[p + 1]!);
          nllTheirs -= logSoftmaxAt(row, tokens[p + 1]!);
        }
      }
      const pplOurs = Math.exp(nllOurs / (tokens.length - 1));
      const pplTheirs = Math.exp(nllTheirs / (tokens.length - 1));
      // greedy continuations and decode speed
      const prompt = tokens.slice(0, 9);
      const g = bitcrushGreedy(bc, prompt, nGen);
      await seq.clearHistory();
      const theirGen: number[] = [];
      let t0 = 0;
      let c0 = process.cpuUsage();
      for await (const t of seq.evaluate(prompt, { temperature: 0 })) {
        if (theirGen.length === 0) {
          t0 = performance.now();
          c0 = process.cpuUsage();
        }
        theirGen.push(t as number);
        if (theirGen.length >= nGen) break;
      }
      const theirTps = (nGen - 1) / ((performance.now() - t0) / 1000);
      const theirCpuTps = (nGen - 1) / cpuSeconds(c0);
      const sameGen = g.tokens.filter((t, i) => t === theirGen[i]).length;
      let firstGenDiff = g.tokens.findIndex((t, i) => t !== theirGen[i]);
      if (firstGenDiff < 0) firstGenDiff = nGen;
      const agreement = agree / tokens.length;
      const pplRel = Math.abs(pplTheirs / pplOurs - 1);
      const control = v.control !== undefined;
      const ok = control ? agreement < 0.85 || pplRel > 0.02 : sameTokens && agreement >= 0.85 && pplRel <= 0.02;
      if (!ok) failed++;
      const line = {
        model: m.name,
        variant: v.name,
        gguf: gguf.slice(ROOT.length),
        tokenizer: sameTokens ? `same ${ours.length} tokens` : `DIFFERENT: ${ours.length} vs ${theirs.length}, first at ${firstDiff}`,
        positions: tokens.length,
        maxAbsDLogit: Number(maxAbs.toPrecision(3)),
        meanAbsDLogit: Number((sumAbs / (tokens.length * V)).toPrecision(3)),
        argmaxAgreement: Number(agreement.toFixed(4)),
        pplBitcrush: Number(pplOurs.toFixed(4)),
        pplLlamaCpp: Number(pplTheirs.toFixed(4)),
        greedySame: `${sameGen}/${nGen} (first difference at ${firstGenDiff})`,
        decodeTokPerS: { bitcrush: Number(g.tokPerS.toFixed(1)), llamaCpp: Number(theirTps.toFixed(1)), threads },
        decodeTokPerCpuS: { bitcrush: Number(g.cpuTokPerS.toFixed(1)), llamaCpp: Number(theirCpuTps.toFixed(1)) },
        ok,
      };
      console.log(JSON.stringify(line));
      rows.push(`| ${m.name} | ${v.name} | ${line.tokenizer} | ${line.maxAbsDLogit} | ${line.meanAbsDLogit} | ${line.argmaxAgreement} | ${line.pplBitcrush} / ${line.pplLlamaCpp} | ${line.greedySame} | ${line.decodeTokPerS.bitcrush} / ${line.decodeTokPerS.llamaCpp} | ${line.decodeTokPerCpuS.bitcrush} / ${line.decodeTokPerCpuS.llamaCpp} | ${ok ? 'ok' : 'FAIL'} |`);
      await ctx.dispose();
      await lm.dispose();
      bc.dispose();
    }
  }
  backend.dispose();
  console.log(`\n| model | variant | tokenization | max abs Δlogit | mean abs Δlogit | argmax agreement | ppl bitcrush / llama.cpp | greedy same | decode tok/s bitcrush / llama.cpp (${threads} threads) | tok per CPU s | |`);
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) console.log(r);
  await llama.dispose();
  if (failed > 0) {
    console.error(`${failed} check(s) failed`);
    process.exitCode = 1;
  }
}

await main();
