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
 * --jobs N (child processes measuring side by side, one per model or shard of a model's runs;
 * default 3, 1 with --quick), --model M (this model of the suite only), --shard I/N (runs
 * I, I+N, … of it; fp32 in shard 0), --run-timeout S (stop a quantize run after S seconds and
 * record it as failed; default none), --no-report, --keep (keep the packed files), --merge (keep
 * the records of <name>.json that this run does not remeasure: rerun one model or a few rows
 * without losing the rest; the file then lists each command with its records and commit;
 * records of runs no longer in the suite are dropped).
 * Perplexities are deterministic (seeded calibration windows, seeded initialisations): a rerun
 * reproduces them exactly on the same backend.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backend } from '../src/backend/types.js';
import { createBackend, type BackendKind } from '../src/node/backend.js';
import { writeFileAtomic } from '../src/node/atomic-write.js';
import { mergeResults, parseResults, RESULTS_SCHEMA, type ResultsFile, type RunRecord } from '../src/report/results.js';
import { floatFileBytes, gitCommit, parameterCount, machineInfo, measureModel, mixedBitMaps, quantize, versions } from './measure.js';
import { writeReport } from './report.js';
import { fullSuite, quickSuite, type ModelSpec } from './suite.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const DATA = join(REPO, '../shared/data');
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
const backendKind = (opt('--backend') ?? 'auto') as BackendKind;
const shard = (opt('--shard') ?? '0/1').split('/').map(Number) as [number, number];
const jobs = Number(opt('--jobs') ?? (quick ? 1 : 3));
const runTimeout = opt('--run-timeout') === undefined ? undefined : Number(opt('--run-timeout'));
const SPEED = { decodeSteps: quick ? 32 : 64, prefillTokens: 256, repeats: quick ? 2 : 5 };

const t0 = performance.now();
// taken at the start: other work may commit while a long run goes on
const commitAtStart = gitCommit();
const machineAtStart = machineInfo();
const startedAt = new Date().toISOString();
const suite: ModelSpec[] = (quick ? quickSuite() : fullSuite()).filter((m) => opt('--model') === undefined || m.name === opt('--model'));
const resultsPath = join(outDir, `${name}.json`);
mkdirSync(outDir, { recursive: true });
/** Report order of every record id of the whole suite (a merged file may hold any of them). */
const suiteOrder = (quick ? quickSuite() : fullSuite()).flatMap((m) => [`${m.name}/fp32`, ...m.runs.map((r) => `${m.name}/${r.label}`)]);
/** With --merge: the file's records of runs the suite still has (read now: save() rewrites the file after every record). */
function readMergeBase(): ResultsFile | null {
  if (!args.includes('--merge') || !existsSync(resultsPath)) return null;
  const base = parseResults(resultsPath, readFileSync(resultsPath, 'utf8'));
  return { ...base, records: base.records.filter((r) => suiteOrder.includes(r.id)) };
}
const mergeBase = readMergeBase();

