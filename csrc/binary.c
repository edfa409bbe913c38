/*
 * Kernels of the binary-billm format (BiLLM / DBellQuant; src/formats/registry.ts), WebAssembly
 * SIMD. Reference: src/formats/binary-linear.ts (TypeScript kernel) and
 * dequantize-then-multiply, compared in test/formats.test.ts on the wasm backends.
 *
 * What src/formats/binary-wasm.ts keeps in kernel memory (binary_desc):
 *   sign, split  [out, rb]  the file's sign and split planes (bit j of a row: bit j%8 of byte j/8)
 *   sal1, sal2   [out, sal_stride]  the first- and second-order signs of the salient columns as a
 *                compact stream: block by block, each block's salient columns padded with
 *                dummies to a multiple of 4 (gs[b] groups of 4). The stream is "lane-sliced":
 *                cut into 16-byte words of four 32-bit lanes covering 128 positions, position
 *                128·w + 4·g + l (g = 0..31, l = 0..3) is bit 31 − g of lane l of word w, so
 *                after g doublings of the word (x + x = x << 1) the four positions of group g
 *                are the lanes' top bits: a float sign to flip x with (andnot + xor).
 *   scales       the file's float16 scales [out, n_blocks, 7] (αc μc αs μs α1 α2 μsal), and
 *                2 readable bytes past the end (a block's scales are read as 8 halves)
 * Per call the caller prepares x (salient columns zeroed, zeros past in_dim up to 8·rb), xsal
 * (x on the salient stream, 0 on dummies) and tsum [n_blocks, 2] (Σ x over the block's other
 * columns, Σ x over its salient columns).
 *
 * matvec (binary_lut, then binary_gemv_lut), sign selection with no dequantization: a table of
 * subset sums of x per byte of columns turns each byte of a plane into one lookup; with s = ±1
 * and p the split bit, per row and block over the non-salient columns
 *   P = Σ_{s=+1} x,  Q = Σ_p x,  R = Σ_{s=+1, p} x,  T = Σ x,   Σ_S s·x = 2R − Q,
 *   y += αc·(2P − T − (2R − Q)) + μc·(T − Q) + αs·(2R − Q) + μs·Q
 *      + α1·Σ s1·x + α2·Σ s2·x + μsal·Σ_sal x      (salient stream, four columns per step).
 * A vector kernel doing the same sums with lane masks (11 SIMD operations per 4 columns) was
 * measured slower than the three lookups per 8 columns on every benchmark shape; see
 * docs/binary.md. Dequantization (matmul tiles) writes the values of dequantizeBinary exactly:
 * each level is α·s + μ summed in double and rounded once to float, as the reference does.
 */
#include "kernels.h"

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;

/* The layout a BinaryWasmKernels instance keeps in kernel memory: int32 fields, in this order. */
typedef struct {
  const u8 *sign, *split; /* [out, rb] */
  int rb;
  const u8 *sal1, *sal2;
  int sal_stride;
  const u16 *scales;
  const int *gs; /* [n_blocks] salient groups per block */
  int in_dim, block_size, n_blocks;
  const float *x, *xsal, *tsum;
  const int *sal_col, *sal_pos; /* [n_sal] column and stream position of each salient column */
  int n_sal;
  float *lut; /* [rb, 256] subset sums of x per byte of columns */
} binary_desc;

#define ADD(a, b) wasm_f32x4_add(a, b)
#define MUL(a, b) wasm_f32x4_mul(a, b)
#define AND(a, b) wasm_v128_and(a, b)
#define LD(p) wasm_v128_load(p)
#define SHL1(w) wasm_i32x4_add(w, w)

/* Four float16 values (low halves of u32 lanes) as float32, exactly (no inf/NaN: validated). */
static inline v128_t f16x4(v128_t h) {
  v128_t mag = wasm_i32x4_shl(AND(h, wasm_i32x4_splat(0x7fff)), 13);
  /* the exponent is off by 127 − 15; a power-of-two multiply fixes it, subnormals included */
  v128_t f = MUL(mag, wasm_f32x4_splat(0x1p112f));
  return wasm_v128_or(f, wasm_i32x4_shl(AND(h, wasm_i32x4_splat(0x8000)), 16));
}

static inline float hsum(v128_t v) {
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) +
         (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}

/* Bit at stream position q of a lane-sliced stream. */
static inline int stream_bit(const u8 *s, int q) {
  u32 lane = *(const u32 *)(s + 16 * (q >> 7) + 4 * (q & 3));
  return (lane >> (31 - ((q & 127) >> 2))) & 1;
}

/*
 * Rows base + [r0, r1) of W as float32 into w [rows, in_dim] (row base at w[0]), original
 * column order, bit-identical to dequantizeBinary.
 */
