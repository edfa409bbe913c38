/**
 * What `npm run bench` measures per run: `bitcrush quantize --json` as a child process (its own
 * peak RSS and timer), then, in this process on the packed file, perplexity per text, decode and
 * prefill tokens/s, and the per-layer bit maps of mixed-precision files. Also the machine,
 * versions and commit the results belong to.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { cpus, loadavg, release, totalmem, type } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backend } from '../src/backend/types.js';
import { perplexity } from '../src/eval/perplexity.js';
import { groupBitMap } from '../src/formats/mixed.js';
import { FileSource, nodeFs } from '../src/node/fs.js';
import { openModel } from '../src/io/load.js';
import { loadModel } from '../src/node/index.js';
import { PackedModel } from '../src/packed/reader.js';
import { roleOf } from '../src/packed/size.js';
import type { BitMapRow, PerplexityRecord, ResultsFile } from '../src/report/results.js';
import { benchDecodeTokensPerSecond } from './decode.js';
import type { EvalSpec, ModelSpec, RunSpec } from './suite.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const REPO = fileURLToPath(new URL('../../', import.meta.url));

export function machineInfo(): ResultsFile['machine'] {
  const c = cpus();
  return {
    cpu: c[0]?.model.trim() ?? 'unknown',
    cores: c.length,
    memoryGiB: Number((totalmem() / 2 ** 30).toFixed(1)),
    os: `${type()} ${release()}`,
    loadAverage: loadavg().map((v) => Number(v.toFixed(2))),
  };
}

export function versions(): ResultsFile['versions'] {
  let npm = 'unknown';
  try {
    npm = execFileSync('npm', ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    // npm missing from PATH: record that rather than fail the benchmark
  }
  return { node: process.version, npm };
}

export function gitCommit(): ResultsFile['commit'] {
  try {
    const hash = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).trim();
    const status = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', 'src', 'bench', 'csrc', 'native'], { cwd: REPO, encoding: 'utf8' });
    return { hash, dirty: status.trim() !== '' };
  } catch {
    return { hash: 'unknown', dirty: true };
  }
}

export interface QuantizeResult {
  file: string;
  options: Record<string, unknown>;
  fileBpw: number;
  linearBpw: number;
  modelBpw: number;
  fileBytes: number;
  quantizeSeconds: number;
  wallSeconds: number;
  peakRssMiB: number;
}

/**
 * `bitcrush quantize` in a child process; throws with its stderr tail (the progress line says how
 * far it got) when it fails or runs past `timeoutSeconds`.
 */
export function quantize(m: ModelSpec, run: RunSpec, outFile: string, backend: { kind: string; threads: number }, timeoutSeconds?: number): QuantizeResult {
  const args = [
    CLI, 'quantize', m.path, '--method', run.method, ...run.flags,
    '--calib', m.calib, '--nsamples', String(m.nsamples), '--seqlen', String(m.seqlen), '--seed', '1',
    '--backend', backend.kind, '--threads', String(backend.threads), '--out', outFile, '--json',
  ];
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 28, timeout: timeoutSeconds === undefined ? undefined : timeoutSeconds * 1000 });
  const wallSeconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) {
    const tail = (r.stderr ?? '').split(/\r|\n/).filter((l) => l.trim() !== '').slice(-3).join(' | ');
    const timedOut = timeoutSeconds !== undefined && r.signal !== null && wallSeconds >= timeoutSeconds;
    const how = timedOut ? `stopped at the bench's limit of ${timeoutSeconds} s` : `quantize exited with ${r.status ?? r.signal} after ${wallSeconds.toFixed(0)} s`;
    throw new Error(`${how}: ${tail}`);
  }
  const s = JSON.parse(r.stdout) as Omit<QuantizeResult, 'file' | 'wallSeconds'>;
  return {
    file: outFile,
    options: s.options,
    fileBpw: s.fileBpw,
    linearBpw: s.linearBpw,
    modelBpw: s.modelBpw,
    fileBytes: s.fileBytes,
    quantizeSeconds: s.quantizeSeconds,
    wallSeconds,
    peakRssMiB: s.peakRssMiB,
  };
}

