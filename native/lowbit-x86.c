/*
 * x86-64 kernels of lowbit.h: AVX2 (u8×s8 pairs with vpmaddubsw into int16, then vpmaddwd)
 * and AVX-512 VNNI (vpdpbusd: four u8×s8 products into int32 per lane, 512-bit). Compiled
 * for any x86-64 through per-function target attributes; lowbit.c picks one at run time.
 * int16 sums cannot overflow: a 2-4-bit pair is at most 2·15·127 = 3810, and at most eight
 * are added before widening. 8-bit levels (to 255) would saturate vpmaddubsw, so the AVX2
 * path widens them to int16 first.
 */
#include "lowbit.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <stdlib.h>

int lb_cpu_avx2(void) { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"); }
int lb_cpu_vnni(void) { return lb_cpu_avx2() && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl"); }

#define T_AVX2 __attribute__((target("avx2,fma,f16c")))
#define T_VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512vnni,avx512bw,avx512dq")))
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

/* Planes 2j (low 16 lanes) and 2j + 1 (high 16) of a 1-bit block broadcast to both halves. */
#define PLANE1(hb, j) _mm256_and_si256(_mm256_srlv_epi32(hb, _mm256_setr_epi32(2 * (j), 2 * (j), 2 * (j), 2 * (j), 2 * (j) + 1, 2 * (j) + 1, 2 * (j) + 1, 2 * (j) + 1)), m1)

/*
 * The integer block dot Σ level·xq of one 128-column block, per instruction set: DOT(acc, w, x)
 * adds u8 w × s8 x of 32 lanes into acc (int16 pairs for AVX2, int32 for VNNI). The body is one
 * macro so both ISAs share the unpacking code.
 */
#define BLOCK_BODY(DOT, FINISH)                                                                       \
  switch (bits) {                                                                                     \
  case 1: {                                                                                           \
    __m256i hb = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)blk));                  \
    DOT(acc, PLANE1(hb, 0), X(0)); DOT(acc, PLANE1(hb, 1), X(1));                                     \
    DOT(acc, PLANE1(hb, 2), X(2)); DOT(acc, PLANE1(hb, 3), X(3));                                     \
    break;                                                                                            \
  }                                                                                                   \
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
    DOT(acc, _mm256_and_si256(v0, m15), X(0)); DOT(acc, _mm256_and_si256(_mm256_srli_epi16(v0, 4), m15), X(2)); \
    DOT(acc, _mm256_and_si256(v1, m15), X(1)); DOT(acc, _mm256_and_si256(_mm256_srli_epi16(v1, 4), m15), X(3)); \
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

/*
 * AVX-512 VNNI on 512-bit vectors (lowbit-vnni-block.h): one vpdpbusd takes two planes of a block
 * (64 lanes), which halves the instructions per weight against 256-bit vectors.
 */
#define XZ(i) _mm512_loadu_si512((const void *)(xq + 64 * (i)))

#include "lowbit-vnni-block.h"

T_VNNI INL __m256i block_vnni(const uint8_t *blk, const int8_t *xq, int bits) {
  __m512i acc = lb_block_vnni512(blk, XZ(0), XZ(1), bits);
  /* the two halves fold into the 8 lanes the row loop scales */
  return _mm256_add_epi32(_mm512_castsi512_si256(acc), _mm512_extracti64x4_epi64(acc, 1));
}

/*
 * The zero term Σ_g s_w[g]·z[g]·gx[g] of an asymmetric row, eight zeros per step: eight b-bit
 * zeros are b bytes of the bitstream, split by variable shifts (8-bit: widened). One lb_zero per
 * group cost more than the block dots at group 32 (a bit extraction per 32 weights).
 */
