/*
 * x86-64 kernels of the binary-billm format (binary.h layout, binary.c algebra), chosen at run
 * time (lowbit.c's instruction set). Every kernel takes 16 rows per vector: lane i of a 32-bit
 * lane vector is row 16g + i, and one 64-bit plane word holds those rows' bits for 4 columns.
 *
 * AVX-512 VNNI decode: the word is a byte mask (kmov from memory); the int8 activation of the
 * 4 columns broadcast to every lane, masked by the sign word, gives Σ_sign x̂ by vpdpbusd with
 * ones; the split word as 0/1 bytes against the masked and the plain activation gives R and Q:
 * two mask loads, two masked moves and three vpdpbusd per 16 rows × 4 columns. Four row groups
 * share each activation load (twelve independent dot-product chains). Per 128 columns the three
 * int32 vectors are scaled by the block's coefficients (16 rows' float16 scales, one vector
 * each) — no per-row scalar work and no horizontal sum.
 * AVX-512 VNNI prefill: the three 0/1 byte vectors of a word are made once and meet 8
 * activation rows (24 chains); weights of a row group stay in L1 while all token tiles pass.
 * AVX2 decode: a 32-bit half of the word (8 rows) becomes a 0xff/0 byte vector (broadcast,
 * vpshufb of its byte k to bytes 8k..8k+7, bit test), vpmaddubsw into int16 pairs (at most 64
 * products of |x̂| ≤ 127 per lane per 128 columns: ≤ 8128), widened once per 128 columns.
 */
#include "binary.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "lowbit.h"

#define T_512 __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512vnni,avx512bw,avx512dq")))
#define T_AVX2 __attribute__((target("avx2,fma,f16c")))
#define INLINE inline __attribute__((always_inline))

static INLINE int32_t load32(const int8_t *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* acc + Σ_4 a (u8) · b (s8) per 32-bit lane (vpdpbusd). In asm because GCC 12 compiles the
 * intrinsic with a register copy in and out of every accumulator and spills them to the stack
 * once per instruction in these loops (the addon's -O3 build, one thread: prefill of 128 rows
 * through 5632×2048 27.2 ms with the intrinsic, 12.4 ms with this; matvec 182 vs 167 µs). */
T_512 static INLINE __m512i dp(__m512i acc, __m512i a, __m512i b) {
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
  return acc;
}

/* The seven float16 scale vectors of row group g, block b, as the algebra's coefficients. */
typedef struct {
  __m512 p, r, q, t, s1, s2, ss;
} coef512;

T_512 static INLINE coef512 coefs_512(const bn_tensor *w, int g, int b) {
  const uint16_t *h = w->scales + ((size_t)g * w->n_blocks + b) * BN_NS * 16;
  __m512 s[BN_NS];
  for (int i = 0; i < BN_NS; i++) s[i] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(h + 16 * i)));
  coef512 c;
  c.p = _mm512_add_ps(s[0], s[0]);
  c.r = _mm512_mul_ps(_mm512_set1_ps(2), _mm512_sub_ps(s[2], s[0]));
  c.q = _mm512_add_ps(_mm512_sub_ps(s[0], s[1]), _mm512_sub_ps(s[3], s[2]));
  c.t = _mm512_sub_ps(s[1], s[0]);
  c.s1 = _mm512_add_ps(s[4], s[4]);
  c.s2 = _mm512_add_ps(s[5], s[5]);
  c.ss = _mm512_sub_ps(s[6], _mm512_add_ps(s[4], s[5]));
  return c;
}

/* acc plus the block's T term and salient sums v1 = Σ_{s1} x, v2 = Σ_{s2} x of one activation row
 * (zero without salient columns, as ssum). */
T_512 static INLINE __m512 tail_512(const coef512 *c, __m512 v1, __m512 v2, float tsum, float ssum, __m512 acc) {
  acc = _mm512_fmadd_ps(c->t, _mm512_set1_ps(tsum), acc);
  acc = _mm512_fmadd_ps(c->s1, v1, acc);
  acc = _mm512_fmadd_ps(c->s2, v2, acc);
  return _mm512_fmadd_ps(c->ss, _mm512_set1_ps(ssum), acc);
}

