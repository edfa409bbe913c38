/* Prefill of the uniform and mixed low-bit formats (lowbit.h lb_gemm): the activation rows are
 * quantized once per call into 16-row tiles, then every thread unpacks panels of LB_GEMM_RB
 * weight rows to u8 levels (in L1) and runs the selected instruction set's panel kernel over
 * all tiles. */
#include "lowbit.h"

#include <stdlib.h>
#include <string.h>

#include "pool.h"

typedef struct {
  const float *x;
  const int32_t *perm;
  int in, bits;
  const uint8_t *widths;
  lb_gact *a;
  int ng;          /* the tensor's groups (a->n_groups is padded to blocks · gsub when gsub > 1) */
  uint8_t kord[32]; /* tile quad p holds kernel-order quad kord[p] (part order when gsub > 1, else identity) */
} quant_job;

/* Quads in part order (lb_quad_part), each part's in increasing order; identity when gsub == 1. */
static void quad_order(int bits, int gsub, uint8_t *kord) {
  int n = 0;
  for (int p = 0; p < (gsub > 1 ? 4 : 1); p++)
    for (int k = 0; k < 32; k++)
      if (gsub == 1 || lb_quad_part(k, bits) == p) kord[n++] = (uint8_t)k;
}

/* Rows [t0, t1) of X: each through lb_quantize_act (the matvec's quantization), then into its tile lane. */
static void quant_range(void *ctx, int t0, int t1) {
  quant_job *j = ctx;
  lb_gact *a = j->a;
  const int blocks = a->blocks, ng = a->n_groups;
  char *m = malloc((size_t)blocks * (LB_BLOCK + 24));
  if (!m) return; /* lb_gemm checked a larger allocation; a failure here leaves zero rows */
  lb_act r = {(int8_t *)m, (float *)(m + (size_t)blocks * LB_BLOCK), (int32_t *)(m + (size_t)blocks * (LB_BLOCK + 4)), NULL,
              (int32_t *)(m + (size_t)blocks * (LB_BLOCK + 8)), 0};
  for (int t = t0; t < t1; t++) {
    lb_quantize_act(j->x + (size_t)t * j->in, j->perm, j->in, blocks, j->bits, j->widths, &r);
    const int tile = t >> 4, lane = t & 15;
    for (int b = 0; b < blocks; b++) {
      int8_t *dst = a->xp + ((size_t)tile * blocks + b) * 2048 + 4 * lane;
      const int8_t *src = r.xq + (size_t)b * LB_BLOCK;
      for (int k = 0; k < 32; k++) memcpy(dst + 64 * k, src + 4 * j->kord[k], 4);
      a->xs[((size_t)tile * blocks + b) * 16 + lane] = r.xs[b];
    }
    if (a->gsub > 1) { /* group g = part of block g / gsub: s_x · its Σ xq; padded groups stay 0 */
      const int gs = a->gsub, per = 4 / gs;
      for (int g = 0; g < j->ng; g++) {
        int b = g / gs, s = g % gs, sum = 0;
        for (int q = 0; q < per; q++) sum += r.xsum32[4 * b + per * s + q];
        a->gx[((size_t)tile * ng + g) * 16 + lane] = r.xs[b] * (float)sum;
      }
    } else for (int g = 0; g < ng; g++) {
      float s = 0;
      for (int b = g * a->group_blocks; b < blocks && b < (g + 1) * a->group_blocks; b++) s += r.xs[b] * (float)r.xsum[b];
      a->gx[((size_t)tile * ng + g) * 16 + lane] = s;
    }
  }
  free(m);
}

/* Tiles of X in one allocation (zeroed: the padding rows contribute nothing); NULL when out of memory. */
static void *gact_alloc(lb_gact *a, int rows, int blocks, int ng, int gb, int gsub) {
  a->rows = rows, a->tiles = (rows + 15) / 16, a->blocks = blocks, a->n_groups = ng, a->group_blocks = gb, a->gsub = gsub;
  size_t nx = (size_t)a->tiles * blocks * 2048, ns = (size_t)a->tiles * blocks * 16, ngx = (size_t)a->tiles * ng * 16;
  char *m = calloc(1, nx + 4 * (ns + ngx) + 64);
  if (!m) return NULL;
  a->xp = (int8_t *)m;
  a->xs = (float *)(m + nx);
  a->gx = a->xs + ns;
  return m;
}

