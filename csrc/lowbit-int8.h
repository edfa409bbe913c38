/*
 * What the int8-activation kernels of the grid formats share (lowbit-int8.c: uniform 2/4/8-bit
 * on the file's bytes; lowbit-int8-mixed.c: SliM's mixed widths and uniform 3-bit on a layout
 * built in C at load): float16 scales, the activation lane order, and the integer dot product
 * of one 128-column block.
 *
 * A block of b-bit levels (b = 1, 2, 4, 8) is the plain bitstream of its 128 columns, 16·b bytes;
 * plane k of 16 bytes is (bytes >> k·b) & mask, so the activation is stored in "kernel order"
 * (native/lowbit.h): b = 1: lane 16k + i = column 8i + k; b = 2: lane 32k + i = column 4i + k;
 * b = 4: lane 64m + i = column 2i + m; b = 8: lane i = column i. The shift is a 16-bit one
 * (i16x8.shr_u is one x86 instruction, i8x16.shr_u an emulation); the byte mask that follows drops
 * the bits it brings in from the neighbouring byte. 1-bit planes are a mask and an unsigned min.
 *
 * Two builds (scripts/build-wasm.sh): SIMD128, and relaxed SIMD (__wasm_relaxed_simd__), where
 * i16x8.relaxed_dot_i8x16_i7x16_s does a plane's 16 products and their pairwise sums in one
 * instruction (instead of two extending multiplies). Its second operand must fit 7 bits for the
 * result to be defined on every engine (x86 engines use pmaddubsw, unsigned × signed): the levels
 * (≤ 15) are that operand, the int8 activations ([−127, 127]) the first, and a pair of products
 * (≤ 2 · 127 · 15) cannot saturate. Both builds return the same int32 lanes (lane i: bytes 4i..4i+3
 * of every plane; the SIMD128 build regroups its pair sums with two shuffles per block), so the
 * two modules give the same float results bit for bit. 8-bit levels (to 255) do not fit 7 bits:
 * both builds widen them to int16 (i32x4.dot_i16x8_s; a nibble split into two relaxed dots
 * measured no faster).
 */
#ifndef BITCRUSH_LOWBIT_INT8_H
#define BITCRUSH_LOWBIT_INT8_H

#include "kernels.h"

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;

#define I8_INLINE static inline __attribute__((always_inline))

static inline float f16_to_f32(u16 h) {
  u32 sign = (u32)(h & 0x8000) << 16, exp = (h >> 10) & 31, man = h & 0x3ff, bits;
  if (exp == 0) {
    if (man == 0) bits = sign;
    else {
      int e = -1;
      do { man <<= 1; e++; } while (!(man & 0x400));
      bits = sign | (u32)(112 - e) << 23 | (man & 0x3ff) << 13;
    }
  } else if (exp == 31) bits = sign | 0x7f800000u | man << 13;
  else bits = sign | (exp + 112) << 23 | man << 13;
  union { u32 u; float f; } v = {bits};
  return v.f;
}

/* Kernel-order lane of column c (0..127) of a block of b-bit levels. */
static inline int lane_of(int c, int bits) {
  if (bits == 1) return 16 * (c & 7) + (c >> 3);
  if (bits == 2) return 32 * (c & 3) + (c >> 2);
  if (bits == 4) return 64 * (c & 1) + (c >> 1);
  return c;
}

/* x [n ≤ 128] (stored column order) into one block's int8 lanes for width `bits`; returns Σ xq
 * and the block's scale in *s (s = max|x| / 127; int8-activations.ts is the reference). */
static inline int quantize_block(const float *x, int n, int bits, signed char *out, float *s_out) {
  float amax = 0;
  for (int c = 0; c < n; c++) {
    float m = __builtin_fabsf(x[c]);
    amax = m > amax ? m : amax;
  }
  for (int c = 0; c < 128; c++) out[c] = 0;
  float s = amax / 127.0f, inv = amax > 0 ? 1.0f / s : 0.0f;
  int sum = 0;
  for (int c = 0; c < n; c++) {
    float t = __builtin_rintf(x[c] * inv); /* f32.nearest: round half even, as the reference */
    int q = t > 127 ? 127 : t < -127 ? -127 : (int)t;
    out[lane_of(c, bits)] = (signed char)q;
    sum += q;
  }
  *s_out = s;
  return sum;
}

/* From the sums of byte pairs 0-1, 2-3, …, 14-15 (lo: pairs 0-3, hi: pairs 4-7) the sums of byte
 * quads 0-3, …, 12-15: the int32 lanes relaxed_dot gives, so both builds scale the same integers. */
I8_INLINE v128_t quad_sums(v128_t lo, v128_t hi) {
  return wasm_i32x4_add(wasm_i32x4_shuffle(lo, hi, 0, 2, 4, 6), wasm_i32x4_shuffle(lo, hi, 1, 3, 5, 7));
}

/* Bit k of each byte of w as 0 or 1: a mask and an unsigned min (i8x16.shr_u has no x86
 * instruction; engines emulate it with a 16-bit shift and a mask). */
I8_INLINE v128_t bit_plane(v128_t w, int k, v128_t one) {
  return wasm_u8x16_min(wasm_v128_and(w, wasm_i8x16_splat((signed char)(1 << k))), one);
}

/* Σ q·xq over a block of 8-bit levels (to 255: wider than the relaxed dot's 7 bits), both builds:
 * widened to int16 and multiplied with i32x4.dot_i16x8_s. */
