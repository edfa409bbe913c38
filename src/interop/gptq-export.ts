/**
 * A bitcrush packed file (RTN / GPTQ results in the uniform formats) as a Hugging Face GPTQ
 * checkpoint, the numbers unchanged: each packed block linear as qweight/qzeros/scales/g_idx
 * (gptq.ts), q/k rows back in HF's rotate-half order, every float tensor in its stored dtype,
 * and config.json's `quantization_config` as AutoGPTQ / GPTQModel / transformers read it. What
 * GPTQ cannot hold exactly (per-group bit-widths, codebooks, binary weights, activation
 * quantization, unequal group sizes) is refused with the tensor and the reason.
 */
import { numberToBf16Bits, numberToF16Bits } from '../io/safetensors.js';
import { headSize, type LlamaConfig } from '../model/config.js';
import { LINEARS } from '../model/weights.js';
import { getFormat } from '../formats/registry.js';
import type { GroupQuantized } from '../formats/quantized.js';
import type { UniformParams } from '../formats/uniform.js';
import type { PackedModel } from '../packed/reader.js';
import { QK_PROJ } from '../io/hf.js';
import { GptqLayoutError, groupsToGptq, invertMap, moveRows, ropeRowMap, type GptqCheckpointFormat } from './gptq.js';
import type { OutTensor } from './safetensors-write.js';

export class ExportError extends Error {}

export interface HfQuantizedCheckpoint {
  quantizationConfig: { quant_method: string; [k: string]: unknown };
  tensors: OutTensor[];
  /** Packed tensors outside the block linears written as float32 (their exact dequantized values). */
  expanded: string[];
}

export interface GptqCheckpoint extends HfQuantizedCheckpoint {
  quantizationConfig: { quant_method: 'gptq'; bits: number; group_size: number; desc_act: boolean; sym: boolean; checkpoint_format: GptqCheckpointFormat; [k: string]: unknown };
  tensors: OutTensor[];
  /** Packed tensors outside the block linears written as float32 (their exact dequantized values). */
  expanded: string[];
}

