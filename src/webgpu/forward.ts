/**
 * The Llama forward pass on the GPU, the same structure as runtime/forward.ts (architecture as
 * data: attention biases, grouped-query heads, head_dim, tied head): the packed linears run
 * their format's WGSL kernel on the blobs uploaded once (linear.ts), every activation and the
 * KV cache stay on the GPU, and only the token ids go up and the logits [vocab] come back. A
 * packed embedding is gathered on the GPU from its blobs (GpuLinear.gather; a tied model's
 * table is the head's, uploaded once for both); a float embedding is gathered on the CPU and
 * its rows (dim floats per token) go up.
 * The residual adds are fused into the o/down projections (accumulate), biases into their
 * projection; q, k, v (and gate, up) write one buffer side by side, as one stacked linear where
 * the formats allow (linear.ts stackKernels). A whole call is one command buffer.
 * The KV cache (and the attention scores) grow with the sequence: they start at
 * `initialPositions` and, when a call would write past them, are reallocated at double size
 * (capped at `positions`), the cached K/V copied layer by layer on the GPU, the bind groups
 * that view them rebuilt and the old buffers destroyed.
 */
import { headSize as headSizeOf, kvDim as kvDimOf, qDim as qDimOf, type LlamaConfig } from '../model/config.js';
import { ropeInvFrequencies } from '../model/rope.js';
import { BIASED, EMBED, FINAL_NORM, LM_HEAD, layerBias, layerTensor, type LinearName, type RowGather } from '../model/weights.js';
import type { PackedModel } from '../packed/reader.js';
import { denseEmbedding } from '../runtime/embedding.js';
import { type GpuContext } from './device.js';
import { MAP_READ, BUFFER, type GpuBindGroup, type GpuBuffer, type GpuComputePass, type GpuComputePipeline } from './gpu-types.js';
import { denseKernel, packedKernel } from './kernels/index.js';
import { GpuLinear, LIN_ACCUMULATE, LIN_BIAS, stackKernels } from './linear.js';
import { ACT_QUANT, ATTENTION, KV_STORE, RMSNORM, ROPE, SWIGLU } from './ops.js';
import { f32Bits } from './wgsl.js';

export interface GpuModelOptions {
  /** Most tokens per forward call (prefill chunk); default min(seqLen, 64). */
  maxRows?: number;
  /** Most positions the KV cache holds (the context); default min(seqLen, 2048). */
  positions?: number;
  /** Positions the KV cache is allocated for at first (it doubles as the sequence grows, up to `positions`); default min(positions, 256). */
  initialPositions?: number;
}

type Op = (pass: GpuComputePass, T: number) => void;

/** Positions the KV cache is allocated for at first (GpuModelOptions.initialPositions' default). */
export const GPU_INITIAL_POSITIONS = 256;

/** The capacity a cache of `cap` positions grows to for `need` positions: doubled until it holds them, capped at `positions`. */
export function grownCapacity(cap: number, need: number, positions: number): number {
  while (cap < need) cap = Math.min(positions, cap * 2);
  return cap;
}

/**
 * The most positions the capacity-sized buffers (K/V caches, attention scores) hold at once on
 * the way from `initial` to `positions`: during a growth the old buffers live until the copy is
 * recorded, so the peak is the last growth, `positions` plus the capacity before it (1.5× the
 * full context when positions is initial × a power of two; 1× when no growth happens). A
 * growth that jumps several doublings at once copies from a smaller buffer, so it is no higher.
 */
export function growthPeakPositions(initial: number, positions: number): number {
  let cap = Math.max(1, Math.min(initial, positions));
  let before = 0;
  while (cap < positions) {
    before = cap;
    cap = grownCapacity(cap, cap + 1, positions);
  }
  return positions + before;
}