EXPORT(binary_dequant)
void binary_dequant(float *w, const binary_desc *d, int base, int r0, int r1) {
  const v128_t lo_bits = wasm_i32x4_make(1, 2, 4, 8), hi_bits = wasm_i32x4_make(16, 32, 64, 128);
  const int nb = d->n_blocks, bpb = d->block_size >> 3, in = d->in_dim, rb = d->rb;
  for (int t = r0; t < r1; t++) {
    int r = base + t;
    const u8 *ps = d->sign + (size_t)r * rb, *pp = d->split + (size_t)r * rb;
    const u16 *sc = d->scales + (size_t)r * nb * 7;
    float *out = w + (size_t)t * in;
    for (int b = 0; b < nb; b++, sc += 7) {
      v128_t lo = f16x4(wasm_u32x4_load16x4(sc));
      double ac = wasm_f32x4_extract_lane(lo, 0), mc = wasm_f32x4_extract_lane(lo, 1);
      double as = wasm_f32x4_extract_lane(lo, 2), ms = wasm_f32x4_extract_lane(lo, 3);
      /* the four values of this row and block: concentrated −/+, sparse −/+ */
      v128_t cm = wasm_f32x4_splat((float)(-ac + mc)), cp = wasm_f32x4_splat((float)(ac + mc));
      v128_t sm = wasm_f32x4_splat((float)(-as + ms)), sp = wasm_f32x4_splat((float)(as + ms));
      for (int g = b * bpb, g1 = min_i(rb, g + bpb); g < g1; g++) {
        /* a byte splatted into every lane; lane l of the low (high) half tests bit l (4 + l) */
        v128_t vs = wasm_v128_load8_splat(ps + g), vp = wasm_v128_load8_splat(pp + g);
        for (int half = 0; half < 2; half++) {
          v128_t bits = half ? hi_bits : lo_bits;
          v128_t m = wasm_i32x4_eq(AND(vs, bits), bits), mp = wasm_i32x4_eq(AND(vp, bits), bits);
          v128_t v = wasm_v128_bitselect(wasm_v128_bitselect(sp, sm, m), wasm_v128_bitselect(cp, cm, m), mp);
          int c = 8 * g + 4 * half;
          if (c + 4 <= in) {
            wasm_v128_store(out + c, v);
          } else {
            /* the row's last columns: a vector store would spill into the next row */
            if (c < in) out[c] = wasm_f32x4_extract_lane(v, 0);
            if (c + 1 < in) out[c + 1] = wasm_f32x4_extract_lane(v, 1);
            if (c + 2 < in) out[c + 2] = wasm_f32x4_extract_lane(v, 2);
          }
        }
      }
    }
    /* salient columns overwrite what the planes gave them */
    const u8 *p1 = d->sal1 + (size_t)r * d->sal_stride, *p2 = d->sal2 + (size_t)r * d->sal_stride;
    for (int k = 0; k < d->n_sal; k++) {
      int j = d->sal_col[k], q = d->sal_pos[k];
      const u16 *s = d->scales + ((size_t)r * nb + j / d->block_size) * 7;
      v128_t hi = f16x4(wasm_u32x4_load16x4(s + 4));
      double a1 = wasm_f32x4_extract_lane(hi, 0), a2 = wasm_f32x4_extract_lane(hi, 1), msal = wasm_f32x4_extract_lane(hi, 2);
      double s1 = stream_bit(p1, q) ? 1 : -1, s2 = stream_bit(p2, q) ? 1 : -1;
      out[j] = (float)(a1 * s1 + a2 * s2 + msal);
    }
  }
}

/*
 * The subset-sum table of x for byte positions [g0, g1): lut[g][m] = Σ_{bit k of m} x[8g + k]
 * (x has salient columns zeroed and zeros past in_dim up to 8·rb). Built as low nibble + high
 * nibble: 64 vector additions and stores per byte position (256 entries).
 */
EXPORT(binary_lut)
void binary_lut(const binary_desc *d, int g0, int g1) {
  for (int g = g0; g < g1; g++) {
    const float *x = d->x + 8 * g;
    float *t = d->lut + 256 * g;
    v128_t lo0 = wasm_f32x4_make(0, x[0], x[1], x[0] + x[1]);
    v128_t lo1 = ADD(lo0, wasm_f32x4_splat(x[2])), lo2 = ADD(lo0, wasm_f32x4_splat(x[3]));
    v128_t lo3 = ADD(lo1, wasm_f32x4_splat(x[3]));
    v128_t hi0 = wasm_f32x4_make(0, x[4], x[5], x[4] + x[5]);
    v128_t hi1 = ADD(hi0, wasm_f32x4_splat(x[6])), hi2 = ADD(hi0, wasm_f32x4_splat(x[7]));
    v128_t hi3 = ADD(hi1, wasm_f32x4_splat(x[7]));
#define ROW(h, v, l)                                                  \
  do {                                                                \
    v128_t s = wasm_i32x4_shuffle(v, v, l, l, l, l);                  \
    wasm_v128_store(t + 16 * (h), ADD(lo0, s));                       \
    wasm_v128_store(t + 16 * (h) + 4, ADD(lo1, s));                   \
    wasm_v128_store(t + 16 * (h) + 8, ADD(lo2, s));                   \
    wasm_v128_store(t + 16 * (h) + 12, ADD(lo3, s));                  \
  } while (0)
    ROW(0, hi0, 0); ROW(1, hi0, 1); ROW(2, hi0, 2); ROW(3, hi0, 3);
    ROW(4, hi1, 0); ROW(5, hi1, 1); ROW(6, hi1, 2); ROW(7, hi1, 3);
    ROW(8, hi2, 0); ROW(9, hi2, 1); ROW(10, hi2, 2); ROW(11, hi2, 3);
    ROW(12, hi3, 0); ROW(13, hi3, 1); ROW(14, hi3, 2); ROW(15, hi3, 3);
#undef ROW
  }
}

