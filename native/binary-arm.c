/*
 * arm64 kernel of the binary-billm format (binary.h layout, binary.c algebra): NEON dot product,
 * used where the CPU reports it (lowbit.c's "neon-dotprod"). A 64-bit plane word holds 16 rows
 * × 4 columns; each quarter (rows 4s..4s+3, bits 16s..16s+15) becomes a 0xff/0 byte vector by
 * one table lookup (byte n takes the word's byte 2s + n/8) and a bit test, byte n = row 4s + n/4,
 * column n % 4: the lane layout of sdot. As on x86, the sign mask selects x̂ (P with ones), the
 * split bits as 0/1 bytes give R (against the selected x̂) and Q. Checked against the scalar
 * spec under qemu (scripts/binary-arm-qemu.sh); its speed is not measured on arm64 hardware.
 */
#include "binary.h"

#if defined(__aarch64__)
#include <string.h>

#include "arm-dot.h"
#include "lowbit.h"

static inline int32_t load32(const int8_t *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* Four rows' float16 scale i of row group g, block b (rows 4s..4s+3). */
static inline float32x4_t scale4(const bn_tensor *w, int g, int b, int i, int s) {
  return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(w->scales + (((size_t)g * w->n_blocks + b) * BN_NS + i) * 16 + 4 * s)));
}

T_DOT static void group_neon(const bn_tensor *w, const bn_act *a, float *y, int g) {
  const uint8x16_t bit = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128}, ones = vdupq_n_u8(1);
  const int8x16_t ones8 = vdupq_n_s8(1);
  const uint32x4_t lane = {1, 2, 4, 8};
  uint8x16_t pick[4];
  for (int s = 0; s < 4; s++) {
    uint8_t p[16];
    for (int n = 0; n < 16; n++) p[n] = (uint8_t)(2 * s + n / 8);
    pick[s] = vld1q_u8(p);
  }
  const int cpb = w->block_size / 128;
  const uint64_t *pl = w->planes + (size_t)g * w->quads * 2;
  float32x4_t acc[4];
  for (int s = 0; s < 4; s++) acc[s] = vdupq_n_f32(0);
  for (int b = 0; b < w->n_blocks; b++) {
    const int c1 = (b + 1) * cpb < w->chunks ? (b + 1) * cpb : w->chunks;
    for (int c = b * cpb; c < c1; c++) {
      int32x4_t P[4], Q[4], R[4];
      for (int s = 0; s < 4; s++) P[s] = Q[s] = R[s] = vdupq_n_s32(0);
      const int8_t *xq = a->xq + (size_t)c * 128;
      const uint64_t *wq = pl + (size_t)c * 64;
      for (int q = 0; q < 32; q++, wq += 2) {
        const int8x16_t xb = vreinterpretq_s8_s32(vdupq_n_s32(load32(xq + 4 * q)));
        const uint8x16_t sw = vcombine_u8(vcreate_u8(wq[0]), vdup_n_u8(0)), tw = vcombine_u8(vcreate_u8(wq[1]), vdup_n_u8(0));
        for (int s = 0; s < 4; s++) {
          const int8x16_t xs = vandq_s8(vreinterpretq_s8_u8(vtstq_u8(vqtbl1q_u8(sw, pick[s]), bit)), xb);
          const int8x16_t wt = vreinterpretq_s8_u8(vandq_u8(vtstq_u8(vqtbl1q_u8(tw, pick[s]), bit), ones));
          P[s] = sdot(P[s], xs, ones8);
          R[s] = sdot(R[s], wt, xs);
          Q[s] = sdot(Q[s], wt, xb);
        }
      }
      const float32x4_t sx = vdupq_n_f32(a->xs[c]);
      for (int s = 0; s < 4; s++) {
        float32x4_t sc[BN_NS];
        for (int i = 0; i < BN_NS; i++) sc[i] = scale4(w, g, b, i, s);
        const float32x4_t cp = vaddq_f32(sc[0], sc[0]), cr = vmulq_n_f32(vsubq_f32(sc[2], sc[0]), 2);
        const float32x4_t cq = vaddq_f32(vsubq_f32(sc[0], sc[1]), vsubq_f32(sc[3], sc[2]));
        float32x4_t v = vmulq_f32(cp, vcvtq_f32_s32(P[s]));
        v = vfmaq_f32(v, cr, vcvtq_f32_s32(R[s]));
        v = vfmaq_f32(v, cq, vcvtq_f32_s32(Q[s]));
        acc[s] = vfmaq_f32(acc[s], v, sx);
        if (c != c1 - 1) continue;
        acc[s] = vfmaq_n_f32(acc[s], vsubq_f32(sc[1], sc[0]), a->tsum[b]);
        const int k0 = w->sal_start[b], k1 = w->sal_start[b + 1];
        if (k1 == k0) continue;
        float32x4_t v1 = vdupq_n_f32(0), v2 = v1;
        const uint32_t *sal = w->sal + (size_t)g * w->n_sal;
        for (int k = k0; k < k1; k++) {
          const float32x4_t xk = vdupq_n_f32(a->xsal[k]);
          const uint32x4_t m1 = vtstq_u32(vdupq_n_u32(sal[k] >> (4 * s)), lane), m2 = vtstq_u32(vdupq_n_u32(sal[k] >> (16 + 4 * s)), lane);
          v1 = vaddq_f32(v1, vreinterpretq_f32_u32(vandq_u32(m1, vreinterpretq_u32_f32(xk))));
          v2 = vaddq_f32(v2, vreinterpretq_f32_u32(vandq_u32(m2, vreinterpretq_u32_f32(xk))));
        }
        acc[s] = vfmaq_f32(acc[s], vaddq_f32(sc[4], sc[4]), v1);
        acc[s] = vfmaq_f32(acc[s], vaddq_f32(sc[5], sc[5]), v2);
        acc[s] = vfmaq_n_f32(acc[s], vsubq_f32(sc[6], vaddq_f32(sc[4], sc[5])), a->ssum[b]);
      }
    }
  }
  float out[16];
  for (int s = 0; s < 4; s++) vst1q_f32(out + 4 * s, acc[s]);
  const int n = w->out - 16 * g < 16 ? w->out - 16 * g : 16;
  memcpy(y + 16 * g, out, (size_t)n * 4);
}

void bn_rows_neon(const bn_tensor *w, const bn_act *a, float *y, int g0, int g1) {
  for (int g = g0; g < g1; g++) group_neon(w, a, y, g);
}
#endif
