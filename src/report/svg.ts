/**
 * Small, dependency-free SVG charts for reports and `bitcrush inspect --plot`: a heatmap of
 * labelled rows of cells (per-layer bit maps, per-block errors) and a line/scatter plot. Each
 * returns the SVG document as a string; writing it is the caller's business (the core does no
 * I/O), so the same charts work in the browser.
 */

export interface HeatmapRow {
  label: string;
  /** One cell per value; rows may differ in length. NaN draws no cell. */
  values: ArrayLike<number>;
}

export interface HeatmapOptions {
  title: string;
  rows: HeatmapRow[];
  /** Fill colour of a value. */
  color: (v: number) => string;
  /** Legend entries, left to right. */
  legend?: Array<{ label: string; color: string }>;
  /** Cell size in px (default 10 × 12); wide rows are drawn narrower to fit `maxWidth`. */
  cellWidth?: number;
  cellHeight?: number;
  maxWidth?: number;
}

export interface Series {
  label: string;
  points: Array<[number, number]>;
  color: string;
}

export interface PlotOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  kind: 'line' | 'scatter';
  /** Logarithmic y axis (perplexities spanning decades). */
  logY?: boolean;
  width?: number;
  height?: number;
}

/** Escape text for SVG content and attributes. */
export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const FONT = 'font-family="sans-serif" font-size="11"';
const TITLE_FONT = 'font-family="sans-serif" font-size="13"';

function doc(width: number, height: number, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

function legendItems(items: Array<{ label: string; color: string }>, x: number, y: number): string[] {
  const out: string[] = [];
  let cx = x;
  for (const it of items) {
    out.push(`<rect x="${cx}" y="${y - 9}" width="10" height="10" fill="${it.color}"/>`);
    out.push(`<text x="${cx + 14}" y="${y}" ${FONT}>${escapeXml(it.label)}</text>`);
    cx += 24 + 7 * it.label.length;
  }
  return out;
}

export function heatmap(o: HeatmapOptions): string {
  const labelWidth = 8 + 6.5 * Math.max(0, ...o.rows.map((r) => r.label.length));
  const longest = Math.max(1, ...o.rows.map((r) => r.values.length));
  const maxWidth = o.maxWidth ?? 1400;
  const cw = Math.max(1, Math.min(o.cellWidth ?? 10, (maxWidth - labelWidth - 20) / longest));
  const ch = o.cellHeight ?? 12;
  const top = 40;
  const width = Math.ceil(Math.max(labelWidth + cw * longest + 20, 20 + 7 * o.title.length));
  const height = top + ch * o.rows.length + 10;
  const body = [`<text x="10" y="16" ${TITLE_FONT}>${escapeXml(o.title)}</text>`];
  if (o.legend) body.push(...legendItems(o.legend, 10, 32));
  o.rows.forEach((row, i) => {
    const y = top + i * ch;
    body.push(`<text x="${labelWidth - 4}" y="${y + ch - 3}" ${FONT} text-anchor="end">${escapeXml(row.label)}</text>`);
    for (let j = 0; j < row.values.length; j++) {
      const v = row.values[j]!;
      if (Number.isNaN(v)) continue;
      body.push(`<rect x="${(labelWidth + j * cw).toFixed(2)}" y="${y}" width="${cw.toFixed(2)}" height="${ch - 1}" fill="${o.color(v)}"/>`);
    }
  });
  return doc(width, height, body);
}

export function plot(o: PlotOptions): string {
  const width = o.width ?? 640;
  const height = o.height ?? 400;
  const m = { left: 64, right: 16, top: 40, bottom: 48 };
  const pts = o.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!o.logY || y > 0));
  const ty = (y: number) => (o.logY ? Math.log10(y) : y);
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => ty(p[1]));
  const [x0, x1] = xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
  const [y0, y1] = ys.length ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
  const sx = (x: number) => m.left + ((x - x0) / (x1 - x0 || 1)) * (width - m.left - m.right);
  const sy = (y: number) => height - m.bottom - ((ty(y) - y0) / (y1 - y0 || 1)) * (height - m.top - m.bottom);
  const body = [
    `<text x="10" y="16" ${TITLE_FONT}>${escapeXml(o.title)}</text>`,
    `<line x1="${m.left}" y1="${height - m.bottom}" x2="${width - m.right}" y2="${height - m.bottom}" stroke="black"/>`,
    `<line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${height - m.bottom}" stroke="black"/>`,
    `<text x="${(m.left + width - m.right) / 2}" y="${height - 10}" ${FONT} text-anchor="middle">${escapeXml(o.xLabel)}</text>`,
    `<text x="14" y="${(m.top + height - m.bottom) / 2}" ${FONT} text-anchor="middle" transform="rotate(-90 14 ${(m.top + height - m.bottom) / 2})">${escapeXml(o.yLabel)}</text>`,
  ];
  // end ticks: the axis range in data units
  const fmt = (v: number) => (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-2 && v !== 0) ? v.toExponential(2) : Number(v.toPrecision(4)).toString());
  body.push(`<text x="${m.left}" y="${height - m.bottom + 14}" ${FONT} text-anchor="middle">${fmt(x0)}</text>`);
  body.push(`<text x="${width - m.right}" y="${height - m.bottom + 14}" ${FONT} text-anchor="middle">${fmt(x1)}</text>`);
  body.push(`<text x="${m.left - 4}" y="${height - m.bottom}" ${FONT} text-anchor="end">${fmt(o.logY ? 10 ** y0 : y0)}</text>`);
  body.push(`<text x="${m.left - 4}" y="${m.top + 4}" ${FONT} text-anchor="end">${fmt(o.logY ? 10 ** y1 : y1)}</text>`);
  for (const s of o.series) {
    const p = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!o.logY || y > 0));
    if (o.kind === 'line' && p.length > 1) {
      body.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.5" points="${p.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')}"/>`);
    }
    for (const [x, y] of p) body.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${s.color}"/>`);
  }
  body.push(...legendItems(o.series.map((s) => ({ label: s.label, color: s.color })), m.left + 10, 32));
  return doc(width, height, body);
}

