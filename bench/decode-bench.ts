/**
 * `npm run bench:decode`: decode and prefill speed against the machine's read bandwidth, one run,
 * side by side. A random-weight model with TinyLlama-1.1B's shapes (../shared/models/configs/
 * tinyllama.json; 8 of its 22 layers unless --full) runs as fp32 and as one packed file per format
 * family (random payloads packed by the registry: speed does not depend on the values; head and
 * embedding as the whole-model default of `bitcrush quantize`, uniform 4-bit g128, src/cli/whole-flags.ts), at 1 and 2
 * threads, on the native backend's own kernels and, for comparison, with the packed layers on the
 * wasm kernels the native backend lends (`native+wasm`, what ran before the native low-bit kernels).
 *
 * Per row: load seconds (packed files; '-' for fp32, generated in memory), its CPU time, and the part of it
 * spent on the packed block linears ("lin load": blob reads, checks, kernel setup), decode tok/s (best of --reps runs of --tokens tokens from position 0),
 * prefill tok/s (best of --reps forwards of --prefill tokens; for the uniform, mixed, AQLM and binary files on
 * `native` also "tiles": the same prefill with lowbit.int8Prefill off, the dequantized float32
 * tiles + sgemm that ran before the int8 GEMM / AQLM's int8-table GEMM), weight bytes read per decoded token
 * (every linear's packed bytes, the head, one embedding row; the KV cache at these short
 * positions is < 1 %), the bandwidth that implies, and its % of the streaming-sum probe at the
 * same thread count (the "bandwidth limit"); then the block linears alone (one matvec each, the
 * packed kernels without the float32 head): ms per token and % of the limit. The machine is shared: the load average is printed
 * before and after, and every figure is a best of repeats.
 *
 * Options: --full, --threads 1,2, --tokens 32, --prefill 128, --reps 3, --formats a,b (labels
 * below; "uniform B-bit g32" / "g64" for B = 2, 3, 4, 8 by name only), --cache DIR (packed files, made once; default $TMPDIR/bitcrush-bench-decode),
 * --no-compare (skip native+wasm rows), --json.
 * `--backend wasm`: the wasm backend instead (Node without the addon, the browser's kernels):
 * `wasm` = the SIMD128 module, `wasm relaxed` = wasm/kernels-relaxed.wasm (only where the engine
 * has relaxed SIMD: run node --experimental-wasm-relaxed-simd), `wasm float` = the SIMD128
 * module with floatActivations (the float kernels; skipped by --no-compare). "decode tok/CPU-s"
 * counts the process's CPU time (all threads) instead of the wall clock: the figure a loaded
 * machine still measures at one thread; so do the last three columns ("cpu: prefill", tiles,
 * linears ms) for the prefill, the tiles prefill and the block linears.
 */
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend } from '../src/backend/types.js';
import { lowbitKernelsOf } from '../src/formats/lowbit-kernels.js';
import { getFormat, packedBytes } from '../src/formats/registry.js';
import type { PackedTensor } from '../src/formats/types.js';
import { parseHfConfig } from '../src/io/hf.js';
import type { LlamaConfig } from '../src/model/config.js';
import { DEFAULT_EMBED_BITS, DEFAULT_HEAD_BITS, DEFAULT_WHOLE_GROUP } from '../src/cli/whole-flags.js';
import { EMBED, expectedShapes, LINEARS, LM_HEAD, layerTensor, type ModelSource, type TensorInfo } from '../src/model/weights.js';
import { createWasmBackendNode } from '../src/node/backend.js';
import { relaxedSimdAvailable } from '../src/backend/wasm-kernels.js';
import { writeFileAtomic } from '../src/node/atomic-write.js';
import { FileSource } from '../src/node/fs.js';
import { loadNativeBackend } from '../src/node/native.js';
import { PackedModel } from '../src/packed/reader.js';
import { planPackedModel } from '../src/packed/writer.js';
import { LlamaModel } from '../src/runtime/model.js';
import { probeBandwidth } from './bandwidth.js';
import { shared } from './suite.js';

