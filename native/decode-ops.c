/*
 * The decode step's vector work between the matvecs, in C: one N-API call per step instead of
 * JavaScript loops over dim- and hidden-sized vectors, and the one-row attention split over
 * heads on the addon's pool. The specification is the TypeScript reference
 * (src/runtime/decode-ops.ts), which test/decode-ops.test.ts compares these against:
 *   decodeAddRmsnorm(o, x, d, weight, n, eps): x += d (d may be null), then o = weight ⊙ x / rms(x)
 *   decodeSiluMul(h, u, n): h = silu(h) ⊙ u
 *   decodeAttention(out, q, keyCache, valueCache, layerOff, pos, nHeads, nKvHeads, headSize, kvDim):
 *     out [nHeads·headSize] = softmax(q_h · K_{h/g}ᵀ / √headSize) · V_{h/g} over cache rows 0..pos
 *     of the layer starting at float layerOff (rows of kvDim floats), g = nHeads / nKvHeads
 * Sums run in double where the reference sums in double (RMSNorm, the softmax denominator);
 * the dot products in float32 with eight partial sums (the reference: double, one chain), so
 * results agree to float32 rounding, not bit for bit.
 */
#include "decode-ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "napi-args.h"
#include "pool.h"

static napi_value add_rmsnorm(napi_env env, napi_callback_info info) {
  call_t c;
  if (!begin(env, info, &c, 6)) return NULL;
  int n = int_arg(&c, 4, 1, 2147483647.0);
  double eps = 0;
  if (c.ok && napi_get_value_double(env, c.argv[5], &eps) != napi_ok) fail(&c, "bitcrush_native: eps must be a number");
  float *o = typed(&c, 0, napi_float32_array, n, 0), *x = typed(&c, 1, napi_float32_array, n, 0);
  const float *d = typed(&c, 2, napi_float32_array, n, 1), *w = typed(&c, 3, napi_float32_array, n, 0);
  if (!c.ok) return NULL;
  double ss = 0;
  for (int i = 0; i < n; i++) {
    if (d) x[i] += d[i];
    ss += (double)x[i] * x[i];
  }
  double scale = 1 / sqrt(ss / n + eps);
  for (int i = 0; i < n; i++) o[i] = (float)(w[i] * (scale * x[i]));
  return NULL;
}

static napi_value silu_mul(napi_env env, napi_callback_info info) {
  call_t c;
  if (!begin(env, info, &c, 3)) return NULL;
  int n = int_arg(&c, 2, 0, 2147483647.0);
  float *h = typed(&c, 0, napi_float32_array, n, 0);
  const float *u = typed(&c, 1, napi_float32_array, n, 0);
  if (!c.ok) return NULL;
  for (int i = 0; i < n; i++) h[i] = h[i] / (1.0f + expf(-h[i])) * u[i];
  return NULL;
}

typedef struct {
  float *out;
  const float *q, *k, *v;
  int pos, group, hs, kv;
  float scale;
} att_job;

typedef float v8 __attribute__((vector_size(32)));

/* Σ a[i]·b[i] over n floats (n % 8 == 0 fast path, any n). */
static float dot(const float *a, const float *b, int n) {
  int i = 0;
  float s = 0;
  if (n >= 8) {
    v8 acc = {0, 0, 0, 0, 0, 0, 0, 0};
    for (; i + 8 <= n; i += 8) {
      v8 x, y;
      memcpy(&x, a + i, 32);
      memcpy(&y, b + i, 32);
      acc += x * y;
    }
    s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  }
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

/* Heads [h0, h1): scores, softmax, the weighted sum of values (the reference's loop per head). */
static void att_heads(void *ctx, int h0, int h1) {
  att_job *j = ctx;
  const int n = j->pos + 1, hs = j->hs;
  float *att = malloc(sizeof(float) * (size_t)n);
  if (!att) return; /* a few KB: cannot fail in practice, and the caller's buffer stays as it was */
  for (int h = h0; h < h1; h++) {
    const float *q = j->q + (size_t)h * hs;
    const size_t kvOff = (size_t)(h / j->group) * hs;
    float max = -INFINITY;
    for (int p = 0; p < n; p++) {
      att[p] = dot(q, j->k + kvOff + (size_t)p * j->kv, hs) * j->scale;
      if (att[p] > max) max = att[p];
    }
    double sum = 0;
    for (int p = 0; p < n; p++) {
      att[p] = expf(att[p] - max);
      sum += att[p];
    }
    float *o = j->out + (size_t)h * hs;
    memset(o, 0, sizeof(float) * (size_t)hs);
    for (int p = 0; p < n; p++) {
      const float a = (float)(att[p] / sum), *v = j->v + kvOff + (size_t)p * j->kv;
      for (int i = 0; i < hs; i++) o[i] += a * v[i];
    }
  }
  free(att);
}

static napi_value attention(napi_env env, napi_callback_info info) {
  call_t c;
  if (!begin(env, info, &c, 10)) return NULL;
  double layerOff = NAN;
  if (c.ok && (napi_get_value_double(env, c.argv[4], &layerOff) != napi_ok || !(layerOff >= 0) || layerOff != floor(layerOff)))
    fail(&c, "bitcrush_native: bad integer argument");
  int pos = int_arg(&c, 5, 0, 2147483647.0), nh = int_arg(&c, 6, 1, 65536), nkv = int_arg(&c, 7, 1, 65536);
  int hs = int_arg(&c, 8, 1, 65536), kv = int_arg(&c, 9, 1, 2147483647.0);
  if (c.ok && (nh % nkv != 0 || (double)nkv * hs > kv)) fail(&c, "bitcrush_native: attention heads do not fit kvDim");
  double cacheNeed = layerOff + (double)(pos + 1) * kv;
  att_job j = {
      typed(&c, 0, napi_float32_array, (double)nh * hs, 0), typed(&c, 1, napi_float32_array, (double)nh * hs, 0),
      typed(&c, 2, napi_float32_array, cacheNeed, 0), typed(&c, 3, napi_float32_array, cacheNeed, 0),
      pos, nh / (nkv > 0 ? nkv : 1), hs, kv, (float)(1 / sqrt((double)hs)),
  };
  if (!c.ok) return NULL;
  j.k += (size_t)layerOff;
  j.v += (size_t)layerOff;
  /* below ~64k multiply-adds a thread wake costs more than it saves */
  if ((double)nh * (pos + 1) * hs < 65536.0) att_heads(&j, 0, nh);
  else pool_run(att_heads, &j, nh, 1);
  return NULL;
}

void decode_ops_define(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"decodeAddRmsnorm", NULL, add_rmsnorm, NULL, NULL, NULL, napi_default, NULL},
      {"decodeSiluMul", NULL, silu_mul, NULL, NULL, NULL, napi_default, NULL},
      {"decodeAttention", NULL, attention, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
