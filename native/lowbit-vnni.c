/*
 * AVX-512 VNNI matvec of the uniform formats (lowbit.h). 2- and 3-bit levels go on pairs of
 * 128-column blocks ("pair order"): one 512-bit load takes the 2-bit levels of two blocks (2 × 32 bytes, the file's
 * bytes in place), and one shift + one mask gives plane k of both — lanes 0-31 of block 2j, 32-63
 * of block 2j + 1 — which pairs with the activation stored in that order, so a pair costs four
 * vpdpbusd and no shuffle. The per-block kernel (lowbit-x86.c) broadcast 32 bytes to both halves
 * and shifted each half separately: twice the instructions per weight byte, which kept 2-bit
 * decode compute-bound. 3-bit blocks keep their layout (lb_repack3: 32 bytes of low bits, 16 of
 * bit 2), the two blocks' low bits gathered by two 256-bit loads, bit 2 of each plane moved into
 * place with one variable shift and merged by one vpternlogd.
 *
 * 4- and 8-bit blocks (64 and 128 bytes) fill 512-bit vectors alone: two vpdpbusd per block.
 *
 * Scales: per row, once, c[b] = s_w[r, g(b)] · s_x[b] for every block (F16C, 16 at a time when a
 * group is one block) and the zero term Σ_g s_w·z·gx[g] (zeros unpacked 8 at a time from the
 * bitstream, vectorised: one scalar extraction per group cost as much as the dot products
 * themselves); per pair the int32 lanes become float once and take c of their block by one
 * permute. Specification: lb_rows_scalar (lowbit.c), compared in test/formats.test.ts.
 */
#include "lowbit.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <stdlib.h>

#define T_VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512vnni,avx512bw,avx512dq")))
#define INL static inline __attribute__((always_inline))
#define PREFETCH 8192

/* Σ_g s_w[g]·z[g]·gx[g] of one row as 8 float lanes (the row's sum subtracts them): zeros unpacked
 * from the b-bit bitstream 8 groups at a time, by one 8-byte load (the row's bytes, or the rows
 * after it: shifted out), copied only at the end of the tensor. */
T_VNNI INL __m256 zero_term(const lb_uniform *w, int r, const float *fs, const float *gx) {
  const int ng = w->n_groups, bits = w->bits;
  __m256 v = _mm256_setzero_ps();
  const uint8_t *z = w->zero ? w->zero + (size_t)r * w->zbytes : NULL;
  const size_t end = (size_t)(w->out - r) * w->zbytes; /* bytes from z to the end of the tensor's zeros */
  const __m512i sh = _mm512_mullo_epi64(_mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi64(bits));
  const __m256i mask = _mm256_set1_epi32((1 << bits) - 1);
  const __m256 mid = _mm256_set1_ps((float)(1 << (bits - 1))); /* symmetric: the midpoint */
  for (int g = 0; g < ng; g += 8) {
    const __mmask8 m = ng - g >= 8 ? 0xff : (__mmask8)((1u << (ng - g)) - 1); /* the last groups: masked */
    const __m256 f = _mm256_maskz_loadu_ps(m, fs + g), x = _mm256_maskz_loadu_ps(m, gx + g);
    __m256 zf = mid;
    if (z) {
      /* groups g..g+7: bits·8 bits from byte g·bits/8 (g is a multiple of 8: a whole byte) */
      const size_t off = (size_t)g * bits / 8;
      uint64_t u = 0;
      if (off + 8 <= end) memcpy(&u, z + off, 8);
      else memcpy(&u, z + off, end - off);
      zf = _mm256_cvtepi32_ps(_mm256_and_si256(_mm512_cvtepi64_epi32(_mm512_srlv_epi64(_mm512_set1_epi64((long long)u), sh)), mask));
    }
    v = _mm256_fmadd_ps(_mm256_mul_ps(f, zf), x, v);
  }
  return v;
}

/* Plane k (0..3) of a 2-bit pair L: levels (L >> 2k) & 3 per byte. */
#define P2(L, k) ((k) == 0 ? _mm512_and_si512(L, m3) : _mm512_and_si512(_mm512_srli_epi16(L, 2 * (k)), m3))
/* Bit 2 of plane k of a 3-bit pair from H = [hb0, hb0, hb1, hb1] (16-byte quarters): quarter q
 * holds it at bit 2k + (q & 1); shifted to bit 2 (counts hsh[k]) and masked. */
#define H3(H, k) _mm512_and_si512((k) == 0 ? _mm512_sllv_epi32(H, hsh[0]) : _mm512_srlv_epi32(H, hsh[k]), m4)

