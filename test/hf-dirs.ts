/**
 * Small random-weight Hugging Face directories, one per architecture switch bitcrush follows
 * (llama3 and linear RoPE scaling, q/k/v(/o) biases, an explicit head_dim, tied and untied
 * heads, shards, BF16/F16/F32), written the way transformers' checkpoints are: HF tensor names,
 * q/k rows in rotate-half order. (Not a test file: compiled to dist/test/hf-dirs.js.)
 *
 * The golden logits in test/fixtures/arch-golden.json come from scripts/golden-logits.py, an
 * independent float64 implementation of transformers' modeling code run on these directories:
 *   node dist/test/hf-dirs.js /tmp/arch && /usr/bin/python3 scripts/golden-logits.py /tmp/arch test/fixtures/arch-golden.json
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { numberToF16Bits } from '../src/io/safetensors.js';
import { mulberry32 } from '../src/quant/random.js';

export interface TestTensor {
  name: string;
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** A minimal safetensors writer for building test files (the real writer lives with the formats). */
export function safetensorsBytes(tensors: TestTensor[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.length] };
    offset += t.bytes.length;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const t of tensors) {
    out.set(t.bytes, at);
    at += t.bytes.length;
  }
  return out;
}

export interface ArchCase {
  name: string;
  /** config.json as written (a real model's keys, tiny sizes). */
  config: Record<string, unknown>;
  dtype: 'F32' | 'F16' | 'BF16';
  shards: number;
  /** The token sequence the golden logits are computed for. */
  tokens: number[];
}

const base = {
  hidden_act: 'silu', hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 4,
  num_key_value_heads: 2, vocab_size: 64, max_position_embeddings: 4096, rms_norm_eps: 1e-5,
};

export const ARCH_CASES: readonly ArchCase[] = [
  {
    // Llama-3.2-1B's switches; original_max_position_embeddings shrunk so that the 7 positions
    // see all three llama3 bands (kept, interpolated, stretched) with a head size of 16
    name: 'llama32-rope-llama3',
    config: {
      ...base, architectures: ['LlamaForCausalLM'], model_type: 'llama', head_dim: 16, tie_word_embeddings: true,
      rope_theta: 500000, max_position_embeddings: 131072, attention_bias: false, mlp_bias: false,
      rope_scaling: { factor: 32, high_freq_factor: 4, low_freq_factor: 1, original_max_position_embeddings: 64, rope_type: 'llama3' },
    },
    dtype: 'BF16', shards: 1, tokens: [1, 7, 33, 2, 63, 18, 40],
  },
  {
    // Qwen2.5: q/k/v biases, tied, rope theta 1e6, a sliding window that is off
    name: 'qwen25-bias',
    config: {
      ...base, architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', tie_word_embeddings: true, rms_norm_eps: 1e-6,
      rope_theta: 1000000, sliding_window: 32768, use_sliding_window: false, max_window_layers: 2, max_position_embeddings: 32768,
    },
    dtype: 'BF16', shards: 1, tokens: [5, 9, 60, 0, 12, 12, 31],
  },
  {
    // head_dim 24 ≠ 64 / 4 (q_proj [96, 64], o_proj [64, 96]), untied, linear RoPE scaling
    name: 'head-dim-linear-untied',
    config: { ...base, architectures: ['LlamaForCausalLM'], model_type: 'llama', head_dim: 24, tie_word_embeddings: false, rope_scaling: { type: 'linear', factor: 4 } },
    dtype: 'F16', shards: 1, tokens: [3, 14, 15, 9, 26, 53, 58],
  },
  {
    // Mistral-7B's switches, F32, in 3 shards with an index, untied
    name: 'mistral-sharded',
    config: { ...base, architectures: ['MistralForCausalLM'], model_type: 'mistral', num_key_value_heads: 1, tie_word_embeddings: false, rope_theta: 10000, sliding_window: null },
    dtype: 'F32', shards: 3, tokens: [2, 4, 8, 16, 32, 63, 1],
  },
  {
    // Llama's attention_bias: all four projections biased
    name: 'llama-attention-bias',
    config: { ...base, architectures: ['LlamaForCausalLM'], model_type: 'llama', attention_bias: true, tie_word_embeddings: true },
    dtype: 'BF16', shards: 1, tokens: [10, 20, 30, 40, 50, 60, 0],
  },
];

/** float → bfloat16 bits, round to nearest even. */
function bf16Bits(x: number): number {
  const u = new Uint32Array(new Float32Array([x]).buffer)[0]!;
  return (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
}

function encode(values: Float64Array, dtype: ArchCase['dtype']): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(Float32Array.from(values).buffer);
  const h = Uint16Array.from(values, dtype === 'F16' ? numberToF16Bits : bf16Bits);
  return new Uint8Array(h.buffer);
}

