/*
 * bitcrush's optional native backend: the Backend kernels as thin N-API wrappers over
 * OpenBLAS (sgemm, sgemv, dsyrk) and its LAPACK (dpotrf, dtrtri). Matrices are row-major;
 * LAPACK is column-major, so a row-major lower triangle is passed as a column-major upper one.
 * Every shape is checked against the typed array lengths before any pointer is touched. The
 * addon's own kernels (low-bit matvecs, lowbit-napi.c; the bandwidth probe) run on pool.c.
 */
#include <cblas.h>
#include <math.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>

#include "binary-napi.h"
#include "codebook-napi.h"
#include "decode-ops.h"
#include "lowbit-napi.h"
#include "pool.h"
#include "probe.h"

/* From OpenBLAS (LP64 build: Fortran integers are int). */
extern void openblas_set_num_threads(int num_threads);
extern void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
extern void dtrtri_(const char *uplo, const char *diag, const int *n, double *a, const int *lda, int *info);

#define MAX_ARGS 6

typedef struct {
  napi_env env;
  napi_value argv[MAX_ARGS];
  int ok;
} args_t;

static int get_args(napi_env env, napi_callback_info info, args_t *a, size_t want) {
  size_t argc = MAX_ARGS;
  a->env = env;
  a->ok = napi_get_cb_info(env, info, &argc, a->argv, NULL, NULL) == napi_ok && argc >= want;
  if (!a->ok) napi_throw_type_error(env, NULL, "bitcrush_native: wrong number of arguments");
  return a->ok;
}

/* A dimension argument: an integer in [0, 2^31). */
static int dim(args_t *a, int i) {
  double v = -1;
  if (!a->ok) return 0;
  if (napi_get_value_double(a->env, a->argv[i], &v) != napi_ok || v < 0 || v > 2147483647.0 || v != floor(v)) {
    napi_throw_range_error(a->env, NULL, "bitcrush_native: bad matrix dimension");
    a->ok = 0;
    return 0;
  }
  return (int)v;
}

/* The data of a Float32Array (f64 = 0) or Float64Array (f64 = 1) holding at least `need` elements. */
static void *array(args_t *a, int i, int f64, double need) {
  napi_typedarray_type type;
  size_t length;
  void *data = NULL;
  if (!a->ok) return NULL;
  if (napi_get_typedarray_info(a->env, a->argv[i], &type, &length, &data, NULL, NULL) != napi_ok ||
      type != (f64 ? napi_float64_array : napi_float32_array)) {
    napi_throw_type_error(a->env, NULL, f64 ? "bitcrush_native: expected a Float64Array" : "bitcrush_native: expected a Float32Array");
    a->ok = 0;
    return NULL;
  }
  if ((double)length < need) {
    napi_throw_range_error(a->env, NULL, "bitcrush_native: array shorter than its shape");
    a->ok = 0;
    return NULL;
  }
  return data;
}

static int lead(int k) { return k > 0 ? k : 1; }

static napi_value set_threads(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 1)) return NULL;
  int t = dim(&a, 0);
  if (a.ok) {
    openblas_set_num_threads(t > 0 ? t : 1);
    pool_set_threads(t);
  }
  return NULL;
}

/* streamSum(bytes: Uint8Array) -> number: the bandwidth probe over whole 4 KiB pages (a checksum). */
static napi_value stream_sum(napi_env env, napi_callback_info info) {
  args_t a;
  napi_value result;
  if (!get_args(env, info, &a, 1)) return NULL;
  napi_typedarray_type type;
  size_t length;
  void *data = NULL;
  if (napi_get_typedarray_info(env, a.argv[0], &type, &length, &data, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "bitcrush_native: expected a Uint8Array");
    return NULL;
  }
  napi_create_double(env, probe_stream_sum(data, length), &result);
  return result;
}

/*
 * y[n] = w[n,k]·x[k]. OpenBLAS's sgemv threads from ~10k elements (costly next to small
 * decode layers on a busy machine) and streams short rows at about half the memory bandwidth
 * (measured 4 GB/s vs 6-10 GB/s at 32000x256), so rows shorter than 2048 use one sdot each.
 */
