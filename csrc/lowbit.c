/*
 * Matvec of the uniform b-bit group formats (src/formats/registry.ts: uniform-asym and
 * uniform-sym), WebAssembly SIMD. Same algorithm as src/formats/uniform-linear.ts, which is
 * its reference: per output row, unpack the row's levels once into thread scratch, then
 *   y_r = Σ_g scale[r,g] · (Σ_{j∈g} q[r,j] · x[j] − zero[r,g] · gsum[g])
 * where x is already in stored (act-order) column order and gsum[g] = Σ_{j∈g} x[j], both
 * computed once per call by the caller. Levels are a little-endian bitstream per row
 * (value j at bits [j·b, j·b + b)), each row starting on a byte boundary.
 *
 * Status: checked against the TypeScript kernel by a standalone harness (max |Δy| / Σ|w·x|
 * 1.8e-7 over bits 2/3/4/8, partial groups, SIMD and tail paths) but NOT yet built into
 * wasm/kernels.wasm nor called: that needs (kernels engineer's files) `lowbit` in
 * scripts/build-wasm.sh's source list, and a way for a format's Linear to run an exported
 * kernel over output-row ranges on the WasmPool with byte buffers in wasm memory.
 *
 * Follows kernels.h's rules: no static data, no C arrays; scratch is in_dim bytes per thread;
 * (r0, r1) is the range of output rows this thread computes.
 */
#include "kernels.h"

typedef unsigned char u8;

