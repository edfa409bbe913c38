/*
 * x86-64 panel kernels of the int8 prefill GEMM (lowbit.h lb_gemm, driver in lowbit-gemm.c):
 * AVX-512 VNNI and AVX2, compiled for any x86-64 through per-function target attributes, picked
 * at run time with the matvec's instruction set (lowbit.c lb_gemm_panel). The scalar
 * lb_gemm_panel_scalar (lowbit.c) is their specification.
 */
#include "lowbit.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define T_AVX2 __attribute__((target("avx2,fma,f16c")))
#define T_VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512vnni,avx512bw,avx512dq")))
#define INL static inline __attribute__((always_inline))

/* Y[t, r0 + i] for the 16 rows of one tile from the float lanes f (lane = row of the tile). */
#define STORE_TILE(f, tile, i)                                                                       \
  do {                                                                                               \
    float v_[16];                                                                                    \
    _mm512_storeu_ps(v_, f);                                                                         \
    for (int l_ = 0; l_ < 16 && (tile) * 16 + l_ < a->rows; l_++) y[(size_t)((tile) * 16 + l_) * out + r0 + (i)] = v_[l_]; \
  } while (0)

/*
 * AVX-512 VNNI panel: LB_GEMM_RB weight rows × two tiles (32 activation rows) per pass; per
 * column quad one vpdpbusd of the weight row's four levels (broadcast) with a tile's 64 bytes.
 * The int32 lanes are the tile's rows, so a block ends with one convert and one multiply-add
 * per accumulator, and no horizontal sums at all.
 */
T_VNNI INL void gemm_panel_vnni_w(const uint8_t *wu, const float *sw, const float *szw, const lb_gact *a, float *y, int out, int r0, int nr, int gsub) {
  const int blocks = a->blocks, ng = a->n_groups, gb = a->group_blocks, kq = 32 / gsub;
  const size_t ws = (size_t)blocks * LB_BLOCK, tstride = (size_t)blocks * 2048;
  for (int tp = 0; tp < a->tiles; tp += 2) {
    const int two = tp + 1 < a->tiles;
    const int8_t *x0 = a->xp + (size_t)tp * tstride, *x1 = two ? x0 + tstride : x0;
    const float *s0 = a->xs + (size_t)tp * blocks * 16, *s1 = two ? s0 + (size_t)blocks * 16 : s0;
    __m512 f[LB_GEMM_RB][2];
    for (int i = 0; i < LB_GEMM_RB; i++) f[i][0] = f[i][1] = _mm512_setzero_ps();
    for (int b = 0; b < blocks; b++) {
      const int8_t *xb0 = x0 + (size_t)b * 2048, *xb1 = x1 + (size_t)b * 2048;
      const uint8_t *wb = wu + (size_t)b * LB_BLOCK;
      __m512 xs0 = _mm512_loadu_ps(s0 + (size_t)b * 16), xs1 = _mm512_loadu_ps(s1 + (size_t)b * 16);
      for (int p = 0; p < gsub; p++) { /* the block, or each of its groups (their quads in a run) */
        __m512i d[LB_GEMM_RB][2];
        for (int i = 0; i < LB_GEMM_RB; i++) d[i][0] = d[i][1] = _mm512_setzero_si512();
        for (int k = p * kq; k < (p + 1) * kq; k++) {
          __m512i a0 = _mm512_loadu_si512((const void *)(xb0 + 64 * k)), a1 = _mm512_loadu_si512((const void *)(xb1 + 64 * k));
          _Pragma("GCC unroll 4") for (int i = 0; i < LB_GEMM_RB; i++) {
            int32_t q4;
            memcpy(&q4, wb + i * ws + 4 * k, 4);
            __m512i wv = _mm512_set1_epi32(q4);
            d[i][0] = _mm512_dpbusd_epi32(d[i][0], wv, a0);
            d[i][1] = _mm512_dpbusd_epi32(d[i][1], wv, a1);
          }
        }
        const int g = gsub > 1 ? b * gsub + p : b / gb;
        _Pragma("GCC unroll 4") for (int i = 0; i < LB_GEMM_RB; i++) {
          __m512 s = _mm512_set1_ps(sw[(size_t)i * ng + g]);
          f[i][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d[i][0]), _mm512_mul_ps(xs0, s), f[i][0]);
          f[i][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d[i][1]), _mm512_mul_ps(xs1, s), f[i][1]);
        }
      }
    }
    const float *g0 = a->gx + (size_t)tp * ng * 16, *g1 = two ? g0 + (size_t)ng * 16 : g0;
    for (int i = 0; i < nr; i++) {
      for (int g = 0; g < ng; g++) {
        __m512 c = _mm512_set1_ps(szw[(size_t)i * ng + g]);
        f[i][0] = _mm512_fnmadd_ps(c, _mm512_loadu_ps(g0 + (size_t)g * 16), f[i][0]);
        f[i][1] = _mm512_fnmadd_ps(c, _mm512_loadu_ps(g1 + (size_t)g * 16), f[i][1]);
      }
      STORE_TILE(f[i][0], tp, i);
      if (two) STORE_TILE(f[i][1], tp + 1, i);
    }
  }
}

