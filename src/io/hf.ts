/**
 * Hugging Face model directories: `config.json` plus `model.safetensors` or a sharded
 * `model.safetensors.index.json`. Llama (1–3.x, with `rope_scaling` linear or llama3 and an
 * explicit `head_dim`), Mistral, and Qwen2/2.5 (q/k/v biases). Only headers are read when
 * opening; tensors are read one at a time by `load`.
 *
 * HF's converter permutes the rows of q_proj/k_proj so that rotate-half RoPE (pairs
 * (i, i + hs/2) of a head) computes what llama2.c's interleaved RoPE (pairs (2i, 2i+1))
 * computes. bitcrush's canonical layout is the interleaved one, so `load` undoes it.
 */
import { readText, type FileSystemLike } from './bytes.js';
import { check, InputError } from './errors.js';
import { SafetensorsFile } from './safetensors.js';
import { headSize, type AttentionBias, type LlamaConfig, type RopeScaling } from '../model/config.js';
import { expectedShapes, layerBias, LM_HEAD, type ModelSource, type SourceDtype, type TensorInfo } from '../model/weights.js';

const SUPPORTED_TYPES = new Set(['llama', 'mistral', 'qwen2']);
const SUPPORTED_ARCHS = new Set(['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM']);
export const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);
/** Buffers some old checkpoints saved; recomputed at run time. */
export const IGNORED_TENSOR = /\.rotary_emb\.inv_freq$/;
export const QK_PROJ = /^model\.layers\.\d+\.self_attn\.([qk])_proj\.(weight|bias)$/;

/** `config.json` → LlamaConfig; `tiedEmbeddings` is the config's flag (the loader may override it). */
export function parseHfConfig(file: string, json: unknown): LlamaConfig {
  check(typeof json === 'object' && json !== null && !Array.isArray(json), file, 'not a JSON object');
  const c = json as Record<string, unknown>;
  const modelType = c['model_type'];
  const archs = c['architectures'];
  check(
    modelType === undefined || (typeof modelType === 'string' && SUPPORTED_TYPES.has(modelType)),
    file,
    `unsupported model_type ${JSON.stringify(modelType)} (supported: ${[...SUPPORTED_TYPES].join(', ')})`,
  );
  check(
    archs === undefined || (Array.isArray(archs) && archs.some((a) => SUPPORTED_ARCHS.has(a as string))),
    file,
    `unsupported architectures ${JSON.stringify(archs)} (supported: ${[...SUPPORTED_ARCHS].join(', ')})`,
  );
  check(modelType !== undefined || archs !== undefined, file, 'neither model_type nor architectures is given');

  const int = (key: string, max: number, fallback?: number): number => {
    const v = c[key] ?? fallback;
    check(v !== undefined, file, `missing field ${key}`);
    check(Number.isSafeInteger(v) && (v as number) > 0 && (v as number) <= max, file, `bad ${key}: ${JSON.stringify(v)}`);
    return v as number;
  };
  const positive = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback;
    check(v !== undefined, file, `missing field ${key}`);
    check(typeof v === 'number' && Number.isFinite(v) && v > 0, file, `bad ${key}: ${JSON.stringify(v)}`);
    return v;
  };

  const dim = int('hidden_size', 1 << 16);
  const nHeads = int('num_attention_heads', dim);
  const nKvHeads = int('num_key_value_heads', nHeads, nHeads);
  check(nHeads % nKvHeads === 0, file, `num_attention_heads ${nHeads} is not a multiple of num_key_value_heads ${nKvHeads}`);
  // head_dim may be given and differ from hidden_size / num_attention_heads (Mistral-Nemo, Qwen3)
  const explicitHead = c['head_dim'] === null ? undefined : c['head_dim'];
  const headDim = explicitHead === undefined ? dim / nHeads : int('head_dim', 1 << 12);
  check(Number.isInteger(headDim) && headDim % 2 === 0, file, explicitHead === undefined ? `hidden_size ${dim} is not num_attention_heads ${nHeads} × an even head size (and no head_dim is given)` : `head_dim ${headDim} is not even`);
  check(nHeads * headDim <= 1 << 17, file, `num_attention_heads ${nHeads} × head_dim ${headDim} is too large`);
  const tie = c['tie_word_embeddings'] ?? false;
  check(typeof tie === 'boolean', file, `bad tie_word_embeddings: ${JSON.stringify(tie)}`);
  const act = c['hidden_act'];
  check(act === undefined || act === 'silu', file, `hidden_act ${JSON.stringify(act)} is not supported (only silu)`);
  check(c['mlp_bias'] !== true, file, 'mlp_bias is not supported');
  // Qwen2 always has q/k/v biases (its config has no flag); Llama's attention_bias adds o_proj's
  const bias: AttentionBias | undefined = c['attention_bias'] === true ? 'qkvo' : modelType === 'qwen2' || (archs as unknown[] | undefined)?.includes('Qwen2ForCausalLM') ? 'qkv' : undefined;

  let seqLen = int('max_position_embeddings', 1 << 24);
  // Within its window, sliding-window attention equals full attention: cap the context at it.
  const window = c['sliding_window'];
  const windowed = modelType === 'qwen2' ? c['use_sliding_window'] === true : window !== undefined && window !== null;
  if (windowed) {
    check(Number.isSafeInteger(window) && (window as number) > 0, file, `bad sliding_window: ${JSON.stringify(window)}`);
    seqLen = Math.min(seqLen, window as number);
  }
  return {
    dim,
    hiddenDim: int('intermediate_size', 8 << 16),
    nLayers: int('num_hidden_layers', 1024),
    nHeads,
    nKvHeads,
    vocabSize: int('vocab_size', 1 << 22),
    seqLen,
    normEps: positive('rms_norm_eps'),
    ropeTheta: positive('rope_theta', 10000),
    tiedEmbeddings: tie,
    ...(headDim !== dim / nHeads ? { headDim } : {}),
    ...(bias !== undefined ? { attentionBias: bias } : {}),
    ...parseRopeScaling(file, c['rope_scaling']),
  };
}

