/*
 * x86-64 kernels of cb_gemm8 (codebook.h; the scalar spec is codebook-lut8.c), compiled for any
 * x86-64 through per-function target attributes and picked at run time:
 *   AVX2: the 256 int8 entries of a table row as sixteen 16-byte sub-tables; vpshufb looks the
 *     low nibble of 32 codes up in each, and a tree of 15 vpblendvb on code bits 4-7 keeps the
 *     right sub-table's byte (35 instructions per 32 lookups, no gathers);
 *   AVX-512 VBMI: the table row is four 64-byte registers; vpermi2b looks 64 codes up in
 *     entries 0-127 and again in 128-255, code bit 7 picks one (4 instructions per 64 lookups).
 * Both add the looked-up bytes into int16 lanes by even and odd byte (two shifts), which the tile
 * lane order (CB_LANE_ROW) makes runs of consecutive rows, and convert to float once per slice.
 */
#include "codebook.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define T_AVX2 __attribute__((target("avx2,fma,f16c")))
#define T_VBMI __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vbmi")))
#define INL static inline __attribute__((always_inline))

int cb_x86_level(void) {
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vbmi") ? 2 : 1;
}

/* ---- float tables and their int8 conversion ---- */

T_AVX2 INL __m256 abs8(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

T_AVX2 static float table_avx2(const cb_tensor *w, const float *x, float *t, int i0, int i1) {
  int g = w->g, nG = w->nG;
  __m256 mx = _mm256_setzero_ps();
  for (int i = i0; i < i1; i++) {
    const float *c = w->cbt + (size_t)(i / nG) * g * 256;
    const float *xj = x + (size_t)(i % nG) * g;
    float *ti = t + (size_t)(i - i0) * 256;
    for (int k = 0; k < 256; k += 32) {
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (int u = 0; u < g; u++) {
        const float *cu = c + (size_t)u * 256 + k;
        __m256 xv = _mm256_set1_ps(xj[u]);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(cu), xv, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(cu + 8), xv, a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(cu + 16), xv, a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(cu + 24), xv, a3);
      }
      _mm256_storeu_ps(ti + k, a0), _mm256_storeu_ps(ti + k + 8, a1);
      _mm256_storeu_ps(ti + k + 16, a2), _mm256_storeu_ps(ti + k + 24, a3);
      mx = _mm256_max_ps(mx, _mm256_max_ps(_mm256_max_ps(abs8(a0), abs8(a1)), _mm256_max_ps(abs8(a2), abs8(a3))));
    }
  }
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

T_AVX2 static void quant_avx2(int8_t *q, const float *t, float inv, int count) {
  const __m256 f = _mm256_set1_ps(inv);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7); /* undoes the per-lane packs */
  for (int i = 0; i < count; i += 32) {
    __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(t + i), f));
    __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(t + i + 8), f));
    __m256i c = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(t + i + 16), f));
    __m256i d = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(t + i + 24), f));
    __m256i v = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
    _mm256_storeu_si256((__m256i *)(q + i), _mm256_permutevar8x32_epi32(v, order));
  }
}

T_VBMI static float table_avx512(const cb_tensor *w, const float *x, float *t, int i0, int i1) {
  int g = w->g, nG = w->nG;
  __m512 mx = _mm512_setzero_ps();
  for (int i = i0; i < i1; i++) {
    const float *c = w->cbt + (size_t)(i / nG) * g * 256;
    const float *xj = x + (size_t)(i % nG) * g;
    float *ti = t + (size_t)(i - i0) * 256;
    for (int k = 0; k < 256; k += 64) {
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (int u = 0; u < g; u++) {
        const float *cu = c + (size_t)u * 256 + k;
        __m512 xv = _mm512_set1_ps(xj[u]);
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(cu), xv, a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(cu + 16), xv, a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(cu + 32), xv, a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(cu + 48), xv, a3);
      }
      _mm512_storeu_ps(ti + k, a0), _mm512_storeu_ps(ti + k + 16, a1);
      _mm512_storeu_ps(ti + k + 32, a2), _mm512_storeu_ps(ti + k + 48, a3);
      mx = _mm512_max_ps(mx, _mm512_max_ps(_mm512_max_ps(_mm512_abs_ps(a0), _mm512_abs_ps(a1)), _mm512_max_ps(_mm512_abs_ps(a2), _mm512_abs_ps(a3))));
    }
  }
  return _mm512_reduce_max_ps(mx);
}

