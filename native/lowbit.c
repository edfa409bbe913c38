/* Portable parts of the uniform low-bit kernels (lowbit.h): activation quantization, the scalar
 * kernel (the fallback, and the specification the SIMD files follow), dispatch, load repack. */
#include "lowbit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

void lb_quantize_act(const float *x, const int32_t *perm, int in, int blocks, int bits0, const uint8_t *widths, lb_act *a) {
#if defined(__x86_64__)
  if (lb_cpu_avx2()) {
    lb_quantize_act_avx2(x, perm, in, blocks, bits0, widths, a);
    return;
  }
#endif
  lb_quantize_act_body(x, perm, in, blocks, bits0, widths, a);
}

/* Level at kernel-order lane l of a block (layout in lowbit.h). */
static inline int level_at(const uint8_t *blk, int l, int bits) {
  switch (bits) {
  case 1: return (blk[l & 15] >> (l >> 4)) & 1;
  case 2: return (blk[l & 31] >> (2 * (l >> 5))) & 3;
  case 3: {
    int k = l >> 5, i = l & 31;
    int hi = (blk[32 + (i & 15)] >> (2 * k + (i >> 4))) & 1;
    return ((blk[i] >> (2 * k)) & 3) | hi << 2;
  }
  case 4: return (blk[l & 63] >> (4 * (l >> 6))) & 15;
  default: return blk[l];
  }
}

/* Σ xq over the 32-column parts of group s of block b (gsub > 1). */
static inline int32_t part_xsum(const lb_act *a, int b, int s, int gsub) {
  const int32_t *p = a->xsum32 + 4 * (size_t)b;
  return gsub == 4 ? p[s] : p[2 * s] + p[2 * s + 1];
}

void lb_rows_scalar(const lb_uniform *w, const lb_act *a, float *y, int r0, int r1) {
  uint8_t tmp[128];
  const int gsub = w->gsub, gcols = LB_BLOCK / gsub;
  for (int r = r0; r < r1; r++) {
    float acc = 0;
    for (int b = 0; b < w->blocks; b++) {
      const uint8_t *blk = lb_block(w, r, b, tmp);
      const int8_t *xq = a->xq + (size_t)b * LB_BLOCK;
      if (gsub == 1) {
        int g = b / w->group_blocks;
        int32_t d = 0;
        for (int l = 0; l < LB_BLOCK; l++) d += level_at(blk, l, w->bits) * xq[l];
        d -= lb_zero(w, r, g) * a->xsum[b];
        acc += (float)d * (a->xs[b] * lb_f16(w->scale[(size_t)r * w->n_groups + g]));
        continue;
      }
      /* groups of 32 or 64 columns: one integer dot per group of the block */
      int32_t d[4] = {0, 0, 0, 0};
      for (int c = 0; c < LB_BLOCK; c++) {
        int l = lane_of(c, w->bits);
        d[c / gcols] += level_at(blk, l, w->bits) * xq[l];
      }
      for (int s = 0; s < gsub && b * gsub + s < w->n_groups; s++) {
        int g = b * gsub + s;
        d[s] -= lb_zero(w, r, g) * part_xsum(a, b, s, gsub);
        acc += (float)d[s] * (a->xs[b] * lb_f16(w->scale[(size_t)r * w->n_groups + g]));
      }
    }
    y[r] = acc;
  }
}

static lb_rows_fn rows_fn;
static const char *isa_name;

static void pick_default(void) {
  rows_fn = lb_rows_scalar;
  isa_name = "scalar";
#if defined(__x86_64__)
  if (lb_cpu_vnni()) rows_fn = lb_rows_vnni, isa_name = "vnni";
  else if (lb_cpu_avx2()) rows_fn = lb_rows_avx2, isa_name = "avx2";
#elif defined(__aarch64__)
  if (lb_cpu_dotprod()) rows_fn = lb_rows_neon, isa_name = "neon-dotprod";
#endif
}

const char *lb_isa(void) {
  if (!rows_fn) pick_default();
  return isa_name;
}

