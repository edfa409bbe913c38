/**
 * docs/results.md and the README's headline table, generated from a results file. Every number
 * printed comes from one record; tables carry the record id so a reader can find it in the JSON.
 */
import type { ResultsFile, RunRecord } from './results.js';
import { paretoFront, type Plot } from './charts.js';

export const README_START = '<!-- results:start -->';
export const README_END = '<!-- results:end -->';

export interface MarkdownOptions {
  /** Path of the results JSON as the reader should see it (relative to the repo root). */
  resultsPath: string;
  /** Link from the markdown file to the results JSON. */
  resultsLink: string;
  /** Path from the markdown file to the plots directory (e.g. `plots`). */
  plotsDir: string;
}

const num = (v: number | null | undefined, digits: number) => (v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits));

export function formatDuration(seconds: number): string {
  if (seconds < 90) return `${seconds.toFixed(0)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 90) return `${m} min ${Math.round(seconds - 60 * m)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function pplCell(r: RunRecord, text: string, fp32: number | undefined): string {
  const p = r.perplexity.find((x) => x.text === text);
  if (!p) return '–';
  const delta = fp32 !== undefined && r.method !== 'fp32' ? ` (${p.ppl >= fp32 ? '+' : ''}${(((p.ppl - fp32) / fp32) * 100).toFixed(1)} %)` : '';
  return `${p.ppl.toFixed(4)}${delta}`;
}

/** Texts scored in a model's records, in order of first appearance. */
function textsOf(recs: RunRecord[]): string[] {
  return [...new Set(recs.flatMap((r) => r.perplexity.map((p) => p.text)))];
}

function windowsNote(recs: RunRecord[], text: string): string {
  const p = recs.flatMap((r) => r.perplexity).find((x) => x.text === text);
  if (!p) return text;
  return p.windows < p.windowsTotal ? `${text}: first ${p.windows} of ${p.windowsTotal} windows of ${p.seqlen}` : `${text}: all ${p.windows} windows of ${p.seqlen}`;
}

function modelTable(res: ResultsFile, model: string): string[] {
  const recs = res.records.filter((r) => r.model === model);
  const texts = textsOf(recs);
  const fp32 = recs.find((r) => r.method === 'fp32' && !r.error);
  const fpPpl = (t: string) => fp32?.perplexity.find((p) => p.text === t)?.ppl;
  const head = ['record id', 'method', 'file bpw', 'linear bpw', 'model bpw', 'file KiB', ...texts.map((t) => `PPL ${t}`), 'quantize s', 'peak RSS MiB', 'decode tok/s', 'prefill tok/s'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`];
  for (const r of recs) {
    if (r.error) {
      lines.push(`| \`${r.id}\` | ${r.method} | failed: ${r.error.replace(/\|/g, '\\|').slice(0, 160)} ${'| '.repeat(head.length - 3)}|`);
      continue;
    }
    lines.push(`| ${[
      `\`${r.id}\``, r.method, r.fileBpw === undefined ? '–' : num(r.fileBpw, 3), num(r.linearBpw, 3), num(r.modelBpw, 3), num(r.fileBytes / 1024, 1),
      ...texts.map((t) => pplCell(r, t, fpPpl(t))),
      num(r.quantizeSeconds, 1), num(r.peakRssMiB, 0), num(r.decodeTokensPerSecond, 1), num(r.prefillTokensPerSecond, 0),
    ].join(' | ')} |`);
  }
  return lines;
}

/** A merged file (`npm run bench -- --merge`): which command measured which records, where and when. */
function historyLines(res: ResultsFile): string[] {
  const lines = [`The records come from ${res.history!.length} commands (\`--merge\` keeps the records a later command did not remeasure); the settings below are the latest:`, ''];
  for (const h of res.history!) {
    const models = [...new Set(h.ids.map((id) => id.split('/')[0]))].join(', ');
    lines.push(
      `- \`${h.command}\`, started ${h.startedAt}, ${formatDuration(h.totalSeconds)}, commit \`${h.commit.hash.slice(0, 12)}\`${h.commit.dirty ? ' (uncommitted changes)' : ''},`
        + ` load average ${h.machine.loadAverage.join(' / ')}, ${h.backend.kind} × ${h.backend.threads}: ${h.ids.length} record${h.ids.length > 1 ? 's' : ''} of ${models}`,
    );
  }
  return lines;
}

