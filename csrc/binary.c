/*
 * Kernels of the binary-billm format (BiLLM / DBellQuant; src/formats/registry.ts), WebAssembly
 * SIMD. Reference: src/formats/binary-linear.ts (TypeScript kernel) and
 * dequantize-then-multiply, compared in test/formats.test.ts on the wasm backends.
 *
 * Kernel layout (src/formats/binary-wasm.ts repacks the file's bit-planes once, at load).
 * A bit stream is cut into 16-byte words of four 32-bit lanes covering 128 positions; position
 * 128·w + 4·g + l (g = 0..31, l = 0..3) is bit 31 − g of lane l of word w. So the four
 * positions of group g sit in the top bit of the four lanes once the word has been shifted
 * left g times: one add (x + x = x << 1) per group walks a word, and the top bit is either a
 * float sign to flip x with (andnot + xor) or, shifted arithmetically, a lane mask.
 *   sign, split  [out, row_stride]  the file's sign and split planes over the columns
 *   sal1, sal2   [out, sal_stride]  the first- and second-order signs of the salient columns, as
 *                                   a compact stream: block by block, each block's salient
 *                                   columns padded with dummies to a multiple of 4 (gs[b] groups)
 *   scales       the file's float16 scales [out, n_blocks, 7] (αc μc αs μs α1 α2 μsal), and
 *                2 readable bytes past the end (a block's scales are read as 8 halves)
 * Per call the caller prepares x (salient columns zeroed, zeros past in_dim up to a multiple
 * of 4), xsal (x of the salient stream, 0 on dummies) and tsum [n_blocks, 2] (Σ x over the
 * block's other columns, Σ x over its salient columns).
 *
 * matvec, sign selection with no dequantization: with s = ±1 and p the split bit, per row and
 * block over the non-salient columns
 *   A = Σ s·x,  B = Σ p·s·x,  D = Σ p·x,  T = Σ x,  so  Σ_C s·x = A − B,  Σ_C x = T − D, and
 *   y += αc·(A − B) + αs·B + (μs − μc)·D + μc·T  +  α1·Σ s1·x + α2·Σ s2·x + μsal·Σ_sal x.
 * Dequantization (matmul tiles) writes the values of dequantizeBinary exactly: each level is
 * α·s + μ summed in double and rounded once to float, as the TypeScript reference does.
 */
#include "kernels.h"

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;