int lb_set_isa(const char *name) {
  if (!rows_fn) pick_default();
  if (!strcmp(name, "scalar")) { rows_fn = lb_rows_scalar, isa_name = "scalar"; return 1; }
#if defined(__x86_64__)
  if (!strcmp(name, "avx2") && lb_cpu_avx2()) { rows_fn = lb_rows_avx2, isa_name = "avx2"; return 1; }
  if (!strcmp(name, "vnni") && lb_cpu_vnni()) { rows_fn = lb_rows_vnni, isa_name = "vnni"; return 1; }
#elif defined(__aarch64__)
  if (!strcmp(name, "neon-dotprod") && lb_cpu_dotprod()) { rows_fn = lb_rows_neon, isa_name = "neon-dotprod"; return 1; }
#endif
  if (!strcmp(name, "auto")) { pick_default(); return 1; }
  return 0;
}

typedef struct {
  const lb_uniform *w;
  const lb_act *a;
  float *y;
} gemv_job;

static void gemv_range(void *ctx, int r0, int r1) {
  gemv_job *j = ctx;
  rows_fn(j->w, j->a, j->y, r0, r1);
}

int lb_pairs(int bits) {
  if (!rows_fn) pick_default();
#if defined(__x86_64__)
  return rows_fn == lb_rows_vnni && (bits == 2 || bits == 3);
#else
  (void)bits;
  return 0;
#endif
}

void lb_gemv(const lb_uniform *w, lb_act *a, float *y) {
  if (!rows_fn) pick_default();
  if (w->gsub > 1) /* groups inside blocks: the block's s_x times the group's Σ xq */
    for (int g = 0; g < w->n_groups; g++) a->gx[g] = a->xs[g / w->gsub] * (float)part_xsum(a, g / w->gsub, g % w->gsub, w->gsub);
  else for (int g = 0; g < w->n_groups; g++) {
    float s = 0;
    for (int b = g * w->group_blocks; b < w->blocks && b < (g + 1) * w->group_blocks; b++) s += a->xs[b] * (float)a->xsum[b];
    a->gx[g] = s;
  }
  gemv_job j = {w, a, y};
  /* below ~256k weights a thread wake costs more than it saves */
  if ((double)w->out * w->in < 262144.0) gemv_range(&j, 0, w->out);
  else pool_run(gemv_range, &j, w->out, 4);
}

/* Levels of row r in column order into lv [in]: the file's bitstream (2, 4, 8 bits), or lanes of the 3-bit layout. */
static void row_levels(const lb_uniform *w, int r, uint8_t *lv) {
  const uint8_t *row = w->q + (size_t)r * w->row_stride;
  switch (w->bits) {
  case 2:
    for (int c = 0; c < w->in; c++) lv[c] = (row[c >> 2] >> (2 * (c & 3))) & 3;
    break;
  case 4:
    for (int c = 0; c < w->in; c++) lv[c] = (row[c >> 1] >> (4 * (c & 1))) & 15;
    break;
  case 8:
    memcpy(lv, row, (size_t)w->in);
    break;
  default:
    for (int c = 0; c < w->in; c++) lv[c] = (uint8_t)level_at(row + (size_t)(c / LB_BLOCK) * 48, lane_of(c % LB_BLOCK, 3), 3);
  }
}

typedef struct {
  const lb_uniform *w;
  const int32_t *perm;
  float *dst;
  int r0;
} dequant_job;

static void dequant_range(void *ctx, int i0, int i1) {
  dequant_job *j = ctx;
  const lb_uniform *w = j->w;
  uint8_t *lv = malloc((size_t)w->in);
  if (!lv) return; /* leaves the rows as they were: the caller checked sizes, malloc of a row cannot fail in practice */
  int gs = w->gsub > 1 ? LB_BLOCK / w->gsub : w->group_blocks * LB_BLOCK;
  for (int r = j->r0 + i0; r < j->r0 + i1; r++) {
    row_levels(w, r, lv);
    float *out = j->dst + (size_t)(r - j->r0) * w->in;
    for (int g = 0; g < w->n_groups; g++) {
      float s = lb_f16(w->scale[(size_t)r * w->n_groups + g]), z = (float)lb_zero(w, r, g);
      int c1 = (g + 1) * gs < w->in ? (g + 1) * gs : w->in;
      if (j->perm)
        for (int c = g * gs; c < c1; c++) out[j->perm[c]] = s * ((float)lv[c] - z);
      else
        for (int c = g * gs; c < c1; c++) out[c] = s * ((float)lv[c] - z);
    }
  }
  free(lv);
}

void lb_dequant_rows(const lb_uniform *w, const int32_t *perm, float *dst, int r0, int r1) {
  dequant_job j = {w, perm, dst, r0};
  pool_run(dequant_range, &j, r1 - r0, 1);
}