export function resultsMarkdown(res: ResultsFile, plots: Plot[], o: MarkdownOptions): string {
  const m = res.machine;
  const models = [...new Set(res.records.map((r) => r.model))];
  const failed = res.records.filter((r) => r.error);
  const out = [
    '# Results: every method side by side',
    '',
    `Generated from [\`${o.resultsPath}\`](../${o.resultsPath}) (${res.records.length} records${res.history && res.history.length > 1 ? `, measured by the ${res.history.length} commands below` : `, measured by \`${res.command}\``}) — do not edit by hand;`,
    '`npm run report` regenerates this page and the README table from the JSON.',
    '',
    ...(res.history && res.history.length > 1 ? historyLines(res) : [
      `**Total runtime of the command: ${formatDuration(res.totalSeconds)}**${res.totalSeconds >= 90 ? ` (${res.totalSeconds.toFixed(0)} s)` : ''}, started ${res.startedAt}.`,
    ]),
    '',
    `- machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}; load average at the start ${m.loadAverage.join(' / ')}`,
    `- Node ${res.versions.node}, npm ${res.versions.npm}; backend ${res.backend.kind}, ${res.backend.threads} thread${res.backend.threads > 1 ? 's' : ''} per process`,
    `- commit \`${res.commit.hash.slice(0, 12)}\`${res.commit.dirty ? ' (with uncommitted changes in src/ or bench/)' : ''}${res.history && res.history.length > 1 ? ' (the latest command; each command\'s commit is listed above)' : ''}`,
    res.decode.repeats === undefined
      ? `- decode: ${res.decode.steps} greedy steps from BOS after a warm-up; prefill: a ${res.decode.prefillTokens}-token prompt (chunked as the model runs it), mean of 3 runs after a warm-up; both on the packed file in the bench process`
      : `- decode: ${res.decode.steps} greedy steps from BOS after a warm-up; prefill: a ${res.decode.prefillTokens}-token prompt (chunked as the model runs it); each the best of ${res.decode.repeats} repetitions (the one least slowed by other jobs); on the packed file in the bench process`,
    '- quantize time and peak RSS: the `bitcrush quantize --json` child process (its own timer: calibration to file written; RSS of that process)',
    '',
    'Timings were taken on a machine shared with other jobs, so they are noisy: decode and prefill rates of files in the same format',
    'can differ between rows because the load changed, so compare them within a run and treat small differences as noise.',
    'Perplexities are deterministic (seeded calibration windows and initialisations) and reproduce exactly on a rerun with the same',
    'backend and thread count.',
    '',
    'Reproduce: `npm run bench` (everything on this page; `-- --jobs 1` measures the models one after the other), `npm run report`',
    '(regenerates this page, the plots and the README table from the JSON), `npm run bench -- --quick` (stories260K smoke run).',
    '',
    '## Settings',
    '',
    '| model | role | calibration | groups | evaluation |',
    '|---|---|---|---|---|',
    ...res.models.map((s) => `| ${s.name} | ${s.role} | ${s.calibration} | ${s.groupSize} | ${s.eval.map((e) => `${e.text}, seqlen ${e.seqlen}${e.maxWindows === null ? '' : `, first ${e.maxWindows} windows`}`).join('; ')} |`),
    ...res.models.flatMap((s) => (s.notes ?? []).map((n) => `- ${s.name}: ${n}`)).reduce<string[]>((a, l) => (a.length ? [...a, l] : ['', l]), []),
    '',
    'Every run is one `bitcrush quantize` command: the record\'s `flags` plus the model\'s calibration settings above. "file bpw" is',
    'the whole file (every byte, header included) over all the model\'s weights, a tied embedding/head counted once; "linear bpw"',
    'counts every stored byte of the block linears (codes, scales, zeros, bit maps, codebooks); "model bpw" is the tensor data over',
    'all weights (– : measured before files reported it). PPL columns give the change against fp32 in parentheses.',
  ];
  for (const model of models) {
    const recs = res.records.filter((r) => r.model === model);
    out.push('', `## ${model}`, '', `Perplexity: ${textsOf(recs).map((t) => windowsNote(recs, t)).join('; ')}.`, '', ...modelTable(res, model));
    for (const p of plots.filter((x) => x.name.endsWith(`-${model.replace(/[^A-Za-z0-9.+-]+/g, '_')}.svg`))) {
      out.push('', `![${p.title}](${o.plotsDir}/${p.name})`);
    }
  }
  const time = plots.find((p) => p.name === 'quantize-time.svg');
  if (time) out.push('', '## Quantize time', '', `![${time.title}](${o.plotsDir}/${time.name})`);
  const maps = plots.filter((p) => p.name.startsWith('bitmap-'));
  if (maps.length) {
    out.push('', '## Per-layer bit maps of the mixed-precision runs', '', 'Each row is one linear layer, each cell one column group, coloured by its bit-width (read from the packed file).');
    for (const p of maps) out.push('', `![${p.title}](${o.plotsDir}/${p.name})`);
  }
  out.push('', '## Pareto front', '', 'Runs not beaten on both bits per weight and perplexity by another run of the same model (first text):', '');
  for (const model of models) {
    const front = paretoIds(res, model);
    out.push(`- ${model}: ${front.map((id) => `\`${id}\``).join(' → ') || '–'}`);
  }
  if (failed.length) {
    out.push('', '## Failed runs', '');
    for (const r of failed) out.push(`- \`${r.id}\` (\`${r.flags.join(' ')}\`): ${r.error}`);
  }
  return `${out.join('\n')}\n`;
}

