/**
 * The float kernels of the GPU forward pass (forward.ts), each the WGSL twin of a loop of
 * runtime/forward.ts or runtime/attention.ts: RMSNorm, interleaved RoPE, the KV-cache store,
 * causal grouped-query attention over the cache, SwiGLU. Every kernel reads the per-call
 * `step` uniform (T rows at positions startPos..) and its own static `meta` uniform.
 */
import { REDUCE_64, STEP_STRUCT } from './wgsl.js';

/** o[row] = weight ⊙ x[src] / rms(x[src]); meta: n, eps bits, last (1: only row T−1, written to row 0). */
export const RMSNORM = `${STEP_STRUCT}
struct Meta { n: u32, eps: u32, last: u32, pad: u32 }
@group(0) @binding(1) var<uniform> cfg: Meta;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
@group(0) @binding(4) var<storage, read> weight: array<f32>;
${REDUCE_64}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  var row = wid.x;
  var dst = wid.x;
  if (cfg.last != 0u) { row = step.T - 1u; dst = 0u; } else if (row >= step.T) { return; }
  let n = cfg.n;
  var ss = 0.0;
  for (var i = lid; i < n; i = i + 64u) { let v = x[row * n + i]; ss = ss + v * v; }
  let total = reduceSum(ss, lid);
  let scale = 1.0 / sqrt(total / f32(n) + bitcast<f32>(cfg.eps));
  for (var i = lid; i < n; i = i + 64u) { o[dst * n + i] = weight[i] * (scale * x[row * n + i]); }
}
`;

/**
 * Rotates pairs (2i, 2i+1) of every head of q and k — columns 0..qDim−1 and qDim..qDim+kvDim−1
 * of qkv [T, width] — by the angles of position startPos + t (pairs 0..qDim/2−1 are q's, the
 * rest k's); meta: qDim, kvDim, headSize, width.
 */
export const ROPE = `${STEP_STRUCT}
struct Meta { qDim: u32, kvDim: u32, hs: u32, width: u32 }
@group(0) @binding(1) var<uniform> cfg: Meta;
@group(0) @binding(2) var<storage, read_write> qkv: array<f32>;
@group(0) @binding(3) var<storage, read> cosT: array<f32>;
@group(0) @binding(4) var<storage, read> sinT: array<f32>;
fn turn(a: f32, b: f32, c: f32, s: f32) -> vec2<f32> { return vec2<f32>(a * c - b * s, a * s + b * c); }
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let qPairs = cfg.qDim / 2u;
  let t = gid.y;
  let p = gid.x;
  if (t >= step.T || p >= qPairs + cfg.kvDim / 2u) { return; }
  let half = cfg.hs / 2u;
  // a pair's index within its head is the same whether it is q's or k's (qDim is whole heads)
  let table = (step.startPos + t) * half + p % half;
  let base = t * cfg.width + 2u * p;
  let r = turn(qkv[base], qkv[base + 1u], cosT[table], sinT[table]);
  qkv[base] = r.x;
  qkv[base + 1u] = r.y;
}
`;

/**
 * kc[layerBase + (startPos + t)·kvDim + i] = k[t, i] and vc likewise from v, k and v being
 * columns qDim.. and qDim + kvDim.. of qkv [T, width]; meta: kvDim, layerBase, width, qDim.
 */
export const KV_STORE = `${STEP_STRUCT}
struct Meta { kvDim: u32, layerBase: u32, width: u32, qDim: u32 }
@group(0) @binding(1) var<uniform> cfg: Meta;
@group(0) @binding(2) var<storage, read> qkv: array<f32>;
@group(0) @binding(3) var<storage, read_write> kc: array<f32>;
@group(0) @binding(4) var<storage, read_write> vc: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  let t = gid.y;
  if (t >= step.T || i >= cfg.kvDim) { return; }
  let o = cfg.layerBase + (step.startPos + t) * cfg.kvDim + i;
  let src = t * cfg.width + cfg.qDim + i;
  kc[o] = qkv[src];
  vc[o] = qkv[src + cfg.kvDim];
}
`;