I8_INLINE v128_t block_dot8(const u8 *blk, const signed char *xq) {
  v128_t dlo = wasm_i32x4_splat(0), dhi = dlo;
  for (int h = 0; h < 8; h++) {
    v128_t w = wasm_v128_load(blk + 16 * h), xv = wasm_v128_load(xq + 16 * h);
    dlo = wasm_i32x4_add(dlo, wasm_i32x4_dot_i16x8(wasm_u16x8_extend_low_u8x16(w), wasm_i16x8_extend_low_i8x16(xv)));
    dhi = wasm_i32x4_add(dhi, wasm_i32x4_dot_i16x8(wasm_u16x8_extend_high_u8x16(w), wasm_i16x8_extend_high_i8x16(xv)));
  }
  return quad_sums(dlo, dhi);
}

#ifdef __wasm_relaxed_simd__
typedef signed char i8x16_ __attribute__((vector_size(16)));
/* acc16 + pairwise sums of levels (7-bit) × xq (int8) as int16 lanes: one relaxed dot and one add
 * (≤ 8 per lane and block: ≤ 8 · 2 · 15 · 127 = 30480, no overflow). The i32x4 "_add" form would
 * save the add but gives twice the dot product and drops the addend in Node 20's V8 (11.3, behind
 * --experimental-wasm-relaxed-simd; Chromium 156 is right), so it is not used. */
#define I8_PLANE(acc16, lv, xp) \
  (acc16 = wasm_i16x8_add(acc16, (v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_s_i16x8((i8x16_)wasm_v128_load(xp), (i8x16_)(lv))))

/* Σ q·xq over one 128-column block as int32 lanes, lane i the bytes 4i..4i+3 of every plane. */
I8_INLINE v128_t block_dot(const u8 *blk, const signed char *xq, int bits) {
  v128_t acc = wasm_i16x8_splat(0);
  if (bits == 1) {
    const v128_t one = wasm_i8x16_splat(1), w = wasm_v128_load(blk);
    for (int k = 0; k < 8; k++) I8_PLANE(acc, bit_plane(w, k, one), xq + 16 * k);
  } else if (bits == 2) {
    const v128_t m = wasm_i8x16_splat(3);
    for (int h = 0; h < 2; h++) {
      v128_t w = wasm_v128_load(blk + 16 * h);
      I8_PLANE(acc, wasm_v128_and(w, m), xq + 16 * h);
      I8_PLANE(acc, wasm_v128_and(wasm_u16x8_shr(w, 2), m), xq + 32 + 16 * h);
      I8_PLANE(acc, wasm_v128_and(wasm_u16x8_shr(w, 4), m), xq + 64 + 16 * h);
      I8_PLANE(acc, wasm_v128_and(wasm_u16x8_shr(w, 6), m), xq + 96 + 16 * h);
    }
  } else if (bits == 4) {
    const v128_t m = wasm_i8x16_splat(15);
    for (int h = 0; h < 4; h++) {
      v128_t w = wasm_v128_load(blk + 16 * h);
      I8_PLANE(acc, wasm_v128_and(w, m), xq + 16 * h);
      I8_PLANE(acc, wasm_v128_and(wasm_u16x8_shr(w, 4), m), xq + 64 + 16 * h);
    }
  } else {
    return block_dot8(blk, xq); /* nibble-split relaxed dots measured no faster (741-761 vs 717-757 µs) */
  }
  return wasm_i32x4_extadd_pairwise_i16x8(acc);
}
#else
/* 16 products of levels × xq added to int16 lanes (≤ 8 per lane and block: ≤ 8 · 15 · 127, no overflow). */
#define I8_PLANE16(acc_lo, acc_hi, lv, xp)                                       \
  do {                                                                           \
    v128_t xv_ = wasm_v128_load(xp);                                             \
    acc_lo = wasm_i16x8_add(acc_lo, wasm_i16x8_extmul_low_i8x16(lv, xv_));       \
    acc_hi = wasm_i16x8_add(acc_hi, wasm_i16x8_extmul_high_i8x16(lv, xv_));      \
  } while (0)

/* Σ q·xq over one 128-column block as int32 lanes, lane i the bytes 4i..4i+3 of every plane. */
I8_INLINE v128_t block_dot(const u8 *blk, const signed char *xq, int bits) {
  v128_t lo = wasm_i16x8_splat(0), hi = lo;
  if (bits == 1) {
    const v128_t one = wasm_i8x16_splat(1), w = wasm_v128_load(blk);
    for (int k = 0; k < 8; k++) I8_PLANE16(lo, hi, bit_plane(w, k, one), xq + 16 * k);
  } else if (bits == 2) {
    const v128_t m = wasm_i8x16_splat(3);
    for (int h = 0; h < 2; h++) {
      v128_t w = wasm_v128_load(blk + 16 * h);
      I8_PLANE16(lo, hi, wasm_v128_and(w, m), xq + 16 * h);
      I8_PLANE16(lo, hi, wasm_v128_and(wasm_u16x8_shr(w, 2), m), xq + 32 + 16 * h);
      I8_PLANE16(lo, hi, wasm_v128_and(wasm_u16x8_shr(w, 4), m), xq + 64 + 16 * h);
      I8_PLANE16(lo, hi, wasm_v128_and(wasm_u16x8_shr(w, 6), m), xq + 96 + 16 * h);
    }
  } else if (bits == 4) {
    const v128_t m = wasm_i8x16_splat(15);
    for (int h = 0; h < 4; h++) {
      v128_t w = wasm_v128_load(blk + 16 * h);
      I8_PLANE16(lo, hi, wasm_v128_and(w, m), xq + 16 * h);
      I8_PLANE16(lo, hi, wasm_v128_and(wasm_u16x8_shr(w, 4), m), xq + 64 + 16 * h);
    }
  } else {
    return block_dot8(blk, xq);
  }
  return quad_sums(wasm_i32x4_extadd_pairwise_i16x8(lo), wasm_i32x4_extadd_pairwise_i16x8(hi));
}
#endif

#endif