// ---- Charts with tick marks, grid, point labels and a side legend (the results report) ----

export interface ChartPoint {
  x: number;
  y: number;
  /** Short text drawn beside the marker. */
  label?: string;
}

export interface ChartSeries {
  label: string;
  color: string;
  points: ChartPoint[];
  /** markers only (default), a line through the points, or both. */
  style?: 'markers' | 'line' | 'line+markers';
  marker?: 'circle' | 'square' | 'diamond' | 'triangle';
  dashed?: boolean;
  /** Leave the series out of the legend. */
  noLegend?: boolean;
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: ChartSeries[];
  logX?: boolean;
  logY?: boolean;
  width?: number;
  height?: number;
}

/** Round tick positions covering [lo, hi]: 1, 2 or 5 × 10^k apart. */
export function linearTicks(lo: number, hi: number, target = 6): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  // the candidate step whose tick count is nearest the target
  const step = [1, 2, 5, 10].map((m) => m * mag).reduce((a, b) => (Math.abs((hi - lo) / b - target) < Math.abs((hi - lo) / a - target) ? b : a));
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** Ticks of a log axis over [lo, hi] (both > 0): decades, with 2 and 5 between when few decades are spanned. */
export function logTicks(lo: number, hi: number): number[] {
  const d0 = Math.floor(Math.log10(lo));
  const d1 = Math.ceil(Math.log10(hi));
  const mult = d1 - d0 <= 3 ? [1, 2, 5] : [1];
  const out: number[] = [];
  for (let d = d0; d <= d1; d++) for (const m of mult) {
    const v = m * 10 ** d;
    if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out.push(Number(v.toPrecision(12)));
  }
  // a range inside one decade may hold fewer than two of these: round linear steps instead
  return out.length >= 2 ? out : linearTicks(lo, hi, 5);
}

function tickText(v: number): string {
  if (v !== 0 && (Math.abs(v) >= 1e5 || Math.abs(v) < 1e-3)) return v.toExponential(0);
  return Number(v.toPrecision(4)).toString();
}

/** Data range of one axis, padded by 5 % (linear) or a factor (log) so markers clear the frame. */
function axisRange(values: number[], log: boolean): [number, number] {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (log) {
    if (hi / lo < 1.5) { lo /= 1.2; hi *= 1.2; }
    const f = (hi / lo) ** 0.05;
    return [lo / f, hi * f];
  }
  if (hi === lo) { lo -= Math.abs(lo) * 0.1 || 1; hi += Math.abs(hi) * 0.1 || 1; }
  const pad = (hi - lo) * 0.05;
  return [lo - pad, hi + pad];
}

function markerSvg(kind: ChartSeries['marker'], x: number, y: number, color: string): string {
  const [cx, cy] = [x.toFixed(1), y.toFixed(1)];
  switch (kind ?? 'circle') {
    case 'square':
      return `<rect x="${(x - 3.5).toFixed(1)}" y="${(y - 3.5).toFixed(1)}" width="7" height="7" fill="${color}"/>`;
    case 'diamond':
      return `<polygon points="${cx},${(y - 4.5).toFixed(1)} ${(x + 4.5).toFixed(1)},${cy} ${cx},${(y + 4.5).toFixed(1)} ${(x - 4.5).toFixed(1)},${cy}" fill="${color}"/>`;
    case 'triangle':
      return `<polygon points="${cx},${(y - 4.5).toFixed(1)} ${(x + 4).toFixed(1)},${(y + 3.5).toFixed(1)} ${(x - 4).toFixed(1)},${(y + 3.5).toFixed(1)}" fill="${color}"/>`;
    default:
      return `<circle cx="${cx}" cy="${cy}" r="3.5" fill="${color}"/>`;
  }
}

