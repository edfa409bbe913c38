/*
 * arm64 kernel of lowbit.h: NEON dot product (sdot: four s8×s8 products into int32 per lane),
 * compiled only on aarch64 and used where the CPU reports the dot-product extension (Linux
 * hwcap, macOS sysctl). Levels of 2-4 bits are valid s8; 8-bit levels are taken as q − 128
 * and 128·Σxq added back.
 */
#include "lowbit.h"

#if defined(__aarch64__)
#include <arm_neon.h>
#if defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
int lb_cpu_dotprod(void) { return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0; }
#elif defined(__APPLE__)
#include <sys/sysctl.h>
int lb_cpu_dotprod(void) {
  int v = 0;
  size_t n = sizeof v;
  return sysctlbyname("hw.optional.arm.FEAT_DotProd", &v, &n, NULL, 0) == 0 && v;
}
#else
int lb_cpu_dotprod(void) { return 0; }
#endif

#include "arm-dot.h"
#define INL static inline __attribute__((always_inline))

#define SDOT(acc, w, x) acc = sdot(acc, vreinterpretq_s8_u8(w), x)
#define XL(o) vld1q_s8(xq + (o))
/* plane k of the 2-bit bytes v0 (lanes 0-15), v1 (16-31) */
#define P2(v, k) vandq_u8((k) ? vshrq_n_u8(v, (k) ? 2 * (k) : 1) : (v), m3)

T_DOT INL int32x4_t block_neon(const uint8_t *blk, const int8_t *xq, int bits) {
  const uint8x16_t m3 = vdupq_n_u8(3), m15 = vdupq_n_u8(15), m4 = vdupq_n_u8(4);
  int32x4_t acc = vdupq_n_s32(0);
  if (bits == 2 || bits == 3) {
    uint8x16_t v0 = vld1q_u8(blk), v1 = vld1q_u8(blk + 16);
    uint8x16_t h = bits == 3 ? vld1q_u8(blk + 32) : vdupq_n_u8(0);
    /* bit 2 of plane k: lanes 0-15 from bit 2k of h, lanes 16-31 from bit 2k+1, moved to bit 2 */
#define PL(k)                                                                                   \
  {                                                                                             \
    uint8x16_t a = P2(v0, k), b = P2(v1, k);                                                    \
    if (bits == 3) {                                                                            \
      a = vorrq_u8(a, vandq_u8(vshlq_u8(h, vdupq_n_s8(2 - 2 * (k))), m4));                     \
      b = vorrq_u8(b, vandq_u8(vshlq_u8(h, vdupq_n_s8(1 - 2 * (k))), m4));                     \
    }                                                                                           \
    SDOT(acc, a, XL(32 * (k)));                                                                 \
    SDOT(acc, b, XL(32 * (k) + 16));                                                            \
  }
    PL(0) PL(1) PL(2) PL(3)
#undef PL
  } else if (bits == 4) {
    for (int c = 0; c < 64; c += 16) {
      uint8x16_t v = vld1q_u8(blk + c);
      SDOT(acc, vandq_u8(v, m15), XL(c));
      SDOT(acc, vshrq_n_u8(v, 4), XL(64 + c));
    }
  } else {
    const uint8x16_t bias = vdupq_n_u8(128);
    for (int c = 0; c < 128; c += 16) SDOT(acc, veorq_u8(vld1q_u8(blk + c), bias), XL(c));
  }
  return acc;
}

/*
 * Groups of 32 and 64 (lowbit.h gsub > 1): the block dot with lane p = the sum of its 32-column
 * part p. Where a part's bytes sit follows the kernel order (lane_of): 2/3-bit bytes 8p..8p+7 of
 * the 32, 4-bit bytes 16p..16p+15 of the 64, 8-bit columns 32p..32p+31; separate accumulators
 * per half or part, folded by pairwise adds.
 */