/* gsub a constant in each copy: the whole-block loop keeps its fixed 32 quads. */
T_VNNI void lb_gemm_panel_vnni(const uint8_t *wu, const float *sw, const float *szw, const lb_gact *a, float *y, int out, int r0, int nr) {
  if (a->gsub == 4) gemm_panel_vnni_w(wu, sw, szw, a, y, out, r0, nr, 4);
  else if (a->gsub == 2) gemm_panel_vnni_w(wu, sw, szw, a, y, out, r0, nr, 2);
  else gemm_panel_vnni_w(wu, sw, szw, a, y, out, r0, nr, 1);
}

/*
 * AVX2 panel: the same loop on 256-bit halves of a tile (rows 0-7 at bytes 0-31 of a quad's 64,
 * rows 8-15 at 32-63), u8 × s8 pairs by vpmaddubsw and vpmaddwd into int32 (≤ 4-bit levels: a
 * pair is at most 2·15·127, no saturation). 8-bit levels would saturate vpmaddubsw, so they are
 * split into nibbles: q·x = 16·(q >> 4)·x + (q & 15)·x.
 */
T_AVX2 INL __m256 finish_avx2(__m256i d, __m256 xs, float s, __m256 f) {
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_mul_ps(xs, _mm256_set1_ps(s)), f);
}

