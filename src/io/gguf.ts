/**
 * GGUF models (llama.cpp, Ollama) as a ModelSource: architectures `llama` (also Mistral's
 * files, which llama.cpp writes as llama) and `qwen2` (q/k/v biases). Tensors are read one at a
 * time and dequantized to float32 (gguf-quants.ts: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
 * Q2_K … Q6_K); F16 and BF16 ones are also handed out 16-bit (loadHalf).
 *
 * Tensor names follow llama.cpp (token_embd, blk.N.attn_q, …, output_norm, output) and are
 * mapped to the canonical (Hugging Face) ones. RoPE row order: llama.cpp's converter permutes
 * a llama model's attn_q/attn_k rows from HF's rotate-half order back to Meta's interleaved
 * one, which is bitcrush's canonical order, so they are read as they are; qwen2 runs NEOX
 * (rotate-half) RoPE and is stored unpermuted in HF order, which is undone like HF's.
 */
import type { ByteSource } from './bytes.js';
import { check, InputError } from './errors.js';
import { checkFinite } from './finite.js';
import { GgufFile, type GgufTensorInfo } from './gguf-file.js';
import { unpermuteRope } from './hf.js';
import type { LlamaConfig, RopeScaling } from '../model/config.js';
import { headSize } from '../model/config.js';
import { BIASED, EMBED, expectedShapes, FINAL_NORM, layerBias, layerTensor, LM_HEAD, type LinearName, type ModelSource, type SourceDtype, type TensorInfo } from '../model/weights.js';

export const GGUF_ARCHS = ['llama', 'qwen2'] as const;

/** llama.cpp's names of a block's tensors, by canonical part. */
export const GGUF_BLOCK_NAMES: Readonly<Record<LinearName | 'input_layernorm' | 'post_attention_layernorm', string>> = {
  input_layernorm: 'attn_norm',
  'self_attn.q_proj': 'attn_q',
  'self_attn.k_proj': 'attn_k',
  'self_attn.v_proj': 'attn_v',
  'self_attn.o_proj': 'attn_output',
  post_attention_layernorm: 'ffn_norm',
  'mlp.gate_proj': 'ffn_gate',
  'mlp.down_proj': 'ffn_down',
  'mlp.up_proj': 'ffn_up',
};

/** canonical name → llama.cpp name, for every tensor of a config. */
export function ggufTensorNames(c: LlamaConfig): Map<string, string> {
  const m = new Map<string, string>([[EMBED, 'token_embd.weight'], [FINAL_NORM, 'output_norm.weight']]);
  if (!c.tiedEmbeddings) m.set(LM_HEAD, 'output.weight');
  for (let l = 0; l < c.nLayers; l++) {
    for (const [part, gg] of Object.entries(GGUF_BLOCK_NAMES)) m.set(layerTensor(l, part as LinearName), `blk.${l}.${gg}.weight`);
    for (const proj of c.attentionBias ? BIASED[c.attentionBias] : []) m.set(layerBias(l, proj), `blk.${l}.${GGUF_BLOCK_NAMES[proj]}.bias`);
  }
  return m;
}

