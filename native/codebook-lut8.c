/*
 * B = 8 AQLM kernels (codebook.h cb_gemm8): int8 lookup tables over codes tiled at load. The
 * float32 table of the float path (codebook.c) is looked up with gathers, about one code per
 * cycle; an int8 table of 256 codewords is four 64-byte registers, so one AVX-512 VBMI
 * vpermi2b pair looks up 64 rows' codes at once (AVX2: sixteen vpshufb over 16-entry
 * sub-tables; NEON: vqtbl4/vqtbx4), as T-MAC and llama.cpp's IQ kernels do for 16-entry tables.
 * This file: the tiling, the driver (threads, activation blocks, table chunks that stay in L2),
 * and the scalar kernels, which are the specification the SIMD files follow.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codebook.h"
#include "lowbit.h"
#include "pool.h"

/* Activation rows whose tables are built before one pass over the codes (prefill). */
#define ACT_BLOCK 16
/* Bytes of int8 table one pass over a run of tiles indexes: stays in L2 (1 MiB here). */
#define TABLE_CHUNK (512 * 1024)

void cb_tile_codes(uint8_t *dst, const uint8_t *codes, int out, int nG, int M) {
  int n = nG * M, tiles = out / CB_TILE;
  for (int t = 0; t < tiles; t++) {
    uint8_t *d = dst + (size_t)t * CB_TILE * n;
    const uint8_t *src = codes + (size_t)t * CB_TILE * n;
    /* 64 groups at a time: the 64 rows' cache lines are read once, M blocks of 4 KiB written once */
    for (int j0 = 0; j0 < nG; j0 += 64) {
      int j1 = j0 + 64 < nG ? j0 + 64 : nG;
      for (int l = 0; l < CB_TILE; l++) {
        const uint8_t *row = src + (size_t)CB_LANE_ROW(l) * n;
        for (int j = j0; j < j1; j++)
          for (int m = 0; m < M; m++) d[((size_t)m * nG + j) * CB_TILE + l] = row[j * M + m];
      }
    }
  }
  for (int r = tiles * CB_TILE; r < out; r++)
    for (int j = 0; j < nG; j++)
      for (int m = 0; m < M; m++) dst[(size_t)r * n + (size_t)m * nG + j] = codes[(size_t)r * n + j * M + m];
}

int cb_code_tiled(const cb_tensor *w, int r, int i) {
  int n = w->nG * w->M, full = w->out / CB_TILE * CB_TILE;
  int it = (i % w->M) * w->nG + i / w->M; /* file order j·M + m → codebook-major m·nG + j */
  if (r >= full) return w->codes[(size_t)r * n + it];
  int rr = r % CB_TILE, lane = rr < 32 ? 2 * rr : 2 * (rr - 32) + 1;
  return w->codes[((size_t)(r / CB_TILE) * n + it) * CB_TILE + lane];
}

/* ---- scalar kernels (the specification) ---- */

static float table_scalar(const cb_tensor *w, const float *x, float *t, int i0, int i1) {
  int g = w->g, nG = w->nG;
  float mx = 0;
  for (int i = i0; i < i1; i++) {
    const float *c = w->cbt + (size_t)(i / nG) * g * 256; /* [g, 256] of codebook m = i / nG */
    const float *xj = x + (size_t)(i % nG) * g;                /* group j = i mod nG */
    float *ti = t + (size_t)(i - i0) * 256;
    for (int k = 0; k < 256; k++) ti[k] = 0;
    for (int u = 0; u < g; u++)
      for (int k = 0; k < 256; k++) ti[k] += c[(size_t)u * 256 + k] * xj[u];
    for (int k = 0; k < 256; k++) mx = fabsf(ti[k]) > mx ? fabsf(ti[k]) : mx;
  }
  return mx;
}

/* Round to nearest, ties to even (the SIMD conversions' mode). */
static void quant_scalar(int8_t *q, const float *t, float inv, int count) {
  for (int i = 0; i < count; i++) q[i] = (int8_t)lrintf(t[i] * inv);
}