/*
 * y[r0..r1) of W·x from the subset-sum table: per row and block over the bytes of the planes
 * P = Σ_sign x, Q = Σ_split x, R = Σ_{sign∧split} x (three lookups per 8 columns), then
 * Σ_S s·x = 2R − Q, Σ_C s·x = 2P − T − (2R − Q), Σ_C x = T − Q; salient columns as in binary_gemv.
 */
EXPORT(binary_gemv_lut)
void binary_gemv_lut(float *y, const binary_desc *d, int r0, int r1) {
  const v128_t sbit = wasm_i32x4_splat((int)0x80000000), zero = wasm_f32x4_splat(0);
  const int nb = d->n_blocks, bpb = d->block_size >> 3, rb = d->rb;
  const float *xs = d->xsal, *tsum = d->tsum, *lut = d->lut;
  for (int r = r0; r < r1; r++) {
    const u8 *ps = d->sign + (size_t)r * rb, *pp = d->split + (size_t)r * rb;
    const u8 *p1 = d->sal1 + (size_t)r * d->sal_stride, *p2 = d->sal2 + (size_t)r * d->sal_stride;
    const u16 *sc = d->scales + (size_t)r * nb * 7;
    v128_t acc = zero, w1 = zero, w2 = zero;
    float accs = 0;
    int q = 0;
    for (int b = 0; b < nb; b++, sc += 7) {
      v128_t lo = f16x4(wasm_u32x4_load16x4(sc));
      int g = b * bpb, g1 = min_i(rb, g + bpb);
      /* two sets of sums: the additions of consecutive bytes do not wait on each other */
      float P0 = 0, Q0 = 0, R0 = 0, P1 = 0, Q1 = 0, R1 = 0;
      for (; g + 1 < g1; g += 2) {
        const float *t0 = lut + 256 * g, *t1 = t0 + 256;
        u32 s0 = ps[g], f0 = pp[g], s1 = ps[g + 1], f1 = pp[g + 1];
        P0 += t0[s0];
        Q0 += t0[f0];
        R0 += t0[s0 & f0];
        P1 += t1[s1];
        Q1 += t1[f1];
        R1 += t1[s1 & f1];
      }
      if (g < g1) {
        const float *t0 = lut + 256 * g;
        u32 s0 = ps[g], f0 = pp[g];
        P0 += t0[s0];
        Q0 += t0[f0];
        R0 += t0[s0 & f0];
      }
      float P = P0 + P1, Q = Q0 + Q1, R = R0 + R1, T = tsum[2 * b], sS = 2 * R - Q;
      float ac = wasm_f32x4_extract_lane(lo, 0), mc = wasm_f32x4_extract_lane(lo, 1);
      float as = wasm_f32x4_extract_lane(lo, 2), ms = wasm_f32x4_extract_lane(lo, 3);
      accs += ac * (2 * P - T - sS) + mc * (T - Q) + as * sS + ms * Q;
      int q1 = q + d->gs[b];
      if (q1 == q) continue;
      v128_t hi = f16x4(wasm_u32x4_load16x4(sc + 4));
      v128_t S1 = zero, S2 = zero;
      for (; q < q1; q++) {
        if ((q & 31) == 0) {
          w1 = LD(p1 + (q >> 1));
          w2 = LD(p2 + (q >> 1));
        }
        v128_t x4 = LD(xs + 4 * q);
        S1 = ADD(S1, wasm_v128_xor(x4, wasm_v128_andnot(sbit, w1)));
        S2 = ADD(S2, wasm_v128_xor(x4, wasm_v128_andnot(sbit, w2)));
        w1 = SHL1(w1);
        w2 = SHL1(w2);
      }
      acc = ADD(acc, MUL(wasm_f32x4_splat(wasm_f32x4_extract_lane(hi, 0)), S1));
      acc = ADD(acc, MUL(wasm_f32x4_splat(wasm_f32x4_extract_lane(hi, 1)), S2));
      accs += wasm_f32x4_extract_lane(hi, 2) * tsum[2 * b + 1];
    }
    y[r] = hsum(acc) + accs;
  }
}