/* The layout a BinaryWasmKernels instance keeps in kernel memory: int32 fields, in this order. */
typedef struct {
  const u8 *sign, *split;
  int row_stride;
  const u8 *sal1, *sal2;
  int sal_stride;
  const u16 *scales;
  const int *gs; /* [n_blocks] salient groups per block */
  int in_dim, block_size, n_blocks;
  const float *x, *xsal, *tsum;
  const int *sal_col, *sal_pos; /* [n_sal] column and stream position of each salient column */
  int n_sal;
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

/* y[r0..r1) of W·x. */
EXPORT(binary_gemv)
void binary_gemv(float *y, const binary_desc *d, int r0, int r1) {
  const v128_t sbit = wasm_i32x4_splat((int)0x80000000), zero = wasm_f32x4_splat(0);
  const int nb = d->n_blocks, bs = d->block_size, in = d->in_dim;
  const float *x = d->x, *xs = d->xsal, *tsum = d->tsum;
  for (int r = r0; r < r1; r++) {
    const u8 *ps = d->sign + (size_t)r * d->row_stride, *pp = d->split + (size_t)r * d->row_stride;
    const u8 *p1 = d->sal1 + (size_t)r * d->sal_stride, *p2 = d->sal2 + (size_t)r * d->sal_stride;
    const u16 *sc = d->scales + (size_t)r * nb * 7;
    v128_t acc = zero, ws = zero, wp = zero, w1 = zero, w2 = zero;
    float accs = 0;
    int g = 0, q = 0;
    for (int b = 0; b < nb; b++, sc += 7) {
      v128_t lo = f16x4(wasm_u32x4_load16x4(sc)), hi = f16x4(wasm_u32x4_load16x4(sc + 4));
      int g1 = (min_i(in, (b + 1) * bs) + 3) >> 2;
      v128_t A = zero, B = zero, D = zero;
      for (; g < g1; g++) {
        if ((g & 31) == 0) {
          ws = LD(ps + (g >> 1)); /* word g/32 starts at byte 16·g/32 */
          wp = LD(pp + (g >> 1));
        }
        v128_t x4 = LD(x + 4 * g);
        v128_t sx = wasm_v128_xor(x4, wasm_v128_andnot(sbit, ws)); /* s·x: flip where the sign bit is 0 */
        v128_t mp = wasm_i32x4_shr(wp, 31);
        ws = SHL1(ws);
        wp = SHL1(wp);
        A = ADD(A, sx);
        B = ADD(B, AND(sx, mp));
        D = ADD(D, AND(x4, mp));
      }
      float ac = wasm_f32x4_extract_lane(lo, 0), mc = wasm_f32x4_extract_lane(lo, 1);
      float as = wasm_f32x4_extract_lane(lo, 2), ms = wasm_f32x4_extract_lane(lo, 3);
      acc = ADD(acc, MUL(wasm_f32x4_splat(ac), wasm_f32x4_sub(A, B)));
      acc = ADD(acc, MUL(wasm_f32x4_splat(as), B));
      acc = ADD(acc, MUL(wasm_f32x4_splat(ms - mc), D));
      accs += mc * tsum[2 * b];
      int q1 = q + d->gs[b];
      if (q1 == q) continue;
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

/*
 * Rows base + [r0, r1) of W as float32 into w [rows, in_dim] (row base at w[0]), original
 * column order, bit-identical to dequantizeBinary.
 */
EXPORT(binary_dequant)
void binary_dequant(float *w, const binary_desc *d, int base, int r0, int r1) {
  const v128_t zero = wasm_f32x4_splat(0);
  const int nb = d->n_blocks, bs = d->block_size, in = d->in_dim;
  for (int t = r0; t < r1; t++) {
    int r = base + t;
    const u8 *ps = d->sign + (size_t)r * d->row_stride, *pp = d->split + (size_t)r * d->row_stride;
    const u16 *sc = d->scales + (size_t)r * nb * 7;
    float *out = w + (size_t)t * in;
    v128_t ws = zero, wp = zero;
    int g = 0;
    for (int b = 0; b < nb; b++, sc += 7) {
      v128_t lo = f16x4(wasm_u32x4_load16x4(sc));
      double ac = wasm_f32x4_extract_lane(lo, 0), mc = wasm_f32x4_extract_lane(lo, 1);
      double as = wasm_f32x4_extract_lane(lo, 2), ms = wasm_f32x4_extract_lane(lo, 3);
      /* the four values of this row and block: concentrated −/+, sparse −/+ */
      v128_t cm = wasm_f32x4_splat((float)(-ac + mc)), cp = wasm_f32x4_splat((float)(ac + mc));
      v128_t sm = wasm_f32x4_splat((float)(-as + ms)), sp = wasm_f32x4_splat((float)(as + ms));
      int c1 = min_i(in, (b + 1) * bs), g1 = (c1 + 3) >> 2;
      for (; g < g1; g++) {
        if ((g & 31) == 0) {
          ws = LD(ps + (g >> 1));
          wp = LD(pp + (g >> 1));
        }
        v128_t m = wasm_i32x4_shr(ws, 31), mp = wasm_i32x4_shr(wp, 31);
        ws = SHL1(ws);
        wp = SHL1(wp);
        v128_t v = wasm_v128_bitselect(wasm_v128_bitselect(sp, sm, m), wasm_v128_bitselect(cp, cm, m), mp);
        int c = 4 * g;
        if (c + 4 <= in) {
          wasm_v128_store(out + c, v);
        } else {
          /* the row's last columns: a vector store would spill into the next row */
          out[c] = wasm_f32x4_extract_lane(v, 0);
          if (c + 1 < in) out[c + 1] = wasm_f32x4_extract_lane(v, 1);
          if (c + 2 < in) out[c + 2] = wasm_f32x4_extract_lane(v, 2);
        }
      }
    }
    /* salient columns overwrite what the planes gave them */
    const u8 *p1 = d->sal1 + (size_t)r * d->sal_stride, *p2 = d->sal2 + (size_t)r * d->sal_stride;
    for (int k = 0; k < d->n_sal; k++) {
      int j = d->sal_col[k], q = d->sal_pos[k];
      const u16 *s = d->scales + ((size_t)r * nb + j / bs) * 7;
      v128_t hi = f16x4(wasm_u32x4_load16x4(s + 4));
      double a1 = wasm_f32x4_extract_lane(hi, 0), a2 = wasm_f32x4_extract_lane(hi, 1), msal = wasm_f32x4_extract_lane(hi, 2);
      double s1 = stream_bit(p1, q) ? 1 : -1, s2 = stream_bit(p2, q) ? 1 : -1;
      out[j] = (float)(a1 * s1 + a2 * s2 + msal);
    }
  }
}