static void tiles_scalar(const cb_look *L, int t0, int t1, int s0, int s1) {
  const cb_tensor *w = L->w;
  int n = L->n;
  int32_t acc[CB_TILE];
  for (int s = s0; s < s1; s++) { /* the slice's table rows stay in L1 while the tiles pass */
    int i0, i1;
    cb_slice(L, s, &i0, &i1);
    for (int a = 0; a < L->A; a++) { /* a's slice of table (8 KiB) stays in L1 */
      const int8_t *q = L->q + (size_t)a * n * 256;
      for (int t = t0; t < t1; t++) {
        const uint8_t *c = w->codes + (size_t)t * n * CB_TILE;
        for (int l = 0; l < CB_TILE; l++) acc[l] = 0;
        for (int i = i0; i < i1; i++)
          for (int l = 0; l < CB_TILE; l++) acc[l] += q[(size_t)i * 256 + c[(size_t)i * CB_TILE + l]];
        float d = L->d[(size_t)a * L->nsl + s];
        float *y = L->y + (size_t)a * w->out + (size_t)t * CB_TILE;
        for (int l = 0; l < CB_TILE; l++) y[CB_LANE_ROW(l)] += d * (float)acc[l];
      }
    }
  }
}

/* Rows [r0, r1) after the last whole tile (rows of n codes, codebook-major), every instruction set. */
static void tail_rows(const cb_look *L, int r0, int r1, int s0, int s1) {
  const cb_tensor *w = L->w;
  int n = L->n;
  for (int r = r0; r < r1; r++) {
    const uint8_t *c = w->codes + (size_t)r * n;
    for (int a = 0; a < L->A; a++) {
      const int8_t *q = L->q + (size_t)a * n * 256;
      float yr = 0;
      for (int s = s0; s < s1; s++) {
        int i0, i1;
        cb_slice(L, s, &i0, &i1);
        int32_t sum = 0;
        for (int i = i0; i < i1; i++) sum += q[(size_t)i * 256 + c[i]];
        yr += L->d[(size_t)a * L->nsl + s] * (float)sum;
      }
      L->y[(size_t)a * w->out + r] += yr;
    }
  }
}

/* ---- dispatch ---- */

static int kernel_cap = -1;

void cb_set_kernel(int level) { kernel_cap = level; }

/* lb_isa "scalar" (forced or the CPU's best) forces the scalar kernels here too, "avx2" at most AVX2. */
int cb_kernel_level(void) {
  const char *isa = lb_isa();
  int level = 0;
#if defined(__x86_64__)
  level = !strcmp(isa, "scalar") ? 0 : !strcmp(isa, "avx2") ? 1 : cb_x86_level();
#elif defined(__aarch64__)
  level = !strcmp(isa, "scalar") ? 0 : cb_arm_level();
#endif
  (void)isa;
  return kernel_cap >= 0 && kernel_cap < level ? kernel_cap : level;
}

static void pick(cb_kernels *k) {
  *k = (cb_kernels){table_scalar, quant_scalar, tiles_scalar, NULL};
  int level = cb_kernel_level();
#if defined(__x86_64__)
  if (level > 0) cb_x86_kernels(level, k);
#elif defined(__aarch64__)
  if (level > 0) cb_arm_kernels(k);
#endif
}

/* ---- driver ---- */

typedef struct {
  cb_look L;
  const float *x; /* [A, in] */
  int8_t *q;      /* L.q and L.d, written by build_range */
  float *d;
  cb_kernels k;
} gemm_job;

static __thread float *tls_float;  /* [4, CB_SLICE, 256] float tables of one slice */
static __thread int8_t *tls_q;     /* [A, n, 256] the calling thread's int8 tables */
static __thread float *tls_d;      /* [A, nsl] */
static __thread size_t tls_qcap, tls_dcap;

/* Δ and int8 entries of slice s of activation row a from its float table t. */
static void quantize_slice(gemm_job *j, int a, int s, const float *t, float mx, int i0, int count) {
  j->d[(size_t)a * j->L.nsl + s] = mx / 127.0f;
  j->k.quant(j->q + ((size_t)a * j->L.n + i0) * 256, t, mx > 0 ? 127.0f / mx : 0.0f, count);
}

/* Units u = s·A + a: the float table of slice s of activation row a, its Δ_s and int8 entries
 * (four rows of one slice at once where the kernels have table4). */