T_AVX2 INL float zero_dot(const lb_uniform *w, int r, const float *f, const float *gx, int bits) {
  const uint8_t *z = w->zero + (size_t)r * w->zbytes;
  const int ng = w->n_groups;
  const __m256i sh = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(bits));
  const __m256i mask = _mm256_set1_epi32((1 << bits) - 1);
  __m256 v = _mm256_setzero_ps();
  int g = 0;
  for (; g + 8 <= ng; g += 8) {
    const uint8_t *p = z + (size_t)(g / 8) * bits;
    __m256i zi;
    if (bits == 8) zi = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
    else {
      /* the bytes composed in a register: a 3-byte memcpy then a 4-byte load stalled on store forwarding */
      uint32_t u = p[0] | (uint32_t)p[1] << 8 | (bits >= 3 ? (uint32_t)p[2] << 16 : 0u) | (bits >= 4 ? (uint32_t)p[3] << 24 : 0u);
      zi = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)u), sh), mask);
    }
    v = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(f + g), _mm256_loadu_ps(gx + g)), _mm256_cvtepi32_ps(zi), v);
  }
  float o = hsum_ps(v);
  for (; g < ng; g++) o += f[g] * (float)lb_zero(w, r, g) * gx[g];
  return o;
}

/*
 * Groups of 32 and 64 columns (lowbit.h gsub > 1): the block dot with the sums of its four
 * 32-column parts kept in separate int32 lanes. Which part each lane holds follows from the
 * kernel order of the width (lane_of): 2/3-bit planes hold 8 bytes per part, so the pairs of
 * lanes are the parts [0 0 1 1 2 2 3 3], as block_avx2/block_vnni already return them; 4-bit
 * bytes 0-31 hold parts 0-1 and bytes 32-63 parts 2-3, kept apart and interleaved by one hadd
 * [0 0 2 2 1 1 3 3]; 8-bit parts are 32 consecutive bytes, folded by three hadds [0 1 2 3 0 1 2 3].
 * The same map on AVX2 and VNNI (sub_index).
 */
T_AVX2 INL __m256i sub_index(int bits, int gsub) {
  __m256i m = bits == 4 ? _mm256_setr_epi32(0, 0, 2, 2, 1, 1, 3, 3) : bits == 8 ? _mm256_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3) : _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
  return gsub == 4 ? m : _mm256_srli_epi32(m, 1); /* group 64: parts 2s, 2s + 1 are group s of the block */
}

T_AVX2 INL __m256i block_sub_avx2(const uint8_t *blk, const int8_t *xq, int bits) {
  if (bits == 2 || bits == 3) return block_avx2(blk, xq, bits);
  const __m256i ones = _mm256_set1_epi16(1);
  if (bits == 4) { /* two int16 sums per lane: ≤ 2·2·15·127 */
    const __m256i m15 = _mm256_set1_epi8(15);
    __m256i v0 = _mm256_loadu_si256((const __m256i *)blk), v1 = _mm256_loadu_si256((const __m256i *)(blk + 32));
    __m256i p01 = _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_and_si256(v0, m15), X(0)), _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v0, 4), m15), X(2)));
    __m256i p23 = _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_and_si256(v1, m15), X(1)), _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v1, 4), m15), X(3)));
    return _mm256_hadd_epi32(_mm256_madd_epi16(p01, ones), _mm256_madd_epi16(p23, ones));
  }
  __m256i p[4];
  for (int k = 0; k < 4; k++) { /* 8-bit: widened to int16 (vpmaddubsw would saturate) */
    const uint8_t *b = blk + 32 * k;
    const int8_t *x = xq + 32 * k;
    p[k] = _mm256_add_epi32(_mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)b)), _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x))),
                            _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(b + 16))), _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x + 16)))));
  }
  return _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
}