T_512 static INLINE void store16(float *y, int out, int g, __m512 v) {
  int n = out - 16 * g;
  if (n >= 16) _mm512_storeu_ps(y + 16 * g, v);
  else _mm512_mask_storeu_ps(y + 16 * g, (__mmask16)((1u << n) - 1), v);
}

/* acc + s_x·(cP·P + cR·R + cQ·Q) of one row group and one 128-column chunk. */
T_512 static INLINE __m512 fold_512(const coef512 *c, __m512i P, __m512i Q, __m512i R, float sx, __m512 acc) {
  __m512 v = _mm512_mul_ps(c->p, _mm512_cvtepi32_ps(P));
  v = _mm512_fmadd_ps(c->r, _mm512_cvtepi32_ps(R), v);
  v = _mm512_fmadd_ps(c->q, _mm512_cvtepi32_ps(Q), v);
  return _mm512_fmadd_ps(v, _mm512_set1_ps(sx), acc);
}

/* The accumulators are named variables, not arrays: GCC 12 keeps arrays of vectors on the stack
 * and stores every accumulator once per dot product. */
#define ZERO3(i) __m512i P##i = _mm512_setzero_si512(), Q##i = P##i, R##i = P##i;

/* One row group i of a decode pass: 16 rows × 4 columns against the broadcast activation xb. */
#define DEC(i)                                                                                        \
  {                                                                                                   \
    const __mmask64 ks = (__mmask64)wq[(i) * gstride], kt = (__mmask64)wq[(i) * gstride + 1];         \
    const __m512i xs = _mm512_maskz_mov_epi8(ks, xb), wt = _mm512_maskz_mov_epi8(kt, ones);          \
    P##i = dp(P##i, ones, xs);                                                       \
    R##i = dp(R##i, wt, xs);                                                         \
    Q##i = dp(Q##i, wt, xb);                                                         \
  }

