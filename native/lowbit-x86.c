/*
 * x86-64 kernels of lowbit.h: AVX2 (u8×s8 pairs with vpmaddubsw into int16, then vpmaddwd)
 * and AVX-512 VNNI on 256-bit vectors (vpdpbusd: four u8×s8 products into int32 per lane;
 * 256 bits keep the clock up and measure as fast as 512 on the memory-bound matvec). Compiled
 * for any x86-64 through per-function target attributes; lowbit.c picks one at run time.
 * int16 sums cannot overflow: a 2-4-bit pair is at most 2·15·127 = 3810, and at most eight
 * are added before widening. 8-bit levels (to 255) would saturate vpmaddubsw, so the AVX2
 * path widens them to int16 first.
 */
#include "lowbit.h"

#if defined(__x86_64__)
#include <immintrin.h>

int lb_cpu_avx2(void) { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
int lb_cpu_vnni(void) { return lb_cpu_avx2() && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl"); }

#define T_AVX2 __attribute__((target("avx2,fma")))
#define T_VNNI __attribute__((target("avx2,fma,avx512f,avx512vl,avx512vnni,avx512bw")))
#define INL static inline __attribute__((always_inline))

/* Σ_lanes of an int32x8 into float — the per-row finish. */
T_AVX2 INL float hsum_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

/* The 32 u8 levels of plane k of a 2- or 3-bit block (lowbit.h layout); lo = the 32 low-bit bytes. */
#define PLANE2(lo, k) _mm256_and_si256(_mm256_srli_epi16(lo, 2 * (k)), m3)
#define PLANE3(lo, hb, k) \
  _mm256_or_si256(PLANE2(lo, k), _mm256_slli_epi16(_mm256_and_si256(_mm256_srlv_epi32(hb, _mm256_setr_epi32(2 * (k), 2 * (k), 2 * (k), 2 * (k), 2 * (k) + 1, 2 * (k) + 1, 2 * (k) + 1, 2 * (k) + 1)), m1), 2))

/*
 * The integer block dot Σ level·xq of one 128-column block, per instruction set: DOT(acc, w, x)
 * adds u8 w × s8 x of 32 lanes into acc (int16 pairs for AVX2, int32 for VNNI). The body is one
 * macro so both ISAs share the unpacking code.
 */
#define BLOCK_BODY(DOT, FINISH)                                                                       \
  switch (bits) {                                                                                     \
  case 2: {                                                                                           \
    __m256i lo = _mm256_loadu_si256((const __m256i *)blk);                                            \
    DOT(acc, PLANE2(lo, 0), X(0)); DOT(acc, PLANE2(lo, 1), X(1));                                     \
    DOT(acc, PLANE2(lo, 2), X(2)); DOT(acc, PLANE2(lo, 3), X(3));                                     \
    break;                                                                                            \
  }                                                                                                   \
  case 3: {                                                                                           \
    __m256i lo = _mm256_loadu_si256((const __m256i *)blk);                                            \
    __m256i hb = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(blk + 32)));           \
    DOT(acc, PLANE3(lo, hb, 0), X(0)); DOT(acc, PLANE3(lo, hb, 1), X(1));                             \
    DOT(acc, PLANE3(lo, hb, 2), X(2)); DOT(acc, PLANE3(lo, hb, 3), X(3));                             \
    break;                                                                                            \
  }                                                                                                   \
  case 4: {                                                                                           \
    __m256i v0 = _mm256_loadu_si256((const __m256i *)blk), v1 = _mm256_loadu_si256((const __m256i *)(blk + 32)); \
    DOT(acc, _mm256_and_si256(v0, m15), X(0)); DOT(acc, _mm256_and_si256(_mm256_srli_epi16(v0, 4), m15), X(1)); \
    DOT(acc, _mm256_and_si256(v1, m15), X(2)); DOT(acc, _mm256_and_si256(_mm256_srli_epi16(v1, 4), m15), X(3)); \
    break;                                                                                            \
  }                                                                                                   \
  default: FINISH                                                                                     \
  }

#define X(i) _mm256_loadu_si256((const __m256i *)(xq + 32 * (i)))