/* A weight source: unpacks panel rows into wu and their scales into sw, szw. */
typedef struct {
  const lb_uniform *u;
  const lb_mixed *m;
  const lb_gact *a;
  float *y;
  lb_gemm_panel_fn panel;
  lb_unpack_fn unpack;
  const uint8_t *kord; /* quant_job's */
} gemm_job;

static void unpack_row(const gemm_job *j, int r, uint8_t *wu, float *sw, float *szw) {
  const int blocks = j->a->blocks;
  if (j->u) {
    const lb_uniform *w = j->u;
    uint8_t tmp[128], lv[128];
    for (int b = 0; b < blocks; b++) {
      uint8_t *dst = wu + (size_t)b * LB_BLOCK;
      if (w->gsub == 1) {
        j->unpack(lb_block(w, r, b, tmp), w->bits, dst);
        continue;
      }
      j->unpack(lb_block(w, r, b, tmp), w->bits, lv); /* quads in the tiles' part order */
      for (int k = 0; k < 32; k++) memcpy(dst + 4 * k, lv + 4 * j->kord[k], 4);
    }
    for (int g = 0; g < w->n_groups; g++) { /* sw, szw past n_groups (padding) stay zero */
      sw[g] = lb_f16(w->scale[(size_t)r * w->n_groups + g]);
      szw[g] = sw[g] * (float)lb_zero(w, r, g);
    }
  } else {
    const lb_mixed *w = j->m;
    const uint8_t *row = w->q + (size_t)r * w->row_stride;
    for (int g = 0; g < w->n_groups; g++) {
      j->unpack(row + w->goff[g], w->widths[g], wu + (size_t)g * LB_BLOCK);
      sw[g] = lb_f16(w->scale[(size_t)r * w->n_groups + g]);
      szw[g] = sw[g] * lb_mixed_zero(w, r, g);
    }
  }
}

static void gemm_range(void *ctx, int r0, int r1) {
  gemm_job *j = ctx;
  const lb_gact *a = j->a;
  const size_t ws = (size_t)a->blocks * LB_BLOCK, ng = (size_t)a->n_groups;
  const int out = j->u ? j->u->out : j->m->out;
  char *m = calloc(1, LB_GEMM_RB * (ws + 8 * ng) + 64);
  if (!m) return; /* see quant_range */
  uint8_t *wu = (uint8_t *)m;
  float *sw = (float *)(m + LB_GEMM_RB * ws), *szw = sw + LB_GEMM_RB * ng;
  for (int r = r0; r < r1; r += LB_GEMM_RB) {
    int nr = r1 - r < LB_GEMM_RB ? r1 - r : LB_GEMM_RB;
    for (int i = 0; i < nr; i++) unpack_row(j, r + i, wu + i * ws, sw + i * ng, szw + i * ng);
    j->panel(wu, sw, szw, a, j->y, out, r, nr);
  }
  free(m);
}

static int run(const lb_uniform *u, const lb_mixed *mx, const int32_t *perm, const float *x, int rows, float *y) {
  const int in = u ? u->in : mx->in, out = u ? u->out : mx->out;
  const int blocks = u ? u->blocks : mx->n_groups, gb = u ? u->group_blocks : 1, gsub = u ? u->gsub : 1;
  const int ng = u ? u->n_groups : mx->n_groups, ngp = gsub > 1 ? blocks * gsub : ng;
  lb_gact a;
  void *mem = gact_alloc(&a, rows, blocks, ngp, gb, gsub);
  if (!mem) return 0;
  a.eight = u && u->bits == 8;
  quant_job q = {x, perm, in, u ? u->bits : 0, u ? NULL : mx->widths, &a, ng, {0}};
  quad_order(u ? u->bits : 1, gsub, q.kord);
  pool_run(quant_range, &q, rows, 1);
  gemm_job j = {u, mx, &a, y, lb_gemm_panel(), lb_unpack(), q.kord};
  pool_run(gemm_range, &j, out, LB_GEMM_RB);
  free(mem);
  return 1;
}

int lb_gemm(const lb_uniform *w, const int32_t *perm, const float *x, int rows, float *y) { return run(w, NULL, perm, x, rows, y); }

int lb_gemm_mixed(const lb_mixed *w, const float *x, int rows, float *y) { return run(NULL, w, NULL, x, rows, y); }