#define DEC_FOLD(i)                                                                                   \
  {                                                                                                   \
    const coef512 cf = coefs_512(w, g + (i), b);                                                      \
    acc[i] = fold_512(&cf, P##i, Q##i, R##i, a->xs[c], acc[i]);                                       \
    if (c == c1 - 1) {                                                                                \
      __m512 v1 = _mm512_setzero_ps(), v2 = v1;                                                       \
      const uint32_t *sal = w->sal + (size_t)(g + (i)) * w->n_sal;                                    \
      for (int k = w->sal_start[b]; k < w->sal_start[b + 1]; k++) {                                   \
        const __m512 xk = _mm512_set1_ps(a->xsal[k]);                                                 \
        v1 = _mm512_mask_add_ps(v1, (__mmask16)sal[k], v1, xk);                                       \
        v2 = _mm512_mask_add_ps(v2, (__mmask16)(sal[k] >> 16), v2, xk);                               \
      }                                                                                               \
      acc[i] = tail_512(&cf, v1, v2, a->tsum[b], a->ssum[b], acc[i]);                                 \
    }                                                                                                 \
  }

/* Row groups g..g+NG−1 of y, NG = 4 (four groups share each activation load) or 1. */
T_512 static INLINE void pass_vnni(const bn_tensor *w, const bn_act *a, float *y, int g, const int NG) {
  const __m512i ones = _mm512_set1_epi8(1);
  const int cpb = w->block_size / 128;
  const size_t gstride = (size_t)w->quads * 2;
  const uint64_t *pl = w->planes + (size_t)g * gstride;
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  for (int b = 0; b < w->n_blocks; b++) {
    const int c1 = (b + 1) * cpb < w->chunks ? (b + 1) * cpb : w->chunks;
    for (int c = b * cpb; c < c1; c++) {
      ZERO3(0) ZERO3(1) ZERO3(2) ZERO3(3)
      const int8_t *xq = a->xq + (size_t)c * 128;
      const uint64_t *wq = pl + (size_t)c * 64;
      if (NG == 4)
        for (int q = 0; q < 32; q++, wq += 2) {
          const __m512i xb = _mm512_set1_epi32(load32(xq + 4 * q));
          /* the four group streams 1 KiB ahead, a cache line each per 4 quads: from DRAM, one
           * thread, 24 tensors of 5632×2048 (102 MB), 306 → 252 µs per matvec; 2048×5632 285 → 229 */
          if ((q & 3) == 0)
            for (int i = 0; i < 4; i++) _mm_prefetch((const char *)(wq + i * gstride + 128), _MM_HINT_T0);
          /* and the next block's 224 bytes of scales per group: 254 → 243 µs, 237 → 223 µs */
          if (q == 0 && b + 1 < w->n_blocks)
            for (int i = 0; i < 4; i++)
              for (int l = 0; l < 4; l++) _mm_prefetch((const char *)(w->scales + ((size_t)(g + i) * w->n_blocks + b + 1) * BN_NS * 16) + 64 * l, _MM_HINT_T0);
          DEC(0) DEC(1) DEC(2) DEC(3)
        }
      else
        for (int q = 0; q < 32; q++, wq += 2) {
          const __m512i xb = _mm512_set1_epi32(load32(xq + 4 * q));
          DEC(0)
        }
      DEC_FOLD(0)
      if (NG == 4) DEC_FOLD(1) DEC_FOLD(2) DEC_FOLD(3)
    }
  }
  for (int i = 0; i < NG; i++) store16(y, w->out, g + i, acc[i]);
}

T_512 void bn_rows_vnni(const bn_tensor *w, const bn_act *a, float *y, int g0, int g1) {
  int g = g0;
  for (; g + 4 <= g1; g += 4) pass_vnni(w, a, y, g, 4);
  for (; g < g1; g++) pass_vnni(w, a, y, g, 1);
}

/* Activation row t of a prefill pass against the three byte vectors of one plane word. */
#define PRE(t)                                                                                        \
  {                                                                                                   \
    const __m512i xb = _mm512_set1_epi32(load32(x##t + 4 * q));                                       \
    P##t = dp(P##t, ws, xb);                                                         \
    R##t = dp(R##t, wst, xb);                                                        \
    Q##t = dp(Q##t, wt, xb);                                                         \
  }
#define PRE_X(t) const int8_t *x##t = xr[t] + (size_t)c * 128;
#define PRE_FOLD(t) acc[t] = fold_512(&cf, P##t, Q##t, R##t, xs[t][c], acc[t]);

/* Row group g of Y [a->rows, out] for activation rows t0..t0+7 (rows past a->rows read the
 * zero row `zero` and are not stored). */
T_512 static void gpass_vnni(const bn_tensor *w, const bn_act *a, const int8_t *zero, float *y, int g, int t0) {
  const __m512i ones = _mm512_set1_epi8(1);
  const int cpb = w->block_size / 128, nt = a->rows - t0 < 8 ? a->rows - t0 : 8;
  const size_t xstride = (size_t)w->chunks * 128;
  const uint64_t *pl = w->planes + (size_t)g * w->quads * 2;
  const int8_t *xr[8];
  const float *xs[8], *xsal[8];
  __m512 acc[8];
  for (int t = 0; t < 8; t++) {
    xr[t] = t < nt ? a->xq + (size_t)(t0 + t) * xstride : zero;
    xs[t] = a->xs + (size_t)(t0 + (t < nt ? t : 0)) * w->chunks;
    xsal[t] = a->xsal + (size_t)(t0 + (t < nt ? t : 0)) * w->n_sal;
    acc[t] = _mm512_setzero_ps();
  }
  for (int b = 0; b < w->n_blocks; b++) {
    const int c1 = (b + 1) * cpb < w->chunks ? (b + 1) * cpb : w->chunks;
    for (int c = b * cpb; c < c1; c++) {
      ZERO3(0) ZERO3(1) ZERO3(2) ZERO3(3) ZERO3(4) ZERO3(5) ZERO3(6) ZERO3(7)
      PRE_X(0) PRE_X(1) PRE_X(2) PRE_X(3) PRE_X(4) PRE_X(5) PRE_X(6) PRE_X(7)
      const uint64_t *wq = pl + (size_t)c * 64;
      for (int q = 0; q < 32; q++, wq += 2) {
        const __mmask64 ks = (__mmask64)wq[0], kt = (__mmask64)wq[1];
        const __m512i ws = _mm512_maskz_mov_epi8(ks, ones), wt = _mm512_maskz_mov_epi8(kt, ones);
        const __m512i wst = _mm512_maskz_mov_epi8(_kand_mask64(ks, kt), ones);
        PRE(0) PRE(1) PRE(2) PRE(3) PRE(4) PRE(5) PRE(6) PRE(7)
      }
      const coef512 cf = coefs_512(w, g, b);
      PRE_FOLD(0) PRE_FOLD(1) PRE_FOLD(2) PRE_FOLD(3) PRE_FOLD(4) PRE_FOLD(5) PRE_FOLD(6) PRE_FOLD(7)
      if (c == c1 - 1) {
        /* salient columns outer, rows inner: 16 independent chains of masked adds (per row they
         * would be one dependent chain: 20 % of this kernel's time at 1/32 salient columns) */
        __m512 v1[8], v2[8];
#pragma GCC unroll 8
        for (int t = 0; t < 8; t++) v1[t] = v2[t] = _mm512_setzero_ps();
        const uint32_t *sal = w->sal + (size_t)g * w->n_sal;
        for (int k = w->sal_start[b]; k < w->sal_start[b + 1]; k++) {
          const __mmask16 m1 = (__mmask16)sal[k], m2 = (__mmask16)(sal[k] >> 16);
#pragma GCC unroll 8
          for (int t = 0; t < 8; t++) {
            const __m512 xb = _mm512_set1_ps(xsal[t][k]);
            v1[t] = _mm512_mask_add_ps(v1[t], m1, v1[t], xb);
            v2[t] = _mm512_mask_add_ps(v2[t], m2, v2[t], xb);
          }
        }
#pragma GCC unroll 8
        for (int t = 0; t < 8; t++) {
          const size_t tt = (size_t)t0 + (t < nt ? t : 0);
          acc[t] = tail_512(&cf, v1[t], v2[t], a->tsum[tt * w->n_blocks + b], a->ssum[tt * w->n_blocks + b], acc[t]);
        }
      }
    }
  }
  for (int t = 0; t < nt; t++) store16(y + (size_t)(t0 + t) * w->out, w->out, g, acc[t]);
}

T_512 void bn_gemm_vnni(const bn_tensor *w, const bn_act *a, float *y, int g0, int g1) {
  int8_t *zero = calloc(1, (size_t)w->chunks * 128);
  if (!zero) return; /* bn_gemm checked a larger allocation; a failure here leaves these rows */
  for (int g = g0; g < g1; g++)
    for (int t = 0; t < a->rows; t += 8) gpass_vnni(w, a, zero, y, g, t);
  free(zero);
}

/* The 32 bits of v as 32 bytes 0xff/0 (byte i = bit i). */
T_AVX2 static INLINE __m256i bytes_of(uint32_t v, __m256i pick, __m256i bit) {
  __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)v), pick);
  return _mm256_cmpeq_epi8(_mm256_and_si256(b, bit), bit);
}

