/*
 * Native kernels of the binary-billm format (binary.h), by sign selection with int8 activations.
 * Reference: src/formats/binary-linear.ts (same algebra, float activations), compared in
 * test/formats.test.ts against W·x̃ (binary.h: x̂ on non-salient columns, x on salient ones).
 *
 * With s = ±1 from a bit, per row and block, over non-salient columns (x̂ there, 0 on salient):
 *   P = Σ_sign x̂,  Q = Σ_split x̂,  R = Σ_{sign ∧ split} x̂,  T = Σ x̂ (row-independent)
 *   αc·(2P − T − (2R − Q)) + μc·(T − Q) + αs·(2R − Q) + μs·Q
 *     = 2αc·P + 2(αs − αc)·R + (αc − μc − αs + μs)·Q + (μc − αc)·T,
 * and over the block's salient columns (float x, compact index k, sal1/res bits):
 *   α1·Σ s1·x + α2·Σ s2·x + μsal·Σ x = 2α1·Σ_{s1} x + 2α2·Σ_{s2} x + (μsal − α1 − α2)·Σ x.
 * P, Q, R are integer sums over each 128-column activation block, scaled by its s_x. On AVX-512
 * (the "vnni" instruction set) a 64-bit word of a plane is a byte mask: vpdpbusd adds the masked
 * bytes (0/1) × x̂ into int32 lanes, so 64 columns cost three mask moves and three dot products
 * per row, and the row's three coefficient-weighted sums are kept as vectors (one reduction per
 * row); the salient sums are masked float adds over 16 compact columns. On AVX2 a 32-bit word
 * becomes a 0/1 byte vector (broadcast, byte shuffle, bit test) and vpmaddubsw adds its products
 * with x̂ into int16 pairs (at most 8 per lane per 128 columns: |sum| ≤ 1016), widened once per
 * 128 columns; salient sums take the same bit test on floats. Scalar C otherwise.
 */
#include "binary.h"

#include <stdlib.h>
#include <string.h>

#include "lowbit.h"
#include "pool.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define T_512 __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512vnni,avx512bw,avx512dq")))
#define T_AVX2 __attribute__((target("avx2,fma,f16c")))
#endif

#define BN_NS 7

void bn_prepare(int32_t *sal_col, int32_t *sal_start, uint8_t *sal1, const uint8_t *salient, const uint8_t *sign, int out, int in, int block_size) {
  int n = 0, nb = (in + block_size - 1) / block_size;
  for (int b = 0; b < nb; b++) {
    sal_start[b] = n;
    int c1 = (b + 1) * block_size < in ? (b + 1) * block_size : in;
    for (int j = b * block_size; j < c1; j++)
      if ((salient[j >> 3] >> (j & 7)) & 1) sal_col[n++] = j;
  }
  sal_start[nb] = n;
  size_t rb = (size_t)(in + 7) / 8, srb = (size_t)(n + 7) / 8;
  if (n == 0) return;
  memset(sal1, 0, (size_t)out * srb);
  for (int r = 0; r < out; r++)
    for (int k = 0; k < n; k++) {
      int j = sal_col[k];
      if ((sign[r * rb + (j >> 3)] >> (j & 7)) & 1) sal1[r * srb + (k >> 3)] |= (uint8_t)(1u << (k & 7));
    }
}

/* Per-call activations: xq [chunks · 128] (0 on salient columns and past in), xs [chunks], tsum and
 * ssum [n_blocks] (Σ x̂ over the block's other columns, Σ x over its salient ones), xsal [n_sal + 16]. */
typedef struct {
  int8_t *xq;
  float *xs, *tsum, *ssum, *xsal;
} bn_act;

/* Bits [bit, bit + n) of a plane row of `bytes` bytes (n ≤ 57), bounds-checked. */
static inline uint64_t bits_at(const uint8_t *row, size_t bytes, size_t bit, int n) {
  size_t byte = bit >> 3;
  uint64_t v = 0;
  if (byte + 8 <= bytes) memcpy(&v, row + byte, 8);
  else if (byte < bytes) memcpy(&v, row + byte, bytes - byte);
  v >>= bit & 7;
  return n >= 64 ? v : v & ((1ull << n) - 1);
}

