/* The NEON binary kernel (native/binary-arm.c) against the scalar C spec on random tensors, run
 * under qemu by scripts/binary-arm-qemu.sh: exit 1 on a difference beyond 1e-5 of max |y|. */
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include "binary.h"
#include "lowbit.h"
#include "pool.h"
static uint32_t st = 1;
static uint32_t rnd(void) { st = st * 1664525u + 1013904223u; return st >> 8; }
static uint16_t f16(float f) { /* small positive/negative values, exact enough */
  if (fabsf(f) < 6.2e-5f) return 0; /* no subnormals */
  int s = f < 0; f = fabsf(f); int e = (int)floorf(log2f(f)); float m = f / ldexpf(1, e) - 1;
  if (m < 0) e--, m = f / ldexpf(1, e) - 1;
  if (m >= 1) e++, m = f / ldexpf(1, e) - 1;
  return (uint16_t)(s << 15 | (e + 15) << 10 | (int)(m * 1024)); }
int test(int out, int in, int bs, int nsal) {
  int rb = (in + 7) / 8, nb = (in + bs - 1) / bs, srb = (nsal + 7) / 8;
  uint8_t *sign = calloc(out, rb), *split = calloc(out, rb), *sal = calloc(1, rb), *res = calloc(out, srb + 1);
  uint16_t *sc = malloc(sizeof(uint16_t) * out * nb * 7);
  for (int k = 0; k < nsal;) { int j = rnd() % in; if (!((sal[j >> 3] >> (j & 7)) & 1)) { sal[j >> 3] |= 1 << (j & 7); k++; } }
  for (int r = 0; r < out; r++) for (int j = 0; j < in; j++) {
    if (rnd() & 1) sign[r * rb + j / 8] |= 1 << (j & 7);
    if (!((sal[j >> 3] >> (j & 7)) & 1) && rnd() % 10 < 3) split[r * rb + j / 8] |= 1 << (j & 7);
  }
  for (int i = 0; i < out * srb; i++) res[i] = rnd();
  for (int i = 0; i < out * nb * 7; i++) sc[i] = f16((i % 7 == 1 || i % 7 == 3 || i % 7 == 6) ? 0.01f * ((rnd() % 1000) / 1000.f - 0.5f) + 1e-4f : 0.02f + 0.08f * (rnd() % 1000) / 1000.f);
  bn_tensor w = {0};
  w.out = out, w.in = in, w.n_sal = nsal, w.block_size = bs, w.n_blocks = nb, w.groups = (out + 15) / 16, w.chunks = (in + 127) / 128, w.quads = 32 * w.chunks;
  uint64_t *pl = malloc(8 * bn_planes_len(out, in)); uint16_t *st16 = malloc(2 * bn_scales_len(out, in, bs)); uint32_t *sl = malloc(4 * bn_sal_len(out, nsal) + 4);
  int32_t *col = malloc(4 * nsal + 4), *start = malloc(4 * (nb + 1));
  bn_prepare(pl, st16, sl, col, start, sal, sign, split, res, sc, out, in, bs);
  w.planes = pl, w.scales = st16, w.sal = sl, w.sal_col = col, w.sal_start = start;
  float *x = malloc(4 * in), *y0 = malloc(4 * out), *y1 = malloc(4 * out);
  for (int j = 0; j < in; j++) x[j] = (rnd() % 2000) / 1000.f - 1;
  lb_set_isa("scalar"); bn_gemv(&w, x, y0);
  if (!lb_set_isa("neon-dotprod")) { printf("no dotprod\n"); return 1; }
  bn_gemv(&w, x, y1);
  double worst = 0, mag = 0;
  for (int r = 0; r < out; r++) { worst = fmax(worst, fabs(y0[r] - y1[r])); mag = fmax(mag, fabs(y0[r])); }
  printf("%s %dx%d b%d sal %d: max |neon - scalar| %.3g (max |y| %.3g)\n", worst <= 1e-5 * mag + 1e-6 ? "ok" : "FAIL", out, in, bs, nsal, worst, mag);
  return worst <= 1e-5 * mag + 1e-6 ? 0 : 1;
}
int main(void) {
  pool_set_threads(1);
  int bad = 0;
  bad |= test(37, 520, 128, 60); bad |= test(11, 384, 128, 200); bad |= test(130, 2100, 256, 90); bad |= test(6, 100, 128, 0); bad |= test(64, 2048, 128, 64);
  return bad;
}
