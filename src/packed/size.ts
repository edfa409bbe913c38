/**
 * One honest size for a packed file (issue 13): bits per weight over ALL the model's weights,
 * counting every byte of the file (header and alignment included), then the breakdown by role.
 * Read from the header alone, so it works on files written before the head and embedding
 * could be quantized.
 */
import { EMBED, LM_HEAD } from '../model/weights.js';
import type { PackedHeader } from './metadata.js';

export type WeightRole = 'blockLinears' | 'head' | 'embedding' | 'other';
export const WEIGHT_ROLES: readonly WeightRole[] = ['blockLinears', 'head', 'embedding', 'other'];
export const ROLE_LABELS: Readonly<Record<WeightRole, string>> = {
  blockLinears: 'block linears',
  head: 'head',
  embedding: 'embedding',
  other: 'other (norms, biases)',
};

export interface RoleSize {
  tensors: number;
  weights: number;
  /** Bytes of the tensors' data (blobs or float values), alignment excluded. */
  bytes: number;
  bpw: number;
}

export interface SizeReport {
  fileBytes: number;
  /** The model's parameters (a tied embedding/head matrix counted once, even when stored twice). */
  weights: number;
  /** fileBytes · 8 / weights: the whole file over all weights. */
  bpw: number;
  /** Tensor data only (no header, no alignment) over all weights. */
  tensorBpw: number;
  roles: Record<WeightRole, RoleSize>;
  /** How the embedding and head are stored. */
  tied: 'one tensor' | 'two tensors' | 'untied';
}

/** Role of a canonical tensor name. */
export function roleOf(name: string): WeightRole {
  if (name === EMBED) return 'embedding';
  if (name === LM_HEAD) return 'head';
  if (/^model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj\.weight$/.test(name)) return 'blockLinears';
  return 'other';
}

export function sizeReport(h: PackedHeader, fileBytes: number): SizeReport {
  const roles = Object.fromEntries(WEIGHT_ROLES.map((r) => [r, { tensors: 0, weights: 0, bytes: 0, bpw: 0 }])) as Record<WeightRole, RoleSize>;
  for (const [name, rec] of Object.entries(h.tensors)) {
    const n = rec.shape.reduce((a, b) => a * b, 1);
    const r = roles[roleOf(name)];
    r.tensors++;
    r.weights += n;
    r.bytes += (rec.bpw * n) / 8; // bpw counts every blob byte (reader-checked)
  }
  for (const r of Object.values(roles)) r.bpw = r.weights > 0 ? (r.bytes * 8) / r.weights : 0;
  const stored = WEIGHT_ROLES.reduce((s, r) => s + roles[r].weights, 0);
  const weights = h.totals.modelWeights ?? stored;
  const bytes = WEIGHT_ROLES.reduce((s, r) => s + roles[r].bytes, 0);
  const tied = h.config.tiedEmbeddings ? 'one tensor' : weights < stored ? 'two tensors' : 'untied';
  return { fileBytes, weights, bpw: (fileBytes * 8) / weights, tensorBpw: (bytes * 8) / weights, roles, tied };
}

/** The summary's lines: the whole-file figure first, then one line per role present. */
export function describeSize(s: SizeReport): string[] {
  const mb = (b: number) => `${(b / 1e6).toFixed(3)} MB`;
  const m = (n: number) => `${(n / 1e6).toFixed(3)} M`;
  const lines = [`${mb(s.fileBytes)}, ${s.bpw.toFixed(4)} bits per weight over all ${m(s.weights)} weights (whole file)`];
  for (const r of WEIGHT_ROLES) {
    const x = s.roles[r];
    if (x.tensors === 0) continue;
    const note = r === 'embedding' && s.tied === 'one tensor' ? ' (tied: also the head)' : r === 'head' && s.tied === 'two tensors' ? ' (tied source, stored apart)' : '';
    lines.push(`  ${ROLE_LABELS[r].padEnd(22)} ${m(x.weights).padStart(9)} weights ${x.bpw.toFixed(4).padStart(8)} bpw ${mb(x.bytes).padStart(12)}${note}`);
  }
  return lines;
}
