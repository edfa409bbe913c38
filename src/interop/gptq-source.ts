/**
 * A Hugging Face GPTQ checkpoint (config.json's `quantization_config.quant_method` "gptq",
 * AutoGPTQ / GPTQModel / Optimum) as a model source: each linear stored as
 * `<name>.qweight/.qzeros/.scales/.g_idx` becomes a uniform packed tensor holding exactly the
 * same numbers (gptq.ts), every other tensor (embedding, norms, head, biases) stays as stored.
 * Nothing is requantized; `packedTensors` is what the packed file writer takes.
 */
import type { FileSystemLike } from '../io/bytes.js';
import { copyToArrayBuffer } from '../io/bytes.js';
import { check, InputError } from '../io/errors.js';
import { FLOAT_DTYPES, IGNORED_TENSOR, openWeights, QK_PROJ, unpermuteRope } from '../io/hf.js';
import type { SafetensorsFile } from '../io/safetensors.js';
import { headSize, type LlamaConfig } from '../model/config.js';
import { expectedShapes, layerBias, LM_HEAD, type ModelSource, type SourceDtype, type TensorInfo } from '../model/weights.js';
import { dequantizeGroups, type GroupQuantized } from '../formats/quantized.js';
import { packGroups } from '../formats/registry.js';
import type { PackedTensor } from '../formats/types.js';
import { GPTQ_BITS, GPTQ_CHECKPOINT_FORMATS, GptqLayoutError, gptqShapes, gptqToGroups, moveRows, ropeRowMap, type GptqCheckpointFormat, type GptqLayout } from './gptq.js';

export interface GptqConfig {
  bits: number;
  /** As the config says: -1 = one group per row. */
  groupSize: number;
  descAct: boolean;
  sym: boolean;
  checkpointFormat: GptqCheckpointFormat;
}

const GPTQ_PARTS = ['qweight', 'qzeros', 'scales', 'g_idx'] as const;

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

export class GptqHfModel implements ModelSource {
  readonly config: LlamaConfig;
  private readonly floats = new Map<string, SafetensorsFile>();
  /** canonical linear name (`….weight`) → the file of its GPTQ tensors */
  private readonly quantized = new Map<string, SafetensorsFile>();
  private readonly shapes: Map<string, number[]>;

  constructor(
    readonly dir: string,
    fs: FileSystemLike,
    parsed: LlamaConfig,
    readonly gptq: GptqConfig,
  ) {
    const all = openWeights(dir, fs);
    const tied = parsed.tiedEmbeddings || !(all.has(LM_HEAD) || all.has('lm_head.qweight'));
    this.config = { ...parsed, tiedEmbeddings: tied };
    if (this.config.attentionBias === undefined && all.has(layerBias(0, 'self_attn.q_proj'))) {
      this.config.attentionBias = all.has(layerBias(0, 'self_attn.o_proj')) ? 'qkvo' : 'qkv';
    }
    this.shapes = expectedShapes(this.config);
    const claimed = new Set<string>();
    for (const [name, shape] of this.shapes) {
      const base = name.replace(/\.weight$/, '');
      if (shape.length === 2 && all.has(`${base}.qweight`)) {
        const file = all.get(`${base}.qweight`)!;
        const layout = this.layoutOf(name);
        let want: Record<string, number[]>;
        try {
          want = gptqShapes(layout);
        } catch (e) {
          if (e instanceof GptqLayoutError) throw new InputError(file.name, `${base}: ${e.message}`);
          throw e;
        }
        for (const part of GPTQ_PARTS) {
          const t = `${base}.${part}`;
          check(all.get(t) === file, file.name, `${t} is missing (or in another shard than ${base}.qweight)`);
          const e = file.entry(t);
          const dtype = part === 'scales' ? 'F16' : 'I32';
          check(e.dtype === dtype && e.shape.join() === want[part]!.join(), file.name, `tensor ${t} is ${e.dtype} [${e.shape}], expected ${dtype} [${want[part]}] for ${gptq.bits}-bit [${shape}]`);
          claimed.add(t);
        }
        check(!all.has(name), file.name, `${name} is stored both as GPTQ and as float`);
        this.quantized.set(name, file);
        continue;
      }
      const file = all.get(name);
      check(file !== undefined, dir, `missing tensor ${name} (neither ${name} nor ${base}.qweight)`);
      const e = file.entry(name);
      check(FLOAT_DTYPES.has(e.dtype), file.name, `tensor ${name} has dtype ${e.dtype}, expected F32, F16, BF16 or F64`);
      check(e.shape.join() === shape.join(), file.name, `tensor ${name} has shape [${e.shape.join(', ')}], config.json implies [${shape.join(', ')}]`);
      this.floats.set(name, file);
      claimed.add(name);
    }
    for (const [name, file] of all) {
      if (claimed.has(name) || IGNORED_TENSOR.test(name) || (tied && name === LM_HEAD)) continue;
      // AutoGPTQ writes a bias buffer for every QuantLinear; an all-zero one is no bias
      if (/\.bias$/.test(name) && this.quantized.has(name.replace(/\.bias$/, '.weight')) && file.float32(name).every((v) => v === 0)) continue;
      throw new InputError(file.name, `unexpected tensor ${name}: not a Llama, Mistral or Qwen2 GPTQ checkpoint`);
    }
  }