export const isBlockLinear = (name: string) => LINEARS.some((l) => name.endsWith(`.${l}.weight`));
export const bytesOf = (a: Int32Array | Uint16Array | Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

export function gptqCheckpoint(m: PackedModel, checkpointFormat: GptqCheckpointFormat): GptqCheckpoint {
  const h = m.header;
  if (h.actBits !== undefined && h.actBits < 16) throw new ExportError(`the file runs with ${h.actBits}-bit activations, which a GPTQ checkpoint cannot say`);
  const c = m.config;
  const linears: Array<{ name: string; params: UniformParams; sym: boolean; inDim: number }> = [];
  for (const [name, rec] of Object.entries(h.tensors)) {
    if (!isBlockLinear(name)) continue;
    if (rec.format !== 'uniform-asym' && rec.format !== 'uniform-sym') {
      const why = rec.format === 'dense' ? 'is stored unquantized' : `is stored as ${rec.format}${rec.format.startsWith('mixed') ? ' (per-group bit-widths)' : ''}`;
      throw new ExportError(`${name} ${why}: GPTQ holds one uniform b-bit grid per linear (use a uniform RTN/GPTQ file)`);
    }
    linears.push({ name, params: (rec as unknown as { params: UniformParams }).params, sym: rec.format === 'uniform-sym', inDim: rec.shape[1]! });
  }
  if (linears.length === 0) throw new ExportError('no packed block linears');
  const bits = linears[0]!.params.bits;
  const odd = linears.find((l) => l.params.bits !== bits);
  if (odd) throw new ExportError(`${odd.name} is ${odd.params.bits}-bit, ${linears[0]!.name} ${bits}-bit: a GPTQ checkpoint has one bit-width`);
  // one group size: each tensor's, or its whole row where the row is shorter than a group
  const perChannel = linears.every((l) => l.params.groupSize === l.inDim);
  const groupSize = perChannel ? -1 : Math.max(...linears.map((l) => l.params.groupSize));
  const uneven = linears.find((l) => !perChannel && l.params.groupSize !== groupSize && !(l.params.groupSize === l.inDim && l.inDim < groupSize));
  if (uneven) throw new ExportError(`${uneven.name} has group size ${uneven.params.groupSize}, others ${groupSize}: a GPTQ checkpoint has one group_size`);

  const tensors: OutTensor[] = [];
  const expanded: string[] = [];
  for (const [name, rec] of Object.entries(h.tensors)) {
    const shape = rec.shape;
    if (isBlockLinear(name)) {
      const [outDim, inDim] = shape as [number, number];
      const base = name.replace(/\.weight$/, '');
      let cached: ReturnType<typeof groupsToGptq>['tensors'] | undefined;
      const gptq = () => (cached ??= convert(m, name, c, checkpointFormat));
      const g = groupSize === -1 ? 1 : Math.ceil(inDim / groupSize);
      // shapes first: a tensor that cannot pack fails before anything is written
      if (inDim % 32 !== 0 || outDim % 32 !== 0) throw new ExportError(`${name} is [${outDim}, ${inDim}]: GPTQ packs both dimensions into int32 words and needs multiples of 32`);
      tensors.push(
        { name: `${base}.qweight`, dtype: 'I32', shape: [(inDim / 32) * bits, outDim], bytes: () => bytesOf(gptq().qweight) },
        { name: `${base}.qzeros`, dtype: 'I32', shape: [g, (outDim / 32) * bits], bytes: () => bytesOf(gptq().qzeros) },
        { name: `${base}.scales`, dtype: 'F16', shape: [g, outDim], bytes: () => bytesOf(gptq().scales) },
        { name: `${base}.g_idx`, dtype: 'I32', shape: [inDim], bytes: () => { const t = gptq(); cached = undefined; return bytesOf(t.gIdx); } },
      );
      continue;
    }
    const dtype = rec.format === 'dense' ? (rec as { dtype: 'F32' | 'F16' | 'BF16' }).dtype : 'F32';
    if (rec.format !== 'dense') expanded.push(name);
    tensors.push({ name, dtype, shape, bytes: () => encode(hfRows(m.load(name), name, c), dtype) });
  }
  return {
    quantizationConfig: {
      quant_method: 'gptq', bits, group_size: groupSize, desc_act: linears.some((l) => l.params.actOrder), sym: linears.every((l) => l.sym),
      checkpoint_format: checkpointFormat, static_groups: false, true_sequential: true,
    },
    tensors,
    expanded,
  };
}

function convert(m: PackedModel, name: string, c: LlamaConfig, checkpointFormat: GptqCheckpointFormat) {
  const t = m.packed(name);
  let g = getFormat(t.format).unpack(t) as GroupQuantized;
  const qk = QK_PROJ.exec(name);
  if (qk !== null) g = moveRows(g, invertMap(ropeRowMap(qk[1] === 'q' ? c.nHeads : c.nKvHeads, headSize(c))));
  try {
    return groupsToGptq(g, checkpointFormat).tensors;
  } catch (e) {
    if (e instanceof GptqLayoutError) throw new ExportError(`${name}: ${e.message}`);
    throw e;
  }
}

/** q/k weights and biases from bitcrush's interleaved rows to HF's rotate-half rows. */
export function hfRows(w: Float32Array, name: string, c: LlamaConfig): Float32Array {
  const qk = QK_PROJ.exec(name);
  if (qk === null) return w;
  const heads = qk[1] === 'q' ? c.nHeads : c.nKvHeads;
  const map = ropeRowMap(heads, headSize(c)); // map[hfRow] = canonical row
  const cols = w.length / map.length;
  const out = new Float32Array(w.length);
  for (let r = 0; r < map.length; r++) out.set(w.subarray(map[r]! * cols, (map[r]! + 1) * cols), r * cols);
  return out;
}

export function encode(v: Float32Array, dtype: 'F32' | 'F16' | 'BF16'): Uint8Array {
  if (dtype === 'F32') return bytesOf(v);
  const toBits = dtype === 'F16' ? numberToF16Bits : numberToBf16Bits;
  return bytesOf(Uint16Array.from(v, toBits));
}

/** config.json for the checkpoint: `base` (the source model's, when known) with the architecture bitcrush ran and the quantization_config. */
export function hfConfigJson(c: LlamaConfig, quantizationConfig: Record<string, unknown>, base: Record<string, unknown> = {}): Record<string, unknown> {
  const qwen = c.attentionBias === 'qkv';
  const rest = { ...base };
  delete rest['quantization_config'];
  return {
    architectures: [qwen ? 'Qwen2ForCausalLM' : 'LlamaForCausalLM'],
    model_type: qwen ? 'qwen2' : 'llama',
    hidden_act: 'silu',
    ...rest,
    hidden_size: c.dim,
    intermediate_size: c.hiddenDim,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    vocab_size: c.vocabSize,
    max_position_embeddings: (rest['max_position_embeddings'] as number | undefined) ?? c.seqLen,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    tie_word_embeddings: c.tiedEmbeddings,
    ...(c.headDim !== undefined ? { head_dim: c.headDim } : {}),
    ...(c.attentionBias === 'qkvo' ? { attention_bias: true } : {}),
    ...(c.ropeScaling ? { rope_scaling: ropeScalingJson(c) } : {}),
    torch_dtype: 'float16',
    quantization_config: quantizationConfig,
  };
}

function ropeScalingJson(c: LlamaConfig): Record<string, unknown> {
  const r = c.ropeScaling!;
  if (r.type === 'linear') return { rope_type: 'linear', factor: r.factor };
  if (r.type === 'factors') throw new ExportError('RoPE is scaled by per-pair factors (a GGUF rope_freqs tensor), which config.json\'s rope_scaling cannot say');
  return { rope_type: 'llama3', factor: r.factor, low_freq_factor: r.lowFreqFactor, high_freq_factor: r.highFreqFactor, original_max_position_embeddings: r.originalMaxPositions };
}
