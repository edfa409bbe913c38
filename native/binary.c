/*
 * Native kernels of the binary-billm format (binary.h): the load-time layout, the per-call
 * activations, the scalar C spec of the kernels and the dispatch. Reference:
 * src/formats/binary-linear.ts (same algebra, float activations), compared in test/formats.test.ts against W·x̃ (binary.h: x̂ on non-salient columns, x on
 * salient ones). SIMD kernels: binary-x86.c (AVX-512 VNNI, AVX2), binary-arm.c (NEON dot product).
 *
 * With s = ±1 from a bit, per row and block, over non-salient columns (x̂ there, 0 on salient):
 *   P = Σ_sign x̂,  Q = Σ_split x̂,  R = Σ_{sign ∧ split} x̂,  T = Σ x̂ (row-independent)
 *   αc·(2P − T − (2R − Q)) + μc·(T − Q) + αs·(2R − Q) + μs·Q
 *     = 2αc·P + 2(αs − αc)·R + (αc − μc − αs + μs)·Q + (μc − αc)·T,
 * and over the block's salient columns (float x, compact index k, sal bits):
 *   α1·Σ s1·x + α2·Σ s2·x + μsal·Σ x = 2α1·Σ_{s1} x + 2α2·Σ_{s2} x + (μsal − α1 − α2)·Σ x.
 * P, Q, R are integer sums over each 128-column activation block, scaled by its s_x.
 */
#include "binary.h"

#include <stdlib.h>
#include <string.h>

#include "lowbit.h"
#include "pool.h"

void bn_prepare(uint64_t *planes, uint16_t *scales_t, uint32_t *sal, int32_t *sal_col, int32_t *sal_start, const uint8_t *salient,
                const uint8_t *sign, const uint8_t *split, const uint8_t *res, const uint16_t *scales, int out, int in, int block_size) {
  int n = 0, nb = (in + block_size - 1) / block_size;
  for (int b = 0; b < nb; b++) {
    sal_start[b] = n;
    int c1 = (b + 1) * block_size < in ? (b + 1) * block_size : in;
    for (int j = b * block_size; j < c1; j++)
      if ((salient[j >> 3] >> (j & 7)) & 1) sal_col[n++] = j;
  }
  sal_start[nb] = n;
  const size_t rb = (size_t)(in + 7) / 8, srb = (size_t)(n + 7) / 8, quads = (size_t)(in + 127) / 128 * 32;
  memset(planes, 0, bn_planes_len(out, in) * 8);
  memset(scales_t, 0, bn_scales_len(out, in, block_size) * 2);
  for (int r = 0; r < out; r++) {
    const int g = r >> 4, i = r & 15;
    uint64_t *pg = planes + (size_t)g * quads * 2;
    /* one byte of a file row is two column quads: its low nibble and its high one */
    for (size_t m = 0; m < rb; m++) {
      uint64_t s = sign[r * rb + m], p = split[r * rb + m];
      pg[4 * m] |= (s & 15) << (4 * i), pg[4 * m + 2] |= (s >> 4) << (4 * i);
      pg[4 * m + 1] |= (p & 15) << (4 * i), pg[4 * m + 3] |= (p >> 4) << (4 * i);
    }
    for (int b = 0; b < nb; b++)
      for (int s = 0; s < BN_NS; s++) scales_t[(((size_t)g * nb + b) * BN_NS + s) * 16 + i] = scales[((size_t)r * nb + b) * BN_NS + s];
  }
  if (n == 0) return;
  memset(sal, 0, bn_sal_len(out, n) * 4);
  for (int r = 0; r < out; r++)
    for (int k = 0; k < n; k++) {
      int j = sal_col[k];
      uint32_t s1 = (sign[r * rb + (j >> 3)] >> (j & 7)) & 1, s2 = (res[r * srb + (k >> 3)] >> (k & 7)) & 1;
      sal[(size_t)(r >> 4) * n + k] |= s1 << (r & 15) | s2 << (16 + (r & 15));
    }
}

static inline float scale_at(const bn_tensor *w, int r, int b, int s) {
  return lb_f16(w->scales[(((size_t)(r >> 4) * w->n_blocks + b) * BN_NS + s) * 16 + (r & 15)]);
}