/** Ids of the Pareto-optimal quantized runs of a model on its first text (sorted by bpw). */
export function paretoIds(res: ResultsFile, model: string): string[] {
  const runs = res.records.filter((r) => r.model === model && !r.error && r.method !== 'fp32');
  const text = runs[0]?.perplexity[0]?.text;
  if (text === undefined) return [];
  const ppl = (r: RunRecord) => r.perplexity.find((p) => p.text === text)?.ppl ?? NaN;
  return paretoFront(runs, (r) => r.linearBpw, ppl).map((r) => r.id);
}

/** The README's headline table (between the markers), from the same records as docs/results.md. */
export function readmeTable(res: ResultsFile, o: { resultsPath: string; resultsLink: string; resultsPage: string }): string {
  const quality = res.records.filter((r) => r.model === res.models[0]?.name);
  const text = quality.find((r) => r.perplexity.length)?.perplexity[0];
  const lines = [
    README_START,
    `<!-- generated by \`npm run report\` from ${o.resultsPath}; do not edit between these markers -->`,
    '',
    `Perplexity of ${res.models[0]?.name ?? '?'} on ${text ? `${text.text} (${text.windows} windows of ${text.seqlen})` : '?'}, each method at its standard settings`,
    `(full tables, bench-llama, decode/prefill speeds and plots: [${o.resultsPage}](${o.resultsPage})):`,
    '',
    '| method | setting | file bpw | linear bpw | file KiB | perplexity | quantize s | record |',
    '|---|---|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of quality) {
    const p = text ? r.perplexity.find((x) => x.text === text.text) : undefined;
    const setting = r.label.startsWith(`${r.method} `) ? r.label.slice(r.method.length + 1) : r.label;
    if (r.error) {
      lines.push(`| ${r.method} | ${setting} | – | – | – | failed | – | \`${r.id}\` |`);
      continue;
    }
    lines.push(`| ${r.method} | ${setting} | ${r.fileBpw === undefined ? '–' : num(r.fileBpw, 2)} | ${num(r.linearBpw, 2)} | ${num(r.fileBytes / 1024, 0)} | ${num(p?.ppl, 2)} | ${num(r.quantizeSeconds, 1)} | \`${r.id}\` |`);
  }
  // in a merged file, the commands that measured these rows
  const sources = res.history?.filter((h) => quality.some((r) => h.ids.includes(r.id))) ?? [res];
  const cite = (h: { commit: { hash: string }; machine: { cpu: string }; backend: { kind: string; threads: number }; command: string; totalSeconds: number }) =>
    `commit \`${h.commit.hash.slice(0, 12)}\`, ${h.machine.cpu}, ${h.backend.kind} × ${h.backend.threads}; \`${h.command}\` took ${formatDuration(h.totalSeconds)}`;
  lines.push(
    '',
    `Every number is the record named in the last column of [\`${o.resultsPath}\`](${o.resultsPath}) (${sources.length > 1 ? `measured by ${sources.length} commands: ` : ''}${sources.map(cite).join('; ')}).`,
    'Reproduce with `npm run bench` (quantizes, evaluates and measures every row, then regenerates the results page, its plots',
    'and this table); `npm run report` regenerates them from the JSON alone; `npm run bench -- --quick` is the one-minute smoke run.',
    README_END,
  );
  return lines.join('\n');
}

/** `readme` with the block between the markers replaced by `block`, or the block appended when there are no markers yet. */
export function spliceReadme(readme: string, block: string): string {
  const a = readme.indexOf(README_START);
  const b = readme.indexOf(README_END);
  if (a >= 0 && b > a) return readme.slice(0, a) + block + readme.slice(b + README_END.length);
  const sep = readme === '' || readme.endsWith('\n\n') ? '' : readme.endsWith('\n') ? '\n' : '\n\n';
  return `${readme}${sep}## Results\n\n${block}\n`;
}