/* One 128-column block of 3-bit levels: the file's bitstream (48 bytes, columns past n zeroed)
 * into the kernel layout (lowbit.h): the low two bits are the 2-bit bitstream of the same
 * columns, bit 2 of column c is bit 2·(c & 3) + (c >> 6) of byte 32 + ((c >> 2) & 15). */
static void repack3_block(const uint8_t *src, int n, uint8_t *dst) {
  uint8_t lv[LB_BLOCK];
  for (int e = 0; e < 16; e++) { /* eight levels per three bytes */
    uint32_t v = src[3 * e] | (uint32_t)src[3 * e + 1] << 8 | (uint32_t)src[3 * e + 2] << 16;
    for (int j = 0; j < 8; j++) lv[8 * e + j] = (uint8_t)((v >> (3 * j)) & 7);
  }
  for (int c = n; c < LB_BLOCK; c++) lv[c] = 0;
  for (int i = 0; i < 32; i++)
    dst[i] = (uint8_t)((lv[4 * i] & 3) | (lv[4 * i + 1] & 3) << 2 | (lv[4 * i + 2] & 3) << 4 | (lv[4 * i + 3] & 3) << 6);
  for (int j = 0; j < 16; j++) {
    unsigned h = 0;
    for (int k = 0; k < 4; k++) h |= (unsigned)(lv[4 * j + k] >> 2) << (2 * k) | (unsigned)(lv[4 * (j + 16) + k] >> 2) << (2 * k + 1);
    dst[32 + j] = (uint8_t)h;
  }
}

void lb_repack3(uint8_t *dst, const uint8_t *src, int out, int in) {
  size_t src_stride = ((size_t)in * 3 + 7) / 8;
  int blocks = (in + LB_BLOCK - 1) / LB_BLOCK;
  uint8_t tmp[48];
  for (int r = 0; r < out; r++) {
    const uint8_t *s = src + (size_t)r * src_stride;
    uint8_t *d = dst + (size_t)r * blocks * 48;
    for (int b = 0; b < blocks; b++) {
      size_t off = (size_t)b * 48; /* a block's 384 bits start on a byte */
      int n = in - b * LB_BLOCK < LB_BLOCK ? in - b * LB_BLOCK : LB_BLOCK;
      const uint8_t *bs = s + off;
      if (off + 48 > src_stride) { /* the short last block: its bytes into a zeroed copy */
        memset(tmp, 0, sizeof tmp);
        memcpy(tmp, bs, src_stride - off);
        bs = tmp;
      }
      repack3_block(bs, n, d + off);
    }
  }
}

/* ---- mixed widths ---- */

void lb_mixed_rows_scalar(const lb_mixed *w, const lb_act *a, float *y, int r0, int r1) {
  for (int r = r0; r < r1; r++) {
    const uint8_t *row = w->q + (size_t)r * w->row_stride;
    float acc = 0;
    for (int g = 0; g < w->n_groups; g++) {
      const int8_t *xq = a->xq + (size_t)g * LB_BLOCK;
      int32_t d = 0;
      for (int l = 0; l < LB_BLOCK; l++) d += level_at(row + w->goff[g], l, w->widths[g]) * xq[l];
      float s = lb_f16(w->scale[(size_t)r * w->n_groups + g]) * a->xs[g];
      acc += s * ((float)d - lb_mixed_zero(w, r, g) * (float)a->xsum[g]);
    }
    y[r] = acc;
  }
}

static lb_mixed_rows_fn mixed_fn(void) {
  lb_isa();
#if defined(__x86_64__)
  if (rows_fn == lb_rows_vnni) return lb_mixed_rows_vnni;
  if (rows_fn == lb_rows_avx2) return lb_mixed_rows_avx2;
#endif
  return lb_mixed_rows_scalar;
}

typedef struct {
  const lb_mixed *w;
  const lb_act *a;
  float *y;
  lb_mixed_rows_fn fn;
} mixed_job;

static void mixed_range(void *ctx, int r0, int r1) {
  mixed_job *j = ctx;
  j->fn(j->w, j->a, j->y, r0, r1);
}