static void gemv(float *y, const float *w, const float *x, int n, int k) {
  if (k == 0) {
    memset(y, 0, sizeof(float) * (size_t)n);
  } else if (k < 2048) {
    for (int j = 0; j < n; j++) y[j] = cblas_sdot(k, w + (size_t)j * k, 1, x, 1);
  } else {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, w, k, x, 1, 0.0f, y, 1);
  }
}

/* sgemm(c, a, b, m, n, k): c[m,n] = a[m,k]·b[n,k]ᵀ. */
static napi_value sgemm(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 6)) return NULL;
  int m = dim(&a, 3), n = dim(&a, 4), k = dim(&a, 5);
  float *c = array(&a, 0, 0, (double)m * n), *x = array(&a, 1, 0, (double)m * k), *w = array(&a, 2, 0, (double)n * k);
  if (!a.ok || m == 0 || n == 0) return NULL;
  if (m <= 2) {
    /* sgemm with one row streams b at ~3 GB/s (measured): treat it as gemv. */
    for (int i = 0; i < m; i++) gemv(c + (size_t)i * n, w, x + (size_t)i * k, n, k);
    return NULL;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, lead(k), w, lead(k), 0.0f, c, n);
  return NULL;
}

/* sgemv(y, w, x, n, k): y[n] = w[n,k]·x[k]. */
static napi_value sgemv(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 5)) return NULL;
  int n = dim(&a, 3), k = dim(&a, 4);
  float *y = array(&a, 0, 0, n), *w = array(&a, 1, 0, (double)n * k), *x = array(&a, 2, 0, k);
  if (!a.ok || n == 0) return NULL;
  gemv(y, w, x, n, k);
  return NULL;
}

/*
 * h[k,k] += delta's lower triangle mirrored to both triangles (delta: k×k, float or double). In
 * 64×64 tiles so the transposed writes stay in cache (row-by-row, they missed it on every
 * element: seconds per call at k = 5632). Adding to both triangles keeps a non-symmetric h
 * accumulating exactly like the reference.
 */
#define MIRROR_ADD(NAME, T)                                                              \
  static void NAME(double *h, const T *delta, int k) {                                   \
    const int TILE = 64;                                                                 \
    for (int i0 = 0; i0 < k; i0 += TILE) {                                               \
      int i1 = i0 + TILE < k ? i0 + TILE : k;                                            \
      for (int j0 = 0; j0 <= i0; j0 += TILE) {                                           \
        for (int i = i0; i < i1; i++) {                                                  \
          int j1 = j0 + TILE < i ? j0 + TILE : i; /* strictly below the diagonal */      \
          for (int j = j0; j < j1; j++) {                                                \
            double d = (double)delta[(size_t)i * k + j];                                 \
            h[(size_t)i * k + j] += d;                                                   \
            h[(size_t)j * k + i] += d;                                                   \
          }                                                                              \
        }                                                                                \
      }                                                                                  \
      for (int i = i0; i < i1; i++) h[(size_t)i * k + i] += (double)delta[(size_t)i * k + i]; \
    }                                                                                    \
  }
MIRROR_ADD(mirror_add_d, double)
MIRROR_ADD(mirror_add_f, float)

/*
 * xtx(h, x, rows, k): h[k,k] += xᵀx in float64. x is widened in chunks (float32 products are
 * exact in float64); dsyrk writes the lower triangle of a delta, mirrored into h. Callers
 * batch rows (HessianAccumulator), as each call costs a few passes over k² doubles on top of
 * its k²·rows products.
 */
