/**
 * The benchmark results file (bench/results/<name>.json, written by `npm run bench`): where and
 * how it was measured, then one record per run. The report generator reads only this; `parseResults`
 * checks the shape so that a hand-edited or truncated file fails naming the problem.
 */
import { InputError } from '../io/errors.js';

export const RESULTS_SCHEMA = 1;

export interface PerplexityRecord {
  /** Text file name (e.g. heldout.txt). */
  text: string;
  seqlen: number;
  windows: number;
  /** Windows the full text has (windows < windowsTotal: a prefix was scored). */
  windowsTotal: number;
  ppl: number;
  seconds: number;
}

export interface BitMapRow {
  /** Tensor name without `model.` and `.weight`. */
  layer: string;
  /** Bit-width of each column group. */
  bits: number[];
}

export interface RunRecord {
  /** Unique in the file: `<model>/<label>`; the README table cites it. */
  id: string;
  model: string;
  /** fp32 for the unquantized model. */
  method: string;
  /** Short label of the setting, e.g. `2-bit g32`. */
  label: string;
  /** Command-line flags of the run (method and calibration), as given. */
  flags: string[];
  /** Method options as recorded in the packed header (resolved over the defaults). */
  options: Record<string, unknown>;
  /**
   * The whole file's bits over all the model's weights (header and alignment included): the
   * honest size, first in the tables. Absent in records measured before it was reported.
   */
  fileBpw?: number;
  /** Bits per weight of the block linears alone. */
  linearBpw: number;
  /** Tensor data over all weights. */
  modelBpw: number;
  fileBytes: number;
  perplexity: PerplexityRecord[];
  /** `quantize`'s own timer (calibration, quantization, packing, writing). */
  quantizeSeconds: number | null;
  /** Wall time of the quantize child process, start-up included. */
  wallSeconds: number | null;
  /** Peak resident memory of the quantize child process. */
  peakRssMiB: number | null;
  decodeTokensPerSecond: number;
  prefillTokensPerSecond: number;
  /** Per-layer group bit-widths of mixed-precision files. */
  bitMaps?: BitMapRow[];
  /** Set when the run failed: the row is reported as failed, nothing else is meaningful. */
  error?: string;
}

export interface ModelSettings {
  name: string;
  path: string;
  /** e.g. `tinystories/calib.txt, 128 × 256 tokens, seed 1`. */
  calibration: string;
  groupSize: string;
  eval: Array<{ text: string; seqlen: number; maxWindows: number | null }>;
  role: string;
  /** Why the settings differ from the model's standard protocol, runs left out, etc. */
  notes?: string[];
}

/** One `npm run bench` command whose records a merged results file holds. */
export interface RunHistoryEntry {
  command: string;
  startedAt: string;
  totalSeconds: number;
  commit: { hash: string; dirty: boolean };
  machine: ResultsFile['machine'];
  backend: ResultsFile['backend'];
  /** Records of this file measured by that command. */
  ids: string[];
}

export interface ResultsFile {
  schema: number;
  name: string;
  mode: 'full' | 'quick';
  command: string;
  startedAt: string;
  totalSeconds: number;
  machine: { cpu: string; cores: number; memoryGiB: number; os: string; loadAverage: number[] };
  versions: { node: string; npm: string };
  backend: { kind: string; threads: number };
  commit: { hash: string; dirty: boolean };
  /** Speed measurement: decode steps and prompt length per repetition; the best repetition is recorded. */
  decode: { steps: number; prefillTokens: number; repeats?: number };
  models: ModelSettings[];
  records: RunRecord[];
  /**
   * Set when `--merge` combined several commands' records (e.g. one model rerun after a method
   * changed): each command with the records it measured; the fields above are the latest one's.
   */
  history?: RunHistoryEntry[];
}

/**
 * `base` with `next`'s records and model settings taking the place of those with the same id or
 * name; `order` lists record ids in the order the report shows them (others go last).
 */