/* Bit of row r, column j of plane p (0 sign, 1 split). */
static inline int plane_bit(const bn_tensor *w, int r, int j, int p) {
  return (int)((w->planes[((size_t)(r >> 4) * w->quads + (j >> 2)) * 2 + p] >> (4 * (r & 15) + (j & 3))) & 1);
}

static void rows_scalar(const bn_tensor *w, const bn_act *a, float *y, int g0, int g1) {
  const int cpb = w->block_size / 128, r1 = 16 * g1 < w->out ? 16 * g1 : w->out;
  for (int r = 16 * g0; r < r1; r++) {
    float acc = 0;
    for (int b = 0; b < w->n_blocks; b++) {
      float s[BN_NS], P = 0, Q = 0, R = 0;
      for (int i = 0; i < BN_NS; i++) s[i] = scale_at(w, r, b, i);
      for (int c = b * cpb; c < (b + 1) * cpb && c < w->chunks; c++) {
        int32_t p = 0, q = 0, rr = 0;
        for (int j = c * 128; j < c * 128 + 128; j++) {
          int xv = a->xq[j], bs = plane_bit(w, r, j, 0), bp = plane_bit(w, r, j, 1);
          p += bs * xv, q += bp * xv, rr += (bs & bp) * xv;
        }
        P += a->xs[c] * (float)p, Q += a->xs[c] * (float)q, R += a->xs[c] * (float)rr;
      }
      acc += 2 * s[0] * P + 2 * (s[2] - s[0]) * R + (s[0] - s[1] - s[2] + s[3]) * Q + (s[1] - s[0]) * a->tsum[b];
      float v1 = 0, v2 = 0;
      for (int k = w->sal_start[b]; k < w->sal_start[b + 1]; k++) {
        uint32_t m = w->sal[(size_t)(r >> 4) * w->n_sal + k] >> (r & 15);
        if (m & 1) v1 += a->xsal[k];
        if ((m >> 16) & 1) v2 += a->xsal[k];
      }
      if (w->sal_start[b + 1] > w->sal_start[b]) acc += 2 * s[4] * v1 + 2 * s[5] * v2 + (s[6] - s[4] - s[5]) * a->ssum[b];
    }
    y[r] = acc;
  }
}

/* Activations of `rows` rows in one allocation (NULL when out of memory); xsum [rows · chunks] is
 * lb_quantize_act's scratch. */
static void *act_alloc(const bn_tensor *w, int rows, bn_act *a, int32_t **xsum) {
  const size_t nq = (size_t)w->chunks * 128, per = 3 * (size_t)w->chunks + 2 * (size_t)w->n_blocks + (size_t)w->n_sal;
  char *m = malloc(rows * (nq + 4 * per) + 64);
  if (!m) return NULL;
  a->rows = rows;
  a->xq = (int8_t *)m;
  a->xs = (float *)(m + rows * nq);
  a->tsum = a->xs + (size_t)rows * w->chunks;
  a->ssum = a->tsum + (size_t)rows * w->n_blocks;
  a->xsal = a->ssum + (size_t)rows * w->n_blocks;
  *xsum = (int32_t *)(a->xsal + (size_t)rows * w->n_sal);
  return m;
}

/* The single row t of a as an activation of its own. */
static inline bn_act act_row(const bn_tensor *w, const bn_act *a, int t) {
  bn_act r = {a->xq + (size_t)t * w->chunks * 128, a->xs + (size_t)t * w->chunks, a->tsum + (size_t)t * w->n_blocks,
              a->ssum + (size_t)t * w->n_blocks, a->xsal + (size_t)t * w->n_sal, 1};
  return r;
}

typedef struct {
  const bn_tensor *w;
  const float *x;
  bn_act *a;
  int32_t *xsum;
  bn_rows_fn fn;
  float *y;
} bn_job;

/* Rows [t0, t1) of X into a: int8 over all columns in order (the reference: int8Activations with
 * no perm), then salient columns taken out as float, and the per-block sums. */