T_VNNI INL __m256i block_sub_vnni(const uint8_t *blk, const int8_t *xq, int bits) {
  if (bits == 2 || bits == 3) return block_vnni(blk, xq, bits);
  const __m512i z = _mm512_setzero_si512();
  if (bits == 4) { /* int32 lane m holds bytes 4m..4m+3: part m / 4 */
    const __m512i m15 = _mm512_set1_epi8(15);
    __m512i v = _mm512_loadu_si512((const void *)blk);
    __m512i acc = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(z, _mm512_and_si512(v, m15), XZ(0)), _mm512_and_si512(_mm512_srli_epi16(v, 4), m15), XZ(1));
    return _mm256_hadd_epi32(_mm512_castsi512_si256(acc), _mm512_extracti64x4_epi64(acc, 1));
  }
  __m512i a01 = _mm512_dpbusd_epi32(z, _mm512_loadu_si512((const void *)blk), XZ(0)); /* parts 0 | 1 */
  __m512i a23 = _mm512_dpbusd_epi32(z, _mm512_loadu_si512((const void *)(blk + 64)), XZ(1)); /* parts 2 | 3 */
  return _mm256_hadd_epi32(_mm256_hadd_epi32(_mm512_castsi512_si256(a01), _mm512_extracti64x4_epi64(a01, 1)),
                           _mm256_hadd_epi32(_mm512_castsi512_si256(a23), _mm512_extracti64x4_epi64(a23, 1)));
}

/*
 * Rows [r0, r1), four at a time: four independent dot chains hide the multiply-add latency
 * and share the activation loads. Per block the int32 lanes become float and are scaled by
 * s_x into the group's accumulator; per group that is scaled by s_w, and the zero term
 * s_w·z·gx[g] (gx = Σ_{b∈g} s_x·Σxq, once per matvec) is a scalar. `bits` is a constant in each instantiation (the switch
 * below), so the block body has no branches. A row whose last block is short reads it from a
 * zero-padded copy (lb_block).
 */
/* Bytes of a block, and how far ahead of it each row stream is prefetched (measured: the weight
 * loads stalled without it, four row streams being too many for the hardware prefetcher alone). */
#define BB(bits) ((bits) == 3 ? 48 : 16 * (bits))
#define PREFETCH 4096