export class GpuModel {
  readonly name: string;
  readonly config: LlamaConfig;
  readonly maxRows: number;
  readonly positions: number;
  /** Positions the KV cache holds now (initialPositions ≤ capacity ≤ positions). */
  get capacity(): number {
    return this.cap;
  }
  /** Bytes of weights uploaded (packed blobs as stored, float tensors as float32). */
  readonly weightBytes: number;
  private readonly ctx: GpuContext;
  /** The CPU row table of a float embedding; undefined when the GPU gathers a packed one. */
  private readonly embedding: RowGather | undefined;
  private readonly tokenIds: GpuBuffer;
  /** The token ids of the call being recorded (the gather dispatches only the row parts holding them). */
  private callTokens: ArrayLike<number> = [];
  private readonly linears: GpuLinear[] = [];
  private readonly owned: GpuBuffer[] = [];
  private readonly ops: Op[] = [];
  private readonly step: GpuBuffer;
  private readonly x: GpuBuffer;
  private readonly logits: GpuBuffer;
  private readonly readback: GpuBuffer;
  private readonly embedRows: Float32Array;
  private cap: number;
  /** The buffers sized by the capacity: key cache, value cache (nLayers × cap × kvDim), attention scores (maxRows × nHeads × cap). */
  private kc: GpuBuffer;
  private vc: GpuBuffer;
  private att: GpuBuffer;
  /** Run after a growth: rewrite the capacity-dependent uniforms, rebuild the bind groups viewing kc, vc, att. */
  private readonly regrow: (() => void)[] = [];