/** `rope_scaling` (transformers' keys; older files say `type` for `rope_type`) → { ropeScaling } or {}. */
function parseRopeScaling(file: string, v: unknown): { ropeScaling?: RopeScaling } {
  if (v === undefined || v === null) return {};
  check(typeof v === 'object' && !Array.isArray(v), file, `bad rope_scaling: ${JSON.stringify(v)}`);
  const r = v as Record<string, unknown>;
  const type = r['rope_type'] ?? r['type'];
  if (type === 'default') return {};
  const num = (key: string, min: number): number => {
    const x = r[key];
    check(typeof x === 'number' && Number.isFinite(x) && x >= min, file, `bad rope_scaling.${key}: ${JSON.stringify(x)}`);
    return x;
  };
  if (type === 'linear') return { ropeScaling: { type, factor: num('factor', 1) } };
  if (type === 'llama3') {
    const lowFreqFactor = num('low_freq_factor', Number.MIN_VALUE);
    const highFreqFactor = num('high_freq_factor', Number.MIN_VALUE);
    check(highFreqFactor > lowFreqFactor, file, `rope_scaling.high_freq_factor ${highFreqFactor} is not above low_freq_factor ${lowFreqFactor}`);
    const originalMaxPositions = num('original_max_position_embeddings', 1);
    return { ropeScaling: { type, factor: num('factor', 1), lowFreqFactor, highFreqFactor, originalMaxPositions } };
  }
  throw new InputError(file, `rope_scaling type ${JSON.stringify(type)} is not supported (supported: linear, llama3)`);
}

export class HfModel implements ModelSource {
  readonly config: LlamaConfig;
  /** canonical tensor name → the file holding it */
  private readonly files = new Map<string, SafetensorsFile>();
  private readonly shapes: Map<string, number[]>;

  constructor(
    readonly dir: string,
    fs: FileSystemLike,
  ) {
    const configPath = fs.join(dir, 'config.json');
    const parsed = parseHfConfig(configPath, parseJson(configPath, readText(fs.open(configPath))));
    const all = openWeights(dir, fs);

    // Follow the tie flag when set; an absent classifier can only mean tied.
    const tied = parsed.tiedEmbeddings || !all.has(LM_HEAD);
    this.config = { ...parsed, tiedEmbeddings: tied };
    // biases where the flag (or the architecture) does not say so: the tensors decide
    if (this.config.attentionBias === undefined && all.has(layerBias(0, 'self_attn.q_proj'))) {
      this.config.attentionBias = all.has(layerBias(0, 'self_attn.o_proj')) ? 'qkvo' : 'qkv';
    }
    this.shapes = expectedShapes(this.config);

    for (const [name, file] of all) {
      if (this.shapes.has(name)) this.files.set(name, file);
      else if (!IGNORED_TENSOR.test(name) && !(tied && name === LM_HEAD)) {
        throw new InputError(file.name, `unexpected tensor ${name}: not a Llama, Mistral or Qwen2 architecture`);
      }
    }
    for (const [name, shape] of this.shapes) {
      const file = this.files.get(name);
      check(file !== undefined, dir, `missing tensor ${name}`);
      const e = file.entry(name);
      check(FLOAT_DTYPES.has(e.dtype), file.name, `tensor ${name} has dtype ${e.dtype}, expected F32, F16, BF16 or F64`);
      check(
        e.shape.length === shape.length && e.shape.every((d, i) => d === shape[i]),
        file.name,
        `tensor ${name} has shape [${e.shape.join(', ')}], config.json implies [${shape.join(', ')}]`,
      );
    }
  }

  get name(): string {
    return this.dir;
  }

  tensors(): TensorInfo[] {
    return [...this.shapes].map(([name, shape]) => ({ name, shape: [...shape] }));
  }

