/**
 * llama2.c checkpoints (`run.c` legacy format): a header of seven int32 —
 * dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative: unshared classifier),
 * seq_len — then float32 tensors stacked over layers in this order:
 *   token_embedding [vocab, dim], rms_att [L, dim], wq [L, dim, dim], wk [L, kvDim, dim],
 *   wv [L, kvDim, dim], wo [L, dim, dim], rms_ffn [L, dim], w1 [L, hidden, dim],
 *   w2 [L, dim, hidden], w3 [L, hidden, dim], rms_final [dim],
 *   freq_cis_real/imag [seqLen, headSize/2] (unused), wcls [vocab, dim] when unshared.
 * llama2.c uses interleaved RoPE, which is bitcrush's canonical layout: no permutation.
 */
import { copyToArrayBuffer, type ByteSource } from './bytes.js';
import { check } from './errors.js';
import { checkFinite } from './finite.js';
import type { LlamaConfig } from '../model/config.js';
import { EMBED, FINAL_NORM, LM_HEAD, layerTensor, type ModelSource, type TensorInfo } from '../model/weights.js';

const HEADER_BYTES = 7 * 4;
const MAX_DIM = 1 << 16;

interface Placement {
  offset: number;
  shape: number[];
}

export function parseLlama2cHeader(src: ByteSource): LlamaConfig {
  const h = new DataView(copyToArrayBuffer(src.read(0, HEADER_BYTES)));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab, seqLen] = Array.from({ length: 7 }, (_, i) => h.getInt32(i * 4, true));
  // run.c's export.py "version 1/2" files start with the magic "ak42" (read as int32 LE)
  check(dim !== 0x616b3432, src.name, 'llama2.c version 1/2 export (magic "ak42") is not supported; export with --version 0 (legacy)');
  const bad = (what: string, v: number) => `bad llama2.c header: ${what} = ${v}`;
  const inRange = (v: number, max: number) => v > 0 && v <= max;
  check(inRange(dim, MAX_DIM), src.name, bad('dim', dim));
  check(inRange(hiddenDim, 8 * MAX_DIM), src.name, bad('hidden_dim', hiddenDim));
  check(inRange(nLayers, 1024), src.name, bad('n_layers', nLayers));
  check(inRange(nHeads, dim) && dim % nHeads === 0 && (dim / nHeads) % 2 === 0, src.name, bad('n_heads', nHeads));
  check(inRange(nKvHeads, nHeads) && nHeads % nKvHeads === 0, src.name, bad('n_kv_heads', nKvHeads));
  check(vocab !== 0 && Math.abs(vocab) <= 1 << 20, src.name, bad('vocab_size', vocab));
  check(inRange(seqLen, 1 << 20), src.name, bad('seq_len', seqLen));
  return {
    dim,
    hiddenDim,
    nLayers,
    nHeads,
    nKvHeads,
    vocabSize: Math.abs(vocab),
    seqLen,
    normEps: 1e-5,
    ropeTheta: 10000,
    tiedEmbeddings: vocab > 0,
  };
}

export class Llama2cModel implements ModelSource {
  readonly config: LlamaConfig;
  private readonly placements = new Map<string, Placement>();

  constructor(private readonly src: ByteSource) {
    this.config = parseLlama2cHeader(src);
    const c = this.config;
    const kvDim = (c.dim * c.nKvHeads) / c.nHeads;
    const headSize = c.dim / c.nHeads;
    let offset = HEADER_BYTES;
    const place = (name: string, shape: number[]) => {
      this.placements.set(name, { offset, shape });
      offset += shape.reduce((a, b) => a * b, 1) * 4;
    };
    const perLayer = (part: Parameters<typeof layerTensor>[1], shape: number[]) => {
      for (let l = 0; l < c.nLayers; l++) place(layerTensor(l, part), shape);
    };
    place(EMBED, [c.vocabSize, c.dim]);
    perLayer('input_layernorm', [c.dim]);
    perLayer('self_attn.q_proj', [c.dim, c.dim]);
    perLayer('self_attn.k_proj', [kvDim, c.dim]);
    perLayer('self_attn.v_proj', [kvDim, c.dim]);
    perLayer('self_attn.o_proj', [c.dim, c.dim]);
    perLayer('post_attention_layernorm', [c.dim]);
    perLayer('mlp.gate_proj', [c.hiddenDim, c.dim]);
    perLayer('mlp.down_proj', [c.dim, c.hiddenDim]);
    perLayer('mlp.up_proj', [c.hiddenDim, c.dim]);
    place(FINAL_NORM, [c.dim]);
    offset += c.seqLen * headSize * 4; // freq_cis_real and freq_cis_imag, recomputed at run time
    if (!c.tiedEmbeddings) place(LM_HEAD, [c.vocabSize, c.dim]);
    check(offset <= src.size, src.name, `truncated: the header implies ${offset} bytes but the file has ${src.size}`);
  }

  get name(): string {
    return this.src.name;
  }

  tensors(): TensorInfo[] {
    return [...this.placements].map(([name, p]) => ({ name, shape: p.shape }));
  }

  load(name: string): Float32Array {
    const p = this.placements.get(name);
    check(p !== undefined, this.src.name, `no tensor named ${name}`);
    const n = p.shape.reduce((a, b) => a * b, 1);
    const bytes = this.src.read(p.offset, n * 4);
    // copy: the source's bytes may be unaligned or reused
    const values = new Float32Array(copyToArrayBuffer(bytes));
    checkFinite(this.src.name, name, values);
    return values;
  }
}