  constructor(ctx: GpuContext, packed: PackedModel, opts: GpuModelOptions = {}) {
    const c = packed.config;
    this.ctx = ctx;
    this.name = packed.name;
    this.config = c;
    this.maxRows = Math.max(1, Math.min(opts.maxRows ?? 64, c.seqLen));
    this.positions = Math.max(this.maxRows, Math.min(opts.positions ?? 2048, c.seqLen));
    const { dim, hiddenDim: hidden, vocabSize: vocab, nLayers } = c;
    const hs = headSizeOf(c);
    const qDim = qDimOf(c);
    const kvDim = kvDimOf(c);
    const R = this.maxRows;
    const P = this.positions;
    this.cap = Math.max(1, Math.min(P, opts.initialPositions ?? GPU_INITIAL_POSITIONS));
    // the cache grows up to P positions: refuse at load, not mid-generation, a P whose buffers the device cannot bind
    for (const [floats, what] of [[nLayers * P * kvDim, 'key/value cache'], [R * c.nHeads * P, 'attention scores']] as const) {
      if (floats * 4 > ctx.info.maxBindingBytes) throw new RangeError(`${what} of ${P} positions: ${floats * 4} bytes exceed the device's storage binding limit of ${ctx.info.maxBindingBytes}`);
    }
    const buf = (n: number, label: string) => this.own(ctx.floats(n, label));
    const upload = (a: Float32Array, label: string) => this.own(ctx.storage(a, label));
    const uni = (words: number[]) => this.own(ctx.uniform(Uint32Array.from(words)));

    this.embedding = packed.isPacked(EMBED) ? undefined : denseEmbedding(packed.load(EMBED), vocab, dim);
    this.embedRows = new Float32Array(this.embedding ? R * dim : 0);
    this.tokenIds = this.own(ctx.storage(new Uint32Array(R), 'token ids'));
    this.step = uni([0, 0, 0, 0]);
    const stepOne = uni([1, 0, 0, 0]);
    this.x = buf(R * dim, 'x');
    const xb = buf(R * Math.max(dim, qDim), 'xb');
    // q, k, v side by side in rows of qkvW, gate and up in rows of 2·hidden: each trio (pair) is one
    // stacked linear where the formats allow (stackKernels), else its linears write their columns
    const qkvW = qDim + 2 * kvDim;
    const qkv = buf(R * qkvW, 'q k v');
    const gu = buf(R * 2 * hidden, 'gate up');
    const hb = buf(R * hidden, 'hb');
    this.att = ctx.floats(R * c.nHeads * this.cap, 'att');
    this.kc = ctx.floats(nLayers * this.cap * kvDim, 'key cache');
    this.vc = ctx.floats(nLayers * this.cap * kvDim, 'value cache');
    this.logits = buf(vocab, 'logits');
    this.readback = this.own(ctx.device.createBuffer({ size: vocab * 4, usage: BUFFER.MAP_READ | BUFFER.COPY_DST, label: 'logits readback' }));
    const zero = buf(1, 'no bias');
    // interleaved RoPE tables [positions, hs / 2], as runtime/scratch.ts computes them
    const inv = ropeInvFrequencies(c);
    const half = hs / 2;
    const cos = new Float32Array(P * half);
    const sin = new Float32Array(P * half);
    for (let pos = 0; pos < P; pos++) for (let i = 0; i < half; i++) {
      cos[pos * half + i] = Math.cos(pos * inv[i]!);
      sin[pos * half + i] = Math.sin(pos * inv[i]!);
    }
    const cosB = upload(cos, 'rope cos');
    const sinB = upload(sin, 'rope sin');

    const pipe = (wgsl: string, label: string) => ctx.pipeline(wgsl, label);
    const pRms = pipe(RMSNORM, 'rmsnorm');
    const pRope = pipe(ROPE, 'rope');
    const pKv = pipe(KV_STORE, 'kv store');
    const pAtt = pipe(ATTENTION, 'attention');
    const pSwi = pipe(SWIGLU, 'swiglu');
    const kernel = (p: GpuComputePipeline, buffers: GpuBuffer[] | (() => GpuBuffer[]), grid: (T: number) => [number, number, number]): Op => {
      let g = ctx.bindGroup(p, typeof buffers === 'function' ? buffers() : buffers);
      if (typeof buffers === 'function') this.regrow.push(() => (g = ctx.bindGroup(p, buffers())));
      return (pass, T) => {
        pass.setPipeline(p);
        pass.setBindGroup(0, g);
        pass.dispatchWorkgroups(...grid(T));
      };
    };
    const rmsnorm = (src: GpuBuffer, dst: GpuBuffer, weight: string): Op =>
      kernel(pRms, [this.step, uni([dim, f32Bits(c.normEps), 0, 0]), src, dst, upload(packed.load(weight), weight)], (T) => [T, 1, 1]);
    // the final norm of the last row alone (row T − 1 of the call, written to row 0)
    const rmsLast = (src: GpuBuffer, dst: GpuBuffer, weight: string): Op => kernel(pRms, [this.step, uni([dim, f32Bits(c.normEps), 1, 0]), src, dst, upload(packed.load(weight), weight)], () => [1, 1, 1]);
    let weightBytes = 0;
    const upLinear = (name: string, flags: number): GpuLinear => {
      const shape = packed.tensors().find((t) => t.name === name)!.shape as [number, number];
      const kern = packed.isPacked(name) ? packedKernel(packed.packed(name)) : denseKernel(packed.load(name), shape[0], shape[1], name);
      const lin = new GpuLinear(ctx, shape[0], shape[1], kern, flags);
      this.linears.push(lin);
      weightBytes += lin.bytes;
      return lin;
    };
    const linear = (name: string, x: GpuBuffer, y: GpuBuffer, step: GpuBuffer, flags: number, bias?: Float32Array, lin = upLinear(name, flags | (bias ? LIN_BIAS : 0))): Op => {
      const groups: GpuBindGroup[] = lin.bind(step, x, y, bias ? upload(bias, `${name} bias`) : zero);
      return (pass, T) => lin.dispatch(pass, groups, T);
    };
    // linears of input x side by side in y's rows (their biases, where any, side by side too)
    const linearSet = (names: string[], x: GpuBuffer, y: GpuBuffer, biases: Array<Float32Array | undefined>): Op => {
      const layers = names.map((name) => {
        const shape = packed.tensors().find((t) => t.name === name)!.shape as [number, number];
        return { outDim: shape[0], inDim: shape[1], kernel: packed.isPacked(name) ? packedKernel(packed.packed(name)) : denseKernel(packed.load(name), shape[0], shape[1], name) };
      });
      const stride = layers.reduce((n, l) => n + l.outDim, 0);
      const flags = biases.some((b) => b !== undefined) ? LIN_BIAS : 0;
      let bias = zero;
      if (flags !== 0) {
        const all = new Float32Array(stride);
        let at = 0;
        layers.forEach((l, i) => {
          if (biases[i] !== undefined) all.set(biases[i]!, at);
          at += l.outDim;
        });
        bias = upload(all, `${names.join(' + ')} bias`);
      }
      const stacked = stackKernels(layers);
      const lins: GpuLinear[] = [];
      if (stacked !== undefined) lins.push(new GpuLinear(ctx, stride, layers[0]!.inDim, stacked, flags));
      else {
        let offset = 0;
        for (const l of layers) {
          lins.push(new GpuLinear(ctx, l.outDim, l.inDim, l.kernel, flags, undefined, undefined, { stride, offset }));
          offset += l.outDim;
        }
      }
      for (const lin of lins) {
        this.linears.push(lin);
        weightBytes += lin.bytes;
      }
      const groups = lins.map((lin) => lin.bind(this.step, x, y, bias));
      return (pass, T) => lins.forEach((lin, i) => lin.dispatch(pass, groups[i]!, T));
    };
    // a packed embedding: its rows gathered on the GPU straight into x
    const table = this.embedding === undefined ? upLinear(EMBED, 0) : undefined;
    if (table !== undefined) {
      const run = table.gather(this.step, this.tokenIds, this.x);
      this.ops.push((pass) => run(pass, this.callTokens));
    }
    const biasOf = (l: number, proj: LinearName): Float32Array | undefined =>
      c.attentionBias && (BIASED[c.attentionBias] as readonly string[]).includes(proj) ? packed.load(layerBias(l, proj as never)) : undefined;
    // a file's activation quantization: every block linear's input fake-quantized per token (in
    // place: each quantized buffer feeds only block linears), the head's input left alone
    const actBits = packed.header.actBits ?? 16;
    const pAq = actBits < 16 ? pipe(ACT_QUANT, 'act quant') : undefined;
    const actQuant = (v: GpuBuffer, n: number): Op[] => (pAq ? [kernel(pAq, [this.step, uni([n, 2 ** (actBits - 1) - 1, 0, 0]), v], (T) => [T, 1, 1])] : []);
    const rows64 = (n: number) => (T: number): [number, number, number] => [Math.ceil(n / 64), T, 1];
    // a uniform whose words depend on the capacity (layer offsets in the cache, the scores' stride)
    const capUni = (words: (cap: number) => number[]): GpuBuffer => {
      const b = uni(words(this.cap));
      this.regrow.push(() => ctx.device.queue.writeBuffer(b, 0, Uint32Array.from(words(this.cap))));
      return b;
    };

    const ropeMeta = uni([qDim, kvDim, hs, qkvW]);
    for (let l = 0; l < nLayers; l++) {
      const t = (part: Parameters<typeof layerTensor>[1]) => layerTensor(l, part);
      const kvMeta = capUni((cap) => [kvDim, l * cap * kvDim, qkvW, qDim]);
      const attMeta = capUni((cap) => [c.nHeads, c.nHeads / c.nKvHeads, hs, kvDim, qDim, l * cap * kvDim, cap, f32Bits(1 / Math.sqrt(hs)), qkvW, 0, 0, 0]);
      this.ops.push(
        rmsnorm(this.x, xb, t('input_layernorm')),
        ...actQuant(xb, dim),
        linearSet(
          (['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'] as const).map((p) => t(p)),
          xb,
          qkv,
          (['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'] as const).map((p) => biasOf(l, p)),
        ),
        kernel(pRope, [this.step, ropeMeta, qkv, cosB, sinB], rows64((qDim + kvDim) / 2)),
        kernel(pKv, () => [this.step, kvMeta, qkv, this.kc, this.vc], rows64(kvDim)),
        kernel(pAtt, () => [this.step, attMeta, qkv, this.kc, this.vc, this.att, xb], (T) => [c.nHeads, T, 1]),
        ...actQuant(xb, qDim),
        linear(t('self_attn.o_proj'), xb, this.x, this.step, LIN_ACCUMULATE, biasOf(l, 'self_attn.o_proj')),
        rmsnorm(this.x, xb, t('post_attention_layernorm')),
        ...actQuant(xb, dim),
        linearSet([t('mlp.gate_proj'), t('mlp.up_proj')], xb, gu, [undefined, undefined]),
        kernel(pSwi, [this.step, uni([hidden, 0, 0, 0]), gu, hb], (T) => {
          const groups = Math.ceil((T * hidden) / 64);
          return groups <= 65535 ? [groups, 1, 1] : [65535, Math.ceil(groups / 65535), 1];
        }),
        ...actQuant(hb, hidden),
        linear(t('mlp.down_proj'), hb, this.x, this.step, LIN_ACCUMULATE),
      );
    }
    const head = c.tiedEmbeddings ? EMBED : LM_HEAD;
    this.ops.push(rmsLast(this.x, xb, FINAL_NORM), linear(head, xb, this.logits, stepOne, 0, undefined, c.tiedEmbeddings && table !== undefined ? table : undefined));
    this.weightBytes = weightBytes;
  }