/** Metadata → LlamaConfig (vocab and tie from the tensors). */
export function parseGgufConfig(g: GgufFile): { arch: (typeof GGUF_ARCHS)[number]; config: LlamaConfig } {
  const file = g.name;
  const arch = g.metadata.get('general.architecture');
  check(typeof arch === 'string', file, 'missing general.architecture');
  check((GGUF_ARCHS as readonly string[]).includes(arch), file, `unsupported architecture ${JSON.stringify(arch)} (supported: ${GGUF_ARCHS.join(', ')})`);
  const num = (key: string, fallback?: number): number => {
    const v = g.metadata.get(`${arch}.${key}`) ?? fallback;
    check(v !== undefined, file, `missing ${arch}.${key}`);
    check(typeof v === 'number' && Number.isFinite(v) && v > 0, file, `bad ${arch}.${key}: ${String(v)}`);
    return v;
  };
  const int = (key: string, max: number, fallback?: number): number => {
    const v = num(key, fallback);
    check(Number.isSafeInteger(v) && v <= max, file, `bad ${arch}.${key}: ${v}`);
    return v;
  };
  const dim = int('embedding_length', 1 << 16);
  const nHeads = int('attention.head_count', dim);
  const nKvHeads = int('attention.head_count_kv', nHeads, nHeads);
  check(nHeads % nKvHeads === 0, file, `head_count ${nHeads} is not a multiple of head_count_kv ${nKvHeads}`);
  const hs = int('attention.key_length', 1 << 12, dim % nHeads === 0 ? dim / nHeads : undefined);
  check(hs % 2 === 0 && hs * nHeads <= 1 << 17, file, `bad head size ${hs}`);
  const rotDim = int('rope.dimension_count', 1 << 12, hs);
  check(rotDim === hs, file, `${arch}.rope.dimension_count ${rotDim} differs from the head size ${hs} (partial RoPE is not supported)`);
  const vLen = int('attention.value_length', 1 << 12, hs);
  check(vLen === hs, file, `${arch}.attention.value_length ${vLen} differs from key_length ${hs}`);
  const embd = g.tensors.get('token_embd.weight');
  check(embd !== undefined && embd.ne.length === 2, file, 'missing 2-D tensor token_embd.weight');
  const vocab = int('vocab_size', 1 << 22, embd.ne[1]);
  const bias = g.tensors.has('blk.0.attn_q.bias') ? (g.tensors.has('blk.0.attn_output.bias') ? 'qkvo' : 'qkv') : undefined;
  const config: LlamaConfig = {
    dim,
    hiddenDim: int('feed_forward_length', 8 << 16),
    nLayers: int('block_count', 1024),
    nHeads,
    nKvHeads,
    vocabSize: vocab,
    seqLen: int('context_length', 1 << 24),
    normEps: shortestDecimal(num('attention.layer_norm_rms_epsilon')),
    ropeTheta: shortestDecimal(num('rope.freq_base', 10000)),
    tiedEmbeddings: !g.tensors.has('output.weight'),
    ...(hs !== dim / nHeads ? { headDim: hs } : {}),
    ...(bias !== undefined ? { attentionBias: bias } : {}),
    ...ropeScaling(g, arch, hs),
  };
  return { arch: arch as (typeof GGUF_ARCHS)[number], config };
}

/**
 * GGUF stores these as float32: 1e-5 arrives as 9.99999974e-6. The shortest decimal that
 * rounds to the same float32 is what the model's config said (config.json: 1e-5), and what an
 * HF copy of the model computes with.
 */
function shortestDecimal(v: number): number {
  for (let p = 1; p <= 9; p++) {
    const d = Number(v.toPrecision(p));
    if (Math.fround(d) === v) return d;
  }
  return v;
}

/** A llama3-scaled model's `rope_freqs.weight`: F32 [headSize / 2], each pair's frequency divisor. */
export const ROPE_FREQS = 'rope_freqs.weight';

function ropeScaling(g: GgufFile, arch: string, hs: number): { ropeScaling?: RopeScaling } {
  const file = g.name;
  const type = g.metadata.get(`${arch}.rope.scaling.type`);
  const freqs = g.tensors.get(ROPE_FREQS);
  if (freqs !== undefined) {
    check(type === undefined || type === 'none', file, `${ROPE_FREQS} together with ${arch}.rope.scaling.type ${JSON.stringify(type)}: two RoPE scalings`);
    check(freqs.type.name === 'F32' && freqs.ne.length === 1 && freqs.ne[0] === hs / 2, file, `${ROPE_FREQS} is ${freqs.type.name} [${freqs.ne.join(', ')}], expected F32 [${hs / 2}] (one factor per rotated pair)`);
    const f = new Float32Array(hs / 2);
    freqs.type.dequantize(g.raw(freqs), f);
    check(f.every((x) => Number.isFinite(x) && x > 0), file, `${ROPE_FREQS} holds a factor that is not a positive finite number`);
    return { ropeScaling: { type: 'factors', factors: [...f] } };
  }
  if (type === undefined || type === 'none') return {};
  const factor = g.metadata.get(`${arch}.rope.scaling.factor`);
  check(type === 'linear', file, `${arch}.rope.scaling.type ${JSON.stringify(type)} is not supported (supported: none, linear)`);
  check(typeof factor === 'number' && factor >= 1, file, `bad ${arch}.rope.scaling.factor: ${String(factor)}`);
  return { ropeScaling: { type: 'linear', factor } };
}