/**
 * Scatter/line chart with round ticks and a light grid on both axes (optionally logarithmic),
 * labelled points, and the legend in a column on the right so that many series stay readable.
 */
export function chart(o: ChartOptions): string {
  const legendWidth = 24 + 6.5 * Math.max(0, ...o.series.filter((s) => !s.noLegend).map((s) => s.label.length));
  const width = o.width ?? Math.ceil(640 + legendWidth);
  const height = o.height ?? 420;
  const m = { left: 70, right: 16 + legendWidth, top: 36, bottom: 48 };
  const ok = (p: ChartPoint) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!o.logX || p.x > 0) && (!o.logY || p.y > 0);
  const pts = o.series.flatMap((s) => s.points.filter(ok));
  const [x0, x1] = pts.length ? axisRange(pts.map((p) => p.x), o.logX === true) : [0, 1];
  const [y0, y1] = pts.length ? axisRange(pts.map((p) => p.y), o.logY === true) : [0, 1];
  const tx = (v: number) => (o.logX ? Math.log10(v) : v);
  const ty = (v: number) => (o.logY ? Math.log10(v) : v);
  const plotW = width - m.left - m.right;
  const plotH = height - m.top - m.bottom;
  const sx = (v: number) => m.left + ((tx(v) - tx(x0)) / (tx(x1) - tx(x0))) * plotW;
  const sy = (v: number) => m.top + plotH - ((ty(v) - ty(y0)) / (ty(y1) - ty(y0))) * plotH;
  const body = [`<text x="10" y="18" ${TITLE_FONT} font-weight="bold">${escapeXml(o.title)}</text>`];
  // grid and tick labels
  for (const v of o.logX ? logTicks(x0, x1) : linearTicks(x0, x1)) {
    const x = sx(v).toFixed(1);
    body.push(`<line x1="${x}" y1="${m.top}" x2="${x}" y2="${m.top + plotH}" stroke="#e4e4e4"/>`);
    body.push(`<text x="${x}" y="${m.top + plotH + 15}" ${FONT} text-anchor="middle">${tickText(v)}</text>`);
  }
  for (const v of o.logY ? logTicks(y0, y1) : linearTicks(y0, y1)) {
    const y = sy(v).toFixed(1);
    body.push(`<line x1="${m.left}" y1="${y}" x2="${m.left + plotW}" y2="${y}" stroke="#e4e4e4"/>`);
    body.push(`<text x="${m.left - 5}" y="${(sy(v) + 4).toFixed(1)}" ${FONT} text-anchor="end">${tickText(v)}</text>`);
  }
  body.push(`<rect x="${m.left}" y="${m.top}" width="${plotW}" height="${plotH}" fill="none" stroke="black"/>`);
  body.push(`<text x="${m.left + plotW / 2}" y="${height - 10}" ${FONT} text-anchor="middle">${escapeXml(o.xLabel)}</text>`);
  const midY = m.top + plotH / 2;
  body.push(`<text x="16" y="${midY}" ${FONT} text-anchor="middle" transform="rotate(-90 16 ${midY})">${escapeXml(o.yLabel)}</text>`);
  // point labels go to the first free corner of their marker; a label with no free corner is left out
  const placed: Array<[number, number, number, number]> = [];
  const placeLabel = (x: number, y: number, text: string): string | null => {
    const w = 5 * text.length + 2;
    for (const [dx, dy] of [[6, -5], [6, 12], [-6 - w, -5], [-6 - w, 12]] as const) {
      const box: [number, number, number, number] = [x + dx, y + dy - 9, x + dx + w, y + dy + 1];
      if (box[0] < m.left || box[2] > m.left + plotW || box[1] < m.top || box[3] > m.top + plotH) continue;
      if (placed.some((b) => box[0] < b[2] && b[0] < box[2] && box[1] < b[3] && b[1] < box[3])) continue;
      placed.push(box);
      return `<text x="${box[0].toFixed(1)}" y="${(y + dy).toFixed(1)}" font-family="sans-serif" font-size="9" fill="#333">${escapeXml(text)}</text>`;
    }
    return null;
  };
  const labels: string[] = [];
  for (const s of o.series) {
    const p = s.points.filter(ok);
    const style = s.style ?? 'markers';
    if (style !== 'markers' && p.length > 1) {
      const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
      body.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.5"${dash} points="${p.map((q) => `${sx(q.x).toFixed(1)},${sy(q.y).toFixed(1)}`).join(' ')}"/>`);
    }
    for (const q of p) {
      if (style !== 'line') body.push(markerSvg(s.marker, sx(q.x), sy(q.y), s.color));
      const label = q.label ? placeLabel(sx(q.x), sy(q.y), q.label) : null;
      if (label) labels.push(label);
    }
  }
  body.push(...labels);
  // legend: one row per series, right of the plot
  let ly = m.top + 8;
  for (const s of o.series) {
    if (s.noLegend) continue;
    const lx = m.left + plotW + 14;
    if ((s.style ?? 'markers') !== 'markers') {
      body.push(`<line x1="${lx - 4}" y1="${ly - 4}" x2="${lx + 12}" y2="${ly - 4}" stroke="${s.color}" stroke-width="1.5"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    }
    if ((s.style ?? 'markers') !== 'line') body.push(markerSvg(s.marker, lx + 4, ly - 4, s.color));
    body.push(`<text x="${lx + 18}" y="${ly}" ${FONT}>${escapeXml(s.label)}</text>`);
    ly += 16;
  }
  return doc(width, height, body);
}

export interface Bar {
  label: string;
  value: number;
  color: string;
  /** Text at the end of the bar (default: the value). */
  text?: string;
}

export interface BarChartOptions {
  title: string;
  xLabel: string;
  bars: Bar[];
  /** Logarithmic value axis (values spanning decades, e.g. run times). */
  logX?: boolean;
  legend?: Array<{ label: string; color: string }>;
  width?: number;
}

/** Horizontal bar chart: one labelled bar per row (labels can be long), value axis at the bottom. */
export function barChart(o: BarChartOptions): string {
  const labelWidth = 12 + 6.5 * Math.max(0, ...o.bars.map((b) => b.label.length));
  const width = o.width ?? Math.ceil(Math.max(640, labelWidth + 480));
  const barH = 16;
  const m = { left: labelWidth, right: 70, top: o.legend ? 50 : 34, bottom: 44 };
  const plotW = width - m.left - m.right;
  const plotH = barH * o.bars.length + 8;
  const height = m.top + plotH + m.bottom;
  const vals = o.bars.map((b) => b.value).filter((v) => Number.isFinite(v) && (!o.logX || v > 0));
  const hi = vals.length ? Math.max(...vals) : 1;
  const lo = o.logX ? (vals.length ? Math.min(...vals) : 0.1) / 2 : 0;
  const [v0, v1] = o.logX ? [lo, hi * 1.1] : [0, hi * 1.05 || 1];
  const t = (v: number) => (o.logX ? Math.log10(v) : v);
  const sx = (v: number) => m.left + ((t(v) - t(v0)) / (t(v1) - t(v0))) * plotW;
  const body = [`<text x="10" y="18" ${TITLE_FONT} font-weight="bold">${escapeXml(o.title)}</text>`];
  if (o.legend) body.push(...legendItems(o.legend, m.left, 38));
  for (const v of o.logX ? logTicks(v0, v1) : linearTicks(v0, v1)) {
    const x = sx(v).toFixed(1);
    body.push(`<line x1="${x}" y1="${m.top}" x2="${x}" y2="${m.top + plotH}" stroke="#e4e4e4"/>`);
    body.push(`<text x="${x}" y="${m.top + plotH + 15}" ${FONT} text-anchor="middle">${tickText(v)}</text>`);
  }
  o.bars.forEach((b, i) => {
    const y = m.top + 4 + i * barH;
    body.push(`<text x="${m.left - 6}" y="${y + barH - 5}" ${FONT} text-anchor="end">${escapeXml(b.label)}</text>`);
    if (!Number.isFinite(b.value) || (o.logX && b.value <= 0)) {
      body.push(`<text x="${m.left + 4}" y="${y + barH - 5}" ${FONT} fill="#888">${escapeXml(b.text ?? 'n/a')}</text>`);
      return;
    }
    const w = Math.max(1, sx(b.value) - m.left);
    body.push(`<rect x="${m.left}" y="${y + 1}" width="${w.toFixed(1)}" height="${barH - 3}" fill="${b.color}"/>`);
    body.push(`<text x="${(m.left + w + 4).toFixed(1)}" y="${y + barH - 5}" ${FONT}>${escapeXml(b.text ?? tickText(b.value))}</text>`);
  });
  body.push(`<line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${m.top + plotH}" stroke="black"/>`);
  body.push(`<line x1="${m.left}" y1="${m.top + plotH}" x2="${m.left + plotW}" y2="${m.top + plotH}" stroke="black"/>`);
  body.push(`<text x="${m.left + plotW / 2}" y="${height - 10}" ${FONT} text-anchor="middle">${escapeXml(o.xLabel)}</text>`);
  return doc(width, height, body);
}