T_AVX2 static void group_avx2(const bn_tensor *w, const bn_act *a, float *y, int g) {
  const __m256i pick = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull), ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
  const __m256i lo = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const int cpb = w->block_size / 128;
  const uint32_t *pl = (const uint32_t *)(w->planes + (size_t)g * w->quads * 2);
  __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int b = 0; b < w->n_blocks; b++) {
    const int c1 = (b + 1) * cpb < w->chunks ? (b + 1) * cpb : w->chunks;
    for (int c = b * cpb; c < c1; c++) {
      __m256i P[2], Q[2], R[2];
      for (int h = 0; h < 2; h++) P[h] = Q[h] = R[h] = _mm256_setzero_si256();
      const int8_t *xq = a->xq + (size_t)c * 128;
      const uint32_t *wq = pl + (size_t)c * 128; /* 32 quads × (sign, split) × 2 halves */
      for (int q = 0; q < 32; q++, wq += 4) {
        const __m256i xb = _mm256_set1_epi32(load32(xq + 4 * q));
        for (int h = 0; h < 2; h++) {
          const __m256i xs = _mm256_and_si256(bytes_of(wq[h], pick, bit), xb);
          const __m256i wt = _mm256_and_si256(bytes_of(wq[2 + h], pick, bit), ones8);
          P[h] = _mm256_add_epi16(P[h], _mm256_maddubs_epi16(ones8, xs));
          R[h] = _mm256_add_epi16(R[h], _mm256_maddubs_epi16(wt, xs));
          Q[h] = _mm256_add_epi16(Q[h], _mm256_maddubs_epi16(wt, xb));
        }
      }
      const __m256 sx = _mm256_set1_ps(a->xs[c]);
      const uint16_t *hs = w->scales + ((size_t)g * w->n_blocks + b) * BN_NS * 16;
      for (int h = 0; h < 2; h++) {
        __m256 s[BN_NS];
        for (int i = 0; i < BN_NS; i++) s[i] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(hs + 16 * i + 8 * h)));
        const __m256 cp = _mm256_add_ps(s[0], s[0]), cr = _mm256_mul_ps(_mm256_set1_ps(2), _mm256_sub_ps(s[2], s[0]));
        const __m256 cq = _mm256_add_ps(_mm256_sub_ps(s[0], s[1]), _mm256_sub_ps(s[3], s[2]));
        __m256 v = _mm256_mul_ps(cp, _mm256_cvtepi32_ps(_mm256_madd_epi16(P[h], ones16)));
        v = _mm256_fmadd_ps(cr, _mm256_cvtepi32_ps(_mm256_madd_epi16(R[h], ones16)), v);
        v = _mm256_fmadd_ps(cq, _mm256_cvtepi32_ps(_mm256_madd_epi16(Q[h], ones16)), v);
        acc[h] = _mm256_fmadd_ps(v, sx, acc[h]);
        if (c != c1 - 1) continue;
        acc[h] = _mm256_fmadd_ps(_mm256_sub_ps(s[1], s[0]), _mm256_set1_ps(a->tsum[b]), acc[h]);
        const int k0 = w->sal_start[b], k1 = w->sal_start[b + 1];
        if (k1 == k0) continue;
        __m256 v1 = _mm256_setzero_ps(), v2 = v1;
        const uint32_t *sal = w->sal + (size_t)g * w->n_sal;
        for (int k = k0; k < k1; k++) {
          const __m256 xb = _mm256_set1_ps(a->xsal[k]);
          const __m256i m1 = _mm256_set1_epi32((int)((sal[k] >> (8 * h)) & 255)), m2 = _mm256_set1_epi32((int)((sal[k] >> (16 + 8 * h)) & 255));
          v1 = _mm256_add_ps(v1, _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(m1, lo), lo)), xb));
          v2 = _mm256_add_ps(v2, _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(m2, lo), lo)), xb));
        }
        acc[h] = _mm256_fmadd_ps(_mm256_add_ps(s[4], s[4]), v1, acc[h]);
        acc[h] = _mm256_fmadd_ps(_mm256_add_ps(s[5], s[5]), v2, acc[h]);
        acc[h] = _mm256_fmadd_ps(_mm256_sub_ps(s[6], _mm256_add_ps(s[4], s[5])), _mm256_set1_ps(a->ssum[b]), acc[h]);
      }
    }
  }
  float out[16];
  _mm256_storeu_ps(out, acc[0]);
  _mm256_storeu_ps(out + 8, acc[1]);
  const int n = w->out - 16 * g < 16 ? w->out - 16 * g : 16;
  memcpy(y + 16 * g, out, (size_t)n * 4);
}

T_AVX2 void bn_rows_avx2(const bn_tensor *w, const bn_act *a, float *y, int g0, int g1) {
  for (int g = g0; g < g1; g++) group_avx2(w, a, y, g);
}
#endif
