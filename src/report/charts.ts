/**
 * The plots of the results report, drawn from a results file with src/report/svg.ts:
 * perplexity vs bits per weight of the linears with the Pareto front, perplexity vs bits per
 * weight of the whole file (runs that record it), quantize time per run, decode tokens/s
 * vs bits per weight, and the group bit maps of mixed-precision runs.
 */
import { bitWidthColor, bitWidthLegend } from './bit-colors.js';
import type { ResultsFile, RunRecord } from './results.js';
import { barChart, chart, heatmap, type ChartSeries } from './svg.js';

/** One colour per method, the same in every plot. */
const METHOD_COLORS: Readonly<Record<string, string>> = {
  fp32: '#000000',
  rtn: '#7f7f7f',
  gptq: '#1f77b4',
  slim: '#ff7f0e',
  'slim+': '#d62728',
  aqlm: '#2ca02c',
  billm: '#9467bd',
  dbell: '#8c564b',
};
const MARKERS = ['circle', 'square', 'diamond', 'triangle'] as const;

export function methodColor(method: string): string {
  return METHOD_COLORS[method] ?? '#17becf';
}

export interface Plot {
  /** File name, e.g. `ppl-bpw-stories260K.svg`. */
  name: string;
  title: string;
  svg: string;
}

const ok = (r: RunRecord) => r.error === undefined;
const fileSafe = (s: string) => s.replace(/[^A-Za-z0-9.+-]+/g, '_');

/** The label without its method name (`gptq 2-bit g32` → `2-bit g32`) for point labels. */
function setting(r: RunRecord): string {
  return r.label.startsWith(`${r.method} `) ? r.label.slice(r.method.length + 1) : r.label;
}

/**
 * Runs on the Pareto front of (x, y), both lower-is-better: no other run has x ≤ and y ≤ with
 * one strictly lower. Sorted by x.
 */
export function paretoFront<T>(items: T[], x: (t: T) => number, y: (t: T) => number): T[] {
  const sorted = items.filter((t) => Number.isFinite(x(t)) && Number.isFinite(y(t))).sort((a, b) => x(a) - x(b) || y(a) - y(b));
  const front: T[] = [];
  let best = Infinity;
  for (const t of sorted) {
    if (y(t) < best) {
      front.push(t);
      best = y(t);
    }
  }
  return front;
}

/** Per-method series of (x, y) over the quantized runs of one model, points labelled by setting. */
function methodSeries(runs: RunRecord[], x: (r: RunRecord) => number, y: (r: RunRecord) => number): ChartSeries[] {
  const methods = [...new Set(runs.map((r) => r.method))];
  return methods.map((method, i) => ({
    label: method,
    color: methodColor(method),
    marker: MARKERS[i % MARKERS.length],
    // the method in the label too: runs at the same bpw and perplexity sit on one spot
    points: runs.filter((r) => r.method === method).map((r) => ({ x: x(r), y: y(r), label: `${r.method} ${setting(r).replace(/ g\d+/, '')}` })),
  }));
}

/** A horizontal reference line (the fp32 model) across the x range of `runs`. */
function referenceLine(label: string, value: number, runs: RunRecord[], x: (r: RunRecord) => number): ChartSeries {
  const xs = runs.map(x).filter(Number.isFinite);
  return {
    label,
    color: '#000000',
    style: 'line',
    dashed: true,
    points: xs.length ? [{ x: Math.min(...xs), y: value }, { x: Math.max(...xs), y: value }] : [],
  };
}

function pplOf(r: RunRecord, text: string): number {
  return r.perplexity.find((p) => p.text === text)?.ppl ?? NaN;
}

