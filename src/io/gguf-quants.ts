/**
 * ggml tensor types a GGUF file may hold, as a traits table: id, block size, bytes per block,
 * reference dequantization (llama.cpp `dequantize_row_*`, float32 arithmetic as there) and,
 * for the types bitcrush writes, packing of integer levels. Byte layouts (one block):
 *   F32 / F16 / BF16  one value
 *   Q8_0 (32)  f16 d | i8 q[32]                         x = d·q
 *   Q4_0 (32)  f16 d | u8 qs[16]                        x[j] = d·((qs[j]&15) − 8), x[j+16] = d·((qs[j]>>4) − 8)
 *   Q4_1 (32)  f16 d | f16 m | u8 qs[16]                x = d·q + m (nibbles as Q4_0)
 *   Q5_0 (32)  f16 d | u32 qh | u8 qs[16]               q = nibble | bit j (j+16 for the high half) of qh << 4; x = d·(q − 16)
 *   Q5_1 (32)  f16 d | f16 m | u32 qh | u8 qs[16]       x = d·q + m
 *   Q2_K (256) u8 scales[16] | u8 qs[64] | f16 d | f16 dmin            16 sub-blocks of 16: 4-bit scale, 4-bit min
 *   Q3_K (256) u8 hmask[32] | u8 qs[64] | u8 scales[12] | f16 d        16 sub-blocks: 6-bit signed scales (−32)
 *   Q4_K (256) f16 d | f16 dmin | u8 scales[12] | u8 qs[128]           8 sub-blocks of 32: 6-bit scale and min
 *   Q5_K (256) f16 d | f16 dmin | u8 scales[12] | u8 qh[32] | u8 qs[128]
 *   Q6_K (256) u8 ql[128] | u8 qh[64] | i8 scales[16] | f16 d          x = d·scale·(q − 32)
 */
import { f16BitsToNumber } from './safetensors.js';

export interface GgmlType {
  readonly id: number;
  readonly name: string;
  readonly blockWeights: number;
  readonly blockBytes: number;
  /** blocks → float32 values (count = blocks · blockWeights). */
  dequantize(src: Uint8Array, out: Float32Array): void;
}

const f = Math.fround;
const h = (b: Uint8Array, o: number) => f16BitsToNumber(b[o]! | (b[o + 1]! << 8));

function blocks(t: { blockWeights: number; blockBytes: number }, src: Uint8Array, out: Float32Array, body: (b: number, y: number) => void): void {
  const n = out.length / t.blockWeights;
  for (let i = 0; i < n; i++) body(i * t.blockBytes, i * t.blockWeights);
  void src;
}

/** Q4_K / Q5_K's 6-bit scale and min of sub-block j from scales[12] at s. */
function scaleMinK4(b: Uint8Array, s: number, j: number): [number, number] {
  if (j < 4) return [b[s + j]! & 63, b[s + j + 4]! & 63];
  return [(b[s + j + 4]! & 0xf) | ((b[s + j - 4]! >> 6) << 4), (b[s + j + 4]! >> 4) | ((b[s + j]! >> 6) << 4)];
}