static void quant_range(void *ctx, int t0, int t1) {
  bn_job *j = ctx;
  const bn_tensor *w = j->w;
  for (int t = t0; t < t1; t++) {
    bn_act r = act_row(w, j->a, t);
    const float *x = j->x + (size_t)t * w->in;
    lb_act la = {r.xq, r.xs, j->xsum + (size_t)t * w->chunks, NULL, NULL, 0};
    lb_quantize_act(x, NULL, w->in, w->chunks, 8, NULL, &la);
    for (int k = 0; k < w->n_sal; k++) r.xq[w->sal_col[k]] = 0, r.xsal[k] = x[w->sal_col[k]];
    for (int b = 0; b < w->n_blocks; b++) {
      float ts = 0, ss = 0;
      int c0 = b * w->block_size / 128, c1 = c0 + w->block_size / 128;
      for (int c = c0; c < c1 && c < w->chunks; c++) {
        int32_t sum = 0;
        for (int i = 0; i < 128; i++) sum += r.xq[c * 128 + i];
        ts += r.xs[c] * (float)sum;
      }
      for (int k = w->sal_start[b]; k < w->sal_start[b + 1]; k++) ss += r.xsal[k];
      r.tsum[b] = ts, r.ssum[b] = ss;
    }
  }
}

static void rows_range(void *ctx, int g0, int g1) {
  bn_job *j = ctx;
  j->fn(j->w, j->a, j->y, g0, g1);
}

static bn_rows_fn rows_fn(void) {
#if defined(__x86_64__)
  const char *isa = lb_isa();
  if (!strcmp(isa, "vnni")) return bn_rows_vnni;
  if (!strcmp(isa, "avx2")) return bn_rows_avx2;
#elif defined(__aarch64__)
  if (!strcmp(lb_isa(), "neon-dotprod")) return bn_rows_neon;
#endif
  return rows_scalar;
}

int bn_gemv(const bn_tensor *w, const float *x, float *y) {
  bn_act a;
  int32_t *xsum;
  void *m = act_alloc(w, 1, &a, &xsum);
  if (!m) return 0;
  bn_job j = {w, x, &a, xsum, rows_fn(), y};
  quant_range(&j, 0, 1);
  /* below ~256k weights a thread wake costs more than it saves */
  if ((double)w->out * w->in < 262144.0) rows_range(&j, 0, w->groups);
  else pool_run(rows_range, &j, w->groups, 4); /* whole 4-group passes of the VNNI kernel per thread */
  free(m);
  return 1;
}

int bn_gemm_simd(void) {
#if defined(__x86_64__)
  return !strcmp(lb_isa(), "vnni");
#else
  return 0;
#endif
}

int bn_gemm(const bn_tensor *w, const float *x, int rows, float *y) {
#if defined(__x86_64__)
  bn_act a;
  int32_t *xsum;
  void *m = act_alloc(w, rows, &a, &xsum);
  if (!m) return 0;
  bn_job j = {w, x, &a, xsum, bn_gemm_vnni, y};
  pool_run(quant_range, &j, rows, 1);
  pool_run(rows_range, &j, w->groups, 1);
  free(m);
  return 1;
#else
  (void)w, (void)x, (void)rows, (void)y;
  return 0;
#endif
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
    float *out = j->dst + (size_t)(r - j->r0) * w->in;
    for (int b = 0; b < w->n_blocks; b++) {
      float s[BN_NS], v[4];
      for (int i = 0; i < BN_NS; i++) s[i] = scale_at(w, r, b, i);
      /* as the reference: each level summed in double, rounded once */
      v[0] = (float)(-(double)s[0] + s[1]), v[1] = (float)((double)s[0] + s[1]);
      v[2] = (float)(-(double)s[2] + s[3]), v[3] = (float)((double)s[2] + s[3]);
      int c1 = (b + 1) * w->block_size < w->in ? (b + 1) * w->block_size : w->in;
      for (int c = b * w->block_size; c < c1; c++) out[c] = v[plane_bit(w, r, c, 0) | plane_bit(w, r, c, 1) << 1];
      for (int k = w->sal_start[b]; k < w->sal_start[b + 1]; k++) {
        uint32_t m = w->sal[(size_t)(r >> 4) * w->n_sal + k] >> (r & 15);
        out[w->sal_col[k]] = (float)((double)s[4] * (m & 1 ? 1 : -1) + (double)s[5] * ((m >> 16) & 1 ? 1 : -1) + s[6]);
      }
    }
  }
}

void bn_dequant(const bn_tensor *w, float *dst, int r0, int r1) {
  dq_job j = {w, dst, r0};
  pool_run(dq_range, &j, r1 - r0, 1);
}