T_VBMI static void table4_avx512(const cb_tensor *w, const float *x, float *t, int i0, int i1, float *mxo) {
  int g = w->g, nG = w->nG, in = w->in, count = (i1 - i0) * 256;
  __m512 mx[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  for (int i = i0; i < i1; i++) {
    const float *c = w->cbt + (size_t)(i / nG) * g * 256;
    const float *xj = x + (size_t)(i % nG) * g;
    for (int k = 0; k < 256; k += 32) {
      __m512 a[4][2];
#pragma GCC unroll 4
      for (int r = 0; r < 4; r++) a[r][0] = a[r][1] = _mm512_setzero_ps();
      for (int u = 0; u < g; u++) {
        const float *cu = c + (size_t)u * 256 + k;
        __m512 c0 = _mm512_loadu_ps(cu), c1 = _mm512_loadu_ps(cu + 16);
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
          __m512 xv = _mm512_set1_ps(xj[(size_t)r * in + u]);
          a[r][0] = _mm512_fmadd_ps(c0, xv, a[r][0]);
          a[r][1] = _mm512_fmadd_ps(c1, xv, a[r][1]);
        }
      }
#pragma GCC unroll 4
      for (int r = 0; r < 4; r++) {
        float *ti = t + (size_t)r * count + (size_t)(i - i0) * 256 + k;
        _mm512_storeu_ps(ti, a[r][0]), _mm512_storeu_ps(ti + 16, a[r][1]);
        mx[r] = _mm512_max_ps(mx[r], _mm512_max_ps(_mm512_abs_ps(a[r][0]), _mm512_abs_ps(a[r][1])));
      }
    }
  }
  for (int r = 0; r < 4; r++) mxo[r] = _mm512_reduce_max_ps(mx[r]);
}

T_VBMI static void quant_avx512(int8_t *q, const float *t, float inv, int count) {
  const __m512 f = _mm512_set1_ps(inv);
  for (int i = 0; i < count; i += 16)
    _mm_storeu_si128((__m128i *)(q + i), _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(t + i), f))));
}

/* ---- lookups ---- */

/* 32 codes looked up in one 256-entry int8 table row qi. */
T_AVX2 INL __m256i lut_avx2(const int8_t *qi, __m256i idx) {
  const __m256i lo = _mm256_and_si256(idx, _mm256_set1_epi8(0x0f));
  const __m256i b4 = _mm256_slli_epi16(idx, 3), b5 = _mm256_slli_epi16(idx, 2), b6 = _mm256_slli_epi16(idx, 1);
#define SUB(h) _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(qi + 16 * (h)))), lo)
#define L1(p) _mm256_blendv_epi8(SUB(2 * (p)), SUB(2 * (p) + 1), b4)
#define L2(p) _mm256_blendv_epi8(L1(2 * (p)), L1(2 * (p) + 1), b5)
#define L3(p) _mm256_blendv_epi8(L2(2 * (p)), L2(2 * (p) + 1), b6)
  return _mm256_blendv_epi8(L3(0), L3(1), idx);
#undef L3
#undef L2
#undef L1
#undef SUB
}

/* y[rows r..r+15] += d · int16 lanes e (16 rows). */
T_AVX2 INL void flush16_avx2(float *y, __m256i e, __m256 d) {
  __m256 f0 = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(e)));
  __m256 f1 = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_extracti128_si256(e, 1)));
  _mm256_storeu_ps(y, _mm256_fmadd_ps(f0, d, _mm256_loadu_ps(y)));
  _mm256_storeu_ps(y + 8, _mm256_fmadd_ps(f1, d, _mm256_loadu_ps(y + 8)));
}

T_AVX2 static void tiles_avx2(const cb_look *L, int t0, int t1, int s0, int s1) {
  const cb_tensor *w = L->w;
  int n = L->n;
  for (int s = s0; s < s1; s++) { /* the slice's table rows stay in L1 while the tiles pass */
    int i0, i1;
    cb_slice(L, s, &i0, &i1);
    for (int a = 0; a < L->A; a++) { /* a's slice of table (8 KiB) stays in L1 */
      const int8_t *q = L->q + (size_t)a * n * 256;
      for (int t = t0; t < t1; t++) {
        const uint8_t *c = w->codes + (size_t)t * n * CB_TILE;
        /* half h of the tile (lanes 32h..32h+31): even bytes rows 16h.., odd bytes rows 32 + 16h.. */
        __m256i e0 = _mm256_setzero_si256(), o0 = e0, e1 = e0, o1 = e0;
        for (int i = i0; i < i1; i++) {
          const int8_t *qi = q + (size_t)i * 256;
          __m256i v0 = lut_avx2(qi, _mm256_loadu_si256((const __m256i *)(c + (size_t)i * CB_TILE)));
          __m256i v1 = lut_avx2(qi, _mm256_loadu_si256((const __m256i *)(c + (size_t)i * CB_TILE + 32)));
          e0 = _mm256_add_epi16(e0, _mm256_srai_epi16(_mm256_slli_epi16(v0, 8), 8));
          o0 = _mm256_add_epi16(o0, _mm256_srai_epi16(v0, 8));
          e1 = _mm256_add_epi16(e1, _mm256_srai_epi16(_mm256_slli_epi16(v1, 8), 8));
          o1 = _mm256_add_epi16(o1, _mm256_srai_epi16(v1, 8));
        }
        __m256 d = _mm256_set1_ps(L->d[(size_t)a * L->nsl + s]);
        float *y = L->y + (size_t)a * w->out + (size_t)t * CB_TILE;
        flush16_avx2(y, e0, d), flush16_avx2(y + 16, e1, d);
        flush16_avx2(y + 32, o0, d), flush16_avx2(y + 48, o1, d);
      }
    }
  }
}

