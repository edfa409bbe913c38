/**
 * A packed model's card: what the page shows about a file before running it. Plain data (it
 * crosses postMessage), read only from the header and the format registry, so every format
 * registered now or later is described without code here knowing it.
 */
import { groupBitMap } from '../formats/mixed.js';
import { getFormat } from '../formats/registry.js';
import type { FormatFamily } from '../formats/types.js';
import type { LlamaConfig } from '../model/config.js';
import { LINEARS, layerTensor } from '../model/weights.js';
import type { PackedModel } from '../packed/reader.js';
import type { PackedTotals } from '../packed/metadata.js';
import { sizeReport, type SizeReport } from '../packed/size.js';

export interface LinearCard {
  /** Canonical part name, e.g. `self_attn.q_proj`. */
  part: string;
  /** Format id ('dense' when stored unquantized). */
  format: string;
  family: FormatFamily | 'dense';
  /** Bits per weight of this tensor, every blob byte counted. */
  bpw: number;
  shape: number[];
  /** The format's params as `key=value` pairs ('' for dense). */
  params: string;
}

export interface ModelCard {
  file: string;
  fileBytes: number;
  method: string;
  /** The method's options as recorded (calibration and source paths left out). */
  options: Record<string, unknown>;
  config: LlamaConfig;
  totals: PackedTotals;
  /** The honest size: the whole file's bits over all weights, then by role (block linears, head, embedding, other). */
  size: SizeReport;
  /** Per layer, its linears in canonical order. */
  layers: LinearCard[][];
  /**
   * The bit-width of every column group of each grid-format tensor (SliM-LLM's bit map; a
   * uniform tensor's groups all have its width), in file order; empty when no tensor has groups.
   */
  groupBits: { tensor: string; widths: number[] }[];
  /** Every format present, with how many tensors use it. */
  formats: { format: string; family: FormatFamily | 'dense'; summary: string; tensors: number }[];
}

export function modelCard(packed: PackedModel, fileBytes: number): ModelCard {
  const h = packed.header;
  const { calibration: _c, source: _s, ...options } = h.method.options;
  const counts = new Map<string, number>();
  for (const rec of Object.values(h.tensors)) counts.set(rec.format, (counts.get(rec.format) ?? 0) + 1);
  const layers: LinearCard[][] = [];
  for (let l = 0; l < h.config.nLayers; l++) {
    layers.push(
      LINEARS.map((part) => {
        const rec = h.tensors[layerTensor(l, part)]!;
        const dense = rec.format === 'dense';
        const params = dense ? '' : Object.entries((rec as { params: Record<string, unknown> }).params).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ');
        return { part, format: rec.format, family: familyOf(rec.format), bpw: rec.bpw, shape: [...rec.shape], params };
      }),
    );
  }
  const groupBits: ModelCard['groupBits'] = [];
  for (const name of Object.keys(h.tensors)) {
    const map = packed.isPacked(name) ? groupBitMap(packed.packed(name)) : null;
    if (map !== null) groupBits.push({ tensor: name, widths: [...map] });
  }
  return {
    file: packed.name,
    fileBytes,
    method: h.method.name,
    options,
    config: h.config,
    totals: h.totals,
    size: sizeReport(h, fileBytes),
    layers,
    groupBits,
    formats: [...counts].map(([format, tensors]) => ({
      format,
      family: familyOf(format),
      summary: format === 'dense' ? 'unquantized, in the source dtype (norms, tensors left in float)' : getFormat(format).summary,
      tensors,
    })),
  };
}

// the reader has already rejected formats this build does not know
function familyOf(format: string): FormatFamily | 'dense' {
  return format === 'dense' ? 'dense' : getFormat(format).family;
}