void lb_gemv_mixed(const lb_mixed *w, lb_act *a, float *y) {
  for (int g = 0; g < w->n_groups; g++) a->gx[g] = a->xs[g] * (float)a->xsum[g];
  mixed_job j = {w, a, y, mixed_fn()};
  if ((double)w->out * w->in < 262144.0) mixed_range(&j, 0, w->out);
  else pool_run(mixed_range, &j, w->out, 4);
}

typedef struct {
  const lb_mixed *w;
  float *dst;
  int r0;
} mixed_dq_job;

static void mixed_dq_range(void *ctx, int i0, int i1) {
  mixed_dq_job *j = ctx;
  const lb_mixed *w = j->w;
  for (int r = j->r0 + i0; r < j->r0 + i1; r++) {
    const uint8_t *row = w->q + (size_t)r * w->row_stride;
    float *out = j->dst + (size_t)(r - j->r0) * w->in;
    for (int g = 0; g < w->n_groups; g++) {
      float s = lb_f16(w->scale[(size_t)r * w->n_groups + g]), z = lb_mixed_zero(w, r, g);
      for (int c = 0; c < LB_BLOCK; c++) out[g * LB_BLOCK + c] = s * ((float)level_at(row + w->goff[g], lane_of(c, w->widths[g]), w->widths[g]) - z);
    }
  }
}

void lb_dequant_mixed(const lb_mixed *w, float *dst, int r0, int r1) {
  mixed_dq_job j = {w, dst, r0};
  pool_run(mixed_dq_range, &j, r1 - r0, 1);
}

void lb_repack_mixed3(uint8_t *q, const lb_mixed *w) {
  uint8_t blk[48];
  for (int r = 0; r < w->out; r++) {
    uint8_t *row = q + (size_t)r * w->row_stride;
    for (int g = 0; g < w->n_groups; g++) {
      if (w->widths[g] != 3) continue;
      repack3_block(row + w->goff[g], LB_BLOCK, blk);
      memcpy(row + w->goff[g], blk, sizeof blk);
    }
  }
}

/* ---- prefill (lowbit.h lb_gemm) ---- */

void lb_unpack_scalar(const uint8_t *blk, int bits, uint8_t *dst) {
  for (int l = 0; l < LB_BLOCK; l++) dst[l] = (uint8_t)level_at(blk, l, bits);
}

/* The specification of the panel kernels: the same sums in the same order per block. */
void lb_gemm_panel_scalar(const uint8_t *wu, const float *sw, const float *szw, const lb_gact *a, float *y, int out, int r0, int nr) {
  const int blocks = a->blocks, ng = a->n_groups, gsub = a->gsub, kq = 32 / gsub;
  const size_t ws = (size_t)blocks * LB_BLOCK;
  for (int t = 0; t < a->rows; t++) {
    const int tile = t >> 4, lane = t & 15;
    for (int i = 0; i < nr; i++) {
      float acc = 0;
      for (int b = 0; b < blocks; b++) {
        const int8_t *xp = a->xp + ((size_t)tile * blocks + b) * 2048 + 4 * lane;
        const uint8_t *q = wu + i * ws + (size_t)b * LB_BLOCK;
        const float xs = a->xs[((size_t)tile * blocks + b) * 16 + lane];
        for (int s = 0; s < gsub; s++) { /* one part per group inside the block, else the whole block */
          int32_t d = 0;
          for (int k = s * kq; k < (s + 1) * kq; k++)
            for (int e = 0; e < 4; e++) d += q[4 * k + e] * xp[64 * k + e];
          acc += (float)d * (xs * sw[(size_t)i * ng + (gsub > 1 ? b * gsub + s : b / a->group_blocks)]);
        }
      }
      for (int g = 0; g < ng; g++) acc -= szw[(size_t)i * ng + g] * a->gx[((size_t)tile * ng + g) * 16 + lane];
      y[(size_t)t * out + r0 + i] = acc;
    }
  }
}

lb_gemm_panel_fn lb_gemm_panel(void) {
  lb_isa();
#if defined(__x86_64__)
  if (rows_fn == lb_rows_vnni) return lb_gemm_panel_vnni;
  if (rows_fn == lb_rows_avx2) return lb_gemm_panel_avx2;
#endif
  return lb_gemm_panel_scalar;
}

lb_unpack_fn lb_unpack(void) {
  lb_isa();
#if defined(__x86_64__)
  if (rows_fn == lb_rows_vnni || rows_fn == lb_rows_avx2) return lb_unpack_avx2;
#endif
  return lb_unpack_scalar;
}