  get name(): string {
    return this.dir;
  }

  tensors(): TensorInfo[] {
    return [...this.shapes].map(([name, shape]) => ({ name, shape: [...shape] }));
  }

  isQuantized(name: string): boolean {
    return this.quantized.has(name);
  }

  /** Float32: a GPTQ linear dequantized (the reference its packed form must equal). */
  load(name: string): Float32Array {
    if (this.quantized.has(name)) return dequantizeGroups(this.groups(name));
    return this.canonical(name, this.floatFile(name).float32(name));
  }

  loadHalf(name: string): { dtype: 'F16' | 'BF16'; bits: Uint16Array } | undefined {
    if (this.quantized.has(name)) return undefined;
    const h = this.floatFile(name).half(name);
    return h && { dtype: h.dtype, bits: this.canonical(name, h.bits) };
  }

  dtypeOf(name: string): SourceDtype {
    if (this.quantized.has(name)) return 'F32';
    return this.floatFile(name).entry(name).dtype as SourceDtype;
  }

  /** Every GPTQ linear as a uniform packed tensor (uniform-sym where every zero is the midpoint). */
  packedTensors(): Map<string, PackedTensor> {
    const out = new Map<string, PackedTensor>();
    for (const name of this.quantized.keys()) out.set(name, packGroups(this.groups(name)));
    return out;
  }

  /** A GPTQ linear in bitcrush's layout: canonical RoPE rows, act-order as a column permutation. */
  groups(name: string): GroupQuantized {
    const file = this.quantized.get(name);
    check(file !== undefined, this.dir, `${name} is not a GPTQ tensor`);
    const base = name.replace(/\.weight$/, '');
    const int32 = (t: string) => new Int32Array(copyToArrayBuffer(file.raw(`${base}.${t}`)));
    const layout = this.layoutOf(name);
    let g: GroupQuantized;
    try {
      g = gptqToGroups({ qweight: int32('qweight'), qzeros: int32('qzeros'), scales: new Uint16Array(copyToArrayBuffer(file.raw(`${base}.scales`))), gIdx: int32('g_idx') }, layout);
    } catch (e) {
      if (e instanceof GptqLayoutError) throw new InputError(file.name, `${base}: ${e.message}`);
      throw e;
    }
    const maxq = 2 ** layout.bits - 1;
    const high = g.zero.findIndex((z) => z > maxq);
    // v1's stored zero maxq means zero maxq + 1 (AutoGPTQ wrote zero 0 as −1): off the b-bit grid
    check(high < 0, file.name, `${base}.qzeros: zero point ${maxq + 1} (v1 stored ${maxq}, the packers' wrapped zero 0) is outside the ${layout.bits}-bit grid bitcrush stores`);
    const bad = g.scale.findIndex((s) => !Number.isFinite(s));
    check(bad < 0, file.name, `${base}.scales holds a non-finite value`);
    const qk = QK_PROJ.exec(name);
    if (qk === null) return g;
    const c = this.config;
    return moveRows(g, ropeRowMap(qk[1] === 'q' ? c.nHeads : c.nKvHeads, headSize(c)));
  }

  private layoutOf(name: string): GptqLayout {
    const [outDim, inDim] = this.shapes.get(name) as [number, number];
    const groupSize = this.gptq.groupSize === -1 ? inDim : Math.min(this.gptq.groupSize, inDim);
    return { bits: this.gptq.bits, outDim, inDim, groupSize, checkpointFormat: this.gptq.checkpointFormat };
  }

  private floatFile(name: string): SafetensorsFile {
    const file = this.floats.get(name);
    check(file !== undefined, this.dir, `no tensor named ${name}`);
    return file;
  }

  private canonical<T extends Float32Array | Uint16Array>(name: string, w: T): T {
    const qk = QK_PROJ.exec(name);
    if (qk === null) return w;
    const c = this.config;
    const heads = qk[1] === 'q' ? c.nHeads : c.nKvHeads;
    return unpermuteRope(w, heads, headSize(c), w.length / (heads * headSize(c)));
  }
}
