/**
 * The fuzz suite's driver: builds the corpus, generates seeded cases (one mutation of one
 * input file, one command that reads it), runs them in a pool of worker processes that call the
 * CLI in process, and judges each case. A case behaves when it
 *   - exits 2 with exactly one stderr line `bitcrush: …` naming the mutated file (or another
 *     input of the case) and no stack trace, or
 *   - exits 0 with finite results (no NaN/Infinity printed, JSON numbers present),
 * within 20 s and 2 GB of resident memory, leaving every input byte-for-byte unchanged.
 * Anything else (exit 1, a hang, a crash, a second line, a modified input) misbehaves.
 */
import { execFile, fork, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildCorpus, caseFiles, type Corpus, type Target } from './corpus.js';
import { mutate, rng, type MutationKind } from './mutate.js';

export interface FuzzOptions {
  cases: number;
  seed: number;
  workers: number;
  /** Per-case bounds. */
  timeoutMs: number;
  maxRssBytes: number;
  /** Only these targets (ids); default all. */
  targets?: string[];
  /**
   * Every n-th case also runs as a real `bitcrush` process, whose exit code and error line
   * must equal the in-process run's (0: never): the in-process shortcut is checked, not trusted.
   */
  spawnEvery: number;
  onCase?: (r: CaseResult, done: number, total: number) => void;
}

export const DEFAULT_OPTIONS: FuzzOptions = { cases: 300, seed: 1, workers: 2, timeoutMs: 20_000, maxRssBytes: 2 * 1024 ** 3, spawnEvery: 0 };

export type Verdict = 'error-names-file' | 'error-names-other-input' | 'ok' | 'misbehaving';

export interface CaseResult {
  index: number;
  target: string;
  mutation: MutationKind;
  what: string;
  argv: string[];
  code: number | null;
  ms: number;
  peakRssBytes: number;
  verdict: Verdict;
  /** Why a case misbehaved, or the error line of an exit-2 case. */
  detail: string;
  /** Set when the case also ran as a process. */
  spawned?: boolean;
}

export interface FuzzSummary {
  seed: number;
  cases: number;
  seconds: number;
  verdicts: Record<Verdict, number>;
  byTarget: Record<string, Record<Verdict, number>>;
  byMutation: Record<string, Record<Verdict, number>>;
  maxCaseMs: number;
  maxRssMiB: number;
  /** Cases also run as a process (all agreeing, or they are among the misbehaving). */
  spawned: number;
  misbehaving: CaseResult[];
}

interface Reply {
  id: number;
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

const WORKER = join(dirname(fileURLToPath(import.meta.url)), 'worker.js');
/** A worker is replaced after this many cases (file descriptors and heap of earlier cases add up). */
const CASES_PER_WORKER = 150;

/** Resident memory of a process (Linux /proc); 0 where unknown. */
function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

class Worker {
  private child!: ChildProcess;
  private ready!: Promise<void>;
  private served = 0;

  constructor() {
    this.start();
  }