static napi_value xtx(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 4)) return NULL;
  int rows = dim(&a, 2), k = dim(&a, 3);
  double *h = array(&a, 0, 1, (double)k * k);
  float *x = array(&a, 1, 0, (double)rows * k);
  if (!a.ok || rows == 0 || k == 0) return NULL;
  size_t chunk = (size_t)1 << 22; /* doubles per widened chunk */
  int chunk_rows = (int)(chunk / (size_t)k) > 0 ? (int)(chunk / (size_t)k) : 1;
  if (chunk_rows > rows) chunk_rows = rows;
  double *wide = malloc(sizeof(double) * (size_t)chunk_rows * k);
  double *delta = malloc(sizeof(double) * (size_t)k * k); /* dsyrk's beta = 0 writes it first */
  if (!wide || !delta) {
    free(wide);
    free(delta);
    napi_throw_error(env, NULL, "bitcrush_native: out of memory");
    return NULL;
  }
  for (int r0 = 0; r0 < rows; r0 += chunk_rows) {
    int rr = rows - r0 < chunk_rows ? rows - r0 : chunk_rows;
    const float *src = x + (size_t)r0 * k;
    for (size_t i = 0; i < (size_t)rr * k; i++) wide[i] = src[i];
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, k, rr, 1.0, wide, k, r0 == 0 ? 0.0 : 1.0, delta, k);
  }
  mirror_add_d(h, delta, k);
  free(wide);
  free(delta);
  return NULL;
}

/*
 * xtx32(h, x, rows, k): h[k,k] += xᵀx with the products summed in float32 (ssyrk straight on
 * x: no widening, twice dsyrk's rate), the float32 sum then added into the float64 h. The
 * official GPTQ keeps all of H in float32; callers sum a few thousand rows per call, so only
 * one stage's sum is float32.
 */
static napi_value xtx32(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 4)) return NULL;
  int rows = dim(&a, 2), k = dim(&a, 3);
  double *h = array(&a, 0, 1, (double)k * k);
  float *x = array(&a, 1, 0, (double)rows * k);
  if (!a.ok || rows == 0 || k == 0) return NULL;
  float *delta = malloc(sizeof(float) * (size_t)k * k); /* ssyrk's beta = 0 writes it first */
  if (!delta) {
    napi_throw_error(env, NULL, "bitcrush_native: out of memory");
    return NULL;
  }
  cblas_ssyrk(CblasRowMajor, CblasLower, CblasTrans, k, rows, 1.0f, x, k, 0.0f, delta, k);
  mirror_add_f(h, delta, k);
  free(delta);
  return NULL;
}

/* potrf(a, n) -> boolean: in-place lower Cholesky factor, strict upper zeroed. */
static napi_value potrf(napi_env env, napi_callback_info info) {
  args_t a;
  napi_value result;
  if (!get_args(env, info, &a, 2)) return NULL;
  int n = dim(&a, 1);
  double *m = array(&a, 0, 1, (double)n * n);
  if (!a.ok) return NULL;
  int ok = 1;
  if (n > 0) {
    int info_out = 0;
    dpotrf_("U", &n, m, &n, &info_out);
    ok = info_out == 0;
    /* dpotrf lets NaN through (its test is ajj <= 0); a finite positive diagonal is the contract. */
    for (int i = 0; ok && i < n; i++) ok = isfinite(m[(size_t)i * n + i]) && m[(size_t)i * n + i] > 0;
    for (int i = 0; ok && i < n; i++)
      for (int j = i + 1; j < n; j++) m[(size_t)i * n + j] = 0.0;
  }
  napi_get_boolean(env, ok, &result);
  return result;
}

/* trtri(a, n): in-place inverse of a lower-triangular matrix. */
static napi_value trtri(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 2)) return NULL;
  int n = dim(&a, 1);
  double *m = array(&a, 0, 1, (double)n * n);
  if (!a.ok || n == 0) return NULL;
  int info_out = 0;
  dtrtri_("U", "N", &n, m, &n, &info_out);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"setThreads", NULL, set_threads, NULL, NULL, NULL, napi_default, NULL},
      {"sgemm", NULL, sgemm, NULL, NULL, NULL, napi_default, NULL},
      {"sgemv", NULL, sgemv, NULL, NULL, NULL, napi_default, NULL},
      {"xtx", NULL, xtx, NULL, NULL, NULL, napi_default, NULL},
      {"xtx32", NULL, xtx32, NULL, NULL, NULL, napi_default, NULL},
      {"potrf", NULL, potrf, NULL, NULL, NULL, napi_default, NULL},
      {"trtri", NULL, trtri, NULL, NULL, NULL, napi_default, NULL},
      {"streamSum", NULL, stream_sum, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  lowbit_define(env, exports);
  codebook_define(env, exports);
  binary_define(env, exports);
  decode_ops_define(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