static inline void scales_of(const bn_tensor *w, int r, int b, float *s) {
  const uint16_t *h = w->scales + ((size_t)r * w->n_blocks + b) * BN_NS;
  for (int i = 0; i < BN_NS; i++) s[i] = lb_f16(h[i]);
}

/* Σ_{k∈[k0,k1)} x_k over set bits of a compact plane row (scalar). */
static inline float sal_sum_scalar(const uint8_t *row, const float *xsal, int k0, int k1) {
  float s = 0;
  for (int k = k0; k < k1; k++)
    if ((row[k >> 3] >> (k & 7)) & 1) s += xsal[k];
  return s;
}

static void rows_scalar(const bn_tensor *w, const bn_act *a, float *y, int r0, int r1) {
  int chunks_per_block = w->block_size / 128;
  for (int r = r0; r < r1; r++) {
    const uint8_t *sg = w->sign + (size_t)r * w->rb, *sp = w->split + (size_t)r * w->rb;
    float acc = 0;
    for (int b = 0; b < w->n_blocks; b++) {
      float s[BN_NS], P = 0, Q = 0, R = 0;
      scales_of(w, r, b, s);
      for (int c = b * chunks_per_block; c < (b + 1) * chunks_per_block && c * 128 < w->in; c++) {
        int32_t p = 0, q = 0, rr = 0;
        int j1 = c * 128 + 128 < w->in ? c * 128 + 128 : w->in;
        for (int j = c * 128; j < j1; j++) {
          int xv = a->xq[j], bs = (sg[j >> 3] >> (j & 7)) & 1, bp = (sp[j >> 3] >> (j & 7)) & 1;
          p += bs * xv, q += bp * xv, rr += (bs & bp) * xv;
        }
        P += a->xs[c] * (float)p, Q += a->xs[c] * (float)q, R += a->xs[c] * (float)rr;
      }
      acc += 2 * s[0] * P + 2 * (s[2] - s[0]) * R + (s[0] - s[1] - s[2] + s[3]) * Q + (s[1] - s[0]) * a->tsum[b];
      int k0 = w->sal_start[b], k1 = w->sal_start[b + 1];
      if (k1 > k0) {
        float v1 = sal_sum_scalar(w->sal1 + (size_t)r * w->sal_rb, a->xsal, k0, k1);
        float v2 = sal_sum_scalar(w->res + (size_t)r * w->sal_rb, a->xsal, k0, k1);
        acc += 2 * s[4] * v1 + 2 * s[5] * v2 + (s[6] - s[4] - s[5]) * a->ssum[b];
      }
    }
    y[r] = acc;
  }
}

#if defined(__x86_64__)
/* Block b's seven scales of row r into s [8] (F16C: eight at once, one at a time at the blob's
 * very end) and the P, R, Q coefficients of the header's algebra into cf [3]. */
T_AVX2 static inline void block_coeffs(const bn_tensor *w, int r, int b, float *s, float *cf) {
  const uint16_t *h = w->scales + ((size_t)r * w->n_blocks + b) * BN_NS;
  if ((size_t)(h - w->scales) + 8 <= w->scales_len) _mm256_storeu_ps(s, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h)));
  else scales_of(w, r, b, s);
  cf[0] = 2 * s[0], cf[1] = 2 * (s[2] - s[0]), cf[2] = s[0] - s[1] - s[2] + s[3];
}

T_512 static inline __m512 sal_sum_512(const uint8_t *row, size_t bytes, const float *xsal, int k0, int k1) {
  __m512 v = _mm512_setzero_ps();
  for (int k = k0; k < k1; k += 16) {
    int n = k1 - k < 16 ? k1 - k : 16;
    __mmask16 m = (__mmask16)bits_at(row, bytes, (size_t)k, n);
    v = _mm512_mask_add_ps(v, m, v, _mm512_loadu_ps(xsal + k));
  }
  return v;
}