#define ROWS(NAME, TARGET, BLOCK, BLOCK_SUB)                                                           \
  TARGET INL void NAME##_w(const lb_uniform *w, const lb_act *a, float *y, int r0, int r1, int bits, int sub) { \
    uint8_t tmp[4][128];                                                                               \
    const int blocks = w->blocks, gb = w->group_blocks, ng = w->n_groups, gsub = w->gsub;              \
    /* the row quad's scales as float, [4][ngp]: with groups inside blocks padded to whole blocks      \
     * with zeros (the scale vector of the last block reads them), and 4 floats of slack */           \
    const int ngp = sub ? blocks * gsub : ng;                                                          \
    float *fs = calloc(4 * (size_t)ngp + 8, sizeof(float));                                            \
    if (!fs) { lb_rows_scalar(w, a, y, r0, r1); return; }                                              \
    /* sub: lane l of BLOCK_SUB's dot belongs to group part_of_lane(l) of its block */                 \
    const __m256i sidx = sub ? sub_index(bits, gsub) : _mm256_setzero_si256();                         \
    for (int r = r0; r < r1; r += 4) {                                                                 \
      int rr[4];                                                                                       \
      for (int i = 0; i < 4; i++) rr[i] = r + i < r1 ? r + i : r1 - 1; /* short tails repeat a row */ \
      __m256 acc[4], accg[4];                                                                          \
      float off[4];                                                                                    \
      const uint8_t *rp[4];                                                                            \
      for (int i = 0; i < 4; i++) {                                                                    \
        /* per row, once: scales (F16C, 8 at a time) and the zero term Σ_g s_w·z·gx */                 \
        const uint16_t *sc = w->scale + (size_t)rr[i] * ng;                                            \
        float *f = fs + (size_t)i * ngp, o = 0;                                                        \
        int g = 0;                                                                                     \
        for (; g + 8 <= ng; g += 8) _mm256_storeu_ps(f + g, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(sc + g)))); \
        for (; g < ng; g++) f[g] = lb_f16(sc[g]);                                                      \
        if (!w->zero) { /* symmetric: one midpoint, a vector dot */                                   \
          __m256 v = _mm256_setzero_ps();                                                              \
          for (g = 0; g + 8 <= ng; g += 8) v = _mm256_fmadd_ps(_mm256_loadu_ps(f + g), _mm256_loadu_ps(a->gx + g), v); \
          for (; g < ng; g++) o += f[g] * a->gx[g];                                                    \
          o = (o + hsum_ps(v)) * (float)(1 << (bits - 1));                                             \
        } else o = zero_dot(w, rr[i], f, a->gx, bits);                                                 \
        off[i] = o;                                                                                    \
        rp[i] = w->q + (size_t)rr[i] * w->row_stride;                                                  \
        acc[i] = accg[i] = _mm256_setzero_ps();                                                        \
      }                                                                                                \
      for (int b = 0, g = 0, left = gb; b < blocks; b++) {                                             \
        const int8_t *xq = a->xq + (size_t)b * LB_BLOCK;                                               \
        const __m256 xs = _mm256_set1_ps(a->xs[b]);                                                    \
        const int full = (size_t)(b + 1) * BB(bits) <= w->row_stride;                                  \
        if (sub) { /* groups inside the block: each lane scaled by its group's s_w · s_x */             \
          _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) {                                        \
            const uint8_t *blk = rp[i] + (size_t)b * BB(bits);                                         \
            _mm_prefetch((const char *)blk + PREFETCH, _MM_HINT_T0);                                   \
            __m256i d = BLOCK_SUB(full ? blk : lb_block(w, rr[i], b, tmp[i]), xq, bits);               \
            __m256 sv = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(fs + (size_t)i * ngp + (size_t)b * gsub)), sidx); \
            acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_mul_ps(sv, xs), acc[i]);            \
          }                                                                                            \
          continue;                                                                                    \
        }                                                                                              \
        _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) {                                          \
          const uint8_t *blk = rp[i] + (size_t)b * BB(bits);                                           \
          _mm_prefetch((const char *)blk + PREFETCH, _MM_HINT_T0);                                     \
          __m256i d = BLOCK(full ? blk : lb_block(w, rr[i], b, tmp[i]), xq, bits);                     \
          accg[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), xs, accg[i]);                               \
        }                                                                                              \
        if (--left == 0 || b == blocks - 1) { /* the group ends: scale it by s_w */                    \
          _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) {                                        \
            acc[i] = _mm256_fmadd_ps(accg[i], _mm256_broadcast_ss(fs + (size_t)i * ng + g), acc[i]);   \
            accg[i] = _mm256_setzero_ps();                                                             \
          }                                                                                            \
          g++;                                                                                         \
          left = gb;                                                                                   \
        }                                                                                              \
      }                                                                                                \
      for (int i = 3; i >= 0; i--) y[rr[i]] = hsum_ps(acc[i]) - off[i];                                \
    }                                                                                                  \
    free(fs);                                                                                          \
  }                                                                                                    \
  TARGET void NAME(const lb_uniform *w, const lb_act *a, float *y, int r0, int r1) {                   \
    const int sub = w->gsub > 1;                                                                       \
    switch (w->bits * 2 + sub) {                                                                       \
    case 4: NAME##_w(w, a, y, r0, r1, 2, 0); break;                                                    \
    case 5: NAME##_w(w, a, y, r0, r1, 2, 1); break;                                                    \
    case 6: NAME##_w(w, a, y, r0, r1, 3, 0); break;                                                    \
    case 7: NAME##_w(w, a, y, r0, r1, 3, 1); break;                                                    \
    case 8: NAME##_w(w, a, y, r0, r1, 4, 0); break;                                                    \
    case 9: NAME##_w(w, a, y, r0, r1, 4, 1); break;                                                    \
    case 17: NAME##_w(w, a, y, r0, r1, 8, 1); break;                                                   \
    default: NAME##_w(w, a, y, r0, r1, 8, 0);                                                          \
    }                                                                                                  \
  }

T_AVX2 void lb_quantize_act_avx2(const float *x, const int32_t *perm, int in, int blocks, int bits0, const uint8_t *widths, lb_act *a) {
  lb_quantize_act_body(x, perm, in, blocks, bits0, widths, a);
}

ROWS(lb_rows_avx2, T_AVX2, block_avx2, block_sub_avx2)
/* VNNI with groups of 32 and 64 (gsub > 1); whole-block groups run lowbit-vnni.c */
ROWS(lb_rows_vnni_sub, T_VNNI, block_vnni, block_sub_vnni)

