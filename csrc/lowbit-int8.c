/*
 * int8-activation kernels of the uniform formats (src/formats/registry.ts uniform-asym /
 * uniform-sym) at b = 2, 4, 8 with whole 128-column groups (or one group per row), WebAssembly
 * SIMD128: the same arithmetic and layouts as the native kernels (native/lowbit.h), so the file's
 * own bytes are the weights (levels as the file's bitstream, float16 scales, the b-bit zero
 * bitstream; copied once into kernel memory, never repacked):
 *   y_r = Σ_b s_w[r, g(b)] · s_x[b] · Σ_{j∈b} q[r, j] · xq[j]  −  Σ_g s_w[r, g] · z[r, g] · gx[g]
 * with xq = round_half_even(x / s_x[b]), s_x[b] = max|x_b| / 127 (src/formats/int8-activations.ts)
 * and gx[g] = Σ_{b∈g} s_x[b] · Σ xq over block b.
 * Activation lanes are in "kernel order" (lowbit.h): b = 2: lane 32k + i = column 4i + k; b = 4:
 * lane 64m + i = column 2i + m; b = 8: lane i = column i, so plane k of 16 weight bytes is one
 * shift and one mask. 2- and 4-bit products (≤ 15 · 127) are i16x8.extmul_*_i8x16 accumulated in
 * int16 over one block (8 per lane: ≤ 15240, no overflow), then widened with extadd_pairwise;
 * 8-bit levels (to 255) are widened to int16 and multiplied with i32x4.dot_i16x8_s. Per block the
 * int32 sums are scaled in float32 lanes, one horizontal sum per row.
 * The relaxed-SIMD build does each plane with one i32x4.relaxed_dot_i8x16_i7x16_add_s (lowbit-int8.h).
 */
#include "lowbit-int8.h"

/* What UniformInt8Kernels (uniform-wasm-int8.ts) keeps in kernel memory: int32 fields in this order. */
typedef struct {
  const u8 *q;         /* [out, row_stride] the file's rows; 128 readable bytes past the last */
  int row_stride;
  const u16 *scale;    /* [out, n_groups] float16 bits */
  const u8 *zero;      /* [out, zbytes] b-bit bitstream, or 0: the midpoint 2^(b−1) */
  int zbytes;
  int in, bits, blocks, group_blocks, n_groups;
  signed char *xq;     /* [blocks · 128] kernel order, zero past in */
  float *xs;           /* [blocks] */
  int *xsum;           /* [blocks] */
  float *gx;           /* [n_groups] */
} i8_desc;

/* x [in] (stored column order) into xq, xs, xsum, gx: one call, the calling thread (r0, r1 unused). */
EXPORT(lowbit_i8_act) void lowbit_i8_act(const i8_desc *d, const float *x, int r0, int r1) {
  (void)r0, (void)r1;
  for (int b = 0; b < d->blocks; b++) {
    int c0 = b * 128;
    d->xsum[b] = quantize_block(x + c0, min_i(128, d->in - c0), d->bits, d->xq + c0, &d->xs[b]);
  }
  for (int g = 0; g < d->n_groups; g++) {
    float s = 0;
    for (int b = g * d->group_blocks; b < d->blocks && b < (g + 1) * d->group_blocks; b++) s += d->xs[b] * (float)d->xsum[b];
    d->gx[g] = s;
  }
}

static inline int zero_at(const i8_desc *d, int r, int g) {
  if (!d->zero) return 1 << (d->bits - 1);
  const u8 *z = d->zero + (size_t)r * d->zbytes;
  int bit = g * d->bits, byte = bit >> 3;
  u32 v = z[byte] | (byte + 1 < d->zbytes ? (u32)z[byte + 1] << 8 : 0u);
  return (int)((v >> (bit & 7)) & ((1u << d->bits) - 1));
}

/* Rows [r0, r1) at a constant width, so block_dot's branches and shifts fold away. */
I8_INLINE void gemv_rows(const i8_desc *d, float *y, int r0, int r1, int bits) {
  int bb = 16 * bits;
  for (int r = r0; r < r1; r++) {
    const u8 *row = d->q + (size_t)r * d->row_stride;
    const u16 *sc = d->scale + (size_t)r * d->n_groups;
    v128_t acc = wasm_f32x4_splat(0);
    float zterm = 0;
    for (int g = 0; g < d->n_groups; g++) {
      float sw = f16_to_f32(sc[g]);
      zterm += sw * (float)zero_at(d, r, g) * d->gx[g];
      int b1 = min_i(d->blocks, (g + 1) * d->group_blocks);
      for (int b = g * d->group_blocks; b < b1; b++) {
        v128_t dot = block_dot(row + (size_t)b * bb, d->xq + b * 128, bits);
        acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_f32x4_convert_i32x4(dot), wasm_f32x4_splat(sw * d->xs[b])));
      }
    }
    float s = wasm_f32x4_extract_lane(acc, 0) + wasm_f32x4_extract_lane(acc, 1) + wasm_f32x4_extract_lane(acc, 2) + wasm_f32x4_extract_lane(acc, 3);
    y[r] = s - zterm;
  }
}

/* Rows [r0, r1) of y = W·x from the activation lowbit_i8_act prepared. */
EXPORT(lowbit_i8_gemv) void lowbit_i8_gemv(const i8_desc *d, float *y, int r0, int r1) {
  if (d->bits == 2) gemv_rows(d, y, r0, r1, 2);
  else if (d->bits == 4) gemv_rows(d, y, r0, r1, 4);
  else gemv_rows(d, y, r0, r1, 8);
}

/* Rows base + [r0, r1) of W as float32 into dst [·, in] (row base + r at dst + r·in), stored column
 * order: s · (q − z), exact in float32 (a float16 times an integer below 256). */
EXPORT(lowbit_i8_dequant) void lowbit_i8_dequant(const i8_desc *d, float *dst, int base, int r0, int r1) {
  int gs = d->group_blocks * 128, mask = (1 << d->bits) - 1;
  for (int i = r0; i < r1; i++) {
    int r = base + i;
    const u8 *row = d->q + (size_t)r * d->row_stride;
    float *out = dst + (size_t)i * d->in;
    for (int g = 0; g < d->n_groups; g++) {
      float s = f16_to_f32(d->scale[(size_t)r * d->n_groups + g]), z = (float)zero_at(d, r, g);
      int c1 = min_i(d->in, (g + 1) * gs);
      for (int c = g * gs; c < c1; c++) {
        int bit = c * d->bits; /* b = 2, 4, 8: a level never straddles bytes */
        out[c] = s * ((float)((row[bit >> 3] >> (bit & 7)) & mask) - z);
      }
    }
  }
}

/* 1 in the relaxed-SIMD build (scripts/build-wasm.sh): the backend reports which module runs. */
EXPORT(kernels_relaxed_simd) int kernels_relaxed_simd(void) {
#ifdef __wasm_relaxed_simd__
  return 1;
#else
  return 0;
#endif
}