static void build_range(void *ctx, int u0, int u1) {
  gemm_job *j = ctx;
  cb_look *L = &j->L;
  if (!tls_float) tls_float = malloc(sizeof(float) * 4 * CB_SLICE * 256);
  if (!tls_float) { /* cannot happen in practice (128 KiB); leave zero tables rather than crash */
    for (int u = u0; u < u1; u++) j->d[(size_t)(u % L->A) * L->nsl + u / L->A] = 0;
    return;
  }
  for (int u = u0; u < u1;) {
    int s = u / L->A, a = u % L->A;
    int i0, i1;
    cb_slice(L, s, &i0, &i1);
    int count = (i1 - i0) * 256;
    if (j->k.table4 && a + 4 <= L->A && u + 4 <= u1) {
      float mx[4];
      j->k.table4(L->w, j->x + (size_t)a * L->w->in, tls_float, i0, i1, mx);
      for (int r = 0; r < 4; r++) quantize_slice(j, a + r, s, tls_float + (size_t)r * count, mx[r], i0, count);
      u += 4;
      continue;
    }
    float mx = j->k.table(L->w, j->x + (size_t)a * L->w->in, tls_float, i0, i1);
    quantize_slice(j, a, s, tls_float, mx, i0, count);
    u++;
  }
}

/* Rows [r0, r1) (r0 a multiple of CB_TILE): every activation row, table chunks outermost. */
static void look_range(void *ctx, int r0, int r1) {
  gemm_job *j = ctx;
  const cb_look *L = &j->L;
  const cb_tensor *w = L->w;
  int full = w->out / CB_TILE * CB_TILE;
  for (int a = 0; a < L->A; a++)
    for (int r = r0; r < r1; r++) L->y[(size_t)a * w->out + r] = 0;
  int chunk = TABLE_CHUNK / (L->A * CB_SLICE * 256);
  if (chunk < 1) chunk = 1;
  int t0 = r0 / CB_TILE, t1 = (r1 < full ? r1 : full) / CB_TILE, tail0 = r0 > full ? r0 : full;
  for (int s0 = 0; s0 < L->nsl; s0 += chunk) {
    int s1 = s0 + chunk < L->nsl ? s0 + chunk : L->nsl;
    if (t1 > t0) j->k.tiles(L, t0, t1, s0, s1);
    if (r1 > tail0) tail_rows(L, tail0, r1, s0, s1);
  }
  for (int r = r0; r < r1; r++) {
    float sr = lb_f16(w->scale[r]);
    for (int a = 0; a < L->A; a++) L->y[(size_t)a * w->out + r] *= sr;
  }
}

int cb_gemm8(const cb_tensor *w, const float *x, float *y, int rows) {
  int n = w->nG * w->M, spm = (w->nG + CB_SLICE - 1) / CB_SLICE, nsl = w->M * spm;
  int block = rows < ACT_BLOCK ? rows : ACT_BLOCK;
  size_t qneed = (size_t)block * n * 256, dneed = (size_t)block * nsl;
  if (qneed > tls_qcap) {
    free(tls_q);
    tls_q = malloc(qneed);
    tls_qcap = tls_q ? qneed : 0;
    if (!tls_q) return 0;
  }
  if (dneed > tls_dcap) {
    free(tls_d);
    tls_d = malloc(dneed * sizeof(float));
    tls_dcap = tls_d ? dneed : 0;
    if (!tls_d) return 0;
  }
  gemm_job j;
  pick(&j.k);
  for (int a0 = 0; a0 < rows; a0 += block) {
    int A = rows - a0 < block ? rows - a0 : block;
    j.L = (cb_look){w, tls_q, tls_d, y + (size_t)a0 * w->out, A, n, nsl, spm};
    j.x = x + (size_t)a0 * w->in;
    j.q = tls_q, j.d = tls_d;
    /* small layers on the caller alone: waking the pool costs more than the work */
    double build = (double)A * n * 256 * w->g, look = (double)A * w->out * n;
    if (build < 262144.0) build_range(&j, 0, A * nsl);
    else pool_run(build_range, &j, A * nsl, 1);
    if (look < 262144.0) look_range(&j, 0, w->out);
    else pool_run(look_range, &j, w->out, CB_TILE);
  }
  return 1;
}