/* One block alone (the tail) in pair order at parity p, 256-bit: Σ level·xq as 8 int32 lanes. */
T_VNNI INL __m256i single_block(const uint8_t *blk, const int8_t *xpair, int p, int bits) {
  const __m256i m3 = _mm256_set1_epi8(3), m4 = _mm256_set1_epi8(4);
  __m256i lo = _mm256_loadu_si256((const __m256i *)blk), acc = _mm256_setzero_si256();
  __m256i hb = bits == 3 ? _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(blk + 32))) : lo;
  for (int k = 0; k < 4; k++) {
    __m256i lv = _mm256_and_si256(_mm256_srli_epi16(lo, 2 * k), m3);
    if (bits == 3) {
      /* lanes 0-15: bit 2k, lanes 16-31: bit 2k + 1, to bit 2 */
      __m256i c = _mm256_setr_epi32(2 * k, 2 * k, 2 * k, 2 * k, 2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1);
      __m256i h = _mm256_and_si256(_mm256_srlv_epi32(hb, c), _mm256_set1_epi8(1));
      lv = _mm256_or_si256(lv, _mm256_slli_epi16(h, 2));
    }
    (void)m4;
    acc = _mm256_dpbusd_epi32(acc, lv, _mm256_loadu_si256((const __m256i *)(xpair + 64 * k + 32 * p)));
  }
  return acc;
}

