/*
 * Native kernels of the AQLM additive-codebook format (registry.ts aqlm) with codes of B < 8
 * bits, read in place from the file's bytes (each row a bitstream of nG·M codes, code i at bits
 * [i·B, i·B + B)); reference: src/formats/codebook-linear.ts, compared in test/formats.test.ts.
 * B = 8 (the 2x8 / 1x8 / 4x8 schemes) takes the int8 tables of codebook-lut8.c for matvec.
 *
 * matvec, lookup table (AQLM §3.3), float32 activations (so results match W·x up to float32
 * accumulation, no int8 rounding):
 *   1. T[i, k] = C_m[k] · x_j for i = j·M + m, every codeword k < K = 2^B (threaded over groups
 *      j; AVX2 FMA over eight codewords at a time from the codebooks transposed to [M, g, K]);
 *   2. y_r = s_r · Σ_i T[i, b_{r,i}] (threaded over rows, scalar: at most 128 codewords).
 * The codes are walked in passes whose table slice is PASS_BYTES bytes, so the slice stays in L2
 * while the codes stream past. The table is per-thread scratch (grown on demand): kernel memory
 * is the file's codes (B = 8: tiled, the same size), its
 * float16 scales, and two float32 copies of the codebooks (transposed for the table, as stored for
 * dequantization: 2·M·K·g values, 32 KiB at 2x8 g8).
 * Dequantization (prefill tiles): ŵ = s_r · Σ_m C_m[b] summed in float32 in order m, exactly as
 * dequantizeCodebook (codebook.ts) does.
 */
#include "codebook.h"

#include <stdlib.h>
#include <string.h>

#include "lowbit.h"
#include "pool.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define T_AVX2 __attribute__((target("avx2,fma,f16c")))
#endif

/* Bytes of table one lookup pass indexes. */
#define PASS_BYTES (256 * 1024)

static inline int code_at(const cb_tensor *w, const uint8_t *row, int i) {
  int B = w->B;
  int bit = i * B, byte = bit >> 3;
  unsigned v = row[byte] | (byte + 1 < (int)w->row_bytes ? (unsigned)row[byte + 1] << 8 : 0u);
  return (int)((v >> (bit & 7)) & ((1u << B) - 1));
}

void cb_prepare(float *cbt, const uint16_t *cb16, int M, int K, int g) {
  float *cb = cbt + (size_t)M * K * g; /* then [M, K, g], for dequantization */
  for (int m = 0; m < M; m++)
    for (int k = 0; k < K; k++)
      for (int t = 0; t < g; t++) {
        float v = lb_f16(cb16[((size_t)m * K + k) * g + t]);
        cbt[((size_t)m * g + t) * K + k] = v;
        cb[((size_t)m * K + k) * g + t] = v;
      }
}

/* ---- table build ---- */

typedef struct {
  const cb_tensor *w;
  const float *x;
  float *table;
} table_job;

static void table_scalar(const cb_tensor *w, const float *x, float *T, int j0, int j1) {
  int K = w->K, g = w->g, M = w->M;
  for (int j = j0; j < j1; j++)
    for (int m = 0; m < M; m++) {
      float *t = T + ((size_t)j * M + m) * K;
      const float *c = w->cbt + (size_t)m * g * K;
      for (int k = 0; k < K; k++) t[k] = 0;
      for (int u = 0; u < g; u++) {
        float xv = x[j * g + u];
        for (int k = 0; k < K; k++) t[k] += c[(size_t)u * K + k] * xv;
      }
    }
}

#if defined(__x86_64__)
T_AVX2 static void table_avx2(const cb_tensor *w, const float *x, float *T, int j0, int j1) {
  int K = w->K, g = w->g, M = w->M;
  for (int j = j0; j < j1; j++)
    for (int m = 0; m < M; m++) {
      float *t = T + ((size_t)j * M + m) * K;
      const float *c = w->cbt + (size_t)m * g * K;
      for (int k = 0; k < K; k += 16) { /* K ≥ 16 here */
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        for (int u = 0; u < g; u++) {
          __m256 xv = _mm256_set1_ps(x[j * g + u]);
          a0 = _mm256_fmadd_ps(_mm256_loadu_ps(c + (size_t)u * K + k), xv, a0);
          a1 = _mm256_fmadd_ps(_mm256_loadu_ps(c + (size_t)u * K + k + 8), xv, a1);
        }
        _mm256_storeu_ps(t + k, a0);
        _mm256_storeu_ps(t + k + 8, a1);
      }
    }
}