#define DOT_AVX2(acc, w, x) acc = _mm256_add_epi16(acc, _mm256_maddubs_epi16(w, x))
/* 8-bit on AVX2: widen both operands to int16 and multiply-add pairs into int32. */
#define EIGHT_AVX2                                                                                     \
  for (int c = 0; c < 128; c += 16) {                                                                  \
    __m256i wv = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(blk + c)));                    \
    __m256i xv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(xq + c)));                     \
    acc32 = _mm256_add_epi32(acc32, _mm256_madd_epi16(wv, xv));                                        \
  }

T_AVX2 INL __m256i block_avx2(const uint8_t *blk, const int8_t *xq, int bits) {
  const __m256i m3 = _mm256_set1_epi8(3), m1 = _mm256_set1_epi8(1), m15 = _mm256_set1_epi8(15);
  __m256i acc = _mm256_setzero_si256(), acc32 = acc;
  BLOCK_BODY(DOT_AVX2, EIGHT_AVX2 return acc32;)
  (void)m1;
  return _mm256_madd_epi16(acc, _mm256_set1_epi16(1));
}

#define DOT_VNNI(acc, w, x) acc = _mm256_dpbusd_epi32(acc, w, x)
#define EIGHT_VNNI                                                                                     \
  for (int c = 0; c < 128; c += 32) DOT_VNNI(acc, _mm256_loadu_si256((const __m256i *)(blk + c)), X(c / 32)); \
  return acc;

T_VNNI INL __m256i block_vnni(const uint8_t *blk, const int8_t *xq, int bits) {
  const __m256i m3 = _mm256_set1_epi8(3), m1 = _mm256_set1_epi8(1), m15 = _mm256_set1_epi8(15);
  __m256i acc = _mm256_setzero_si256();
  BLOCK_BODY(DOT_VNNI, EIGHT_VNNI)
  (void)m1;
  return acc;
}

/*
 * Rows [r0, r1): per block the int32 lanes become float and are scaled by s_w·s_x into one
 * float accumulator; the zero term z·Σxq is a scalar per block. `bits` is a constant in each
 * instantiation (the switch below), so the block body has no branches.
 */
#define ROWS(NAME, TARGET, BLOCK)                                                                      \
  TARGET INL void NAME##_w(const lb_uniform *w, const lb_act *a, float *y, int r0, int r1, int bits) { \
    uint8_t tmp[128];                                                                                  \
    const int blocks = w->blocks, gb = w->group_blocks;                                                \
    for (int r = r0; r < r1; r++) {                                                                    \
      __m256 acc = _mm256_setzero_ps();                                                                \
      float off = 0;                                                                                   \
      const uint16_t *sc = w->scale + (size_t)r * w->n_groups;                                         \
      for (int g = 0; g * gb < blocks; g++) {                                                          \
        float sw = lb_f16(sc[g]);                                                                      \
        int z = lb_zero(w, r, g), b1 = (g + 1) * gb < blocks ? (g + 1) * gb : blocks;                  \
        for (int b = g * gb; b < b1; b++) {                                                            \
          const uint8_t *blk = lb_block(w, r, b, tmp);                                                 \
          __m256i d = BLOCK(blk, a->xq + (size_t)b * LB_BLOCK, bits);                                  \
          float s = sw * a->xs[b];                                                                     \
          acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(s), acc);                        \
          off += s * (float)(z * a->xsum[b]);                                                          \
        }                                                                                              \
      }                                                                                                \
      y[r] = hsum_ps(acc) - off;                                                                       \
    }                                                                                                  \
  }                                                                                                    \
  TARGET void NAME(const lb_uniform *w, const lb_act *a, float *y, int r0, int r1) {                   \
    switch (w->bits) {                                                                                 \
    case 2: NAME##_w(w, a, y, r0, r1, 2); break;                                                       \
    case 3: NAME##_w(w, a, y, r0, r1, 3); break;                                                       \
    case 4: NAME##_w(w, a, y, r0, r1, 4); break;                                                       \
    default: NAME##_w(w, a, y, r0, r1, 8);                                                             \
    }                                                                                                  \
  }

ROWS(lb_rows_avx2, T_AVX2, block_avx2)
ROWS(lb_rows_vnni, T_VNNI, block_vnni)

#endif
