/**
 * The GPTQ LinearImporter (quantized-source.ts): `quantization_config` of a gptq checkpoint
 * (AutoGPTQ / GPTQModel / Optimum) and each linear's qweight/qzeros/scales/g_idx as a uniform
 * packed tensor of the same numbers (gptq.ts).
 */
import { copyToArrayBuffer } from '../io/bytes.js';
import { check } from '../io/errors.js';
import { packGroups } from '../formats/registry.js';
import { GPTQ_BITS, GPTQ_CHECKPOINT_FORMATS, GptqLayoutError, gptqShapes, gptqToGroups, moveRows, type GptqCheckpointFormat, type GptqLayout } from './gptq.js';
import { ImportError, type LinearImporter } from './quantized-source.js';

export interface GptqConfig {
  bits: number;
  /** As the config says: -1 = one group per row. */
  groupSize: number;
  descAct: boolean;
  sym: boolean;
  checkpointFormat: GptqCheckpointFormat;
}

/** `quantization_config` of a gptq checkpoint → its options (unknown keys, e.g. damp_percent, are provenance only). */
export function parseGptqConfig(file: string, qc: Record<string, unknown>): GptqConfig {
  const bits = qc['bits'];
  check(typeof bits === 'number' && GPTQ_BITS.includes(bits), file, `quantization_config.bits ${JSON.stringify(bits)} is not supported (GPTQ bits ${GPTQ_BITS.join(', ')})`);
  const groupSize = qc['group_size'] ?? -1;
  check(groupSize === -1 || (Number.isSafeInteger(groupSize) && (groupSize as number) > 0), file, `bad quantization_config.group_size ${JSON.stringify(groupSize)}`);
  const bool = (key: string, fallback: boolean): boolean => {
    const v = qc[key] ?? fallback;
    check(typeof v === 'boolean', file, `bad quantization_config.${key} ${JSON.stringify(v)}`);
    return v;
  };
  const fmt = qc['checkpoint_format'] ?? 'gptq';
  check(GPTQ_CHECKPOINT_FORMATS.includes(fmt as GptqCheckpointFormat), file, `quantization_config.checkpoint_format ${JSON.stringify(fmt)} is not supported (${GPTQ_CHECKPOINT_FORMATS.join(', ')})`);
  return { bits, groupSize: groupSize as number, descAct: bool('desc_act', false), sym: bool('sym', true), checkpointFormat: fmt as GptqCheckpointFormat };
}

export function gptqImporter(cfg: GptqConfig): LinearImporter {
  const layoutOf = (outDim: number, inDim: number): GptqLayout => ({
    bits: cfg.bits, outDim, inDim, groupSize: cfg.groupSize === -1 ? inDim : Math.min(cfg.groupSize, inDim), checkpointFormat: cfg.checkpointFormat,
  });
  return {
    parts: ['qweight', 'qzeros', 'scales', 'g_idx'],
    specs(outDim, inDim) {
      try {
        const s = gptqShapes(layoutOf(outDim, inDim));
        return { qweight: { dtype: 'I32', shape: s.qweight }, qzeros: { dtype: 'I32', shape: s.qzeros }, scales: { dtype: 'F16', shape: s.scales }, g_idx: { dtype: 'I32', shape: s.g_idx } };
      } catch (e) {
        if (e instanceof GptqLayoutError) return `${cfg.bits}-bit: ${e.message}`;
        throw e;
      }
    },
    toPacked(raw, outDim, inDim, rows) {
      const int32 = (p: string) => new Int32Array(copyToArrayBuffer(raw(p)));
      const layout = layoutOf(outDim, inDim);
      let g;
      try {
        g = gptqToGroups({ qweight: int32('qweight'), qzeros: int32('qzeros'), scales: new Uint16Array(copyToArrayBuffer(raw('scales'))), gIdx: int32('g_idx') }, layout);
      } catch (e) {
        if (e instanceof GptqLayoutError) throw new ImportError(e.message);
        throw e;
      }
      const maxq = 2 ** layout.bits - 1;
      // v1's stored zero maxq means zero maxq + 1 (AutoGPTQ wrote zero 0 as −1): off the b-bit grid
      if (g.zero.some((z) => z > maxq)) throw new ImportError(`qzeros: zero point ${maxq + 1} (v1 stored ${maxq}, the packers' wrapped zero 0) is outside the ${layout.bits}-bit grid bitcrush stores`);
      if (g.scale.some((s) => !Number.isFinite(s))) throw new ImportError('scales holds a non-finite value');
      return packGroups(rows === null ? g : moveRows(g, rows));
    },
  };
}