static int simd_level(void) {
  const char *isa = lb_isa();
  return !strcmp(isa, "vnni") ? 2 : !strcmp(isa, "avx2") ? 1 : 0;
}
#endif

static void table_range(void *ctx, int j0, int j1) {
  table_job *t = ctx;
#if defined(__x86_64__)
  if (simd_level() > 0 && t->w->K >= 16) {
    table_avx2(t->w, t->x, t->table, j0, j1);
    return;
  }
#endif
  table_scalar(t->w, t->x, t->table, j0, j1);
}

/* ---- lookups ---- */

typedef struct {
  const cb_tensor *w;
  const float *table;
  float *y;
} lut_job;

/* y[r] += Σ_{i∈[i0,i1)} T[i, b_{r,i}] for rows [r0, r1). */
static void lookups_scalar(const cb_tensor *w, const float *T, float *y, int r0, int r1, int i0, int i1) {
  int K = w->K;
  for (int r = r0; r < r1; r++) {
    const uint8_t *row = w->codes + (size_t)r * w->row_bytes;
    float s0 = 0, s1 = 0;
    int i = i0;
    for (; i + 1 < i1; i += 2) {
      s0 += T[(size_t)i * K + code_at(w, row, i)];
      s1 += T[(size_t)(i + 1) * K + code_at(w, row, i + 1)];
    }
    if (i < i1) s0 += T[(size_t)i * K + code_at(w, row, i)];
    y[r] += s0 + s1;
  }
}

static void lut_range(void *ctx, int r0, int r1) {
  lut_job *j = ctx;
  const cb_tensor *w = j->w;
  int n = w->nG * w->M;
  int slice = PASS_BYTES / (4 * w->K);
  slice = slice < 16 ? 16 : slice / 16 * 16;
  for (int r = r0; r < r1; r++) j->y[r] = 0;
  for (int i0 = 0; i0 < n; i0 += slice) {
    int i1 = i0 + slice < n ? i0 + slice : n;
    lookups_scalar(w, j->table, j->y, r0, r1, i0, i1);
  }
  for (int r = r0; r < r1; r++) j->y[r] *= lb_f16(w->scale[r]);
}

static __thread float *tls_table;
static __thread size_t tls_cap;

int cb_gemv(const cb_tensor *w, const float *x, float *y) {
  if (w->B == 8) return cb_gemm8(w, x, y, 1);
  size_t need = (size_t)w->nG * w->M * w->K;
  if (need > tls_cap) {
    free(tls_table);
    tls_table = malloc(need * sizeof(float));
    tls_cap = tls_table ? need : 0;
    if (!tls_table) return 0;
  }
  table_job tj = {w, x, tls_table};
  double table_work = (double)w->M * w->K * w->in, lut_work = (double)w->out * w->nG * w->M;
  if (table_work < 262144.0) table_range(&tj, 0, w->nG);
  else pool_run(table_range, &tj, w->nG, 1);
  lut_job lj = {w, tls_table, y};
  if (lut_work < 131072.0) lut_range(&lj, 0, w->out);
  else pool_run(lut_range, &lj, w->out, 4);
  return 1;
}

/* ---- dequantization ---- */

typedef struct {
  const cb_tensor *w;
  float *dst;
  int r0;
} dq_job;

static void dq_range(void *ctx, int i0, int i1) {
  dq_job *j = ctx;
  const cb_tensor *w = j->w;
  int g = w->g, K = w->K, M = w->M;
  float acc[64];
  for (int r = j->r0 + i0; r < j->r0 + i1; r++) {
    const uint8_t *row = w->codes + (size_t)r * w->row_bytes;
    float s = lb_f16(w->scale[r]);
    float *out = j->dst + (size_t)(r - j->r0) * w->in;
    for (int jg = 0; jg < w->nG; jg++) {
      for (int t = 0; t < g; t++) acc[t] = 0;
      for (int m = 0; m < M; m++) {
        int b = w->B == 8 ? cb_code_tiled(w, r, jg * M + m) : code_at(w, row, jg * M + m);
        const float *c = w->cbt + (size_t)M * K * g + ((size_t)m * K + b) * g; /* [M, K, g] copy: contiguous codeword */
        for (int t = 0; t < g; t++) acc[t] += c[t];
      }
      for (int t = 0; t < g; t++) out[jg * g + t] = s * acc[t];
    }
  }
}

void cb_dequant(const cb_tensor *w, float *dst, int r0, int r1) {
  dq_job j = {w, dst, r0};
  pool_run(dq_range, &j, r1 - r0, 1);
}