T_VNNI INL void rows_w(const lb_uniform *w, const lb_act *a, float *y, int r0, int r1, int bits) {
  const int blocks = w->blocks, gb = w->group_blocks, ng = w->n_groups;
  const size_t bb = (size_t)lb_block_bytes(bits);
  const int paired = bits == 2 || bits == 3;
  /* pairs whose two blocks lie whole inside the row; the rest (an odd or short last block) alone */
  int full = (int)(w->row_stride / bb) < blocks ? (int)(w->row_stride / bb) : blocks;
  const int np = paired ? full / 2 : 0;
  float *fs = malloc(sizeof(float) * ((size_t)ng + 4 * ((size_t)blocks + 16)));
  if (!fs) { lb_rows_scalar(w, a, y, r0, r1); return; }
  float *cs = fs + ng; /* [4][blocks + 16] the row quad's s_w·s_x per block */
  const size_t cstride = (size_t)blocks + 16;
  const __m512i m3 = _mm512_set1_epi8(3), m4 = _mm512_set1_epi8(4);
  const __m512i hsh[4] = {
      _mm512_set_epi32(1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1, 2, 2, 2, 2), /* k = 0: left by 2 − (0 | 1) */
      _mm512_set_epi32(1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0),
      _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 3, 3, 3, 3, 2, 2, 2, 2),
      _mm512_set_epi32(5, 5, 5, 5, 4, 4, 4, 4, 5, 5, 5, 5, 4, 4, 4, 4),
  };
  const __m512i halves = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  uint8_t tmp[128];
  for (int r = r0; r < r1; r += 4) {
    int rr[4];
    for (int i = 0; i < 4; i++) rr[i] = r + i < r1 ? r + i : r1 - 1; /* short tails repeat a row */
    const uint8_t *rp[4];
    __m512 acc[4];
    for (int i = 0; i < 4; i++) {
      const uint16_t *sc = w->scale + (size_t)rr[i] * ng;
      for (int g = 0; g < ng; g += 16) {
        const __mmask16 m = ng - g >= 16 ? 0xffff : (__mmask16)((1u << (ng - g)) - 1);
        _mm512_mask_storeu_ps(fs + g, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, sc + g)));
      }
      acc[i] = _mm512_sub_ps(_mm512_setzero_ps(), _mm512_zextps256_ps512(zero_term(w, rr[i], fs, a->gx)));
      float *c = cs + (size_t)i * cstride;
      if (gb == 1) {
        for (int b = 0; b < blocks; b += 16) {
          const __mmask16 m = blocks - b >= 16 ? 0xffff : (__mmask16)((1u << (blocks - b)) - 1);
          _mm512_mask_storeu_ps(c + b, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, fs + b), _mm512_maskz_loadu_ps(m, a->xs + b)));
        }
      } else {
        for (int b = 0; b < blocks; b++) c[b] = fs[b / gb] * a->xs[b];
      }
      rp[i] = w->q + (size_t)rr[i] * w->row_stride;
    }
    for (int j = 0; j < np; j++) {
      const int8_t *xp = a->xq + (size_t)j * 256;
      const __m512i x0 = _mm512_loadu_si512(xp), x1 = _mm512_loadu_si512(xp + 64);
      const __m512i x2 = _mm512_loadu_si512(xp + 128), x3 = _mm512_loadu_si512(xp + 192);
      _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) {
        const uint8_t *blk = rp[i] + (size_t)j * 2 * bb;
        __m512i d;
        if (bits == 2) {
          _mm_prefetch((const char *)blk + PREFETCH, _MM_HINT_T0);
          const __m512i L = _mm512_loadu_si512(blk);
          d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), P2(L, 0), x0);
          d = _mm512_dpbusd_epi32(d, P2(L, 1), x1);
          d = _mm512_dpbusd_epi32(d, P2(L, 2), x2);
          d = _mm512_dpbusd_epi32(d, P2(L, 3), x3);
        } else {
          _mm_prefetch((const char *)blk + PREFETCH, _MM_HINT_T0);
          _mm_prefetch((const char *)blk + PREFETCH + 64, _MM_HINT_T0);
          const __m512i L = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)blk)), _mm256_loadu_si256((const __m256i *)(blk + 48)), 1);
          const __m512i H = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(blk + 32)))),
                                               _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(blk + 80))), 1);
          /* level = low two bits | bit 2: vpternlogd A | (B & C) with C the 0x04 mask (0xf8) */
          d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_ternarylogic_epi32(P2(L, 0), H3(H, 0), m4, 0xf8), x0);
          d = _mm512_dpbusd_epi32(d, _mm512_ternarylogic_epi32(P2(L, 1), H3(H, 1), m4, 0xf8), x1);
          d = _mm512_dpbusd_epi32(d, _mm512_ternarylogic_epi32(P2(L, 2), H3(H, 2), m4, 0xf8), x2);
          d = _mm512_dpbusd_epi32(d, _mm512_ternarylogic_epi32(P2(L, 3), H3(H, 3), m4, 0xf8), x3);
        }
        /* lanes 0-7 take c of block 2j, lanes 8-15 of block 2j + 1 */
        const __m512 c2 = _mm512_permutexvar_ps(halves, _mm512_castps128_ps512(_mm_castpd_ps(_mm_load_sd((const double *)(cs + (size_t)i * cstride + 2 * j)))));
        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), c2, acc[i]);
      }
    }
    if (!paired) {
      const __m512i m15 = _mm512_set1_epi8(15);
      for (int b = 0; b < full; b++) {
        const int8_t *xq = a->xq + (size_t)b * LB_BLOCK;
        const __m512i x0 = _mm512_loadu_si512(xq), x1 = _mm512_loadu_si512(xq + 64);
        _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) {
          const uint8_t *blk = rp[i] + (size_t)b * bb;
          _mm_prefetch((const char *)blk + PREFETCH, _MM_HINT_T0);
          __m512i d;
          if (bits == 4) { /* lanes 0-63: low nibbles, 64-127: high */
            const __m512i v = _mm512_loadu_si512(blk);
            d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(v, m15), x0);
            d = _mm512_dpbusd_epi32(d, _mm512_and_si512(_mm512_srli_epi16(v, 4), m15), x1);
          } else {
            _mm_prefetch((const char *)blk + PREFETCH + 64, _MM_HINT_T0);
            d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_loadu_si512(blk), x0);
            d = _mm512_dpbusd_epi32(d, _mm512_loadu_si512(blk + 64), x1);
          }
          acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_set1_ps(cs[(size_t)i * cstride + b]), acc[i]);
        }
      }
    }
    for (int b = paired ? 2 * np : full; b < blocks; b++) { /* the tail: an odd or short last block, alone */
      for (int i = 0; i < 4; i++) {
        const uint8_t *blk = b < full ? rp[i] + (size_t)b * bb : lb_block(w, rr[i], b, tmp);
        __m512i d;
        if (paired) {
          d = _mm512_zextsi256_si512(single_block(blk, a->xq + (size_t)(b >> 1) * 256, b & 1, bits));
        } else {
          const int8_t *xq = a->xq + (size_t)b * LB_BLOCK;
          const __m512i v = _mm512_loadu_si512(blk), m15 = _mm512_set1_epi8(15);
          if (bits == 4) {
            d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(v, m15), _mm512_loadu_si512(xq));
            d = _mm512_dpbusd_epi32(d, _mm512_and_si512(_mm512_srli_epi16(v, 4), m15), _mm512_loadu_si512(xq + 64));
          } else {
            d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v, _mm512_loadu_si512(xq));
            d = _mm512_dpbusd_epi32(d, _mm512_loadu_si512(blk + 64), _mm512_loadu_si512(xq + 64));
          }
        }
        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_set1_ps(cs[(size_t)i * cstride + b]), acc[i]);
      }
    }
    for (int i = 3; i >= 0; i--) y[rr[i]] = _mm512_reduce_add_ps(acc[i]);
  }
  free(fs);
}

