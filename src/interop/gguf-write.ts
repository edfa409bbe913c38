/**
 * A model as a GGUF file llama.cpp loads: architecture `llama` (biases, when the model has
 * them, as llama.cpp's optional attn_*.bias tensors), llama.* hyperparameters, tokenizer.ggml.*,
 * llama.cpp tensor names with q/k rows in the interleaved order its converter writes (bitcrush's
 * canonical order, so rows are written as they are).
 *
 * Tensors keep their numbers exactly. Float tensors go out as stored (F32, F16, BF16; 1-D ones
 * as F32, as llama.cpp's converter does). A packed uniform tensor (formats uniform-sym /
 * uniform-asym: ŵ = s·(q − z), s float16) goes out in the llama.cpp type that represents the
 * same values, per 32-column block (groups must be multiples of 32 columns, no act-order):
 *   8-bit, every q − z in [−128, 127]   → Q8_0  (d = s, q8 = q − z)
 *   2-, 3-bit, and symmetric 4-bit      → Q4_0  (d = s, nibble = q − z + 8; q − z ∈ [−8, 7])
 *   asymmetric 4-bit                    → Q4_1 when every block's −s·z is a float16 (m = −s·z,
 *                                         llama.cpp's d·q + m is then exact in float32), else
 *                                         Q5_0 (d = s, q5 = q − z + 16; q − z ∈ [−15, 15])
 * Anything else is a GgufExportError naming the tensor and the reason, unless `floatFallback`
 * asks for such tensors as F32 of their dequantized values (the same numbers, not smaller).
 *
 * Llama 3 RoPE scaling is written as llama.cpp's converter writes it: a `rope_freqs.weight`
 * F32 tensor [headSize/2] of per-pair factors that llama.cpp divides each frequency by, here
 * plain/scaled of bitcrush's own frequencies (src/model/rope.ts), and no rope.scaling keys.
 */
import type { LlamaConfig } from '../model/config.js';
import { headSize } from '../model/config.js';
import type { ModelSource } from '../model/weights.js';
import { getFormat } from '../formats/registry.js';
import { roundToF16, type GroupQuantized } from '../formats/quantized.js';
import type { PackedTensor } from '../formats/types.js';
import { GgufValueType as T, type GgufKv, type GgufTensorOut } from '../io/gguf-file.js';
import { ggmlType, packBlock32, type GgmlType } from '../io/gguf-quants.js';
import { ggufTensorNames } from '../io/gguf.js';
import { ropeInvFrequencies } from '../model/rope.js';
import type { GgufVocab } from '../io/gguf-tokenizer.js';
import { numberToBf16Bits, numberToF16Bits } from '../io/safetensors.js';

export class GgufExportError extends Error {
  constructor(readonly tensor: string, readonly reason: string) {
    super(`tensor ${tensor}: ${reason}`);
    this.name = 'GgufExportError';
  }
}

/** A source whose tensors may be packed (a bitcrush packed file). */
export interface PackedTensors {
  isPacked(name: string): boolean;
  packed(name: string): PackedTensor;
}