/*
 * Mixed widths (lowbit.h lb_mixed): one 128-column group per block, four rows at a time; the
 * group's width picks the block body (the same for every row, so the branch predicts well).
 */
#define GROUP4(BLOCK, bits)                                                                            \
  _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) {                                                \
    const uint8_t *blk = rp[i] + w->goff[g];                                                           \
    _mm_prefetch((const char *)blk + PREFETCH, _MM_HINT_T0);                                           \
    __m256i d = BLOCK(blk, xq, bits);                                                                  \
    acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(xs * fs[(size_t)i * ng + g]), acc[i]); \
  }

/*
 * Σ_g s_w·z·gx[g] of row r of a mixed tensor, 8 groups at a time: the ≥2-bit groups' integer
 * zeros gathered from the bitstream (4 bytes from the zero's byte, masked to its width), the 1-bit
 * groups' float16 zeros gathered and converted — one scalar extraction per group cost about as
 * much as the row's dot products. Rows whose gathers could read past the tensor (the last ones)
 * and the last groups take lb_mixed_zero.
 */
T_AVX2 float lb_mixed_zero_term_avx2(const lb_mixed *w, int r, const float *f, const float *gx) {
  const int ng = w->n_groups;
  const size_t after = (size_t)(w->out - 1 - r); /* whole rows after this one */
  int g = 0;
  __m256 v = _mm256_setzero_ps();
  if (after * (size_t)w->zbytes >= 3 && after * (size_t)w->n1 >= 1) {
    const uint8_t *z = w->zero ? w->zero + (size_t)r * w->zbytes : NULL;
    const uint16_t *z1 = w->zero1 ? w->zero1 + (size_t)r * w->n1 : NULL;
    const __m256i zero = _mm256_setzero_si256(), one = _mm256_set1_epi32(1);
    for (; g + 8 <= ng; g += 8) {
      const __m256i zb = _mm256_loadu_si256((const __m256i *)(w->zbit + g));
      const __m256i wd = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(w->widths + g)));
      const __m256i neg = _mm256_cmpgt_epi32(zero, zb); /* 1-bit groups: float16 zero −1 − zb */
      __m256 zf = _mm256_setzero_ps();
      if (z) {
        __m256i q = _mm256_mask_i32gather_epi32(zero, (const int *)z, _mm256_andnot_si256(neg, _mm256_srai_epi32(zb, 3)), _mm256_andnot_si256(neg, _mm256_set1_epi32(-1)), 1);
        q = _mm256_and_si256(_mm256_srlv_epi32(q, _mm256_and_si256(zb, _mm256_set1_epi32(7))), _mm256_sub_epi32(_mm256_sllv_epi32(one, wd), one));
        zf = _mm256_cvtepi32_ps(q);
      }
      if (z1) {
        __m256i h = _mm256_mask_i32gather_epi32(zero, (const int *)z1, _mm256_and_si256(neg, _mm256_sub_epi32(_mm256_set1_epi32(-1), zb)), neg, 2);
        h = _mm256_and_si256(h, _mm256_set1_epi32(0xffff));
        h = _mm256_permute4x64_epi64(_mm256_packus_epi32(h, h), 0xd8); /* eight u16 in the low half */
        zf = _mm256_blendv_ps(zf, _mm256_cvtph_ps(_mm256_castsi256_si128(h)), _mm256_castsi256_ps(neg));
      }
      v = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(f + g), zf), _mm256_loadu_ps(gx + g), v);
    }
  }
  float o = 0;
  for (; g < ng; g++) o += f[g] * lb_mixed_zero(w, r, g) * gx[g];
  return o + hsum_ps(v);
}