export function reportPlots(res: ResultsFile): Plot[] {
  const plots: Plot[] = [];
  const models = [...new Set(res.records.map((r) => r.model))];
  for (const model of models) {
    const recs = res.records.filter((r) => r.model === model && ok(r));
    const fp32 = recs.find((r) => r.method === 'fp32');
    const runs = recs.filter((r) => r.method !== 'fp32');
    const text = recs[0]?.perplexity[0]?.text;
    if (runs.length === 0 || text === undefined) continue;
    const bpw = (r: RunRecord) => r.linearBpw;
    const ppl = (r: RunRecord) => pplOf(r, text);
    const windows = recs[0]!.perplexity[0]!;
    const front = paretoFront(runs, bpw, ppl);
    const series = methodSeries(runs, bpw, ppl);
    series.push({ label: 'Pareto front', color: '#444444', style: 'line', points: front.map((r) => ({ x: bpw(r), y: ppl(r) })) });
    if (fp32) series.push(referenceLine(`fp32 ${ppl(fp32).toFixed(2)}`, ppl(fp32), runs, bpw));
    const title = `${model}: perplexity on ${text} (${windows.windows} windows of ${windows.seqlen}) vs bits per weight`;
    plots.push({
      name: `ppl-bpw-${fileSafe(model)}.svg`,
      title,
      svg: chart({ title, xLabel: 'bits per weight of the quantized linears (all metadata counted)', yLabel: 'perplexity (log scale)', logY: true, series }),
    });

    // The whole file over all weights (embedding, head, norms, header): only runs whose file
    // records it, so a run measured before files reported it never sits on the wrong axis.
    const sized = runs.filter((r) => r.fileBpw !== undefined);
    if (sized.length >= 2) {
      const fileBpw = (r: RunRecord) => r.fileBpw ?? NaN;
      const whole = methodSeries(sized, fileBpw, ppl);
      if (fp32) whole.push(referenceLine(`fp32 ${ppl(fp32).toFixed(2)}`, ppl(fp32), sized, fileBpw));
      const wholeTitle = `${model}: perplexity on ${text} vs bits per weight of the whole file (${sized.length} runs that record it)`;
      plots.push({
        name: `ppl-filebpw-${fileSafe(model)}.svg`,
        title: wholeTitle,
        svg: chart({ title: wholeTitle, xLabel: 'bits per weight of the whole file over all weights (every byte counted)', yLabel: 'perplexity (log scale)', logY: true, series: whole }),
      });
    }

    const dec = methodSeries(runs, bpw, (r) => r.decodeTokensPerSecond);
    if (fp32) dec.push(referenceLine(`fp32 ${fp32.decodeTokensPerSecond.toFixed(0)} tok/s`, fp32.decodeTokensPerSecond, runs, bpw));
    const decTitle = `${model}: decode tokens/s of the packed file vs bits per weight (${res.backend.kind}, ${res.backend.threads} thread${res.backend.threads > 1 ? 's' : ''})`;
    plots.push({
      name: `decode-bpw-${fileSafe(model)}.svg`,
      title: decTitle,
      svg: chart({ title: decTitle, xLabel: 'bits per weight of the quantized linears', yLabel: 'decode tokens/s (greedy, batch 1)', series: dec }),
    });
  }

  const timed = res.records.filter((r) => ok(r) && r.quantizeSeconds !== null);
  if (timed.length) {
    const title = 'Quantize wall time per run (bitcrush quantize, calibration to packed file written)';
    const methods = [...new Set(timed.map((r) => r.method))];
    plots.push({
      name: 'quantize-time.svg',
      title,
      svg: barChart({
        title,
        xLabel: 'seconds (log scale)',
        logX: true,
        legend: methods.map((m) => ({ label: m, color: methodColor(m) })),
        bars: timed.map((r) => ({
          label: `${r.model} · ${r.label}`,
          value: r.quantizeSeconds!,
          color: methodColor(r.method),
          text: `${r.quantizeSeconds!.toFixed(1)} s`,
        })),
      }),
    });
  }

  for (const r of res.records) {
    if (!ok(r) || !r.bitMaps?.length) continue;
    const title = `${r.model} · ${r.label}: bit-width of each column group per layer`;
    plots.push({
      name: `bitmap-${fileSafe(r.model)}-${fileSafe(r.label)}.svg`,
      title,
      svg: heatmap({
        title,
        rows: r.bitMaps.map((b) => ({ label: b.layer, values: b.bits })),
        color: bitWidthColor,
        legend: bitWidthLegend(),
        cellWidth: 14,
        maxWidth: 900,
      }),
    });
  }
  return plots;
}