const args = process.argv.slice(2);
const arg = (name: string, fallback: string) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
};
const json = args.includes('--json');
const full = args.includes('--full');
const threadList = arg('--threads', '1,2').split(',').map(Number);
const tokens = Number(arg('--tokens', '32'));
const prefill = Number(arg('--prefill', '128'));
const reps = Number(arg('--reps', '3'));
const cache = arg('--cache', join(tmpdir(), 'bitcrush-bench-decode'));
const compare = !args.includes('--no-compare');
const backendKind = arg('--backend', 'native');
if (backendKind !== 'native' && backendKind !== 'wasm') throw new Error(`--backend must be native or wasm (got '${backendKind}')`);
const log = (s: string) => {
  if (!json) console.log(s);
  else process.stderr.write(`${s}\n`);
};

/** One packed file per family (and every uniform width the targets name), params by tensor shape. */
interface FileSpec {
  label: string;
  format: string;
  params: (outDim: number, inDim: number) => object;
}
const G = 128;
const FILES: FileSpec[] = [
  ...[2, 3, 4, 8].map((bits) => ({ label: `uniform ${bits}-bit g128`, format: 'uniform-asym', params: () => ({ bits, groupSize: G, actOrder: false }) })),
  {
    // SliM-like 2-bit average: a third of the groups at 1, 2 and 3 bits each
    label: 'mixed 1/2/3-bit g128',
    format: 'mixed-asym',
    params: (_o, inDim) => {
      const nG = Math.ceil(inDim / G), k = Math.round(nG / 3);
      return { groupSize: G, groups: [k, nG - 2 * k, k, 0], lastBits: 2 };
    },
  },
  { label: 'codebook AQLM 2x8 g8', format: 'aqlm', params: () => ({ M: 2, B: 8, g: 8 }) },
  { label: 'binary BiLLM b128', format: 'binary-billm', params: (_o, inDim) => ({ blockSize: 128, salientColumns: Math.round(inDim / 32) }) },
];
/**
 * Asked for by name only (not in the default run): uniform groups of 32 and 64 columns, the
 * group size of GGUF Q4_0/Q8_0 and of many GPTQ checkpoints (several groups per int8 block).
 */
const GROUPED: FileSpec[] = [32, 64].flatMap((groupSize) =>
  [2, 3, 4, 8].map((bits) => ({ label: `uniform ${bits}-bit g${groupSize}`, format: 'uniform-asym', params: () => ({ bits, groupSize, actOrder: false }) })),
);
const wanted = arg('--formats', FILES.map((f) => f.label).join(',')).split(',');
const unknown = wanted.filter((w) => ![...FILES, ...GROUPED].some((f) => f.label === w));
if (unknown.length > 0) {
  console.error(`bench:decode: unknown --formats ${unknown.map((u) => JSON.stringify(u)).join(', ')} (known: ${[...FILES, ...GROUPED].map((f) => f.label).join(', ')})`);
  process.exit(2);
}

/** Seeded uniform [0, 1): an LCG, fast enough to fill a billion weights. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function nameSeed(name: string): number {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** The random model: norms 1, every matrix uniform with std 0.02 (HF's initializer_range). */
class RandomSource implements ModelSource {
  readonly name = 'random TinyLlama-shaped model';
  private readonly shapes: Map<string, number[]>;
  constructor(readonly config: LlamaConfig) {
    this.shapes = expectedShapes(config);
  }
  tensors(): TensorInfo[] {
    return [...this.shapes].map(([name, shape]) => ({ name, shape }));
  }
  load(name: string): Float32Array {
    const shape = this.shapes.get(name)!;
    const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (shape.length === 1) return out.fill(1);
    const rand = lcg(nameSeed(name));
    const a = 0.02 * Math.sqrt(3);
    for (let i = 0; i < out.length; i++) out[i] = (2 * rand() - 1) * a;
    return out;
  }
}

function benchConfig(): LlamaConfig {
  const file = shared('models/configs/tinyllama.json');
  const raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  if (!full) raw.num_hidden_layers = 8;
  return parseHfConfig(file, raw);
}

function linearNames(c: LlamaConfig): string[] {
  const names: string[] = [];
  for (let l = 0; l < c.nLayers; l++) for (const part of LINEARS) names.push(layerTensor(l, part));
  return names;
}

