/**
 * `npm run bench`: every method at its standard settings (bench/suite.ts) on stories260K and
 * bench-llama, then the report. Per run: `bitcrush quantize --json` in a child process (peak
 * RSS, quantize time, bpw, size), then perplexity, decode and prefill tokens/s of the packed
 * file in this process. Writes bench/results/<name>.json after every run (a killed run keeps
 * what it measured), then docs/results.md, docs/plots/*.svg and the README's table.
 *
 * Options: --quick (CI smoke run: bench/suite.ts quickSuite), --name N (default full|quick),
 * --out-dir D (default bench/results), --docs D (default docs), --readme F (default README.md),
 * --threads N (default 1: on a machine shared with other jobs one thread per process is both
 * faster and steadier), --backend K (default auto), --only S[,S] (runs whose id contains one),
 * --no-report, --keep (keep the packed files).
 * Perplexities are deterministic (seeded calibration windows, seeded initialisations): a rerun
 * reproduces them exactly on the same backend.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createBackend } from '../src/node/backend.js';
import { writeFileAtomic } from '../src/node/atomic-write.js';
import { RESULTS_SCHEMA, type ResultsFile, type RunRecord } from '../src/report/results.js';
import { floatFileBytes, gitCommit, machineInfo, measureModel, mixedBitMaps, quantize, versions } from './measure.js';
import { writeReport } from './report.js';
import { fullSuite, quickSuite, type ModelSpec } from './suite.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const args = process.argv.slice(2);
const opt = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const quick = args.includes('--quick');
const name = opt('--name') ?? (quick ? 'quick' : 'full');
const outDir = resolve(opt('--out-dir') ?? join(REPO, 'bench/results'));
const only = opt('--only')?.split(',');
const threads = Number(opt('--threads') ?? 1);
const backendKind = opt('--backend') ?? 'auto';
const DECODE_STEPS = quick ? 32 : 128;
const PREFILL_TOKENS = 256;

const t0 = performance.now();
const suite: ModelSpec[] = quick ? quickSuite() : fullSuite();
const backend = createBackend({ kind: backendKind as 'auto', threads });
const results: ResultsFile = {
  schema: RESULTS_SCHEMA,
  name,
  mode: quick ? 'quick' : 'full',
  command: `npm run bench${args.length ? ` -- ${args.join(' ')}` : ''}`,
  startedAt: new Date().toISOString(),
  totalSeconds: 0,
  machine: machineInfo(),
  versions: versions(),
  backend: { kind: backend.name, threads: backend.threads },
  commit: gitCommit(),
  decode: { steps: DECODE_STEPS, prefillTokens: PREFILL_TOKENS },
  models: suite.map((m) => ({
    name: m.name,
    path: relative(REPO, m.path),
    role: m.role,
    calibration: `${relative(join(REPO, '../shared/data'), m.calib)}, ${m.nsamples} × ${m.seqlen} tokens, seed 1`,
    groupSize: `group ${m.groupSize}`,
    eval: [...m.eval, ...(m.extraEval ? [m.extraEval.spec] : [])].map((e) => ({
      text: relative(join(REPO, '../shared/data'), e.path),
      seqlen: e.seqlen,
      maxWindows: e.maxWindows,
    })),
  })),
  records: [],
};
const resultsPath = join(outDir, `${name}.json`);
const packedDir = mkdtempSync(join(tmpdir(), 'bitcrush-bench-'));
mkdirSync(outDir, { recursive: true });

function save(): void {
  results.totalSeconds = (performance.now() - t0) / 1000;
  writeFileAtomic(resultsPath, [new TextEncoder().encode(`${JSON.stringify(results, null, 1)}\n`)]);
}

function log(line: string): void {
  process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(5)} s] ${line}\n`);
}

const evalFor = (m: ModelSpec, method: string) => [...m.eval, ...(m.extraEval && m.extraEval.methods.includes(method) ? [m.extraEval.spec] : [])];

try {
  log(`${name}: ${suite.reduce((a, m) => a + m.runs.length + 1, 0)} runs on ${backend.name} × ${backend.threads}; results → ${resultsPath}`);
  for (const m of suite) {
    const fp32Id = `${m.name}/fp32`;
    if (!only || only.some((o) => fp32Id.includes(o))) {
      const meas = measureModel(m.path, evalFor(m, 'fp32'), backend, DECODE_STEPS, PREFILL_TOKENS);
      const bytes = floatFileBytes(m.path);
      results.records.push({
        id: fp32Id, model: m.name, method: 'fp32', label: 'fp32', flags: [], options: {},
        linearBpw: 32, modelBpw: 32, fileBytes: bytes,
        quantizeSeconds: null, wallSeconds: null, peakRssMiB: null, ...meas,
      });
      save();
      log(`${fp32Id}: ppl ${meas.perplexity.map((p) => p.ppl.toFixed(4)).join(' / ')}, decode ${meas.decodeTokensPerSecond.toFixed(1)} tok/s`);
    }
    for (const run of m.runs) {
      const id = `${m.name}/${run.label}`;
      if (only && !only.some((o) => id.includes(o))) continue;
      const base = { id, model: m.name, method: run.method, label: run.label, flags: run.flags };
      let record: RunRecord;
      try {
        const file = join(packedDir, `${id.replace(/[^A-Za-z0-9]+/g, '_')}.bcq`);
        const q = quantize(m, run, file, { kind: backendKind, threads });
        const meas = measureModel(file, evalFor(m, run.method), backend, DECODE_STEPS, PREFILL_TOKENS);
        const bitMaps = mixedBitMaps(file);
        record = {
          ...base, options: q.options, linearBpw: q.linearBpw, modelBpw: q.modelBpw, fileBytes: q.fileBytes,
          quantizeSeconds: q.quantizeSeconds, wallSeconds: q.wallSeconds, peakRssMiB: q.peakRssMiB,
          ...meas, ...(bitMaps ? { bitMaps } : {}),
        };
        if (!args.includes('--keep')) rmSync(file, { force: true });
        log(`${id}: ${q.linearBpw.toFixed(3)} bpw, ppl ${meas.perplexity.map((p) => p.ppl.toFixed(4)).join(' / ')}, quantize ${q.quantizeSeconds.toFixed(1)} s, ${q.peakRssMiB.toFixed(0)} MiB, decode ${meas.decodeTokensPerSecond.toFixed(1)} tok/s`);
      } catch (e) {
        // one broken method must not cost the other rows: the report shows it as failed
        const error = (e as Error).message;
        record = {
          ...base, options: {}, linearBpw: NaN, modelBpw: NaN, fileBytes: 0, perplexity: [], quantizeSeconds: null,
          wallSeconds: null, peakRssMiB: null, decodeTokensPerSecond: NaN, prefillTokensPerSecond: NaN, error,
        };
        log(`${id}: FAILED ${error}`);
      }
      results.records.push(record);
      save();
    }
  }
} finally {
  backend.dispose();
  if (args.includes('--keep')) log(`packed files kept in ${packedDir}`);
  else rmSync(packedDir, { recursive: true, force: true });
}
save();
log(`done in ${results.totalSeconds.toFixed(0)} s: ${resultsPath}`);
if (!args.includes('--no-report')) {
  const written = writeReport({
    resultsPath,
    docsDir: resolve(opt('--docs') ?? join(REPO, 'docs')),
    readme: resolve(opt('--readme') ?? join(REPO, 'README.md')),
  });
  log(`report: ${written.join(', ')}`);
}
