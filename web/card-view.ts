/**
 * The model card: provenance, size and bits per weight, architecture, the formats present,
 * and a bit-map of the layers (one cell per linear, coloured by its bits per weight, with
 * its format in the tooltip).
 */
import type { LinearCard, ModelCard } from '../src/browser/card.js';
import { ROLE_LABELS, WEIGHT_ROLES } from '../src/packed/size.js';
import { bitWidthColor, bitWidthLegend } from '../src/report/bit-colors.js';
import { heatmap } from '../src/report/svg.js';
import { el, svg } from './dom.js';

export function renderCard(card: ModelCard): Element[] {
  const c = card.config;
  const z = card.size;
  const options = Object.entries(card.options).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ');
  const facts = el(
    'dl',
    { class: 'facts' },
    el('dt', {}, 'method'),
    el('dd', { id: 'card-method' }, card.method, options ? el('span', { class: 'muted' }, ` ${options}`) : null),
    el('dt', {}, 'size'),
    el('dd', { id: 'card-size' }, `${formatBytes(card.fileBytes)} · ${z.bpw.toFixed(3)} bits per weight over all ${(z.weights / 1e6).toFixed(2)} M weights`),
    el('dt', {}, 'by role'),
    el(
      'dd',
      { id: 'card-bpw' },
      WEIGHT_ROLES.filter((r) => z.roles[r].tensors > 0)
        .map((r) => `${ROLE_LABELS[r]} ${z.roles[r].bpw.toFixed(3)} bpw (${formatBytes(z.roles[r].bytes)})${r === 'embedding' && z.tied === 'one tensor' ? ', tied: also the head' : ''}`)
        .join(' · '),
    ),
    el('dt', {}, 'architecture'),
    el('dd', {}, `dim ${c.dim} · hidden ${c.hiddenDim} · ${c.nLayers} layers · ${c.nHeads} heads (${c.nKvHeads} kv) · vocab ${c.vocabSize} · context ${c.seqLen}`),
  );
  const formats = el(
    'table',
    { class: 'formats' },
    el('thead', {}, el('tr', {}, el('th', {}, 'format'), el('th', {}, 'family'), el('th', {}, 'tensors'), el('th', {}, 'layout'))),
    el('tbody', {}, ...card.formats.map((f) => el('tr', {}, el('td', {}, el('code', {}, f.format)), el('td', {}, f.family), el('td', { class: 'num' }, f.tensors), el('td', {}, f.summary)))),
  );
  return [
    el('h2', {}, 'Model card: ', el('span', { id: 'card-file' }, card.file)),
    facts,
    formats,
    el('h3', {}, 'Bit-map: bits per weight of every linear'),
    bitMap(card.layers),
    ...groupBitMap(card),
  ];
}


let lastMapUrl: string | undefined;

/** The per-group width map of the grid-format tensors, drawn by the report's heatmap (an inert image). */
function groupBitMap(card: ModelCard): Element[] {
  if (card.groupBits.length === 0) return [];
  const doc = heatmap({
    title: 'bit-width of each column group',
    rows: card.groupBits.map((r) => ({ label: r.tensor.replace(/^model\./, '').replace(/\.weight$/, ''), values: r.widths })),
    color: bitWidthColor,
    legend: bitWidthLegend(),
    cellWidth: 16,
    cellHeight: 11,
    maxWidth: 880,
  });
  if (lastMapUrl !== undefined) URL.revokeObjectURL(lastMapUrl);
  const url = (lastMapUrl = URL.createObjectURL(new Blob([doc], { type: 'image/svg+xml' })));
  return [el('h3', {}, 'Group bit-map: width of every column group'), el('img', { id: 'group-bitmap', class: 'group-bitmap', src: url, alt: 'bit-width of each column group' })];
}

const CELL_W = 74;
const CELL_H = 36;
const LEFT = 64;
const TOP = 44;

function bitMap(layers: LinearCard[][]): Element {
  const parts = layers[0]?.map((l) => l.part) ?? [];
  const width = LEFT + parts.length * CELL_W + 8;
  const height = TOP + layers.length * CELL_H + 8;
  const cells: Element[] = [];
  parts.forEach((p, j) => {
    const [group, name] = p.split('.');
    const x = LEFT + j * CELL_W + CELL_W / 2;
    cells.push(svg('text', { x, y: 16, class: 'axis', 'text-anchor': 'middle' }, group === 'mlp' ? 'mlp' : 'attn'));
    cells.push(svg('text', { x, y: 32, class: 'axis', 'text-anchor': 'middle' }, (name ?? p).replace('_proj', '')));
  });
  layers.forEach((row, l) => {
    const y = TOP + l * CELL_H;
    cells.push(svg('text', { x: LEFT - 8, y: y + CELL_H / 2 + 4, class: 'axis', 'text-anchor': 'end' }, `layer ${l}`));
    row.forEach((lin, j) => {
      const x = LEFT + j * CELL_W;
      const tip = `layer ${l} ${lin.part}: ${lin.format}${lin.params ? ` (${lin.params})` : ''}, [${lin.shape.join(' × ')}], ${lin.bpw.toFixed(3)} bits/weight`;
      cells.push(
        svg(
          'g',
          { class: 'cell', 'data-format': lin.format },
          svg('title', {}, tip),
          svg('rect', { x: x + 1, y: y + 1, width: CELL_W - 2, height: CELL_H - 2, rx: 3, fill: bitWidthColor(lin.bpw) }),
          svg('text', { x: x + CELL_W / 2, y: y + 16, 'text-anchor': 'middle', class: 'cell-label' }, lin.bpw >= 16 ? 'fp' + Math.round(lin.bpw) : lin.bpw.toFixed(2)),
          svg('text', { x: x + CELL_W / 2, y: y + 29, 'text-anchor': 'middle', class: 'cell-format' }, lin.format),
        ),
      );
    });
  });
  return el('div', { class: 'bitmap' }, svg('svg', { id: 'bitmap', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img' }, ...cells), legend());
}

/** The same palette as the group bit-map and `inspect --plot` (src/report/bit-colors.ts). */
function legend(): Element {
  return el('div', { class: 'legend' }, ...bitWidthLegend(true).map((it) => el('span', {}, el('i', { style: `background:${it.color}` }), it.label)));
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1 << 20)).toFixed(2)} MiB`;
}