function log(line: string): void {
  process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(5)} s] ${line}\n`);
}

function newResults(backend: { kind: string; threads: number }): ResultsFile {
  return {
    schema: RESULTS_SCHEMA,
    name,
    mode: quick ? 'quick' : 'full',
    command: `npm run bench${args.length ? ` -- ${args.join(' ')}` : ''}`,
    startedAt,
    totalSeconds: 0,
    machine: machineAtStart,
    versions: versions(),
    backend,
    commit: commitAtStart,
    decode: { steps: SPEED.decodeSteps, prefillTokens: SPEED.prefillTokens, repeats: SPEED.repeats },
    models: suite.map((m) => ({
      name: m.name,
      path: relative(REPO, m.path),
      role: m.role,
      calibration: `${relative(DATA, m.calib)}, ${m.nsamples} × ${m.seqlen} tokens, seed 1`,
      groupSize: `group ${m.groupSize}`,
      eval: m.eval.map((e) => ({ text: relative(DATA, e.path), seqlen: e.seqlen, maxWindows: e.maxWindows })),
      ...(m.notes ? { notes: m.notes } : {}),
    })),
    records: [],
  };
}

function save(results: ResultsFile): ResultsFile {
  results.totalSeconds = (performance.now() - t0) / 1000;
  const written = mergeBase ? mergeResults(mergeBase, results, suiteOrder) : results;
  writeFileAtomic(resultsPath, [new TextEncoder().encode(`${JSON.stringify(written, null, 1)}\n`)]);
  return written;
}

const selected = (id: string) => !only || only.some((o) => id.includes(o));

/** The fp32 row and every run of one model, each record passed to `done` as soon as it is measured. */
function measureSuiteModel(m: ModelSpec, backend: Backend, packedDir: string, done: (r: RunRecord) => void): void {
  const fp32Id = `${m.name}/fp32`;
  if (selected(fp32Id) && shard[0] === 0) {
    const meas = measureModel(m.path, m.eval, backend, SPEED);
    done({
      id: fp32Id, model: m.name, method: 'fp32', label: 'fp32', flags: [], options: {},
      fileBpw: (floatFileBytes(m.path) * 8) / parameterCount(m.path), linearBpw: 32, modelBpw: 32, fileBytes: floatFileBytes(m.path),
      quantizeSeconds: null, wallSeconds: null, peakRssMiB: null, ...meas,
    });
    log(`${fp32Id}: ppl ${meas.perplexity.map((p) => p.ppl.toFixed(4)).join(' / ')}, decode ${meas.decodeTokensPerSecond.toFixed(1)} tok/s`);
  }
  for (const [i, run] of m.runs.entries()) {
    const id = `${m.name}/${run.label}`;
    if (!selected(id) || i % shard[1] !== shard[0]) continue;
    const base = { id, model: m.name, method: run.method, label: run.label, flags: run.flags };
    try {
      const file = join(packedDir, `${id.replace(/[^A-Za-z0-9]+/g, '_')}.bcq`);
      const q = quantize(m, run, file, { kind: backendKind, threads }, runTimeout);
      const meas = measureModel(file, m.eval, backend, SPEED);
      const bitMaps = mixedBitMaps(file);
      if (!args.includes('--keep')) rmSync(file, { force: true });
      done({
        ...base, options: q.options, fileBpw: q.fileBpw, linearBpw: q.linearBpw, modelBpw: q.modelBpw, fileBytes: q.fileBytes,
        quantizeSeconds: q.quantizeSeconds, wallSeconds: q.wallSeconds, peakRssMiB: q.peakRssMiB,
        ...meas, ...(bitMaps ? { bitMaps } : {}),
      });
      log(`${id}: ${q.fileBpw.toFixed(3)} bpw over all weights (linears ${q.linearBpw.toFixed(3)}), ppl ${meas.perplexity.map((p) => p.ppl.toFixed(4)).join(' / ')}, quantize ${q.quantizeSeconds.toFixed(1)} s, ${q.peakRssMiB.toFixed(0)} MiB, decode ${meas.decodeTokensPerSecond.toFixed(1)} tok/s`);
    } catch (e) {
      // one broken method must not cost the other rows: the report shows it as failed
      const error = (e as Error).message;
      done({
        ...base, options: {}, linearBpw: NaN, modelBpw: NaN, fileBytes: 0, perplexity: [], quantizeSeconds: null,
        wallSeconds: null, peakRssMiB: null, decodeTokensPerSecond: NaN, prefillTokensPerSecond: NaN, error,
      });
      log(`${id}: FAILED ${error}`);
    }
  }
}

/** Measures every model here, one after the other. */
function runHere(): ResultsFile {
  const backend = createBackend({ kind: backendKind, threads });
  const results = newResults({ kind: backend.name, threads: backend.threads });
  const packedDir = mkdtempSync(join(tmpdir(), 'bitcrush-bench-'));
  log(`${name}: ${suite.reduce((a, m) => a + m.runs.length + 1, 0)} runs on ${backend.name} × ${backend.threads}; results → ${resultsPath}`);
  try {
    for (const m of suite) {
      measureSuiteModel(m, backend, packedDir, (r) => {
        results.records.push(r);
        save(results);
      });
    }
  } finally {
    backend.dispose();
    if (args.includes('--keep')) log(`packed files kept in ${packedDir}`);
    else rmSync(packedDir, { recursive: true, force: true });
  }
  return save(results);
}

/** One child `bench/run.js --model M --shard I/N` per model shard, `jobs` at a time; their records merged in suite order. */
async function runInChildren(): Promise<ResultsFile> {
  const self = fileURLToPath(import.meta.url);
  // the parent's own options (each with a value, except --merge) are not passed on
  const own = ['--jobs', '--name', '--model', '--shard'];
  const passOn = args.filter((a, i) => a !== '--merge' && !own.includes(a) && !own.includes(args[i - 1] ?? ''));
  const tasks = suite.flatMap((m) => Array.from({ length: m.shards ?? 1 }, (_, i) => ({ m, shard: `${i}/${m.shards ?? 1}`, part: `${name}.${m.name}.${i}.part` })));
  const partPath = (t: { part: string }) => join(outDir, `${t.part}.json`);
  const queue = [...tasks];
  const worker = async () => {
    for (let t = queue.shift(); t; t = queue.shift()) {
      const child = spawn(process.execPath, [self, ...passOn, '--model', t.m.name, '--shard', t.shard, '--name', t.part, '--jobs', '1', '--no-report'], { stdio: ['ignore', 'inherit', 'inherit'] });
      const code = await new Promise<number | null>((res) => child.on('close', res));
      if (code !== 0) log(`${t.part}: child exited with ${code}; its finished records are kept`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, tasks.length) }, worker));
  const parts = tasks.filter((t) => existsSync(partPath(t))).map((t) => parseResults(partPath(t), readFileSync(partPath(t), 'utf8')));
  if (parts.length === 0) throw new Error('no model finished a single record');
  // records in the order of the suite, whichever child measured them
  const order = suite.flatMap((m) => [`${m.name}/fp32`, ...m.runs.map((r) => `${m.name}/${r.label}`)]);
  const records = parts.flatMap((p) => p.records).sort((a, b) => order.indexOf(a.id) - order.indexOf(b.id));
  const results = save({ ...newResults(parts[0]!.backend), records });
  for (const t of tasks) rmSync(partPath(t), { force: true });
  return results;
}

const results = jobs > 1 && suite.reduce((a, m) => a + (m.shards ?? 1), 0) > 1 ? await runInChildren() : runHere();
log(`done in ${results.totalSeconds.toFixed(0)} s: ${resultsPath}`);
if (!args.includes('--no-report')) {
  const written = writeReport({
    resultsPath,
    docsDir: resolve(opt('--docs') ?? join(REPO, 'docs')),
    readme: resolve(opt('--readme') ?? join(REPO, 'README.md')),
  });
  log(`report: ${written.join(', ')}`);
}