  private start(): void {
    this.child = fork(WORKER, [], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
    this.served = 0;
    this.ready = new Promise((resolve, reject) => {
      this.child.once('message', () => resolve());
      this.child.once('exit', (code) => reject(new Error(`fuzz worker exited with ${code} before starting`)));
    });
  }

  /** Runs one case; a case past the bounds kills the worker (a fresh one takes its place). */
  async run(id: number, argv: string[], o: FuzzOptions): Promise<{ reply?: Reply; failure?: string; peakRss: number; ms: number }> {
    if (this.served >= CASES_PER_WORKER) this.restart();
    await this.ready;
    this.served++;
    const child = this.child;
    const t0 = performance.now();
    let peakRss = 0;
    return new Promise((resolve) => {
      let settled = false;
      const finish = (r: { reply?: Reply; failure?: string }) => {
        if (settled) return;
        settled = true;
        clearInterval(poll);
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
        if (r.failure !== undefined) this.restart();
        resolve({ ...r, peakRss, ms: performance.now() - t0 });
      };
      const onMessage = (m: Reply) => {
        if (m.id === id) finish({ reply: m });
      };
      const onExit = (code: number | null, signal: string | null) => finish({ failure: `worker died (exit ${code}, signal ${signal})` });
      const poll = setInterval(() => {
        peakRss = Math.max(peakRss, rssBytes(child.pid!));
        if (peakRss > o.maxRssBytes) finish({ failure: `resident memory ${(peakRss / 2 ** 20).toFixed(0)} MiB > ${(o.maxRssBytes / 2 ** 20).toFixed(0)} MiB` });
      }, 50);
      const timer = setTimeout(() => finish({ failure: `no result after ${o.timeoutMs / 1000} s` }), o.timeoutMs);
      child.on('message', onMessage);
      child.once('exit', onExit);
      child.send({ id, argv });
    });
  }

  restart(): void {
    this.child.removeAllListeners();
    this.child.kill('SIGKILL');
    this.start();
  }

  close(): void {
    this.child.removeAllListeners();
    this.child.kill('SIGKILL');
  }
}

/** stderr lines that are not the error: progress lines, warnings, the resume notice, generate's tokens/s. */
const CHATTER = [/^[\w ./-]+: [\d.]+\/[\d.]+ .*\([\d.]+%\)/, /^warning: /, /^resuming after/, /^stopped after/, /tokens\/s \(decode/];

interface Judged {
  verdict: Verdict;
  detail: string;
}

export function judge(argv: string[], code: number, stdout: string, stderr: string, mutatedPath: string, inputs: string[]): Judged {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '');
  if (/^\s+at /m.test(stderr)) return { verdict: 'misbehaving', detail: `stack trace on stderr: ${lines[0] ?? ''}` };
  if (code === 2) {
    const errors = lines.filter((l) => !CHATTER.some((re) => re.test(l)));
    if (errors.length !== 1) return { verdict: 'misbehaving', detail: `exit 2 with ${errors.length} error lines: ${errors.join(' | ')}` };
    const line = errors[0]!;
    if (!line.startsWith('bitcrush: ') || line.startsWith('bitcrush: internal error')) return { verdict: 'misbehaving', detail: `exit 2, not a one-line input error: ${line}` };
    if (line.includes(mutatedPath)) return { verdict: 'error-names-file', detail: line };
    if (inputs.some((p) => line.includes(p))) return { verdict: 'error-names-other-input', detail: line };
    return { verdict: 'misbehaving', detail: `exit 2 naming no input file: ${line}` };
  }
  if (code !== 0) return { verdict: 'misbehaving', detail: `exit ${code}: ${lines.filter((l) => !CHATTER.some((re) => re.test(l))).join(' | ').slice(0, 400)}` };
  if (lines.some((l) => l.startsWith('bitcrush: '))) return { verdict: 'misbehaving', detail: `exit 0 with an error line: ${lines.join(' | ')}` };
  // text output must print no NaN/Infinity; JSON cannot hold them (they become null), and a
  // string "NaN" copied from the file's provenance is not a result
  if (!argv.includes('--json') && /(?<!")\b(NaN|Infinity)\b(?!")/.test(stdout)) return { verdict: 'misbehaving', detail: `exit 0 printing a non-finite number: ${stdout.slice(0, 200)}` };
  if (argv.includes('--json')) {
    let out: Record<string, unknown>;
    try {
      out = JSON.parse(stdout) as Record<string, unknown>;
    } catch {
      return { verdict: 'misbehaving', detail: `--json output is not one JSON document: ${stdout.slice(0, 200)}` };
    }
    // JSON has no NaN: a non-finite result shows up as null
    const wanted: Record<string, string[]> = { eval: ['ppl', 'nll'], quantize: ['fileBytes', 'linearBpw', 'modelBpw'], generate: ['generatedTokens', 'prefillSeconds'], info: ['params'] };
    for (const k of wanted[argv[0]!] ?? []) {
      if (typeof out[k] !== 'number' || !Number.isFinite(out[k])) return { verdict: 'misbehaving', detail: `exit 0 but ${k} = ${JSON.stringify(out[k])}` };
    }
    if (argv[0] === 'quantize' && !existsSync(String(out['out']))) return { verdict: 'misbehaving', detail: 'quantize exit 0 without its output file' };
  }
  return { verdict: 'ok', detail: '' };
}

function tally(): Record<Verdict, number> {
  return { 'error-names-file': 0, 'error-names-other-input': 0, ok: 0, misbehaving: 0 };
}

/** Builds the corpus in a temp directory, runs `o.cases` cases, removes everything, returns the summary. */
export async function runFuzz(opts: Partial<FuzzOptions> = {}): Promise<FuzzSummary> {
  const o: FuzzOptions = { ...DEFAULT_OPTIONS, ...opts };
  const t0 = performance.now();
  const work = mkdtempSync(join(tmpdir(), 'bitcrush-fuzz-'));
  const workers = Array.from({ length: Math.max(1, o.workers) }, () => new Worker());
  let nextId = 0;
  const inProcess = (argv: string[]) => workers[0]!.run(nextId++, argv, { ...o, timeoutMs: 120_000 }).then((r) => r.reply?.code ?? -1);
  try {
    const corpus = await buildCorpus(join(work, 'corpus'), inProcess);
    const before = new Map(corpus.files.map((p) => [p, readFileSync(p)]));
    const targets = corpus.targets.filter((t) => o.targets === undefined || o.targets.includes(t.id));
    if (targets.length === 0) throw new Error(`no fuzz target among ${o.targets?.join(', ')}`);
    const base = new Map(targets.map((t) => [t.id, new Uint8Array(readFileSync(t.files[0]![1]))]));

    const results: CaseResult[] = [];
    let cursor = 0;
    const lane = async (w: Worker) => {
      for (let i = cursor++; i < o.cases; i = cursor++) {
        const r = await runCase(w, corpus, targets, base, i, o, nextId++);
        results.push(r);
        o.onCase?.(r, results.length, o.cases);
      }
    };
    await Promise.all(workers.map(lane));

    for (const [p, bytes] of before) {
      if (Buffer.compare(bytes, readFileSync(p)) !== 0) {
        results.push({ index: -1, target: 'corpus', mutation: 'truncate', what: p, argv: [], code: null, ms: 0, peakRssBytes: 0, verdict: 'misbehaving', detail: `corpus file ${p} was modified through a case's symlink` });
      }
    }
    results.sort((a, b) => a.index - b.index);
    return summarize(o, results, (performance.now() - t0) / 1000);
  } finally {
    for (const w of workers) w.close();
    rmSync(work, { recursive: true, force: true });
  }
}

async function runCase(w: Worker, corpus: Corpus, targets: Target[], base: Map<string, Uint8Array>, index: number, o: FuzzOptions, id: number): Promise<CaseResult> {
  const r = rng(o.seed, index);
  // round robin over the targets, so every input type gets its share of any run
  const target = targets[index % targets.length]!;
  const m = mutate(target.kind, base.get(target.id)!, r);
  const command = target.commands[Math.floor(r() * target.commands.length)]!;
  const d = join(corpus.dir, '..', `case-${index}`);
  const mutatedPath = caseFiles(d, target, m.bytes);
  const argv = command(d);
  const run = await w.run(id, argv, o);
  const common = { index, target: target.id, mutation: m.kind, what: m.what, argv, ms: run.ms, peakRssBytes: run.peakRss };
  let judged: Judged;
  if (run.reply === undefined) judged = { verdict: 'misbehaving', detail: run.failure ?? 'no reply' };
  else {
    // the case's files, and whatever else the command reads (the eval or calibration text)
    const inputs = [d, ...target.files.map(([rel]) => join(d, rel)), ...argv.filter((a) => a.startsWith(corpus.dir))];
    judged = judge(argv, run.reply.code, run.reply.stdout, run.reply.stderr, mutatedPath, inputs);
    // inputs are never modified, the mutated one included
    if (judged.verdict !== 'misbehaving' && Buffer.compare(readFileSync(mutatedPath), m.bytes) !== 0) judged = { verdict: 'misbehaving', detail: 'the command modified its input file' };
  }
  let spawned = false;
  if (o.spawnEvery > 0 && index % o.spawnEvery === 0 && run.reply !== undefined) {
    spawned = true;
    const p = await spawnCli(argv, o.timeoutMs);
    const errorLine = (stderr: string) => stderr.split('\n').find((l) => l.startsWith('bitcrush: ')) ?? '';
    if (p.code !== run.reply.code || errorLine(p.stderr) !== errorLine(run.reply.stderr)) {
      judged = { verdict: 'misbehaving', detail: `as a process: exit ${p.code} "${errorLine(p.stderr)}"; in process: exit ${run.reply.code} "${errorLine(run.reply.stderr)}"` };
    }
  }
  rmSync(d, { recursive: true, force: true });
  return { ...common, code: run.reply?.code ?? null, ...judged, ...(spawned ? { spawned } : {}) };
}

const CLI = join(dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');

function spawnCli(argv: string[], timeoutMs: number): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...argv], { timeout: timeoutMs, maxBuffer: 64 << 20 }, (e, _stdout, stderr) => {
      const code = e === null ? 0 : typeof e.code === 'number' ? e.code : null;
      resolve({ code, stderr });
    });
  });
}