/* y[rows r..r+31] += d · int16 lanes e (32 rows). */
T_VBMI INL void flush32_vbmi(float *y, __m512i e, __m512 d) {
  __m512 f0 = _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(_mm512_castsi512_si256(e)));
  __m512 f1 = _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(e, 1)));
  _mm512_storeu_ps(y, _mm512_fmadd_ps(f0, d, _mm512_loadu_ps(y)));
  _mm512_storeu_ps(y + 16, _mm512_fmadd_ps(f1, d, _mm512_loadu_ps(y + 16)));
}

/* The 64 codes idx looked up in the table row held in t0..t3 (entries 0-63, …, 192-255). */
T_VBMI INL __m512i lut_vbmi(__m512i t0, __m512i t1, __m512i t2, __m512i t3, __m512i idx) {
  __m512i lo = _mm512_permutex2var_epi8(t0, idx, t1), hi = _mm512_permutex2var_epi8(t2, idx, t3);
  return _mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), lo, hi);
}

/* NT (1, 2 or 4) tiles from c (tile stride ts) over table rows [i0, i1) of q: each table row is
 * loaded once for NT·64 rows; even bytes are rows 0-31 of a tile (e), odd bytes rows 32-63 (o). */
T_VBMI INL void pass_vbmi(const int8_t *q, const uint8_t *c, size_t ts, int i0, int i1, float *y, float d0, const int NT) {
  /* vpmaddubsw with 1, 0 (0, 1) byte pairs: the even (odd) bytes sign-extended to int16, on the
   * multiply pipes rather than two shifts on the shuffle pipes the vpermi2b need */
  const __m512i even = _mm512_set1_epi16(0x0001), odd = _mm512_set1_epi16(0x0100);
  __m512i e[4], o[4];
#pragma GCC unroll 4
  for (int u = 0; u < NT; u++) e[u] = o[u] = _mm512_setzero_si512();
  for (int i = i0; i < i1; i++) {
    const int8_t *qi = q + (size_t)i * 256;
    __m512i q0 = _mm512_loadu_si512(qi), q1 = _mm512_loadu_si512(qi + 64);
    __m512i q2 = _mm512_loadu_si512(qi + 128), q3 = _mm512_loadu_si512(qi + 192);
#pragma GCC unroll 4
    for (int u = 0; u < NT; u++) {
      __m512i v = lut_vbmi(q0, q1, q2, q3, _mm512_loadu_si512(c + u * ts + (size_t)i * CB_TILE));
      e[u] = _mm512_add_epi16(e[u], _mm512_maddubs_epi16(even, v));
      o[u] = _mm512_add_epi16(o[u], _mm512_maddubs_epi16(odd, v));
    }
  }
  __m512 d = _mm512_set1_ps(d0);
#pragma GCC unroll 4
  for (int u = 0; u < NT; u++) flush32_vbmi(y + u * CB_TILE, e[u], d), flush32_vbmi(y + u * CB_TILE + 32, o[u], d);
}

T_VBMI static void tiles_vbmi(const cb_look *L, int t0, int t1, int s0, int s1) {
  const cb_tensor *w = L->w;
  int n = L->n;
  size_t ts = (size_t)n * CB_TILE; /* bytes per tile */
  for (int s = s0; s < s1; s++) { /* the slice's table rows stay in L1 while the tiles pass */
    int i0, i1;
    cb_slice(L, s, &i0, &i1);
    for (int a = 0; a < L->A; a++) {
      const int8_t *q = L->q + (size_t)a * n * 256;
      float d = L->d[(size_t)a * L->nsl + s];
      float *y = L->y + (size_t)a * w->out;
      int t = t0;
      for (; t + 4 <= t1; t += 4) pass_vbmi(q, w->codes + (size_t)t * ts, ts, i0, i1, y + (size_t)t * CB_TILE, d, 4);
      for (; t + 2 <= t1; t += 2) pass_vbmi(q, w->codes + (size_t)t * ts, ts, i0, i1, y + (size_t)t * CB_TILE, d, 2);
      if (t < t1) pass_vbmi(q, w->codes + (size_t)t * ts, ts, i0, i1, y + (size_t)t * CB_TILE, d, 1);
    }
  }
}

void cb_x86_kernels(int level, cb_kernels *k) {
  if (level >= 2) *k = (cb_kernels){table_avx512, quant_avx512, tiles_vbmi, table4_avx512};
  else if (level == 1) *k = (cb_kernels){table_avx2, quant_avx2, tiles_avx2, NULL};
}
#endif