  load(name: string): Float32Array {
    return this.canonical(name, this.file(name).float32(name));
  }

  loadHalf(name: string): { dtype: 'F16' | 'BF16'; bits: Uint16Array } | undefined {
    const h = this.file(name).half(name);
    return h && { dtype: h.dtype, bits: this.canonical(name, h.bits) };
  }

  private file(name: string): SafetensorsFile {
    const file = this.files.get(name);
    check(file !== undefined, this.dir, `no tensor named ${name}`);
    return file;
  }

  private canonical<T extends Float32Array | Uint16Array>(name: string, w: T): T {
    return canonicalRows(this.config, name, w);
  }

  dtypeOf(name: string): SourceDtype {
    return this.file(name).entry(name).dtype as SourceDtype; // one of FLOAT_DTYPES, checked when opened
  }
}

/** Tensor `name` of an HF checkpoint with its q/k rows (weights and biases) from HF's rotate-half order in the canonical interleaved one. */
export function canonicalRows<T extends Float32Array | Uint16Array>(c: LlamaConfig, name: string, w: T): T {
  const qk = QK_PROJ.exec(name);
  if (qk === null) return w;
  const heads = qk[1] === 'q' ? c.nHeads : c.nKvHeads;
  return unpermuteRope(w, heads, headSize(c), w.length / (heads * headSize(c))); // a bias is one column
}

/**
 * HF rotate-half row order → interleaved row order, per head of size hs:
 * HF row h*hs + p*hs/2 + i holds interleaved row h*hs + 2i + p (p ∈ {0, 1}).
 * w: [nHeads * hs, cols] → same shape.
 */
export function unpermuteRope<T extends Float32Array | Uint16Array>(w: T, nHeads: number, hs: number, cols: number): T {
  const out = new (w.constructor as new (n: number) => T)(w.length);
  const half = hs / 2;
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      for (let p = 0; p < 2; p++) {
        const from = (h * hs + p * half + i) * cols;
        out.set(w.subarray(from, from + cols), (h * hs + 2 * i + p) * cols);
      }
    }
  }
  return out;
}

/** Every tensor of the directory's safetensors file(s), name → file. */
export function openWeights(dir: string, fs: FileSystemLike): Map<string, SafetensorsFile> {
  const single = fs.join(dir, 'model.safetensors');
  const indexPath = fs.join(dir, 'model.safetensors.index.json');
  const out = new Map<string, SafetensorsFile>();
  if (fs.exists(single)) {
    const f = new SafetensorsFile(fs.open(single));
    for (const e of f.entries()) out.set(e.name, f);
    return out;
  }
  check(fs.exists(indexPath), dir, 'no model.safetensors or model.safetensors.index.json');
  const index = parseJson(indexPath, readText(fs.open(indexPath)));
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  check(typeof map === 'object' && map !== null && !Array.isArray(map), indexPath, 'missing or bad weight_map');
  const shards = new Map<string, SafetensorsFile>();
  for (const [tensor, shard] of Object.entries(map)) {
    // shard names come from an untrusted file: plain names in this directory only
    check(typeof shard === 'string' && /^[^/\\]+$/.test(shard) && shard !== '.' && shard !== '..', indexPath, `bad shard name ${JSON.stringify(shard)} for ${tensor}`);
    let f = shards.get(shard);
    if (f === undefined) {
      f = new SafetensorsFile(fs.open(fs.join(dir, shard)));
      shards.set(shard, f);
    }
    check(f.has(tensor), f.name, `${indexPath} places tensor ${tensor} in this shard but it is not there`);
  }
  for (const f of shards.values()) {
    for (const e of f.entries()) {
      const other = out.get(e.name);
      check(other === undefined, f.name, `tensor ${e.name} is also in ${other?.name}`);
      out.set(e.name, f);
    }
  }
  return out;
}

export function parseJson(file: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    // V8 quotes the text around the error, newlines included: one line for the message
    throw new InputError(file, `bad JSON: ${(e as Error).message.replace(/\s*[\r\n]+\s*/g, ' ')}`);
  }
}

/** `quantization_config` of a directory's config.json, or undefined for a float checkpoint. */
export function quantizationConfig(dir: string, fs: FileSystemLike): { file: string; method: string; qc: Record<string, unknown> } | undefined {
  const file = fs.join(dir, 'config.json');
  if (!fs.exists(file)) return undefined;
  const json = parseJson(file, readText(fs.open(file))) as Record<string, unknown> | null;
  const qc = json?.['quantization_config'];
  if (qc === undefined || qc === null) return undefined;
  check(typeof qc === 'object' && !Array.isArray(qc), file, 'quantization_config is not an object');
  const method = (qc as Record<string, unknown>)['quant_method'];
  check(typeof method === 'string', file, `quantization_config.quant_method ${JSON.stringify(method)} is not a string`);
  return { file, method, qc: qc as Record<string, unknown> };
}