function summarize(o: FuzzOptions, results: CaseResult[], seconds: number): FuzzSummary {
  const verdicts = tally();
  const byTarget: FuzzSummary['byTarget'] = {};
  const byMutation: FuzzSummary['byMutation'] = {};
  for (const r of results) {
    verdicts[r.verdict]++;
    (byTarget[r.target] ??= tally())[r.verdict]++;
    (byMutation[r.mutation] ??= tally())[r.verdict]++;
  }
  return {
    seed: o.seed,
    cases: results.filter((r) => r.index >= 0).length,
    seconds,
    verdicts,
    byTarget,
    byMutation,
    maxCaseMs: Math.max(0, ...results.map((r) => r.ms)),
    maxRssMiB: Math.max(0, ...results.map((r) => r.peakRssBytes)) / 2 ** 20,
    spawned: results.filter((r) => r.spawned).length,
    misbehaving: results.filter((r) => r.verdict === 'misbehaving'),
  };
}

/** The summary as a table (the `npm run fuzz` output without --json). */
export function formatSummary(s: FuzzSummary): string {
  const cols: Verdict[] = ['error-names-file', 'error-names-other-input', 'ok', 'misbehaving'];
  const row = (name: string, t: Record<Verdict, number>) => `  ${name.padEnd(20)}${cols.map((c) => String(t[c]).padStart(12)).join('')}`;
  const lines = [
    `fuzz: ${s.cases} cases (${s.spawned} also as a process), seed ${s.seed}, ${s.seconds.toFixed(1)} s; slowest case ${(s.maxCaseMs / 1000).toFixed(2)} s, peak worker RSS ${s.maxRssMiB.toFixed(0)} MiB`,
    `  ${''.padEnd(20)}${['exit2:file', 'exit2:other', 'exit0:ok', 'MISBEHAVING'].map((c) => c.padStart(12)).join('')}`,
    ...Object.entries(s.byTarget).map(([k, t]) => row(k, t)),
    ...Object.entries(s.byMutation).map(([k, t]) => row(`[${k}]`, t)),
    row('total', s.verdicts),
    ...s.misbehaving.map((r) => `MISBEHAVING case ${r.index} (${r.target}, ${r.what}): bitcrush ${r.argv.join(' ')}\n    → ${r.detail}`),
  ];
  return lines.join('\n');
}