T_512 static void rows_512(const bn_tensor *w, const bn_act *a, float *y, int r0, int r1) {
  const __m512i ones = _mm512_set1_epi8(1);
  int cpb = w->block_size / 128, chunks = (w->in + 127) / 128;
  for (int r = r0; r < r1; r++) {
    const uint8_t *sg = w->sign + (size_t)r * w->rb, *sp = w->split + (size_t)r * w->rb;
    __m512 acc = _mm512_setzero_ps(), accR = acc, accQ = acc, accS = acc; /* four chains: FMA latency */
    float tail = 0;
    for (int b = 0; b < w->n_blocks; b++) {
      float s[8], cf[3];
      block_coeffs(w, r, b, s, cf);
      __m512 cP = _mm512_set1_ps(cf[0]), cR = _mm512_set1_ps(cf[1]), cQ = _mm512_set1_ps(cf[2]);
      int c1 = (b + 1) * cpb < chunks ? (b + 1) * cpb : chunks;
      for (int c = b * cpb; c < c1; c++) {
        __m512i p = _mm512_setzero_si512(), q = p, rr = p;
        for (int h64 = 0; h64 < 2; h64++) {
          size_t bit = (size_t)c * 128 + 64 * h64;
          if (bit >= (size_t)w->in) break;
          __mmask64 ks = bits_at(sg, w->rb, bit, 64), kp = bits_at(sp, w->rb, bit, 64);
          __m512i xv = _mm512_loadu_si512(a->xq + bit);
          p = _mm512_dpbusd_epi32(p, _mm512_maskz_mov_epi8(ks, ones), xv);
          q = _mm512_dpbusd_epi32(q, _mm512_maskz_mov_epi8(kp, ones), xv);
          rr = _mm512_dpbusd_epi32(rr, _mm512_maskz_mov_epi8(ks & kp, ones), xv);
        }
        __m512 sx = _mm512_set1_ps(a->xs[c]);
        acc = _mm512_fmadd_ps(_mm512_mul_ps(cP, sx), _mm512_cvtepi32_ps(p), acc);
        accR = _mm512_fmadd_ps(_mm512_mul_ps(cR, sx), _mm512_cvtepi32_ps(rr), accR);
        accQ = _mm512_fmadd_ps(_mm512_mul_ps(cQ, sx), _mm512_cvtepi32_ps(q), accQ);
      }
      tail += (s[1] - s[0]) * a->tsum[b];
      int k0 = w->sal_start[b], k1 = w->sal_start[b + 1];
      if (k1 > k0) {
        __m512 v1 = sal_sum_512(w->sal1 + (size_t)r * w->sal_rb, w->sal_rb, a->xsal, k0, k1);
        __m512 v2 = sal_sum_512(w->res + (size_t)r * w->sal_rb, w->sal_rb, a->xsal, k0, k1);
        accS = _mm512_fmadd_ps(_mm512_set1_ps(2 * s[4]), v1, accS);
        accS = _mm512_fmadd_ps(_mm512_set1_ps(2 * s[5]), v2, accS);
        tail += (s[6] - s[4] - s[5]) * a->ssum[b];
      }
    }
    y[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc, accR), _mm512_add_ps(accQ, accS))) + tail;
  }
}
/* The 32 bits of v as 32 bytes 0/1 (byte i = bit i). */
T_AVX2 static inline __m256i bytes01(uint32_t v) {
  const __m256i pick = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
  __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)v), pick);
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(b, bit), bit), _mm256_set1_epi8(1));
}

T_AVX2 static inline __m256 sal_sum_avx2(const uint8_t *row, size_t bytes, const float *xsal, int k0, int k1) {
  const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  __m256 v = _mm256_setzero_ps();
  for (int k = k0; k < k1; k += 8) {
    int n = k1 - k < 8 ? k1 - k : 8;
    __m256i m = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)bits_at(row, bytes, (size_t)k, n)), bit), bit);
    v = _mm256_add_ps(v, _mm256_and_ps(_mm256_castsi256_ps(m), _mm256_loadu_ps(xsal + k)));
  }
  return v;
}

