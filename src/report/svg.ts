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