export interface ModelMeasurements {
  perplexity: PerplexityRecord[];
  decodeTokensPerSecond: number;
  prefillTokensPerSecond: number;
}

/**
 * Perplexities of a model file (fp32 or packed) on the texts, then its decode and prefill speed.
 * Speeds are the best of `repeats` short measurements: on a machine shared with other jobs the
 * fastest repetition is the one least slowed by them, so it varies far less than one long run.
 */
export function measureModel(path: string, texts: EvalSpec[], backend: Backend, speed: { decodeSteps: number; prefillTokens: number; repeats: number }): ModelMeasurements {
  const { model, tokenizer, dispose } = loadModel(path, { backend });
  let prefill: number;
  const ppl: PerplexityRecord[] = [];
  try {
    for (const t of texts) {
      const tokens = tokenizer.encode(readFileSync(t.path, 'utf8'), true);
      const t0 = performance.now();
      const r = perplexity(model, tokens, { seqLen: t.seqlen, maxWindows: t.maxWindows ?? undefined });
      ppl.push({
        text: basename(t.path),
        seqlen: t.seqlen,
        windows: r.windows,
        windowsTotal: Math.floor(r.tokens / t.seqlen),
        ppl: r.ppl,
        seconds: (performance.now() - t0) / 1000,
      });
    }
    // prefill: one forward over a prompt of `prefillTokens` tokens (chunked by the model), first run warms up
    const n = Math.min(speed.prefillTokens, model.config.seqLen);
    const prompt = Array.from({ length: n }, (_, i) => (i === 0 ? (tokenizer.bosId ?? 0) : 3 + ((i * 7919) % (model.config.vocabSize - 3))));
    const forwardPrompt = () => {
      for (let s = 0; s < n; s += model.maxRows) model.forward(prompt.slice(s, s + model.maxRows), s, 'last');
    };
    forwardPrompt();
    prefill = 0;
    for (let i = 0; i < speed.repeats; i++) {
      const t0 = performance.now();
      forwardPrompt();
      prefill = Math.max(prefill, n / ((performance.now() - t0) / 1000));
    }
  } finally {
    dispose();
  }
  let decode = 0;
  for (let i = 0; i < speed.repeats; i++) decode = Math.max(decode, benchDecodeTokensPerSecond(backend, speed.decodeSteps, path));
  return { perplexity: ppl, decodeTokensPerSecond: decode, prefillTokensPerSecond: prefill };
}

/** Group bit-widths per layer when they differ within the file (mixed precision), else undefined. */
export function mixedBitMaps(path: string): BitMapRow[] | undefined {
  const file = new FileSource(path);
  try {
    const m = new PackedModel(file);
    const rows: BitMapRow[] = [];
    for (const name of Object.keys(m.header.tensors)) {
      // the block linears' widths: a 4-bit embedding beside 2-bit linears is not a mixed-precision method
      if (!m.isPacked(name) || roleOf(name) !== 'blockLinears') continue;
      const map = groupBitMap(m.packed(name));
      if (map === null) continue;
      rows.push({ layer: name.replace(/^model\./, '').replace(/\.weight$/, ''), bits: [...map] });
    }
    const widths = new Set(rows.flatMap((r) => r.bits));
    return widths.size > 1 ? rows : undefined;
  } finally {
    file.close();
  }
}

/** The model's parameters (a tied embedding/head once): what every file bpw is divided by. */
export function parameterCount(path: string): number {
  return openModel(path, nodeFs).tensors().reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
}

/** Size of the unquantized model's weights file. */
export function floatFileBytes(path: string): number {
  const st = statSync(path);
  return st.isDirectory() ? statSync(join(path, 'model.safetensors')).size : st.size;
}