/** The packed file of `spec` in the cache dir, made (random payloads, atomic write) unless present. */
function packedFile(spec: FileSpec, c: LlamaConfig, source: RandomSource): string {
  mkdirSync(cache, { recursive: true });
  const path = join(cache, `${spec.label.replace(/[^a-z0-9]+/gi, '-')}-L${c.nLayers}-v2.bcq`);
  if (existsSync(path)) return path;
  const t0 = performance.now();
  const format = getFormat(spec.format);
  const shapes = expectedShapes(c);
  const packed = new Map<string, PackedTensor>();
  const names = linearNames(c);
  for (const [i, name] of names.entries()) {
    const [outDim, inDim] = shapes.get(name)! as [number, number];
    const params = spec.params(outDim, inDim) as never;
    packed.set(name, format.pack(format.randomPayload(outDim, inDim, params, lcg(nameSeed(name)))));
    if (i % 7 === 6) log(`  making ${spec.label}: ${i + 1}/${names.length} tensors, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  // head and embedding: the whole-model default (RTN uniform 4-bit g128 rows, random payloads here)
  const uniform = getFormat('uniform-asym');
  for (const [name, bits] of [[LM_HEAD, DEFAULT_HEAD_BITS], [EMBED, DEFAULT_EMBED_BITS]] as const) {
    packed.set(name, uniform.pack(uniform.randomPayload(c.vocabSize, c.dim, { bits, groupSize: DEFAULT_WHOLE_GROUP, actOrder: false } as never, lcg(nameSeed(name)))));
  }
  const plan = planPackedModel({ config: c, method: { name: 'random', options: { bench: 'bench:decode' } }, source, packed });
  writeFileAtomic(path, plan.chunks(), { expectedSize: plan.size });
  log(`  made ${path} (${(plan.size / 1e6).toFixed(0)} MB) in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  return path;
}

/** Weight bytes one decoded token reads: every linear, the head, one embedding row (packed files: the 4-bit defaults; fp32: float32). */
function bytesPerToken(c: LlamaConfig, linearBytes: number, packed: boolean): number {
  if (!packed) return linearBytes + c.vocabSize * c.dim * 4 + c.dim * 4;
  const uniform = getFormat('uniform-asym');
  const bytes = (bits: number) => packedBytes(uniform, c.vocabSize, c.dim, { bits, groupSize: DEFAULT_WHOLE_GROUP, actOrder: false } as never);
  return linearBytes + bytes(DEFAULT_HEAD_BITS) + bytes(DEFAULT_EMBED_BITS) / c.vocabSize;
}

interface Row {
  weights: string;
  engine: string;
  threads: number;
  loadSeconds: number;
  /** CPU time (user + system, all threads) of the load: what a busy machine can still measure. */
  loadCpuSeconds: number;
  /** Of loadSeconds, the packed block linears (reading their blobs, checks, kernel setup). */
  linearLoadSeconds: number;
  decodeTokS: number;
  decodeCpuTokS: number;
  prefillTokS: number;
  /** The same prefill on dequantized tiles + sgemm (int8Prefill off), where the int8 GEMM serves the file. */
  prefillTilesTokS: number | null;
  bytesPerToken: number;
  gbPerS: number;
  bandwidthPct: number;
  /** The block linears alone (one matvec each): seconds per token and % of the bandwidth limit. */
  linearSeconds: number;
  linearBandwidthPct: number;
  /** The same prefill, tiles and linears by the process's CPU time (user + system, all threads; best of reps). */
  prefillCpuTokS: number;
  prefillTilesCpuTokS: number | null;
  linearCpuSeconds: number;
}

/** Best wall and best CPU seconds (process.cpuUsage: every thread) of `reps` runs of fn. */
function timed(fn: () => void, n = reps): { wall: number; cpu: number } {
  let wall = Infinity;
  let cpu = Infinity;
  for (let r = 0; r < n; r++) {
    const c0 = process.cpuUsage();
    const t = performance.now();
    fn();
    wall = Math.min(wall, (performance.now() - t) / 1000);
    const c = process.cpuUsage(c0);
    cpu = Math.min(cpu, (c.user + c.system) / 1e6);
  }
  return { wall, cpu };
}

/** Seconds (wall, CPU) for one matvec through every block linear (activations in backend memory, as in decode), best of reps. */
function linearSeconds(model: LlamaModel, be: Backend): { wall: number; cpu: number } {
  const io = model.weights.layers.flatMap((l) => [l.wq, l.wk, l.wv, l.wo, l.w1, l.w2, l.w3]).map((l) => {
    const x = be.alloc(l.inDim);
    for (let i = 0; i < l.inDim; i++) x[i] = Math.sin(i) * 0.5;
    return { l, x, y: be.alloc(l.outDim) };
  });
  for (const { l, x, y } of io) l.matvec(y, x); // warm-up
  const best = timed(() => {
    for (const { l, x, y } of io) l.matvec(y, x);
  });
  for (const { x, y } of io) {
    be.free?.(x);
    be.free?.(y);
  }
  return best;
}

function measure(
  c: LlamaConfig, open: (be: Backend) => LlamaModel, be: Backend, tilesToo: boolean,
): {
  load: number; loadCpu: number; decode: number; decodeCpu: number; prefill: number; prefillTiles: number | null; linear: number;
  prefillCpu: number; prefillTilesCpu: number | null; linearCpu: number;
} {
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const model = open(be);
  const load = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const loadCpu = (cpu.user + cpu.system) / 1e6;
  try {
    const tok = (i: number) => (i * 7919 + 1) % c.vocabSize;
    const decodeRun = (n: number) => {
      for (let pos = 0; pos < n; pos++) model.forward([tok(pos)], pos, 'last');
    };
    decodeRun(4); // warm-up: JIT, first touch of weights and scratch
    let best = Infinity;
    let bestCpu = Infinity;
    for (let r = 0; r < reps; r++) {
      const t = performance.now();
      const c0 = process.cpuUsage();
      decodeRun(tokens);
      const dc = process.cpuUsage(c0);
      best = Math.min(best, (performance.now() - t) / 1000);
      bestCpu = Math.min(bestCpu, (dc.user + dc.system) / 1e6);
    }
    const prompt = Array.from({ length: prefill }, (_, i) => tok(i));
    const prefillSeconds = () => {
      model.forward(prompt, 0, 'last');
      return timed(() => model.forward(prompt, 0, 'last'));
    };
    const bestP = prefillSeconds();
    const lowbit = lowbitKernelsOf(be);
    let tiles: { wall: number; cpu: number } | null = null;
    if (tilesToo && lowbit?.int8Prefill) {
      lowbit.int8Prefill = false;
      try {
        tiles = prefillSeconds();
      } finally {
        lowbit.int8Prefill = true;
      }
    }
    const lin = linearSeconds(model, be);
    return {
      load, loadCpu, decode: tokens / best, decodeCpu: tokens / bestCpu, prefill: prefill / bestP.wall, prefillTiles: tiles && prefill / tiles.wall, linear: lin.wall,
      prefillCpu: prefill / bestP.cpu, prefillTilesCpu: tiles && prefill / tiles.cpu, linearCpu: lin.cpu,
    };
  } finally {
    model.dispose();
  }
}

function main(): void {
  const c = benchConfig();
  const source = new RandomSource(c);
  const la0 = loadavg();
  log(`bench:decode — TinyLlama-1.1B shapes, ${c.nLayers} layers (dim ${c.dim}, hidden ${c.hiddenDim}, ${c.nHeads}/${c.nKvHeads} heads, vocab ${c.vocabSize}), random weights`);
  log(`load average ${la0.map((v) => v.toFixed(2)).join(' ')}; decode: best of ${reps} × ${tokens} tokens; prefill: best of ${reps} × ${prefill} tokens`);
  // the limit is the best probe of the whole run: the probe is re-run before every row, so a
  // busy moment at the start cannot lower it (every row's % is recomputed at the end)
  const bandwidth = new Map<number, number>();
  const probe = (t: number) => {
    const probeBe = loadNativeBackend(t).backend;
    if (!probeBe) throw new Error('bench:decode needs the native addon (npm run build:native)');
    bandwidth.set(t, Math.max(bandwidth.get(t) ?? 0, probeBandwidth(probeBe, 3)));
    probeBe.dispose();
  };
  for (const t of threadList) {
    probe(t);
    log(`read bandwidth (streaming sum of 512 MiB, best of 3), ${t} thread${t > 1 ? 's' : ''}: ${(bandwidth.get(t)! / 1e9).toFixed(1)} GB/s`);
  }

  const rows: Row[] = [];
  const bandwidthAt = new Map<Row, number>(); // the limit each row was first printed against
  const head = ['weights', 'engine', 'thr', 'load s', 'load cpu', 'lin load', 'decode tok/s', 'tok/CPU-s', 'prefill tok/s', 'tiles', 'MB/token', 'GB/s', '% of bw', 'linears ms', 'lin % bw', 'cpu: prefill', 'tiles', 'linears ms'];
  const widths = [31, 12, 3, 6, 8, 8, 12, 9, 13, 6, 8, 6, 7, 10, 8, 12, 6, 10];
  const line = (cells: string[]) => log('  ' + cells.map((x, i) => (i < 2 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join(' '));
  const files: Array<{ label: string; path: string | null; linearBytes: number; gemm: boolean }> = [];
  const shapes = expectedShapes(c);
  files.push({ label: 'fp32', path: null, linearBytes: linearNames(c).reduce((s, n) => s + shapes.get(n)!.reduce((a, b) => a * b, 1) * 4, 0), gemm: false });
  for (const spec of [...FILES, ...GROUPED].filter((f) => wanted.includes(f.label))) {
    const path = packedFile(spec, c, source);
    const format = getFormat(spec.format);
    const linearBytes = linearNames(c).reduce((s, n) => {
      const [o, i] = shapes.get(n)! as [number, number];
      return s + packedBytes(format, o, i, spec.params(o, i) as never);
    }, 0);
    // the int8 GEMM serves the uniform and mixed families (128-column groups here), AQLM its
    // int8-table GEMM, the binary family the binary GEMM (where the CPU has AVX-512 VNNI)
    const gemm = spec.format.startsWith('uniform') || spec.format.startsWith('mixed') || spec.format === 'aqlm' || spec.format.startsWith('binary');
    files.push({ label: `${spec.label} (${(statSync(path).size / 1e9).toFixed(2)} GB)`, path, linearBytes, gemm });
  }
  log('');
  line(head);
  for (const f of files) {
    for (const t of threadList) {
      const engines: Array<{ name: string; lowbit: boolean; make: () => Backend }> = [];
      if (backendKind === 'native') {
        engines.push({ name: 'native', lowbit: true, make: () => loadNativeBackend(t, () => createWasmBackendNode(t), { lowbit: true }).backend! });
        if (compare && f.path !== null) engines.push({ name: 'native+wasm', lowbit: false, make: () => loadNativeBackend(t, () => createWasmBackendNode(t), { lowbit: false }).backend! });
      } else {
        engines.push({ name: 'wasm', lowbit: false, make: () => createWasmBackendNode(t, 'simd128') });
        // fp32 runs the same sgemv/sgemm objects in both modules (scripts/build-wasm.sh): one row
        if (relaxedSimdAvailable() && f.path !== null) engines.push({ name: 'wasm relaxed', lowbit: false, make: () => createWasmBackendNode(t, 'relaxed') });
        if (compare && f.path !== null) engines.push({ name: 'wasm float', lowbit: false, make: () => Object.assign(createWasmBackendNode(t, 'simd128'), { floatActivations: true }) });
      }
      for (const e of engines) {
        probe(t);
        const be = e.make();
        let packedLoad = 0;
        try {
          const open = (b: Backend) => {
            if (f.path === null) return new LlamaModel(source, { backend: b, maxRows: prefill });
            const packed = new PackedModel(new FileSource(f.path));
            const factory = packed.linears(b);
            const blockLinears = new Set(linearNames(c));
            // times the packed block linears' construction apart from the float32 head and embedding
            const linear: typeof factory = (name, src) => {
              const t = performance.now();
              const lin = factory(name, src);
              if (blockLinears.has(name)) packedLoad += (performance.now() - t) / 1000;
              return lin;
            };
            return new LlamaModel(packed, { backend: b, linear, maxRows: prefill });
          };
          const m = measure(c, open, be, e.lowbit && f.gemm);
          const bpt = bytesPerToken(c, f.linearBytes, f.path !== null);
          const gbs = (bpt * m.decode) / 1e9;
          const row: Row = {
            weights: f.label, engine: e.name, threads: t, loadSeconds: m.load, loadCpuSeconds: m.loadCpu, linearLoadSeconds: packedLoad, decodeTokS: m.decode, decodeCpuTokS: m.decodeCpu, prefillTokS: m.prefill, prefillTilesTokS: m.prefillTiles,
            bytesPerToken: bpt, gbPerS: gbs, bandwidthPct: (100 * gbs * 1e9) / bandwidth.get(t)!,
            linearSeconds: m.linear, linearBandwidthPct: (100 * f.linearBytes) / m.linear / bandwidth.get(t)!,
            prefillCpuTokS: m.prefillCpu, prefillTilesCpuTokS: m.prefillTilesCpu, linearCpuSeconds: m.linearCpu,
          };
          rows.push(row);
          bandwidthAt.set(row, bandwidth.get(t)!);
          line([
            f.label, e.name, String(t), f.path === null ? '-' : m.load.toFixed(2), f.path === null ? '-' : m.loadCpu.toFixed(2), f.path === null ? '-' : packedLoad.toFixed(2), m.decode.toFixed(1), m.decodeCpu.toFixed(1), m.prefill.toFixed(1), m.prefillTiles === null ? '-' : m.prefillTiles.toFixed(1), (bpt / 1e6).toFixed(0),
            gbs.toFixed(1), row.bandwidthPct.toFixed(0), (m.linear * 1000).toFixed(2), row.linearBandwidthPct.toFixed(0),
            m.prefillCpu.toFixed(1), m.prefillTilesCpu === null ? '-' : m.prefillTilesCpu.toFixed(1), (m.linearCpu * 1000).toFixed(2),
          ]);
        } finally {
          be.dispose();
        }
      }
    }
  }
  const la1 = loadavg();
  log(`\nread bandwidth, best probe of the run: ${threadList.map((t) => `${t} thread${t > 1 ? 's' : ''} ${(bandwidth.get(t)! / 1e9).toFixed(1)} GB/s`).join(', ')}; the table again against it:`);
  line(head);
  for (const r of rows) {
    const bw = bandwidth.get(r.threads)!;
    r.bandwidthPct = (100 * r.gbPerS * 1e9) / bw;
    r.linearBandwidthPct = (100 * (r.linearBandwidthPct / 100) * bandwidthAt.get(r)!) / bw;
    line([
      r.weights, r.engine, String(r.threads), r.weights === 'fp32' ? '-' : r.loadSeconds.toFixed(2), r.weights === 'fp32' ? '-' : r.loadCpuSeconds.toFixed(2), r.weights === 'fp32' ? '-' : r.linearLoadSeconds.toFixed(2), r.decodeTokS.toFixed(1), r.decodeCpuTokS.toFixed(1), r.prefillTokS.toFixed(1),
      r.prefillTilesTokS === null ? '-' : r.prefillTilesTokS.toFixed(1), (r.bytesPerToken / 1e6).toFixed(0), r.gbPerS.toFixed(1), r.bandwidthPct.toFixed(0), (r.linearSeconds * 1000).toFixed(2), r.linearBandwidthPct.toFixed(0),
      r.prefillCpuTokS.toFixed(1), r.prefillTilesCpuTokS === null ? '-' : r.prefillTilesCpuTokS.toFixed(1), (r.linearCpuSeconds * 1000).toFixed(2),
    ]);
  }
  log(`load average after: ${la1.map((v) => v.toFixed(2)).join(' ')}`);
  if (json) {
    console.log(JSON.stringify({ config: c, tokens, prefill, reps, loadAverage: { before: la0, after: la1 }, bandwidth: Object.fromEntries(bandwidth), rows }, null, 2));
  }
}

main();