T_DOT INL int32x4_t block_sub_neon(const uint8_t *blk, const int8_t *xq, int bits) {
  const uint8x16_t m3 = vdupq_n_u8(3), m15 = vdupq_n_u8(15), m4 = vdupq_n_u8(4), bias = vdupq_n_u8(128);
  const int32x4_t z = vdupq_n_s32(0);
  if (bits == 2 || bits == 3) {
    int32x4_t a0 = z, a1 = z; /* bytes 0-15 (parts 0, 1), 16-31 (parts 2, 3) */
    uint8x16_t v0 = vld1q_u8(blk), v1 = vld1q_u8(blk + 16);
    uint8x16_t h = bits == 3 ? vld1q_u8(blk + 32) : vdupq_n_u8(0);
#define PL(k)                                                                                   \
  {                                                                                             \
    uint8x16_t a = P2(v0, k), b = P2(v1, k);                                                    \
    if (bits == 3) {                                                                            \
      a = vorrq_u8(a, vandq_u8(vshlq_u8(h, vdupq_n_s8(2 - 2 * (k))), m4));                     \
      b = vorrq_u8(b, vandq_u8(vshlq_u8(h, vdupq_n_s8(1 - 2 * (k))), m4));                     \
    }                                                                                           \
    SDOT(a0, a, XL(32 * (k)));                                                                  \
    SDOT(a1, b, XL(32 * (k) + 16));                                                             \
  }
    PL(0) PL(1) PL(2) PL(3)
#undef PL
    return vpaddq_s32(a0, a1);
  }
  int32x4_t p[4];
  for (int c = 0; c < 4; c++) {
    p[c] = z;
    if (bits == 4) {
      uint8x16_t v = vld1q_u8(blk + 16 * c);
      SDOT(p[c], vandq_u8(v, m15), XL(16 * c));
      SDOT(p[c], vshrq_n_u8(v, 4), XL(64 + 16 * c));
    } else {
      SDOT(p[c], veorq_u8(vld1q_u8(blk + 32 * c), bias), XL(32 * c));
      SDOT(p[c], veorq_u8(vld1q_u8(blk + 32 * c + 16), bias), XL(32 * c + 16));
    }
  }
  return vpaddq_s32(vpaddq_s32(p[0], p[1]), vpaddq_s32(p[2], p[3]));
}

T_DOT void lb_rows_neon(const lb_uniform *w, const lb_act *a, float *y, int r0, int r1) {
  uint8_t tmp[128];
  const int gsub = w->gsub, per = 4 / gsub, ng = w->n_groups, bias = w->bits == 8 ? 128 : 0;
  for (int r = r0; r < r1; r++) {
    float32x4_t acc = vdupq_n_f32(0);
    float off = 0;
    const uint16_t *sc = w->scale + (size_t)r * ng;
    for (int b = 0; b < w->blocks; b++) {
      const uint8_t *blk = lb_block(w, r, b, tmp);
      const int8_t *xq = a->xq + (size_t)b * LB_BLOCK;
      if (gsub > 1) { /* lane p: part p of the block, in group b·gsub + p / per */
        float sv[4];
        for (int p = 0; p < 4; p++) {
          int g = b * gsub + p / per;
          sv[p] = g < ng ? lb_f16(sc[g]) * a->xs[b] : 0.0f;
          if (g < ng) off += sv[p] * (float)((lb_zero(w, r, g) - bias) * a->xsum32[4 * (size_t)b + p]);
        }
        acc = vfmaq_f32(acc, vcvtq_f32_s32(block_sub_neon(blk, xq, w->bits)), vld1q_f32(sv));
        continue;
      }
      int g = b / w->group_blocks;
      int32x4_t d = block_neon(blk, xq, w->bits);
      float s = lb_f16(sc[g]) * a->xs[b];
      int zz = lb_zero(w, r, g) - bias;
      acc = vfmaq_n_f32(acc, vcvtq_f32_s32(d), s);
      off += s * (float)(zz * a->xsum[b]);
    }
    y[r] = vaddvq_f32(acc) - off;
  }
}
#endif