export function mergeResults(base: ResultsFile, next: ResultsFile, order: string[]): ResultsFile {
  const nextIds = new Set(next.records.map((r) => r.id));
  const kept = base.records.filter((r) => !nextIds.has(r.id));
  const entry = (f: ResultsFile, ids: string[]): RunHistoryEntry => ({
    command: f.command, startedAt: f.startedAt, totalSeconds: f.totalSeconds, commit: f.commit, machine: f.machine, backend: f.backend, ids,
  });
  const keptIds = new Set(kept.map((r) => r.id));
  const baseHistory = (base.history ?? [entry(base, base.records.map((r) => r.id))])
    .map((h) => ({ ...h, ids: h.ids.filter((id) => keptIds.has(id)) }))
    .filter((h) => h.ids.length > 0);
  const rank = (id: string) => (order.includes(id) ? order.indexOf(id) : order.length);
  const names = new Set(next.models.map((m) => m.name));
  return {
    ...next,
    models: [...base.models.map((m) => (names.has(m.name) ? next.models.find((n) => n.name === m.name)! : m)), ...next.models.filter((m) => !base.models.some((b) => b.name === m.name))],
    records: [...kept, ...next.records].sort((a, b) => rank(a.id) - rank(b.id)),
    history: [...baseHistory, entry(next, next.records.map((r) => r.id))],
  };
}

function fail(file: string, problem: string): never {
  throw new InputError(file, problem);
}

const isNum = (v: unknown): v is number => typeof v === 'number';
const numOrNull = (v: unknown) => v === null || isNum(v);

/** Parses and checks a results file's text; `file` names it in errors. */
export function parseResults(file: string, text: string): ResultsFile {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    fail(file, `not JSON: ${(e as Error).message}`);
  }
  const r = data as ResultsFile;
  if (typeof r !== 'object' || r === null) fail(file, 'not a results object');
  if (r.schema !== RESULTS_SCHEMA) fail(file, `schema ${JSON.stringify(r.schema)}, expected ${RESULTS_SCHEMA}`);
  if (!Array.isArray(r.records)) fail(file, 'records is not an array');
  if (!Array.isArray(r.models)) fail(file, 'models is not an array');
  if (typeof r.machine !== 'object' || r.machine === null) fail(file, 'machine is missing');
  if (r.history !== undefined && (!Array.isArray(r.history) || r.history.some((h) => typeof h?.command !== 'string' || !Array.isArray(h.ids)))) {
    fail(file, 'history entries need command and ids');
  }
  const ids = new Set<string>();
  r.records.forEach((rec, i) => {
    const where = `record ${i} (${String((rec as RunRecord | null)?.id)})`;
    if (typeof rec !== 'object' || rec === null) fail(file, `${where} is not an object`);
    if (typeof rec.id !== 'string' || ids.has(rec.id)) fail(file, `${where}: missing or duplicate id`);
    ids.add(rec.id);
    for (const k of ['model', 'method', 'label'] as const) if (typeof rec[k] !== 'string') fail(file, `${where}: ${k} is not a string`);
    if (rec.error !== undefined) return;
    for (const k of ['linearBpw', 'modelBpw', 'fileBytes', 'decodeTokensPerSecond', 'prefillTokensPerSecond'] as const) {
      if (!isNum(rec[k])) fail(file, `${where}: ${k} is not a number`);
    }
    if (rec.fileBpw !== undefined && !isNum(rec.fileBpw)) fail(file, `${where}: fileBpw is not a number`);
    for (const k of ['quantizeSeconds', 'wallSeconds', 'peakRssMiB'] as const) if (!numOrNull(rec[k])) fail(file, `${where}: ${k} is not a number or null`);
    if (!Array.isArray(rec.perplexity) || rec.perplexity.some((p) => typeof p?.text !== 'string' || !isNum(p.ppl) || !isNum(p.windows))) {
      fail(file, `${where}: perplexity entries need text, ppl and windows`);
    }
    if (rec.bitMaps !== undefined && (!Array.isArray(rec.bitMaps) || rec.bitMaps.some((b) => typeof b?.layer !== 'string' || !Array.isArray(b.bits)))) {
      fail(file, `${where}: bitMaps entries need layer and bits`);
    }
  });
  return r;
}
