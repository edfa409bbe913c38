/*
 * One 128-column block's int8 dot product on AVX-512 VNNI, shared by the pair kernels' mixed
 * path (lowbit-vnni.c) and the block-order kernels for groups of 32 and 64 (lowbit-x86.c): one
 * vpdpbusd takes two planes of a block (64 lanes), x0 and x1 the block's activation lanes 0-63
 * and 64-127; 2- and 3-bit blocks are broadcast to both halves and shifted per half (vpsrlvw /
 * vpsrlvd) so the two halves are two consecutive planes. Returns the 16 int32 lanes unfolded.
 * Include inside `#if defined(__x86_64__)` after defining T_VNNI and INL.
 */
#ifndef BITCRUSH_LOWBIT_VNNI_BLOCK_H
#define BITCRUSH_LOWBIT_VNNI_BLOCK_H
#include <immintrin.h>
#include <stdint.h>

/* 16-bit shift counts: `lo` in the low 256 bits, `hi` in the high 256. */
T_VNNI INL __m512i halves16(short lo, short hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(lo)), _mm256_set1_epi16(hi), 1);
}

T_VNNI INL __m512i lb_block_vnni512(const uint8_t *blk, __m512i x0, __m512i x1, int bits) {
  const __m512i m3 = _mm512_set1_epi8(3), m15 = _mm512_set1_epi8(15), m1 = _mm512_set1_epi8(1);
  __m512i acc = _mm512_setzero_si512();
  if (bits == 1) {
    /* quarter q of the broadcast 16 bytes gives plane 4h + q: bit 4h + q of every byte */
    __m512i hb = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)blk));
    __m512i p0 = _mm512_and_si512(_mm512_srlv_epi32(hb, _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0)), m1);
    __m512i p1 = _mm512_and_si512(_mm512_srlv_epi32(hb, _mm512_set_epi32(7, 7, 7, 7, 6, 6, 6, 6, 5, 5, 5, 5, 4, 4, 4, 4)), m1);
    acc = _mm512_dpbusd_epi32(acc, p0, x0);
    acc = _mm512_dpbusd_epi32(acc, p1, x1);
  } else if (bits == 2 || bits == 3) {
    __m512i lo = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)blk));
    __m512i p01 = _mm512_and_si512(_mm512_srlv_epi16(lo, halves16(0, 2)), m3);
    __m512i p23 = _mm512_and_si512(_mm512_srlv_epi16(lo, halves16(4, 6)), m3);
    if (bits == 3) {
      /* bit 2 of plane k: lanes 0-15 from bit 2k of the 16 high bytes, lanes 16-31 from bit 2k+1 */
      __m512i hb = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(blk + 32)));
      __m512i h01 = _mm512_and_si512(_mm512_srlv_epi32(hb, _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0)), m1);
      __m512i h23 = _mm512_and_si512(_mm512_srlv_epi32(hb, _mm512_set_epi32(7, 7, 7, 7, 6, 6, 6, 6, 5, 5, 5, 5, 4, 4, 4, 4)), m1);
      p01 = _mm512_or_si512(p01, _mm512_slli_epi16(h01, 2));
      p23 = _mm512_or_si512(p23, _mm512_slli_epi16(h23, 2));
    }
    acc = _mm512_dpbusd_epi32(acc, p01, x0);
    acc = _mm512_dpbusd_epi32(acc, p23, x1);
  } else if (bits == 4) {
    __m512i v = _mm512_loadu_si512((const void *)blk);
    acc = _mm512_dpbusd_epi32(acc, _mm512_and_si512(v, m15), x0);
    acc = _mm512_dpbusd_epi32(acc, _mm512_and_si512(_mm512_srli_epi16(v, 4), m15), x1);
  } else {
    acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512((const void *)blk), x0);
    acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512((const void *)(blk + 64)), x1);
  }
  return acc;
}
#endif
