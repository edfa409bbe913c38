/**
 * A bitcrush packed file whose block linears are all in the AQLM codebook format (one M×B
 * scheme and group size) as a Hugging Face AQLM checkpoint (aqlm.ts for the tensor layout):
 * codes/codebooks/scales per linear (any output group size), q/k rows (or output groups) back in
 * HF's rotate-half order, float tensors in
 * their stored dtype, and `quantization_config` as transformers' aqlm integration reads it.
 */
import { headSize } from '../model/config.js';
import { codebookFormat, groupShape, type CodebookParams, type CodebookQuantized } from '../formats/codebook.js';
import { numberToF16Bits } from '../io/safetensors.js';
import { QK_PROJ } from '../io/hf.js';
import type { PackedModel } from '../packed/reader.js';
import { codebookToAqlm, moveCodebookRows } from './aqlm.js';
import { invertMap, ropeRowMap } from './gptq.js';
import { bytesOf, encode, ExportError, hfRows, isBlockLinear, type HfQuantizedCheckpoint } from './gptq-export.js';
import type { OutTensor } from './safetensors-write.js';

export function aqlmCheckpoint(m: PackedModel): HfQuantizedCheckpoint {
  const h = m.header;
  if (h.actBits !== undefined && h.actBits < 16) throw new ExportError(`the file runs with ${h.actBits}-bit activations, which an AQLM checkpoint cannot say`);
  const c = m.config;
  let scheme: CodebookParams | undefined;
  let first = '';
  for (const [name, rec] of Object.entries(h.tensors)) {
    if (!isBlockLinear(name)) continue;
    if (rec.format !== 'aqlm') throw new ExportError(`${name} is stored as ${rec.format}: an AQLM checkpoint holds additive codebooks in every linear (use an AQLM file)`);
    const p = (rec as unknown as { params: CodebookParams }).params;
    const say = (x: CodebookParams) => `${x.M}x${x.B} g${x.g}${x.og === undefined ? '' : ` og${x.og}`}`;
    if (scheme === undefined) [scheme, first] = [p, name];
    else if (p.M !== scheme.M || p.B !== scheme.B || p.g !== scheme.g || groupShape(p).og !== groupShape(scheme).og) throw new ExportError(`${name} is ${say(p)}, ${first} ${say(scheme)}: an AQLM checkpoint has one scheme`);
  }
  if (scheme === undefined) throw new ExportError('no packed block linears');
  const s = scheme;
  const og = groupShape(s).og;
  const tensors: OutTensor[] = [];
  const expanded: string[] = [];
  const notQuantized: string[] = [];
  for (const [name, rec] of Object.entries(h.tensors)) {
    if (isBlockLinear(name)) {
      const [outDim, inDim] = rec.shape as [number, number];
      const base = name.replace(/\.weight$/, '');
      let cached: CodebookQuantized | undefined;
      const q = () => {
        if (cached) return cached;
        const p = codebookFormat.unpack(m.packed(name) as never) as CodebookQuantized;
        const qk = QK_PROJ.exec(name);
        // HF rows: rotate-half q/k, every output group on og consecutive rows (il = 1)
        const to = qk !== null ? invertMap(ropeRowMap(qk[1] === 'q' ? c.nHeads : c.nKvHeads, headSize(c))) : groupShape(p).il !== 1 ? Int32Array.from({ length: outDim }, (_, r) => r) : null;
        if (to === null) return (cached = p);
        const moved = moveCodebookRows(p, to, 1);
        if (typeof moved === 'string') throw new ExportError(`${name}: ${moved} (AQLM's layout: out_group_size consecutive rows in Hugging Face's row order)`);
        return (cached = moved);
      };
      tensors.push(
        { name: `${base}.codes`, dtype: s.B <= 8 ? 'I8' : 'I16', shape: [outDim / og, inDim / s.g, s.M], bytes: () => new Uint8Array(codebookToAqlm(q()).codes.buffer) },
        { name: `${base}.codebooks`, dtype: 'F16', shape: [s.M, 2 ** s.B, og, s.g], bytes: () => bytesOf(Uint16Array.from(q().codebooks, numberToF16Bits)) },
        { name: `${base}.scales`, dtype: 'F16', shape: [outDim / og, 1, 1, 1], bytes: () => { const t = q(); cached = undefined; return bytesOf(Uint16Array.from(t.scale, numberToF16Bits)); } },
      );
      continue;
    }
    const dtype = rec.format === 'dense' ? (rec as { dtype: 'F32' | 'F16' | 'BF16' }).dtype : 'F32';
    if (rec.format !== 'dense') expanded.push(name);
    notQuantized.push(name);
    tensors.push({ name, dtype, shape: rec.shape, bytes: () => encode(hfRows(m.load(name), name, c), dtype) });
  }
  return {
    quantizationConfig: { quant_method: 'aqlm', in_group_size: s.g, out_group_size: og, num_codebooks: s.M, nbits_per_codebook: s.B, linear_weights_not_to_quantize: notQuantized },
    tensors,
    expanded,
  };
}