/* n levels of `bits` bits from the bitstream at src into out. */
static void unpack_levels(const u8 *src, u8 *out, int n, int bits) {
  int i = 0;
  if (bits == 8) {
    for (; i < n; i++) out[i] = src[i];
    return;
  }
  if (bits == 4) {
    /* 16 bytes → 32 levels: low nibbles and high nibbles, interleaved back into stream order */
    for (; i + 32 <= n; i += 32, src += 16) {
      v128_t b = wasm_v128_load(src);
      v128_t lo = wasm_v128_and(b, wasm_i8x16_splat(15)), hi = wasm_u8x16_shr(b, 4);
      wasm_v128_store(out + i, wasm_i8x16_shuffle(lo, hi, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23));
      wasm_v128_store(out + i + 16, wasm_i8x16_shuffle(lo, hi, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31));
    }
    for (; i + 2 <= n; i += 2, src++) {
      out[i] = *src & 15;
      out[i + 1] = *src >> 4;
    }
  } else if (bits == 2) {
    /* 16 bytes → 64 levels: the four 2-bit fields of every byte, interleaved back into stream order */
    for (; i + 64 <= n; i += 64, src += 16) {
      v128_t b = wasm_v128_load(src), m = wasm_i8x16_splat(3);
      v128_t a0 = wasm_v128_and(b, m), a1 = wasm_v128_and(wasm_u8x16_shr(b, 2), m);
      v128_t a2 = wasm_v128_and(wasm_u8x16_shr(b, 4), m), a3 = wasm_u8x16_shr(b, 6);
      v128_t p01l = wasm_i8x16_shuffle(a0, a1, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
      v128_t p01h = wasm_i8x16_shuffle(a0, a1, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
      v128_t p23l = wasm_i8x16_shuffle(a2, a3, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
      v128_t p23h = wasm_i8x16_shuffle(a2, a3, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
      wasm_v128_store(out + i, wasm_i8x16_shuffle(p01l, p23l, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23));
      wasm_v128_store(out + i + 16, wasm_i8x16_shuffle(p01l, p23l, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31));
      wasm_v128_store(out + i + 32, wasm_i8x16_shuffle(p01h, p23h, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23));
      wasm_v128_store(out + i + 48, wasm_i8x16_shuffle(p01h, p23h, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31));
    }
    for (; i + 4 <= n; i += 4, src++) {
      u8 b = *src;
      out[i] = b & 3;
      out[i + 1] = (b >> 2) & 3;
      out[i + 2] = (b >> 4) & 3;
      out[i + 3] = b >> 6;
    }
  } else if (bits == 3) {
    for (; i + 8 <= n; i += 8, src += 3) {
      unsigned v = src[0] | (src[1] << 8) | (src[2] << 16);
      for (int k = 0; k < 8; k++) out[i + k] = (v >> (3 * k)) & 7;
    }
  }
  /* tail (and any other width): generic bit reads relative to the stream start */
  const u8 *base = src - (i * bits) / 8;
  unsigned mask = (1u << bits) - 1;
  for (; i < n; i++) {
    int bit = i * bits, byte = bit >> 3, shift = bit & 7;
    unsigned two = base[byte] | (shift + bits > 8 ? base[byte + 1] << 8 : 0);
    out[i] = (two >> shift) & mask;
  }
}

/* Σ q[j]·x[j] over n values, 16 levels per step widened u8 → f32. */
static float dot_levels(const u8 *q, const float *x, int n) {
  v128_t acc0 = wasm_f32x4_splat(0), acc1 = acc0, acc2 = acc0, acc3 = acc0;
  int j = 0;
  for (; j + 16 <= n; j += 16) {
    v128_t b = wasm_v128_load(q + j);
    v128_t lo = wasm_u16x8_extend_low_u8x16(b), hi = wasm_u16x8_extend_high_u8x16(b);
    acc0 = wasm_f32x4_add(acc0, wasm_f32x4_mul(wasm_f32x4_convert_u32x4(wasm_u32x4_extend_low_u16x8(lo)), wasm_v128_load(x + j)));
    acc1 = wasm_f32x4_add(acc1, wasm_f32x4_mul(wasm_f32x4_convert_u32x4(wasm_u32x4_extend_high_u16x8(lo)), wasm_v128_load(x + j + 4)));
    acc2 = wasm_f32x4_add(acc2, wasm_f32x4_mul(wasm_f32x4_convert_u32x4(wasm_u32x4_extend_low_u16x8(hi)), wasm_v128_load(x + j + 8)));
    acc3 = wasm_f32x4_add(acc3, wasm_f32x4_mul(wasm_f32x4_convert_u32x4(wasm_u32x4_extend_high_u16x8(hi)), wasm_v128_load(x + j + 12)));
  }
  v128_t acc = wasm_f32x4_add(wasm_f32x4_add(acc0, acc1), wasm_f32x4_add(acc2, acc3));
  float s = wasm_f32x4_extract_lane(acc, 0) + wasm_f32x4_extract_lane(acc, 1) + wasm_f32x4_extract_lane(acc, 2) +
            wasm_f32x4_extract_lane(acc, 3);
  for (; j < n; j++) s += q[j] * x[j];
  return s;
}

/*
 * y[r0..r1) of W·x for a uniform group format.
 * q [out, row_bytes] levels; scale, zero [out, n_groups] as float32; x [in_dim] in stored
 * column order; gsum [n_groups]; scratch: in_dim bytes private to the thread.
 */
EXPORT(lowbit_gemv_uniform)
void lowbit_gemv_uniform(float *y, const u8 *q, int row_bytes, const float *scale, const float *zero, const float *x,
                         const float *gsum, int in_dim, int group_size, int n_groups, int bits, u8 *scratch, int r0,
                         int r1) {
  for (int r = r0; r < r1; r++) {
    unpack_levels(q + (size_t)r * row_bytes, scratch, in_dim, bits);
    const float *s = scale + (size_t)r * n_groups, *z = zero + (size_t)r * n_groups;
    float acc = 0;
    for (int g = 0; g < n_groups; g++) {
      int j0 = g * group_size, n = min_i(group_size, in_dim - j0);
      acc += s[g] * (dot_levels(scratch + j0, x + j0, n) - z[g] * gsum[g]);
    }
    y[r] = acc;
  }
}