export class GgufModel implements ModelSource {
  readonly gguf: GgufFile;
  readonly arch: (typeof GGUF_ARCHS)[number];
  readonly config: LlamaConfig;
  private readonly shapes: Map<string, number[]>;
  /** canonical name → tensor */
  private readonly infos = new Map<string, GgufTensorInfo>();

  constructor(src: ByteSource) {
    this.gguf = new GgufFile(src);
    const file = src.name;
    const { arch, config } = parseGgufConfig(this.gguf);
    this.arch = arch;
    this.config = config;
    this.shapes = expectedShapes(config);
    const names = ggufTensorNames(config);
    const known = new Set(names.values());
    if (config.ropeScaling?.type === 'factors') known.add(ROPE_FREQS);
    for (const t of this.gguf.tensors.keys()) check(known.has(t), file, `unexpected tensor ${t}: not a ${arch} model of this config`);
    for (const [name, gg] of names) {
      const t = this.gguf.tensors.get(gg);
      check(t !== undefined, file, `missing tensor ${gg}`);
      const shape = this.shapes.get(name)!;
      const ne = [...shape].reverse();
      check(t.ne.length === ne.length && t.ne.every((d, i) => d === ne[i]), file, `tensor ${gg} has ne [${t.ne.join(', ')}], the metadata implies [${ne.join(', ')}]`);
      this.infos.set(name, t);
    }
  }

  get name(): string {
    return this.gguf.name;
  }

  tensors(): TensorInfo[] {
    return [...this.shapes].map(([name, shape]) => ({ name, shape: [...shape] }));
  }

  /** The llama.cpp type a tensor is stored in (F32, Q4_K, …). */
  ggmlTypeOf(name: string): string {
    return this.info(name).type.name;
  }

  load(name: string): Float32Array {
    const t = this.info(name);
    const out = new Float32Array(t.ne.reduce((a, b) => a * b, 1));
    t.type.dequantize(this.gguf.raw(t), out);
    checkFinite(this.name, t.name, out);
    return this.canonical(name, out);
  }

  loadHalf(name: string): { dtype: 'F16' | 'BF16'; bits: Uint16Array } | undefined {
    const t = this.info(name);
    if (t.type.name !== 'F16' && t.type.name !== 'BF16') return undefined;
    this.load(name); // the finiteness check
    const raw = this.gguf.raw(t);
    const bits = new Uint16Array(raw.length / 2);
    for (let i = 0; i < bits.length; i++) bits[i] = raw[2 * i]! | (raw[2 * i + 1]! << 8);
    return { dtype: t.type.name, bits: this.canonical(name, bits) };
  }

  dtypeOf(name: string): SourceDtype {
    const n = this.info(name).type.name;
    return n === 'F16' || n === 'BF16' ? n : 'F32';
  }

  private info(name: string): GgufTensorInfo {
    const t = this.infos.get(name);
    if (t === undefined) throw new InputError(this.name, `no tensor named ${name}`);
    return t;
  }

  private canonical<T extends Float32Array | Uint16Array>(name: string, w: T): T {
    if (this.arch !== 'qwen2') return w;
    const qk = /^model\.layers\.\d+\.self_attn\.([qk])_proj\.(weight|bias)$/.exec(name);
    if (qk === null) return w;
    const heads = qk[1] === 'q' ? this.config.nHeads : this.config.nKvHeads;
    return unpermuteRope(w, heads, headSize(this.config), w.length / (heads * headSize(this.config)));
  }
}

/** A GGUF file starts with the magic "GGUF". */
export function looksLikeGguf(src: ByteSource): boolean {
  if (src.size < 4) return false;
  const b = src.read(0, 4);
  return b[0] === 0x47 && b[1] === 0x47 && b[2] === 0x55 && b[3] === 0x46;
}