const TYPES: GgmlType[] = [
  {
    id: 0, name: 'F32', blockWeights: 1, blockBytes: 4,
    dequantize(src, out) {
      const v = new DataView(src.buffer, src.byteOffset, src.byteLength);
      for (let i = 0; i < out.length; i++) out[i] = v.getFloat32(4 * i, true);
    },
  },
  {
    id: 1, name: 'F16', blockWeights: 1, blockBytes: 2,
    dequantize(src, out) {
      for (let i = 0; i < out.length; i++) out[i] = h(src, 2 * i);
    },
  },
  {
    id: 30, name: 'BF16', blockWeights: 1, blockBytes: 2,
    dequantize(src, out) {
      const u = new Uint32Array(out.buffer, out.byteOffset, out.length);
      for (let i = 0; i < out.length; i++) u[i] = (src[2 * i]! | (src[2 * i + 1]! << 8)) << 16;
    },
  },
  {
    id: 8, name: 'Q8_0', blockWeights: 32, blockBytes: 34,
    dequantize(src, out) {
      blocks(this, src, out, (o, y) => {
        const d = h(src, o);
        for (let j = 0; j < 32; j++) out[y + j] = f(d * ((src[o + 2 + j]! << 24) >> 24));
      });
    },
  },
  {
    id: 2, name: 'Q4_0', blockWeights: 32, blockBytes: 18,
    dequantize(src, out) {
      blocks(this, src, out, (o, y) => {
        const d = h(src, o);
        for (let j = 0; j < 16; j++) {
          const q = src[o + 2 + j]!;
          out[y + j] = f(d * ((q & 15) - 8));
          out[y + j + 16] = f(d * ((q >> 4) - 8));
        }
      });
    },
  },
  {
    id: 3, name: 'Q4_1', blockWeights: 32, blockBytes: 20,
    dequantize(src, out) {
      blocks(this, src, out, (o, y) => {
        const d = h(src, o);
        const m = h(src, o + 2);
        for (let j = 0; j < 16; j++) {
          const q = src[o + 4 + j]!;
          out[y + j] = f(f(d * (q & 15)) + m);
          out[y + j + 16] = f(f(d * (q >> 4)) + m);
        }
      });
    },
  },
  {
    id: 6, name: 'Q5_0', blockWeights: 32, blockBytes: 22,
    dequantize(src, out) {
      blocks(this, src, out, (o, y) => {
        const d = h(src, o);
        const qh = (src[o + 2]! | (src[o + 3]! << 8) | (src[o + 4]! << 16) | (src[o + 5]! << 24)) >>> 0;
        for (let j = 0; j < 16; j++) {
          const q = src[o + 6 + j]!;
          out[y + j] = f(d * (((q & 15) | (((qh >>> j) & 1) << 4)) - 16));
          out[y + j + 16] = f(d * (((q >> 4) | (((qh >>> (j + 16)) & 1) << 4)) - 16));
        }
      });
    },
  },
  {
    id: 7, name: 'Q5_1', blockWeights: 32, blockBytes: 24,
    dequantize(src, out) {
      blocks(this, src, out, (o, y) => {
        const d = h(src, o);
        const m = h(src, o + 2);
        const qh = (src[o + 4]! | (src[o + 5]! << 8) | (src[o + 6]! << 16) | (src[o + 7]! << 24)) >>> 0;
        for (let j = 0; j < 16; j++) {
          const q = src[o + 8 + j]!;
          out[y + j] = f(f(d * ((q & 15) | (((qh >>> j) & 1) << 4))) + m);
          out[y + j + 16] = f(f(d * ((q >> 4) | (((qh >>> (j + 16)) & 1) << 4))) + m);
        }
      });
    },
  },
  {
    id: 10, name: 'Q2_K', blockWeights: 256, blockBytes: 84,
    dequantize(src, out) {
      blocks(this, src, out, (o, y) => {
        const d = h(src, o + 80);
        const min = h(src, o + 82);
        let is = 0;
        for (let n = 0; n < 2; n++) {
          const q = o + 16 + 32 * n;
          for (let shift = 0; shift < 8; shift += 2) {
            for (const half of [0, 16]) {
              const sc = src[o + is++]!;
              const dl = f(d * (sc & 15));
              const ml = f(min * (sc >> 4));
              for (let l = 0; l < 16; l++) out[y++] = f(f(dl * ((src[q + half + l]! >> shift) & 3)) - ml);
            }
          }
        }
      });
    },
  },
  {
    id: 11, name: 'Q3_K', blockWeights: 256, blockBytes: 110,
    dequantize(src, out) {
      blocks(this, src, out, (o, y) => {
        const d = h(src, o + 108);
        const s = o + 96;
        const scale = (j: number) => {
          const low = j < 8 ? src[s + j]! & 15 : src[s + j - 8]! >> 4;
          const high = (src[s + 8 + (j % 4)]! >> (2 * Math.floor(j / 4))) & 3;
          return (low | (high << 4)) - 32;
        };
        let is = 0;
        let m = 1;
        for (let n = 0; n < 2; n++) {
          const q = o + 32 + 32 * n;
          for (let shift = 0; shift < 8; shift += 2) {
            for (const half of [0, 16]) {
              const dl = f(d * scale(is++));
              for (let l = 0; l < 16; l++) {
                const hm = src[o + half + l]! & m ? 0 : 4;
                out[y++] = f(dl * (((src[q + half + l]! >> shift) & 3) - hm));
              }
            }
            m <<= 1;
          }
        }
      });
    },
  },
  {
    id: 12, name: 'Q4_K', blockWeights: 256, blockBytes: 144,
    dequantize(src, out) {
      blocks(this, src, out, (o, y) => {
        const d = h(src, o);
        const min = h(src, o + 2);
        for (let c = 0; c < 4; c++) {
          const q = o + 16 + 32 * c;
          for (let half = 0; half < 2; half++) {
            const [sc, mn] = scaleMinK4(src, o + 4, 2 * c + half);
            const d1 = f(d * sc);
            const m1 = f(min * mn);
            for (let l = 0; l < 32; l++) out[y++] = f(f(d1 * (half ? src[q + l]! >> 4 : src[q + l]! & 15)) - m1);
          }
        }
      });
    },
  },
  {
    id: 13, name: 'Q5_K', blockWeights: 256, blockBytes: 176,
    dequantize(src, out) {
      blocks(this, src, out, (o, y) => {
        const d = h(src, o);
        const min = h(src, o + 2);
        const qh = o + 16;
        for (let c = 0; c < 4; c++) {
          const ql = o + 48 + 32 * c;
          for (let half = 0; half < 2; half++) {
            const [sc, mn] = scaleMinK4(src, o + 4, 2 * c + half);
            const d1 = f(d * sc);
            const m1 = f(min * mn);
            const u = 1 << (2 * c + half);
            for (let l = 0; l < 32; l++) {
              const low = half ? src[ql + l]! >> 4 : src[ql + l]! & 15;
              out[y++] = f(f(d1 * (low + (src[qh + l]! & u ? 16 : 0))) - m1);
            }
          }
        }
      });
    },
  },
  {
    id: 14, name: 'Q6_K', blockWeights: 256, blockBytes: 210,
    dequantize(src, out) {
      blocks(this, src, out, (o, y) => {
        const d = h(src, o + 208);
        for (let n = 0; n < 2; n++) {
          const ql = o + 64 * n;
          const qh = o + 128 + 32 * n;
          const sc = o + 192 + 8 * n;
          const s = (k: number) => (src[sc + k]! << 24) >> 24;
          for (let l = 0; l < 32; l++) {
            const is = l >> 4;
            const q1 = ((src[ql + l]! & 15) | (((src[qh + l]! >> 0) & 3) << 4)) - 32;
            const q2 = ((src[ql + l + 32]! & 15) | (((src[qh + l]! >> 2) & 3) << 4)) - 32;
            const q3 = ((src[ql + l]! >> 4) | (((src[qh + l]! >> 4) & 3) << 4)) - 32;
            const q4 = ((src[ql + l + 32]! >> 4) | (((src[qh + l]! >> 6) & 3) << 4)) - 32;
            out[y + 128 * n + l] = f(f(d * s(is)) * q1);
            out[y + 128 * n + l + 32] = f(f(d * s(is + 2)) * q2);
            out[y + 128 * n + l + 64] = f(f(d * s(is + 4)) * q3);
            out[y + 128 * n + l + 96] = f(f(d * s(is + 6)) * q4);
          }
        }
      });
    },
  },
];