/* The mixed format's blocks are in block order (lowbit.h): lb_block_vnni512, shared with lowbit-x86.c. */
#include "lowbit-vnni-block.h"

T_VNNI void lb_rows_vnni(const lb_uniform *w, const lb_act *a, float *y, int r0, int r1) {
  if (w->gsub > 1) { /* groups of 32 and 64: one scale per 32-column part (lowbit-x86.c) */
    lb_rows_vnni_sub(w, a, y, r0, r1);
    return;
  }
  switch (w->bits) {
  case 2: /* pair order only: an activation in block order would need the per-block planes */
    if (a->pairs) rows_w(w, a, y, r0, r1, 2);
    else lb_rows_scalar(w, a, y, r0, r1);
    break;
  case 3:
    if (a->pairs) rows_w(w, a, y, r0, r1, 3);
    else lb_rows_scalar(w, a, y, r0, r1);
    break;
  case 4: rows_w(w, a, y, r0, r1, 4); break;
  default: rows_w(w, a, y, r0, r1, 8);
  }
}

/*
 * Mixed widths (lowbit.h lb_mixed): one 128-column group per block, four rows at a time, the
 * group's width picking the block body (the same for every row: the branch predicts). Per row,
 * once: c[g] = s_w·s_x (F16C, 16 at a time) and the zero term (gathered, lowbit-x86.c); per block
 * the 16 int32 lanes become float and take c[g] by one broadcast multiply-add — the 256-bit
 * kernel folded the halves and multiplied the scales per block and row.
 */
#define MIXED4(bits)                                                                                   \
  _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) {                                                \
    const uint8_t *blk = rp[i] + w->goff[g];                                                           \
    _mm_prefetch((const char *)blk + PREFETCH, _MM_HINT_T0);                                           \
    acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lb_block_vnni512(blk, x0, x1, bits)), _mm512_set1_ps(cs[(size_t)i * ng + g]), acc[i]); \
  }

T_VNNI void lb_mixed_rows_vnni(const lb_mixed *w, const lb_act *a, float *y, int r0, int r1) {
  const int ng = w->n_groups;
  float *fs = malloc(sizeof(float) * 5 * (size_t)ng + sizeof(int) * (size_t)ng);
  if (!fs) { lb_mixed_rows_scalar(w, a, y, r0, r1); return; }
  float *cs = fs + ng; /* [4][ng] */
  int *order = (int *)(cs + 4 * (size_t)ng), start[6];
  lb_mixed_order(w, order, start);
  for (int r = r0; r < r1; r += 4) {
    int rr[4];
    for (int i = 0; i < 4; i++) rr[i] = r + i < r1 ? r + i : r1 - 1; /* short tails repeat a row */
    __m512 acc[4];
    float off[4];
    const uint8_t *rp[4];
    for (int i = 0; i < 4; i++) {
      const uint16_t *sc = w->scale + (size_t)rr[i] * ng;
      float *c = cs + (size_t)i * ng;
      for (int g = 0; g < ng; g += 16) {
        const __mmask16 m = ng - g >= 16 ? 0xffff : (__mmask16)((1u << (ng - g)) - 1);
        const __m512 f = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, sc + g));
        _mm512_mask_storeu_ps(fs + g, m, f);
        _mm512_mask_storeu_ps(c + g, m, _mm512_mul_ps(f, _mm512_maskz_loadu_ps(m, a->xs + g)));
      }
      off[i] = lb_mixed_zero_term_avx2(w, rr[i], fs, a->gx);
      rp[i] = w->q + (size_t)rr[i] * w->row_stride;
      acc[i] = _mm512_setzero_ps();
    }
#define WIDTH_LOOP(bits)                                                                               \
  for (int o = start[bits]; o < start[(bits) + 1]; o++) {                                                    \
    const int g = order[o];                                                                            \
    const int8_t *xq = a->xq + (size_t)g * LB_BLOCK;                                                   \
    const __m512i x0 = _mm512_loadu_si512(xq), x1 = _mm512_loadu_si512(xq + 64);                       \
    MIXED4(bits)                                                                                       \
  }
    WIDTH_LOOP(1)
    WIDTH_LOOP(2)
    WIDTH_LOOP(3)
    WIDTH_LOOP(4)
#undef WIDTH_LOOP
    for (int i = 3; i >= 0; i--) y[rr[i]] = _mm512_reduce_add_ps(acc[i]) - off[i];
  }
  free(fs);
}

#endif