export function ggufMetadata(c: LlamaConfig, vocab: GgufVocab, name: string): GgufKv[] {
  const u32 = (key: string, value: number): GgufKv => ({ key, type: T.UINT32, value });
  const f32 = (key: string, value: number): GgufKv => ({ key, type: T.FLOAT32, value });
  const hs = headSize(c);
  const kvs: GgufKv[] = [
    { key: 'general.architecture', type: T.STRING, value: 'llama' },
    { key: 'general.name', type: T.STRING, value: name },
    u32('llama.context_length', c.seqLen),
    u32('llama.embedding_length', c.dim),
    u32('llama.block_count', c.nLayers),
    u32('llama.feed_forward_length', c.hiddenDim),
    u32('llama.attention.head_count', c.nHeads),
    u32('llama.attention.head_count_kv', c.nKvHeads),
    f32('llama.rope.freq_base', c.ropeTheta),
    f32('llama.attention.layer_norm_rms_epsilon', c.normEps),
    u32('llama.rope.dimension_count', hs),
    u32('llama.vocab_size', c.vocabSize),
  ];
  if (c.headDim !== undefined) kvs.push(u32('llama.attention.key_length', hs), u32('llama.attention.value_length', hs));
  if (c.ropeScaling?.type === 'linear') kvs.push({ key: 'llama.rope.scaling.type', type: T.STRING, value: 'linear' }, f32('llama.rope.scaling.factor', c.ropeScaling.factor));
  kvs.push({ key: 'tokenizer.ggml.model', type: T.STRING, value: vocab.model });
  if (vocab.pre !== undefined) kvs.push({ key: 'tokenizer.ggml.pre', type: T.STRING, value: vocab.pre });
  kvs.push({ key: 'tokenizer.ggml.tokens', type: T.ARRAY, elem: T.STRING, value: vocab.tokens });
  if (vocab.scores) kvs.push({ key: 'tokenizer.ggml.scores', type: T.ARRAY, elem: T.FLOAT32, value: vocab.scores });
  if (vocab.types) kvs.push({ key: 'tokenizer.ggml.token_type', type: T.ARRAY, elem: T.INT32, value: vocab.types });
  if (vocab.merges) kvs.push({ key: 'tokenizer.ggml.merges', type: T.ARRAY, elem: T.STRING, value: vocab.merges });
  if (vocab.bosId !== undefined) kvs.push(u32('tokenizer.ggml.bos_token_id', vocab.bosId));
  kvs.push(u32('tokenizer.ggml.eos_token_id', vocab.eosId));
  kvs.push({ key: 'tokenizer.ggml.add_bos_token', type: T.BOOL, value: vocab.addBos });
  if (vocab.addSpacePrefix !== undefined) kvs.push({ key: 'tokenizer.ggml.add_space_prefix', type: T.BOOL, value: vocab.addSpacePrefix });
  if (vocab.chatTemplate !== undefined) kvs.push({ key: 'tokenizer.chat_template', type: T.STRING, value: vocab.chatTemplate });
  return kvs;
}

/** llama.cpp's `rope_freqs.weight` for a llama3-scaled config: factor i = plain / scaled frequency of pair i. */
export function ropeFreqFactors(c: LlamaConfig): Float32Array | undefined {
  if (c.ropeScaling?.type === 'factors') return Float32Array.from(c.ropeScaling.factors);
  if (c.ropeScaling?.type !== 'llama3') return undefined;
  const scaled = ropeInvFrequencies(c);
  const plain = ropeInvFrequencies({ ...c, ropeScaling: undefined });
  return Float32Array.from(plain, (f, i) => f / scaled[i]!);
}

export interface GgufTensorOptions {
  /** Tensors with no exact llama.cpp type go out as F32 of their dequantized values instead of failing. */
  floatFallback?: boolean;
}

/** Every tensor of `model` as llama.cpp names and types; data is produced lazily, one tensor at a time. */
export function ggufTensors(model: ModelSource, packed?: PackedTensors, opts: GgufTensorOptions = {}): GgufTensorOut[] {
  const names = ggufTensorNames(model.config);
  const factors = ropeFreqFactors(model.config);
  const rope: GgufTensorOut[] = factors === undefined ? [] : [{ name: 'rope_freqs.weight', ne: [factors.length], type: ggmlType('F32'), size: factors.byteLength, bytes: () => new Uint8Array(factors.buffer) }];
  return [...rope, ...model.tensors().map((t) => {
    const ne = [...t.shape].reverse();
    const gg = names.get(t.name);
    if (gg === undefined) throw new GgufExportError(t.name, 'has no llama.cpp name');
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (packed?.isPacked(t.name)) {
      try {
        const enc = encodePacked(t.name, packed.packed(t.name));
        return { name: gg, ne, type: enc.type, size: enc.bytes.length, bytes: () => enc.bytes };
      } catch (e) {
        if (!(e instanceof GgufExportError) || !opts.floatFallback) throw e;
        const f32 = ggmlType('F32');
        return { name: gg, ne, type: f32, size: count * 4, bytes: () => floatBytes(model, t.name, f32) };
      }
    }
    const dtype = t.shape.length === 1 ? 'F32' : (model.dtypeOf?.(t.name) ?? 'F32');
    const type = ggmlType(dtype === 'F64' ? 'F32' : dtype);
    return { name: gg, ne, type, size: count * type.blockBytes, bytes: () => floatBytes(model, t.name, type) };
  })];
}