T_AVX2 static inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

T_AVX2 static void rows_avx2(const bn_tensor *w, const bn_act *a, float *y, int r0, int r1) {
  const __m256i ones16 = _mm256_set1_epi16(1);
  int cpb = w->block_size / 128, chunks = (w->in + 127) / 128;
  for (int r = r0; r < r1; r++) {
    const uint8_t *sg = w->sign + (size_t)r * w->rb, *sp = w->split + (size_t)r * w->rb;
    __m256 acc = _mm256_setzero_ps(), accR = acc, accQ = acc, accS = acc;
    float tail = 0;
    for (int b = 0; b < w->n_blocks; b++) {
      float s[8], cf[3];
      block_coeffs(w, r, b, s, cf);
      __m256 cP = _mm256_set1_ps(cf[0]), cR = _mm256_set1_ps(cf[1]), cQ = _mm256_set1_ps(cf[2]);
      int c1 = (b + 1) * cpb < chunks ? (b + 1) * cpb : chunks;
      for (int c = b * cpb; c < c1; c++) {
        __m256i p = _mm256_setzero_si256(), q = p, rr = p;
        for (int q32 = 0; q32 < 4; q32++) {
          size_t bit = (size_t)c * 128 + 32 * q32;
          if (bit >= (size_t)w->in) break;
          __m256i ms = bytes01((uint32_t)bits_at(sg, w->rb, bit, 32)), mp = bytes01((uint32_t)bits_at(sp, w->rb, bit, 32));
          __m256i xv = _mm256_loadu_si256((const __m256i *)(a->xq + bit));
          p = _mm256_add_epi16(p, _mm256_maddubs_epi16(ms, xv));
          q = _mm256_add_epi16(q, _mm256_maddubs_epi16(mp, xv));
          rr = _mm256_add_epi16(rr, _mm256_maddubs_epi16(_mm256_and_si256(ms, mp), xv));
        }
        __m256 sx = _mm256_set1_ps(a->xs[c]);
        acc = _mm256_fmadd_ps(_mm256_mul_ps(cP, sx), _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones16)), acc);
        accR = _mm256_fmadd_ps(_mm256_mul_ps(cR, sx), _mm256_cvtepi32_ps(_mm256_madd_epi16(rr, ones16)), accR);
        accQ = _mm256_fmadd_ps(_mm256_mul_ps(cQ, sx), _mm256_cvtepi32_ps(_mm256_madd_epi16(q, ones16)), accQ);
      }
      tail += (s[1] - s[0]) * a->tsum[b];
      int k0 = w->sal_start[b], k1 = w->sal_start[b + 1];
      if (k1 > k0) {
        __m256 v1 = sal_sum_avx2(w->sal1 + (size_t)r * w->sal_rb, w->sal_rb, a->xsal, k0, k1);
        __m256 v2 = sal_sum_avx2(w->res + (size_t)r * w->sal_rb, w->sal_rb, a->xsal, k0, k1);
        accS = _mm256_fmadd_ps(_mm256_set1_ps(2 * s[4]), v1, accS);
        accS = _mm256_fmadd_ps(_mm256_set1_ps(2 * s[5]), v2, accS);
        tail += (s[6] - s[4] - s[5]) * a->ssum[b];
      }
    }
    y[r] = hsum256(_mm256_add_ps(_mm256_add_ps(acc, accR), _mm256_add_ps(accQ, accS))) + tail;
  }
}
#endif

typedef struct {
  const bn_tensor *w;
  const bn_act *a;
  float *y;
  int simd;
} bn_job;

static void gemv_range(void *ctx, int r0, int r1) {
  bn_job *j = ctx;
#if defined(__x86_64__)
  if (j->simd == 2) {
    rows_512(j->w, j->a, j->y, r0, r1);
    return;
  }
  if (j->simd == 1) {
    rows_avx2(j->w, j->a, j->y, r0, r1);
    return;
  }
#endif
  rows_scalar(j->w, j->a, j->y, r0, r1);
}

