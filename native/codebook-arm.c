/*
 * arm64 kernels of cb_gemm8 (codebook.h; the scalar spec is codebook-lut8.c): a 256-entry int8
 * table row is four 64-byte quarters; vqtbl4 looks 16 codes up in the first (indices past 63 give
 * 0) and three vqtbx4 in the others with the code minus 64·k (lanes out of range keep their
 * byte). NEON is part of every arm64 CPU, so no feature check. The tile's 64 bytes per index are
 * split into even and odd bytes (vuzp), which the lane order (CB_LANE_ROW) makes rows 0-31 and
 * 32-63, and widened into int16 lanes of consecutive rows.
 */
#include "codebook.h"

#if defined(__aarch64__)
#include <arm_neon.h>

int cb_arm_level(void) { return 2; }

static float table_neon(const cb_tensor *w, const float *x, float *t, int i0, int i1) {
  int g = w->g, nG = w->nG;
  float32x4_t mx = vdupq_n_f32(0);
  for (int i = i0; i < i1; i++) {
    const float *c = w->cbt + (size_t)(i / nG) * g * 256;
    const float *xj = x + (size_t)(i % nG) * g;
    float *ti = t + (size_t)(i - i0) * 256;
    for (int k = 0; k < 256; k += 16) {
      float32x4_t a0 = vdupq_n_f32(0), a1 = a0, a2 = a0, a3 = a0;
      for (int u = 0; u < g; u++) {
        const float *cu = c + (size_t)u * 256 + k;
        a0 = vfmaq_n_f32(a0, vld1q_f32(cu), xj[u]);
        a1 = vfmaq_n_f32(a1, vld1q_f32(cu + 4), xj[u]);
        a2 = vfmaq_n_f32(a2, vld1q_f32(cu + 8), xj[u]);
        a3 = vfmaq_n_f32(a3, vld1q_f32(cu + 12), xj[u]);
      }
      vst1q_f32(ti + k, a0), vst1q_f32(ti + k + 4, a1), vst1q_f32(ti + k + 8, a2), vst1q_f32(ti + k + 12, a3);
      mx = vmaxq_f32(mx, vmaxq_f32(vmaxq_f32(vabsq_f32(a0), vabsq_f32(a1)), vmaxq_f32(vabsq_f32(a2), vabsq_f32(a3))));
    }
  }
  return vmaxvq_f32(mx);
}

static void quant_neon(int8_t *q, const float *t, float inv, int count) {
  for (int i = 0; i < count; i += 16) {
    int32x4_t a = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(t + i), inv)); /* nearest, ties to even */
    int32x4_t b = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(t + i + 4), inv));
    int32x4_t c = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(t + i + 8), inv));
    int32x4_t d = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(t + i + 12), inv));
    int16x8_t ab = vcombine_s16(vqmovn_s32(a), vqmovn_s32(b)), cd = vcombine_s16(vqmovn_s32(c), vqmovn_s32(d));
    vst1q_s8(q + i, vcombine_s8(vqmovn_s16(ab), vqmovn_s16(cd)));
  }
}

static inline int8x16_t lut_neon(const int8x16x4_t *tb, uint8x16_t idx) {
  const uint8x16_t k64 = vdupq_n_u8(64);
  int8x16_t r = vqtbl4q_s8(tb[0], idx);
  idx = vsubq_u8(idx, k64);
  r = vqtbx4q_s8(r, tb[1], idx);
  idx = vsubq_u8(idx, k64);
  r = vqtbx4q_s8(r, tb[2], idx);
  idx = vsubq_u8(idx, k64);
  return vqtbx4q_s8(r, tb[3], idx);
}

static inline void flush8(float *y, int16x8_t e, float d) {
  float32x4_t f0 = vcvtq_f32_s32(vmovl_s16(vget_low_s16(e))), f1 = vcvtq_f32_s32(vmovl_high_s16(e));
  vst1q_f32(y, vfmaq_n_f32(vld1q_f32(y), f0, d));
  vst1q_f32(y + 4, vfmaq_n_f32(vld1q_f32(y + 4), f1, d));
}

static void tiles_neon(const cb_look *L, int t0, int t1, int s0, int s1) {
  const cb_tensor *w = L->w;
  int n = L->n;
  for (int s = s0; s < s1; s++) { /* the slice's table rows stay in L1 while the tiles pass */
    int i0, i1;
    cb_slice(L, s, &i0, &i1);
    for (int a = 0; a < L->A; a++) { /* a's slice of table (8 KiB) stays in L1 */
      const int8_t *q = L->q + (size_t)a * n * 256;
      for (int t = t0; t < t1; t++) {
        const uint8_t *c = w->codes + (size_t)t * n * CB_TILE;
        int16x8_t acc[8]; /* rows 8p..8p+7 */
        for (int p = 0; p < 8; p++) acc[p] = vdupq_n_s16(0);
        for (int i = i0; i < i1; i++) {
          const int8_t *qi = q + (size_t)i * 256;
          int8x16x4_t tb[4] = {vld1q_s8_x4(qi), vld1q_s8_x4(qi + 64), vld1q_s8_x4(qi + 128), vld1q_s8_x4(qi + 192)};
          const uint8_t *ci = c + (size_t)i * CB_TILE;
          int8x16_t v0 = lut_neon(tb, vld1q_u8(ci)), v1 = lut_neon(tb, vld1q_u8(ci + 16));
          int8x16_t v2 = lut_neon(tb, vld1q_u8(ci + 32)), v3 = lut_neon(tb, vld1q_u8(ci + 48));
          int8x16_t r0 = vuzp1q_s8(v0, v1), r32 = vuzp2q_s8(v0, v1); /* rows 0-15, rows 32-47 */
          int8x16_t r16 = vuzp1q_s8(v2, v3), r48 = vuzp2q_s8(v2, v3);
          acc[0] = vaddw_s8(acc[0], vget_low_s8(r0)), acc[1] = vaddw_high_s8(acc[1], r0);
          acc[2] = vaddw_s8(acc[2], vget_low_s8(r16)), acc[3] = vaddw_high_s8(acc[3], r16);
          acc[4] = vaddw_s8(acc[4], vget_low_s8(r32)), acc[5] = vaddw_high_s8(acc[5], r32);
          acc[6] = vaddw_s8(acc[6], vget_low_s8(r48)), acc[7] = vaddw_high_s8(acc[7], r48);
        }
        float d = L->d[(size_t)a * L->nsl + s];
        float *y = L->y + (size_t)a * w->out + (size_t)t * CB_TILE;
        for (int p = 0; p < 8; p++) flush8(y + 8 * p, acc[p], d);
      }
    }
  }
}

void cb_arm_kernels(cb_kernels *k) { *k = (cb_kernels){table_neon, quant_neon, tiles_neon, NULL}; }
#endif