#define MIXED_ROWS(NAME, TARGET, BLOCK)                                                                \
  TARGET void NAME(const lb_mixed *w, const lb_act *a, float *y, int r0, int r1) {                     \
    const int ng = w->n_groups;                                                                        \
    float *fs = malloc(sizeof(float) * 4 * (size_t)ng);                                                \
    if (!fs) { lb_mixed_rows_scalar(w, a, y, r0, r1); return; }                                        \
    for (int r = r0; r < r1; r += 4) {                                                                 \
      int rr[4];                                                                                       \
      for (int i = 0; i < 4; i++) rr[i] = r + i < r1 ? r + i : r1 - 1;                                 \
      __m256 acc[4];                                                                                   \
      float off[4];                                                                                    \
      const uint8_t *rp[4];                                                                            \
      for (int i = 0; i < 4; i++) {                                                                    \
        const uint16_t *sc = w->scale + (size_t)rr[i] * ng;                                            \
        float *f = fs + (size_t)i * ng;                                                                \
        int g = 0;                                                                                     \
        for (; g + 8 <= ng; g += 8) _mm256_storeu_ps(f + g, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(sc + g)))); \
        for (; g < ng; g++) f[g] = lb_f16(sc[g]);                                                      \
        off[i] = lb_mixed_zero_term_avx2(w, rr[i], f, a->gx);                                                  \
        rp[i] = w->q + (size_t)rr[i] * w->row_stride;                                                  \
        acc[i] = _mm256_setzero_ps();                                                                  \
      }                                                                                                \
      for (int g = 0; g < ng; g++) {                                                                   \
        const int8_t *xq = a->xq + (size_t)g * LB_BLOCK;                                               \
        const float xs = a->xs[g];                                                                     \
        switch (w->widths[g]) {                                                                        \
        case 1: GROUP4(BLOCK, 1) break;                                                                \
        case 2: GROUP4(BLOCK, 2) break;                                                                \
        case 3: GROUP4(BLOCK, 3) break;                                                                \
        default: GROUP4(BLOCK, 4)                                                                      \
        }                                                                                              \
      }                                                                                                \
      for (int i = 3; i >= 0; i--) y[rr[i]] = hsum_ps(acc[i]) - off[i];                                \
    }                                                                                                  \
    free(fs);                                                                                          \
  }

MIXED_ROWS(lb_mixed_rows_avx2, T_AVX2, block_avx2)

/*
 * Prefill (lowbit.h lb_gemm). Unpack: a block's levels in kernel order, the planes the matvec
 * bodies compute, stored as 128 bytes.
 */
T_AVX2 void lb_unpack_avx2(const uint8_t *blk, int bits, uint8_t *dst) {
  const __m256i m3 = _mm256_set1_epi8(3), m1 = _mm256_set1_epi8(1), m15 = _mm256_set1_epi8(15);
  __m256i p[4];
  switch (bits) {
  case 1: {
    __m256i hb = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)blk));
    p[0] = PLANE1(hb, 0), p[1] = PLANE1(hb, 1), p[2] = PLANE1(hb, 2), p[3] = PLANE1(hb, 3);
    break;
  }
  case 2: {
    __m256i lo = _mm256_loadu_si256((const __m256i *)blk);
    p[0] = PLANE2(lo, 0), p[1] = PLANE2(lo, 1), p[2] = PLANE2(lo, 2), p[3] = PLANE2(lo, 3);
    break;
  }
  case 3: {
    __m256i lo = _mm256_loadu_si256((const __m256i *)blk);
    __m256i hb = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(blk + 32)));
    p[0] = PLANE3(lo, hb, 0), p[1] = PLANE3(lo, hb, 1), p[2] = PLANE3(lo, hb, 2), p[3] = PLANE3(lo, hb, 3);
    break;
  }
  case 4: {
    __m256i v0 = _mm256_loadu_si256((const __m256i *)blk), v1 = _mm256_loadu_si256((const __m256i *)(blk + 32));
    p[0] = _mm256_and_si256(v0, m15), p[1] = _mm256_and_si256(v1, m15);
    p[2] = _mm256_and_si256(_mm256_srli_epi16(v0, 4), m15), p[3] = _mm256_and_si256(_mm256_srli_epi16(v1, 4), m15);
    break;
  }
  default: memcpy(dst, blk, LB_BLOCK); return;
  }
  for (int k = 0; k < 4; k++) _mm256_storeu_si256((__m256i *)(dst + 32 * k), p[k]);
}

#endif
