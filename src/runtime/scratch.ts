/**
 * The forward pass's scratch state: activations for up to `maxRows` tokens per call, allocated
 * once, and the KV cache with the RoPE tables, which grow with the sequence.
 */
import type { Backend } from '../backend/types.js';
import { headSize, kvDim, qDim, type LlamaConfig } from '../model/config.js';
import { ropeInvFrequencies } from '../model/rope.js';
import { FIRST_KV_POSITIONS } from './memory.js';

/**
 * Activation buffers sized for up to `maxRows` tokens per forward call, and the KV cache with
 * the buffers sized by position, which hold `positions` positions and grow with the sequence
 * (growScratch): a model with a context of 131072 costs nothing until a sequence is that long.
 */
export interface Scratch {
  maxRows: number;
  /** Positions the KV cache and the per-position buffers hold now (≤ the model's seqLen). */
  positions: number;
  x: Float32Array; // [maxRows, dim] residual stream
  xb: Float32Array; // [maxRows, max(dim, qDim)] normed input / attention output
  xb2: Float32Array; // [maxRows, dim] projection output added to the residual
  q: Float32Array; // [maxRows, qDim]
  hb: Float32Array; // [maxRows, hidden] gate, then SwiGLU output
  hb2: Float32Array; // [maxRows, hidden] up
  att: Float32Array; // [positions] scores of one query row and head (decode)
  kHead: Float32Array; // [positions, headSize] one kv head's keys (chunk attention)
  vHeadT: Float32Array; // [headSize, positions] one kv head's values, transposed
  qGroup: Float32Array; // [groupSize · maxRows, headSize] queries of the heads sharing a kv head
  scores: Float32Array; // [groupSize · maxRows, positions]
  outGroup: Float32Array; // [groupSize · maxRows, headSize]
  logits: Float32Array; // [maxRows, vocab]
  keyCache: Float32Array; // [layers, positions, kvDim]
  valueCache: Float32Array; // [layers, positions, kvDim]
  ropeCos: Float32Array; // [positions, headSize / 2]
  ropeSin: Float32Array; // [positions, headSize / 2]
}

/** First KV capacity: enough for a prefill chunk and a short answer; doubled as the sequence grows. */
const INITIAL_POSITIONS = FIRST_KV_POSITIONS;

export function allocScratch(c: LlamaConfig, backend: Backend, maxRows: number, positions = Math.min(c.seqLen, Math.max(INITIAL_POSITIONS, maxRows))): Scratch {
  const hs = headSize(c);
  const groupRows = (c.nHeads / c.nKvHeads) * maxRows;
  const s: Scratch = {
    maxRows,
    positions: 0,
    x: backend.alloc(maxRows * c.dim),
    xb: backend.alloc(maxRows * Math.max(c.dim, qDim(c))),
    xb2: backend.alloc(maxRows * c.dim),
    q: backend.alloc(maxRows * qDim(c)),
    hb: backend.alloc(maxRows * c.hiddenDim),
    hb2: backend.alloc(maxRows * c.hiddenDim),
    att: new Float32Array(0),
    kHead: backend.alloc(0),
    vHeadT: backend.alloc(0),
    qGroup: backend.alloc(groupRows * hs),
    scores: backend.alloc(0),
    outGroup: backend.alloc(groupRows * hs),
    logits: backend.alloc(maxRows * c.vocabSize),
    keyCache: backend.alloc(0),
    valueCache: backend.alloc(0),
    ropeCos: new Float32Array(0),
    ropeSin: new Float32Array(0),
  };
  growScratch(s, c, backend, positions);
  return s;
}

/**
 * Makes the scratch hold at least `needed` positions (the forward pass calls it before writing
 * past the end): capacity doubles up to the model's context, the cached keys and values of
 * earlier positions are kept.
 */
export function growScratch(s: Scratch, c: LlamaConfig, backend: Backend, needed: number): void {
  if (needed <= s.positions) return;
  if (needed > c.seqLen) throw new RangeError(`${needed} positions exceed the model's context length ${c.seqLen}`);
  const old = s.positions;
  const n = Math.min(c.seqLen, Math.max(needed, 2 * old));
  const hs = headSize(c);
  const half = hs / 2;
  const kv = kvDim(c);
  const groupRows = (c.nHeads / c.nKvHeads) * s.maxRows;
  // the caches keep their [layers, positions, kvDim] layout: copy each layer's rows over
  const regrow = (from: Float32Array): Float32Array => {
    const to = backend.alloc(c.nLayers * n * kv);
    if (old > 0) for (let l = 0; l < c.nLayers; l++) to.set(from.subarray(l * old * kv, (l + 1) * old * kv), l * n * kv);
    backend.free?.(from);
    return to;
  };
  s.keyCache = regrow(s.keyCache);
  s.valueCache = regrow(s.valueCache);
  for (const key of ['kHead', 'vHeadT'] as const) {
    backend.free?.(s[key]);
    s[key] = backend.alloc(n * hs);
  }
  backend.free?.(s.scores);
  s.scores = backend.alloc(groupRows * n);
  s.att = new Float32Array(n);
  // interleaved RoPE: pair i of a head turns by pos · invFreq[i]
  const inv = ropeInvFrequencies(c);
  const cos = new Float32Array(n * half);
  const sin = new Float32Array(n * half);
  cos.set(s.ropeCos);
  sin.set(s.ropeSin);
  for (let pos = old; pos < n; pos++) {
    for (let i = 0; i < half; i++) {
      const angle = pos * inv[i]!;
      cos[pos * half + i] = Math.cos(angle);
      sin[pos * half + i] = Math.sin(angle);
    }
  }
  s.ropeCos = cos;
  s.ropeSin = sin;
  s.positions = n;
}

/** Returns a scratch's backend buffers (allocScratch's) to the backend; the scratch is unusable afterwards. */
export function freeScratch(backend: Backend, s: Scratch): void {
  const fromBackend = [s.x, s.xb, s.xb2, s.q, s.hb, s.hb2, s.kHead, s.vHeadT, s.qGroup, s.scores, s.outGroup, s.logits, s.keyCache, s.valueCache];
  for (const buf of fromBackend) backend.free?.(buf);
}