/** The case's tensors in HF names and shapes, seeded normal values (std 1/√in for weights). */
export function archTensors(k: ArchCase, seed = 1): TestTensor[] {
  const c = k.config as typeof base & { head_dim?: number; tie_word_embeddings: boolean; attention_bias?: boolean };
  const rand = mulberry32(seed);
  const normal = () => Math.sqrt(-2 * Math.log(rand() + 2 ** -33)) * Math.cos(2 * Math.PI * rand());
  const hd = c.head_dim ?? c.hidden_size / c.num_attention_heads;
  const D = c.hidden_size;
  const F = c.intermediate_size;
  const q = c.num_attention_heads * hd;
  const kv = c.num_key_value_heads * hd;
  const out: TestTensor[] = [];
  const add = (name: string, shape: number[], mean: number, std: number) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const v = Float64Array.from({ length: n }, () => mean + std * normal());
    out.push({ name, dtype: k.dtype, shape, bytes: encode(v, k.dtype) });
  };
  const biased = k.config['model_type'] === 'qwen2' ? ['q', 'k', 'v'] : c.attention_bias ? ['q', 'k', 'v', 'o'] : [];
  add('model.embed_tokens.weight', [c.vocab_size, D], 0, 1);
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}`;
    add(`${p}.input_layernorm.weight`, [D], 1, 0.1);
    add(`${p}.self_attn.q_proj.weight`, [q, D], 0, 1 / Math.sqrt(D));
    add(`${p}.self_attn.k_proj.weight`, [kv, D], 0, 1 / Math.sqrt(D));
    add(`${p}.self_attn.v_proj.weight`, [kv, D], 0, 1 / Math.sqrt(D));
    add(`${p}.self_attn.o_proj.weight`, [D, q], 0, 1 / Math.sqrt(q));
    for (const b of biased) add(`${p}.self_attn.${b}_proj.bias`, [b === 'q' ? q : b === 'o' ? D : kv], 0, 0.5);
    add(`${p}.post_attention_layernorm.weight`, [D], 1, 0.1);
    add(`${p}.mlp.gate_proj.weight`, [F, D], 0, 1 / Math.sqrt(D));
    add(`${p}.mlp.up_proj.weight`, [F, D], 0, 1 / Math.sqrt(D));
    add(`${p}.mlp.down_proj.weight`, [D, F], 0, 1 / Math.sqrt(F));
  }
  add('model.norm.weight', [D], 1, 0.1);
  if (!c.tie_word_embeddings) add('lm_head.weight', [c.vocab_size, D], 0, 1 / Math.sqrt(D));
  return out;
}

/** Writes the case as an HF directory (config.json, model.safetensors or shards + index). */
export function writeArchDir(dir: string, k: ArchCase): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...k.config, torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[k.dtype] }, null, 2));
  const tensors = archTensors(k);
  if (k.shards === 1) {
    writeFileSync(join(dir, 'model.safetensors'), safetensorsBytes(tensors, { format: 'pt' }));
    return;
  }
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < k.shards; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(k.shards).padStart(5, '0')}.safetensors`;
    const part = tensors.filter((_, i) => i % k.shards === s);
    for (const t of part) weightMap[t.name] = file;
    writeFileSync(join(dir, file), safetensorsBytes(part, { format: 'pt' }));
  }
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
}

// node dist/test/hf-dirs.js OUT: every case into OUT/<name>, with its tokens (for the reference script)
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const outDir = process.argv[2];
  if (outDir === undefined) throw new Error('usage: node dist/test/hf-dirs.js OUT_DIR');
  for (const k of ARCH_CASES) {
    writeArchDir(join(outDir, k.name), k);
    writeFileSync(join(outDir, k.name, 'tokens.json'), JSON.stringify(k.tokens));
  }
}

/** GPT-2's byte → printable character map (byte-level BPE vocabularies are written in it). */
function byteLevelChars(): string[] {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let extra = 0;
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(printable(b) ? b : 256 + extra++));
}

export interface ChatTokenizerOptions {
  /** Special tokens (ids 0..n-1, in order), e.g. Qwen's <|endoftext|>, <|im_start|>, <|im_end|>. */
  special: string[];
  /** tokenizer_config.json fields (bos_token, eos_token, chat_template, …). */
  config: Record<string, unknown>;
  /** generation_config.json's eos_token_id, when the directory has one. */
  generationEos?: number | number[];
}

/**
 * A byte-level BPE tokenizer.json with no merges (every byte one token, ids after the special
 * tokens), plus tokenizer_config.json and generation_config.json: the files Llama 3 and Qwen2
 * ship, small. Vocabulary size: special.length + 256.
 */
export function writeChatTokenizer(dir: string, o: ChatTokenizerOptions): void {
  const vocab: Record<string, number> = {};
  o.special.forEach((t, i) => (vocab[t] = i));
  byteLevelChars().forEach((ch, b) => (vocab[ch] = o.special.length + b));
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: o.special.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: null,
    decoder: byteLevel,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges: [] },
  };
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(o.config));
  if (o.generationEos !== undefined) writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: o.generationEos }));
}

/** ChatML as Qwen2.5 and SmolLM2 use it (shortened: no tools), with Qwen's default system message. */
export const CHATML_TEMPLATE =
  "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}" +
  "{%- else %}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}" +
  "{%- for message in messages %}{%- if message.role != 'system' %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endif %}{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/** Llama 3's header format (shortened: no tools, no date). */
export const LLAMA3_TEMPLATE =
  "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}";

/** The chunks (e.g. ggufChunks' output) joined into one array. */
export function concatBytes(chunks: Iterable<Uint8Array>): Uint8Array {
  const parts = [...chunks];
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