  /**
   * Reallocates the capacity-sized buffers for at least `need` positions (doubling, capped at
   * `positions`), copies each layer's cached K/V rows 0..`filled`−1 to its new offset, rebuilds
   * what views them and destroys the old buffers (after the copy is submitted).
   */
  private grow(need: number, filled: number): void {
    const cap = grownCapacity(this.cap, need, this.positions);
    const { nLayers, nHeads } = this.config;
    const kvDim = kvDimOf(this.config);
    const kc = this.ctx.floats(nLayers * cap * kvDim, 'key cache');
    const vc = this.ctx.floats(nLayers * cap * kvDim, 'value cache');
    const att = this.ctx.floats(this.maxRows * nHeads * cap, 'att');
    const rows = Math.min(filled, this.cap) * kvDim * 4;
    const enc = this.ctx.device.createCommandEncoder();
    if (rows > 0) for (let l = 0; l < nLayers; l++) {
      enc.copyBufferToBuffer(this.kc, l * this.cap * kvDim * 4, kc, l * cap * kvDim * 4, rows);
      enc.copyBufferToBuffer(this.vc, l * this.cap * kvDim * 4, vc, l * cap * kvDim * 4, rows);
    }
    this.ctx.device.queue.submit([enc.finish()]);
    const oldBytes = 4 * (2 * nLayers * this.cap * kvDim + this.maxRows * nHeads * this.cap);
    for (const b of [this.kc, this.vc, this.att]) b.destroy();
    this.ctx.allocatedBytes -= oldBytes;
    this.kc = kc;
    this.vc = vc;
    this.att = att;
    this.cap = cap;
    for (const f of this.regrow) f();
  }

