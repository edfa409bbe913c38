/**
 * A quantized Hugging Face checkpoint as a model source: each linear stored in the
 * checkpoint's own tensors (GPTQ `<name>.qweight/.qzeros/.scales/.g_idx`, AQLM
 * `<name>.codes/.codebooks/.scales`) becomes a packed tensor holding exactly the same numbers
 * (gptq.ts, aqlm.ts: a LinearImporter each); every other tensor (embedding, norms, head,
 * biases) stays as stored. Nothing is requantized; `packedTensors` is what the packed file
 * writer takes.
 */
import type { FileSystemLike } from '../io/bytes.js';
import { check, InputError } from '../io/errors.js';
import { canonicalRows, FLOAT_DTYPES, IGNORED_TENSOR, openWeights, QK_PROJ } from '../io/hf.js';
import type { SafetensorsFile } from '../io/safetensors.js';
import { headSize, type LlamaConfig } from '../model/config.js';
import { expectedShapes, layerBias, LM_HEAD, type ModelSource, type SourceDtype, type TensorInfo } from '../model/weights.js';
import { getFormat } from '../formats/registry.js';
import type { PackedTensor } from '../formats/types.js';
import { ropeRowMap } from './gptq.js';

/** How one quantization method's linears are read: its tensor parts and their conversion. */
export interface LinearImporter {
  /** The tensor suffixes of one linear (`<base>.<part>`); the first one marks a linear as quantized. */
  parts: readonly string[];
  /** dtype and shape of each part for a linear [outDim, inDim]; a string says why it cannot be stored. */
  specs(outDim: number, inDim: number): Record<string, { dtype: string; shape: number[] }> | string;
  /**
   * The packed tensor of a linear from its parts' bytes; `rows` (q/k) maps each checkpoint row
   * to bitcrush's interleaved RoPE row. Throws ImportError on values it cannot store.
   */
  toPacked(raw: (part: string) => Uint8Array, outDim: number, inDim: number, rows: Int32Array | null): PackedTensor;
}

/** A linear whose values cannot be stored exactly: the message says why (the source adds file and tensor). */
export class ImportError extends Error {}

export class QuantizedHfModel implements ModelSource {
  readonly config: LlamaConfig;
  private readonly floats = new Map<string, SafetensorsFile>();
  /** canonical linear name (`….weight`) → the file of its GPTQ tensors */
  private readonly quantized = new Map<string, SafetensorsFile>();
  private readonly shapes: Map<string, number[]>;

  constructor(
    readonly dir: string,
    fs: FileSystemLike,
    parsed: LlamaConfig,
    private readonly importer: LinearImporter,
  ) {
    const all = openWeights(dir, fs);
    const marker = importer.parts[0]!;
    const tied = parsed.tiedEmbeddings || !(all.has(LM_HEAD) || all.has(`lm_head.${marker}`));
    this.config = { ...parsed, tiedEmbeddings: tied };
    if (this.config.attentionBias === undefined && all.has(layerBias(0, 'self_attn.q_proj'))) {
      this.config.attentionBias = all.has(layerBias(0, 'self_attn.o_proj')) ? 'qkvo' : 'qkv';
    }
    this.shapes = expectedShapes(this.config);
    const claimed = new Set<string>();
    for (const [name, shape] of this.shapes) {
      const base = name.replace(/\.weight$/, '');
      if (shape.length === 2 && all.has(`${base}.${marker}`)) {
        const file = all.get(`${base}.${marker}`)!;
        const want = importer.specs(shape[0]!, shape[1]!);
        check(typeof want !== 'string', file.name, `${base}: ${want}`);
        for (const part of importer.parts) {
          const t = `${base}.${part}`;
          check(all.get(t) === file, file.name, `${t} is missing (or in another shard than ${base}.${marker})`);
          const e = file.entry(t);
          const { dtype, shape: ws } = want[part]!;
          check(e.dtype === dtype && e.shape.join() === ws.join(), file.name, `tensor ${t} is ${e.dtype} [${e.shape}], expected ${dtype} [${ws}] for [${shape}]`);
          claimed.add(t);
        }
        check(!all.has(name), file.name, `${name} is stored both quantized and as float`);
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
      throw new InputError(file.name, `unexpected tensor ${name}: not a Llama, Mistral or Qwen2 checkpoint of this quantization method`);
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
    if (this.quantized.has(name)) {
      const t = this.packedOne(name);
      return getFormat(t.format).dequantize(t);
    }
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

  /** Every quantized linear as the packed tensor of the same numbers. */
  packedTensors(): Map<string, PackedTensor> {
    const out = new Map<string, PackedTensor>();
    for (const name of this.quantized.keys()) out.set(name, this.packedOne(name));
    return out;
  }

  /** A quantized linear in bitcrush's layout: canonical RoPE rows. */
  packedOne(name: string): PackedTensor {
    const file = this.quantized.get(name);
    check(file !== undefined, this.dir, `${name} is not a quantized tensor`);
    const base = name.replace(/\.weight$/, '');
    const [outDim, inDim] = this.shapes.get(name) as [number, number];
    const qk = QK_PROJ.exec(name);
    const c = this.config;
    const rows = qk === null ? null : ropeRowMap(qk[1] === 'q' ? c.nHeads : c.nKvHeads, headSize(c));
    try {
      return this.importer.toPacked((part) => file.raw(`${base}.${part}`), outDim, inDim, rows);
    } catch (e) {
      if (e instanceof ImportError) throw new InputError(file.name, `${base}: ${e.message}`);
      throw e;
    }
  }

  private floatFile(name: string): SafetensorsFile {
    const file = this.floats.get(name);
    check(file !== undefined, this.dir, `no tensor named ${name}`);
    return file;
  }

  private canonical<T extends Float32Array | Uint16Array>(name: string, w: T): T {
    return canonicalRows(this.config, name, w);
  }
}