int bn_gemv(const bn_tensor *w, const float *x, float *y) {
  int chunks = (w->in + 127) / 128;
  size_t nq = (size_t)chunks * 128;
  char *m = malloc(nq + 4 * (2 * (size_t)chunks + 2 * (size_t)w->n_blocks + (size_t)w->n_sal + 16) + 64);
  if (!m) return 0;
  bn_act a;
  a.xq = (int8_t *)m;
  a.xs = (float *)(m + nq);
  a.tsum = a.xs + chunks;
  a.ssum = a.tsum + w->n_blocks;
  a.xsal = a.ssum + w->n_blocks;
  /* int8 over all columns in order (the reference: int8Activations with no perm), any lane order works here */
  lb_act la = {a.xq, a.xs, (int32_t *)(a.xsal + w->n_sal + 16), NULL, NULL, 0}; /* xsum [chunks]: unused */
  lb_quantize_act(x, NULL, w->in, chunks, 8, NULL, &la);
  for (int k = 0; k < w->n_sal; k++) a.xq[w->sal_col[k]] = 0, a.xsal[k] = x[w->sal_col[k]];
  memset(a.xsal + w->n_sal, 0, 16 * sizeof(float));
  for (int b = 0; b < w->n_blocks; b++) {
    float t = 0, ss = 0;
    int c0 = b * w->block_size / 128, c1 = c0 + w->block_size / 128;
    for (int c = c0; c < c1 && c < chunks; c++) {
      int32_t sum = 0;
      for (int j = 0; j < 128; j++) sum += a.xq[c * 128 + j];
      t += a.xs[c] * (float)sum;
    }
    for (int k = w->sal_start[b]; k < w->sal_start[b + 1]; k++) ss += a.xsal[k];
    a.tsum[b] = t, a.ssum[b] = ss;
  }
  const char *isa = lb_isa();
  bn_job j = {w, &a, y, !strcmp(isa, "vnni") ? 2 : !strcmp(isa, "avx2") ? 1 : 0};
  if ((double)w->out * w->in < 262144.0) gemv_range(&j, 0, w->out);
  else pool_run(gemv_range, &j, w->out, 4);
  free(m);
  return 1;
}

typedef struct {
  const bn_tensor *w;
  float *dst;
  int r0;
} dq_job;

static void dq_range(void *ctx, int i0, int i1) {
  dq_job *j = ctx;
  const bn_tensor *w = j->w;
  for (int r = j->r0 + i0; r < j->r0 + i1; r++) {
    const uint8_t *sg = w->sign + (size_t)r * w->rb, *sp = w->split + (size_t)r * w->rb;
    float *out = j->dst + (size_t)(r - j->r0) * w->in;
    for (int b = 0; b < w->n_blocks; b++) {
      float s[BN_NS], v[4];
      scales_of(w, r, b, s);
      /* as the reference: each level summed in double, rounded once */
      v[0] = (float)(-(double)s[0] + s[1]), v[1] = (float)((double)s[0] + s[1]);
      v[2] = (float)(-(double)s[2] + s[3]), v[3] = (float)((double)s[2] + s[3]);
      int c1 = (b + 1) * w->block_size < w->in ? (b + 1) * w->block_size : w->in;
      for (int c = b * w->block_size; c < c1; c++) out[c] = v[((sg[c >> 3] >> (c & 7)) & 1) | ((sp[c >> 3] >> (c & 7)) & 1) << 1];
      for (int k = w->sal_start[b]; k < w->sal_start[b + 1]; k++) {
        int s1 = (w->sal1[(size_t)r * w->sal_rb + (k >> 3)] >> (k & 7)) & 1, s2 = (w->res[(size_t)r * w->sal_rb + (k >> 3)] >> (k & 7)) & 1;
        out[w->sal_col[k]] = (float)((double)s[4] * (s1 ? 1 : -1) + (double)s[5] * (s2 ? 1 : -1) + s[6]);
      }
    }
  }
}

void bn_dequant(const bn_tensor *w, float *dst, int r0, int r1) {
  dq_job j = {w, dst, r0};
  pool_run(dq_range, &j, r1 - r0, 1);
}