T_AVX2 INL void gemm_panel_avx2_w(const uint8_t *wu, const float *sw, const float *szw, const lb_gact *a, float *y, int out, int r0, int nr, int eight, int gsub) {
  const int blocks = a->blocks, ng = a->n_groups, gb = a->group_blocks, kq = 32 / gsub;
  const size_t ws = (size_t)blocks * LB_BLOCK, tstride = (size_t)blocks * 2048;
  const __m256i ones = _mm256_set1_epi16(1), sixteen = _mm256_set1_epi16(16), m15 = _mm256_set1_epi8(15);
  for (int tp = 0; tp < a->tiles; tp++) {
    const int8_t *x0 = a->xp + (size_t)tp * tstride;
    const float *s0 = a->xs + (size_t)tp * blocks * 16;
    __m256 f[LB_GEMM_RB][2];
    for (int i = 0; i < LB_GEMM_RB; i++) f[i][0] = f[i][1] = _mm256_setzero_ps();
    for (int b = 0; b < blocks; b++) {
      const int8_t *xb = x0 + (size_t)b * 2048;
      const uint8_t *wb = wu + (size_t)b * LB_BLOCK;
      __m256 xs0 = _mm256_loadu_ps(s0 + (size_t)b * 16), xs1 = _mm256_loadu_ps(s0 + (size_t)b * 16 + 8);
      for (int p = 0; p < gsub; p++) { /* the block, or each of its groups (their quads in a run) */
        __m256i d[LB_GEMM_RB][2];
        for (int i = 0; i < LB_GEMM_RB; i++) d[i][0] = d[i][1] = _mm256_setzero_si256();
        for (int k = p * kq; k < (p + 1) * kq; k++) {
          __m256i a0 = _mm256_loadu_si256((const __m256i *)(xb + 64 * k)), a1 = _mm256_loadu_si256((const __m256i *)(xb + 64 * k + 32));
          _Pragma("GCC unroll 4") for (int i = 0; i < LB_GEMM_RB; i++) {
            int32_t q4;
            memcpy(&q4, wb + i * ws + 4 * k, 4);
            __m256i wv = _mm256_set1_epi32(q4);
            if (eight) {
              __m256i hi = _mm256_and_si256(_mm256_srli_epi16(wv, 4), m15), lo = _mm256_and_si256(wv, m15);
              d[i][0] = _mm256_add_epi32(d[i][0], _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(hi, a0), sixteen), _mm256_madd_epi16(_mm256_maddubs_epi16(lo, a0), ones)));
              d[i][1] = _mm256_add_epi32(d[i][1], _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(hi, a1), sixteen), _mm256_madd_epi16(_mm256_maddubs_epi16(lo, a1), ones)));
            } else {
              d[i][0] = _mm256_add_epi32(d[i][0], _mm256_madd_epi16(_mm256_maddubs_epi16(wv, a0), ones));
              d[i][1] = _mm256_add_epi32(d[i][1], _mm256_madd_epi16(_mm256_maddubs_epi16(wv, a1), ones));
            }
          }
        }
        const int g = gsub > 1 ? b * gsub + p : b / gb;
        for (int i = 0; i < LB_GEMM_RB; i++) {
          f[i][0] = finish_avx2(d[i][0], xs0, sw[(size_t)i * ng + g], f[i][0]);
          f[i][1] = finish_avx2(d[i][1], xs1, sw[(size_t)i * ng + g], f[i][1]);
        }
      }
    }
    const float *g0 = a->gx + (size_t)tp * ng * 16;
    for (int i = 0; i < nr; i++) {
      for (int g = 0; g < ng; g++) {
        __m256 c = _mm256_set1_ps(szw[(size_t)i * ng + g]);
        f[i][0] = _mm256_fnmadd_ps(c, _mm256_loadu_ps(g0 + (size_t)g * 16), f[i][0]);
        f[i][1] = _mm256_fnmadd_ps(c, _mm256_loadu_ps(g0 + (size_t)g * 16 + 8), f[i][1]);
      }
      float v[16];
      _mm256_storeu_ps(v, f[i][0]);
      _mm256_storeu_ps(v + 8, f[i][1]);
      for (int l = 0; l < 16 && tp * 16 + l < a->rows; l++) y[(size_t)(tp * 16 + l) * out + r0 + i] = v[l];
    }
  }
}

T_AVX2 void lb_gemm_panel_avx2(const uint8_t *wu, const float *sw, const float *szw, const lb_gact *a, float *y, int out, int r0, int nr) {
  const int e = a->eight, gsub = a->gsub;
  if (gsub == 1) e ? gemm_panel_avx2_w(wu, sw, szw, a, y, out, r0, nr, 1, 1) : gemm_panel_avx2_w(wu, sw, szw, a, y, out, r0, nr, 0, 1);
  else if (gsub == 2) e ? gemm_panel_avx2_w(wu, sw, szw, a, y, out, r0, nr, 1, 2) : gemm_panel_avx2_w(wu, sw, szw, a, y, out, r0, nr, 0, 2);
  else e ? gemm_panel_avx2_w(wu, sw, szw, a, y, out, r0, nr, 1, 4) : gemm_panel_avx2_w(wu, sw, szw, a, y, out, r0, nr, 0, 4);
}

#endif