  private own(b: GpuBuffer): GpuBuffer {
    this.owned.push(b);
    return b;
  }

  /**
   * Runs tokens at positions startPos.. (the KV cache must hold 0..startPos−1 of the same
   * sequence) and returns the last token's logits [vocab] (a new array).
   */
  async forward(tokens: ArrayLike<number>, startPos: number): Promise<Float32Array> {
    const T = tokens.length;
    const { dim, vocabSize: vocab } = this.config;
    if (T < 1 || T > this.maxRows) throw new RangeError(`forward takes 1..${this.maxRows} tokens, got ${T}`);
    if (!Number.isInteger(startPos) || startPos < 0 || startPos + T > this.positions) {
      throw new RangeError(`positions ${startPos}..${startPos + T - 1} exceed the ${this.positions} the GPU KV cache holds`);
    }
    for (let t = 0; t < T; t++) {
      const token = tokens[t]!;
      if (!Number.isInteger(token) || token < 0 || token >= vocab) throw new RangeError(`token id ${token} outside 0..${vocab - 1}`);
      this.embedding?.row(this.embedRows.subarray(t * dim, (t + 1) * dim), token);
    }
    if (startPos + T > this.cap) this.grow(startPos + T, startPos);
    const { device } = this.ctx;
    device.queue.writeBuffer(this.step, 0, Uint32Array.from([T, startPos, 0, 0]));
    if (this.embedding !== undefined) device.queue.writeBuffer(this.x, 0, this.embedRows, 0, T * dim);
    else device.queue.writeBuffer(this.tokenIds, 0, Uint32Array.from(tokens));
    this.callTokens = tokens;
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    for (const op of this.ops) op(pass, T);
    pass.end();
    enc.copyBufferToBuffer(this.logits, 0, this.readback, 0, vocab * 4);
    device.queue.submit([enc.finish()]);
    await this.readback.mapAsync(MAP_READ);
    const out = new Float32Array(this.readback.getMappedRange().slice(0));
    this.readback.unmap();
    return out;
  }

  dispose(): void {
    for (const l of this.linears) l.destroy();
    for (const b of this.owned) b.destroy();
    for (const b of [this.kc, this.vc, this.att]) b.destroy();
  }
}
