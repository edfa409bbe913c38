/*
 * N-API wrappers of the binary-billm kernels (binary.h), shapes checked before any pointer is
 * touched (napi-args.h):
 *   binaryPrepare(salCol, salStart, sal1, salient, sign, out, in, blockSize, nSal)
 *   binaryMatvec(y, x, Z...)          y [out] = W·x̃ (binary.h)
 *   binaryDequant(w, Z..., r0, r1)    rows [r0, r1) into w [(r1 − r0)·in]
 * with Z = sign, split, sal1, residual (null when nSal = 0), scales (Uint16Array float16 bits),
 * salCol, salStart (Int32Array, from binaryPrepare), out, in, blockSize, nSal.
 */
#include "binary-napi.h"

#include "binary.h"
#include "napi-args.h"

/* Z at index i.. into w. */
static int bn_args(call_t *c, int i, bn_tensor *w) {
  w->out = int_arg(c, i + 7, 0, 2147483647.0);
  w->in = int_arg(c, i + 8, 1, 2147483647.0);
  w->block_size = int_arg(c, i + 9, 128, 1 << 16);
  w->n_sal = int_arg(c, i + 10, 0, w->in);
  if (!c->ok) return 0;
  if (w->block_size % 128 != 0) return fail(c, "bitcrush_native: binary blockSize must be a multiple of 128");
  w->rb = (w->in + 7) / 8;
  w->sal_rb = (w->n_sal + 7) / 8;
  w->n_blocks = (w->in + w->block_size - 1) / w->block_size;
  double out = w->out;
  w->sign = typed(c, i, napi_uint8_array, out * w->rb, 0);
  w->split = typed(c, i + 1, napi_uint8_array, out * w->rb, 0);
  w->sal1 = typed(c, i + 2, napi_uint8_array, out * w->sal_rb, w->n_sal == 0);
  w->res = typed(c, i + 3, napi_uint8_array, out * w->sal_rb, w->n_sal == 0);
  w->scales_len = (size_t)(out * w->n_blocks * 7);
  w->scales = typed(c, i + 4, napi_uint16_array, (double)w->scales_len, 0);
  w->sal_col = typed(c, i + 5, napi_int32_array, w->n_sal, 0);
  w->sal_start = typed(c, i + 6, napi_int32_array, w->n_blocks + 1, 0);
  if (!c->ok) return 0;
  if (w->n_sal > 0 && (!w->sal1 || !w->res)) return fail(c, "bitcrush_native: salient planes missing");
  /* the index must be what binaryPrepare makes: ascending columns inside their blocks */
  if (w->sal_start[0] != 0 || w->sal_start[w->n_blocks] != w->n_sal) return fail(c, "bitcrush_native: bad salient index");
  for (int b = 0; b < w->n_blocks; b++) {
    if (w->sal_start[b + 1] < w->sal_start[b]) return fail(c, "bitcrush_native: bad salient index");
    for (int k = w->sal_start[b]; k < w->sal_start[b + 1]; k++) {
      int j = w->sal_col[k];
      if (j < b * w->block_size || j >= (b + 1) * w->block_size || j >= w->in) return fail(c, "bitcrush_native: bad salient index");
    }
  }
  return 1;
}

static napi_value prepare(napi_env env, napi_callback_info info) {
  call_t c;
  if (!begin(env, info, &c, 9)) return NULL;
  int out = int_arg(&c, 5, 0, 2147483647.0), in = int_arg(&c, 6, 1, 2147483647.0);
  int bs = int_arg(&c, 7, 8, 1 << 16), n_sal = int_arg(&c, 8, 0, in);
  if (!c.ok) return NULL;
  double rb = (in + 7) / 8, nb = (in + bs - 1) / bs;
  int32_t *sal_col = typed(&c, 0, napi_int32_array, n_sal, 0);
  int32_t *sal_start = typed(&c, 1, napi_int32_array, nb + 1, 0);
  uint8_t *sal1 = typed(&c, 2, napi_uint8_array, (double)out * ((n_sal + 7) / 8), 0);
  const uint8_t *salient = typed(&c, 3, napi_uint8_array, rb, 0);
  const uint8_t *sign = typed(&c, 4, napi_uint8_array, (double)out * rb, 0);
  if (!c.ok) return NULL;
  int n = 0;
  for (int j = 0; j < in; j++) n += (salient[j >> 3] >> (j & 7)) & 1;
  if (n != n_sal) return fail(&c, "bitcrush_native: salient mask does not hold nSal columns"), NULL;
  bn_prepare(sal_col, sal_start, sal1, salient, sign, out, in, bs);
  return NULL;
}

static napi_value matvec(napi_env env, napi_callback_info info) {
  call_t c;
  bn_tensor w;
  if (!begin(env, info, &c, 13) || !bn_args(&c, 2, &w)) return NULL;
  float *y = typed(&c, 0, napi_float32_array, w.out, 0);
  const float *x = typed(&c, 1, napi_float32_array, w.in, 0);
  if (!c.ok || w.out == 0) return NULL;
  if (!bn_gemv(&w, x, y)) napi_throw_error(env, NULL, "bitcrush_native: out of memory");
  return NULL;
}

static napi_value dequant(napi_env env, napi_callback_info info) {
  call_t c;
  bn_tensor w;
  if (!begin(env, info, &c, 14) || !bn_args(&c, 1, &w)) return NULL;
  int r0 = int_arg(&c, 12, 0, w.out), r1 = int_arg(&c, 13, 0, w.out);
  if (c.ok && r1 < r0) fail(&c, "bitcrush_native: r1 < r0");
  float *dst = typed(&c, 0, napi_float32_array, (double)(r1 - r0) * w.in, 0);
  if (!c.ok) return NULL;
  bn_dequant(&w, dst, r0, r1);
  return NULL;
}

void binary_define(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"binaryPrepare", NULL, prepare, NULL, NULL, NULL, napi_default, NULL},
      {"binaryMatvec", NULL, matvec, NULL, NULL, NULL, napi_default, NULL},
      {"binaryDequant", NULL, dequant, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