function floatBytes(model: ModelSource, name: string, type: GgmlType): Uint8Array {
  if (type.name !== 'F32') {
    const half = model.loadHalf?.(name);
    if (half && half.dtype === type.name) return new Uint8Array(half.bits.buffer, half.bits.byteOffset, half.bits.byteLength);
    const w = model.load(name);
    const bits = Uint16Array.from(w, type.name === 'F16' ? numberToF16Bits : numberToBf16Bits);
    return new Uint8Array(bits.buffer);
  }
  const w = model.load(name);
  return new Uint8Array(w.buffer, w.byteOffset, w.byteLength);
}

/** A packed tensor → the exact llama.cpp type and its blocks, or GgufExportError. */
export function encodePacked(name: string, t: PackedTensor): { type: GgmlType; bytes: Uint8Array } {
  const format = getFormat(t.format);
  if (format.family !== 'uniform') throw new GgufExportError(name, `format ${t.format} has no llama.cpp type with the same numbers (only the uniform grid formats do)`);
  const g = format.unpack(t) as GroupQuantized;
  const bits = g.bits[0]!;
  if (g.perm !== null) throw new GgufExportError(name, 'columns are stored permuted (act-order): llama.cpp blocks need one scale per 32 consecutive original columns');
  if (g.inDim % 32 !== 0) throw new GgufExportError(name, `${g.inDim} columns is not a multiple of llama.cpp's block of 32`);
  if (g.groupSize % 32 !== 0) throw new GgufExportError(name, `group size ${g.groupSize} is not a multiple of llama.cpp's block of 32 columns`);
  const nGroups = Math.ceil(g.inDim / g.groupSize);
  const level = (r: number, j: number) => g.q[r * g.inDim + j]! - g.zero[r * nGroups + Math.floor(j / g.groupSize)]!;
  let type: 'Q8_0' | 'Q4_0' | 'Q4_1' | 'Q5_0';
  if (bits === 8) {
    for (let i = 0; i < g.outDim * g.inDim; i++) {
      const l = level(Math.floor(i / g.inDim), i % g.inDim);
      if (l < -128 || l > 127) throw new GgufExportError(name, `8-bit level q − z = ${l} at weight ${i} is outside Q8_0's int8 range (an asymmetric 8-bit grid has no exact llama.cpp type)`);
    }
    type = 'Q8_0';
  } else if (bits < 4 || format.id === 'uniform-sym') type = 'Q4_0';
  else {
    let exact = true;
    for (let i = 0; i < g.zero.length && exact; i++) {
      const m = -g.scale[i]! * g.zero[i]!;
      exact = roundToF16(m) === m && Number.isFinite(roundToF16(m));
    }
    type = exact ? 'Q4_1' : 'Q5_0';
  }
  const tt = ggmlType(type);
  const blocksPerRow = g.inDim / 32;
  const out = new Uint8Array(g.outDim * blocksPerRow * tt.blockBytes);
  const q = new Int32Array(32);
  for (let r = 0; r < g.outDim; r++) {
    for (let b = 0; b < blocksPerRow; b++) {
      const gi = r * nGroups + Math.floor((b * 32) / g.groupSize);
      const s = g.scale[gi]!;
      const z = g.zero[gi]!;
      for (let j = 0; j < 32; j++) {
        const raw = g.q[r * g.inDim + b * 32 + j]!;
        q[j] = type === 'Q8_0' ? raw - z : type === 'Q4_0' ? raw - z + 8 : type === 'Q5_0' ? raw - z + 16 : raw;
      }
      out.set(packBlock32(type, numberToF16Bits(s), q, type === 'Q4_1' ? numberToF16Bits(-s * z) : 0), (r * blocksPerRow + b) * tt.blockBytes);
    }
  }
  return { type: tt, bytes: out };
}