/**
 * One workgroup per (query head h, row t): scores of q[t, h] against the cached keys of kv head
 * h / group at positions 0..startPos + t (scaled, into att), their softmax, then the weighted
 * sum of the cached values. meta: nHeads, group, hs, kvDim, qDim, layerBase, positions, scale bits.
 */
export const ATTENTION = `${STEP_STRUCT}
struct Meta { nHeads: u32, group: u32, hs: u32, kvDim: u32, qDim: u32, layerBase: u32, positions: u32, scale: u32, width: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(1) var<uniform> cfg: Meta;
@group(0) @binding(2) var<storage, read> q: array<f32>; // qkv [T, width]: q is columns 0..qDim−1
@group(0) @binding(3) var<storage, read> kc: array<f32>;
@group(0) @binding(4) var<storage, read> vc: array<f32>;
@group(0) @binding(5) var<storage, read_write> att: array<f32>;
@group(0) @binding(6) var<storage, read_write> o: array<f32>;
${REDUCE_64}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let h = wid.x;
  let t = wid.y;
  if (h >= cfg.nHeads || t >= step.T) { return; }
  let hs = cfg.hs;
  let n = step.startPos + t + 1u;
  let qo = t * cfg.width + h * hs;
  let oo = t * cfg.qDim + h * hs;
  let kvo = cfg.layerBase + (h / cfg.group) * hs;
  let ab = (t * cfg.nHeads + h) * cfg.positions;
  let scale = bitcast<f32>(cfg.scale);
  var mx = -3.4e38;
  for (var j = lid; j < n; j = j + 64u) {
    let ko = kvo + j * cfg.kvDim;
    var d = 0.0;
    for (var i = 0u; i < hs; i = i + 1u) { d = d + q[qo + i] * kc[ko + i]; }
    let s = d * scale;
    att[ab + j] = s;
    mx = max(mx, s);
  }
  let m = reduceMax(mx, lid);
  var sum = 0.0;
  for (var j = lid; j < n; j = j + 64u) {
    let e = exp(att[ab + j] - m);
    att[ab + j] = e;
    sum = sum + e;
  }
  let total = reduceSum(sum, lid);
  storageBarrier();
  workgroupBarrier();
  for (var i = lid; i < hs; i = i + 64u) {
    var acc = 0.0;
    for (var j = 0u; j < n; j = j + 1u) { acc = acc + att[ab + j] * vc[kvo + j * cfg.kvDim + i]; }
    o[oo + i] = acc / total;
  }
}
`;

/** h[t, c] = silu(gate[t, c]) · up[t, c] for t < T, c < hidden, from gu [T, 2·hidden] (gate, then up, per row); meta: hidden. */
export const SWIGLU = `${STEP_STRUCT}
struct Meta { hidden: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(1) var<uniform> cfg: Meta;
@group(0) @binding(2) var<storage, read> gu: array<f32>;
@group(0) @binding(3) var<storage, read_write> h: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= step.T * cfg.hidden) { return; }
  let t = i / cfg.hidden;
  let g = t * 2u * cfg.hidden + i % cfg.hidden;
  let a = gu[g];
  h[i] = (a / (1.0 + exp(-a))) * gu[g + cfg.hidden];
}
`;

/**
 * In place, per row of v [T, n]: symmetric absmax fake quantization to b bits (quant/act-quant.ts,
 * the A8/A6/A4 of BiLLM/DBellQuant files): s = max|v| / (2^(b−1) − 1), v = s · round(v / s)
 * (WGSL's round is ties-to-even, as torch.round); a zero row stays zero. meta: n, qmax.
 */
export const ACT_QUANT = `${STEP_STRUCT}
struct Meta { n: u32, qmax: u32, pad0: u32, pad1: u32 }
@group(0) @binding(1) var<uniform> cfg: Meta;
@group(0) @binding(2) var<storage, read_write> v: array<f32>;
${REDUCE_64}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x;
  if (row >= step.T) { return; }
  let n = cfg.n;
  var m = 0.0;
  for (var i = lid; i < n; i = i + 64u) { m = max(m, abs(v[row * n + i])); }
  let top = reduceMax(m, lid);
  if (top == 0.0) { return; }
  let s = top / f32(cfg.qmax);
  for (var i = lid; i < n; i = i + 64u) { v[row * n + i] = s * round(v[row * n + i] / s); }
}
`;