/** ggml type id → traits, for every type bitcrush reads. */
export const GGML_TYPES: ReadonlyMap<number, GgmlType> = new Map(TYPES.map((t) => [t.id, t]));

export function ggmlType(name: string): GgmlType {
  const t = TYPES.find((x) => x.name === name);
  if (t === undefined) throw new Error(`no ggml type ${name}`);
  return t;
}

/** One block of 32 levels with its f16 scale bits (and Q4_1's f16 min bits) → block bytes. */
export function packBlock32(type: 'Q8_0' | 'Q4_0' | 'Q4_1' | 'Q5_0', dBits: number, q: ArrayLike<number>, mBits = 0): Uint8Array {
  const t = ggmlType(type);
  const b = new Uint8Array(t.blockBytes);
  b[0] = dBits & 0xff;
  b[1] = dBits >> 8;
  if (type === 'Q8_0') {
    for (let j = 0; j < 32; j++) b[2 + j] = q[j]! & 0xff; // q is signed −128..127
    return b;
  }
  let at = 2;
  if (type === 'Q4_1') {
    b[2] = mBits & 0xff;
    b[3] = mBits >> 8;
    at = 4;
  }
  if (type === 'Q5_0') {
    let qh = 0;
    for (let j = 0; j < 32; j++) if (q[j]! & 16) qh |= 1 << j;
    new DataView(b.buffer).setUint32(2, qh >>> 0, true);
    at = 6;
  }
  for (let j = 0; j < 16; j++) b[at + j] = (q[j]! & 15) | ((q[j + 16]! & 15) << 4);
  return b;
}
