/*
 * N-API wrappers of the binary-billm kernels (binary.h), shapes checked before any pointer is
 * touched (napi-args.h):
 *   binaryPrepare(planes, scalesT, sal, salCol, salStart, salient, sign, split, residual, scales, out, in, blockSize, nSal)
 *                                     the file's blobs (residual null when nSal = 0) into the kernel layout
 *   binaryMatvec(y, x, Z...)          y [out] = W·x̃ (binary.h)
 *   binaryGemm(y, x, rows, Z...)      y [rows, out] = X·W̃ᵀ, X [rows, in] (where binaryGemmSimd())
 *   binaryDequant(w, Z..., r0, r1)    rows [r0, r1) into w [(r1 − r0)·in]
 * with Z = planes (BigUint64Array), scalesT (Uint16Array float16 bits), sal (Uint32Array),
 * salCol, salStart (Int32Array), out, in, blockSize, nSal: binaryPrepare's outputs.
 */
#include "binary-napi.h"

#include "binary.h"
#include "napi-args.h"

/* out, in, blockSize, nSal at index i.. into w's shape. */
static int bn_shape(call_t *c, int i, bn_tensor *w) {
  w->out = int_arg(c, i, 0, 2147483647.0);
  w->in = int_arg(c, i + 1, 1, 2147483647.0);
  w->block_size = int_arg(c, i + 2, 128, 1 << 16);
  w->n_sal = int_arg(c, i + 3, 0, w->in);
  if (!c->ok) return 0;
  if (w->block_size % 128 != 0) return fail(c, "bitcrush_native: binary blockSize must be a multiple of 128");
  w->n_blocks = (w->in + w->block_size - 1) / w->block_size;
  w->groups = (w->out + 15) / 16, w->chunks = (w->in + 127) / 128, w->quads = 32 * w->chunks;
  return 1;
}

/* The salient index must be what binaryPrepare makes: ascending columns inside their blocks. */
static int check_index(call_t *c, const bn_tensor *w) {
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

/* Z at index i.. into w. */
static int bn_args(call_t *c, int i, bn_tensor *w) {
  if (!bn_shape(c, i + 5, w)) return 0;
  w->planes = typed(c, i, napi_biguint64_array, (double)bn_planes_len(w->out, w->in), 0);
  w->scales = typed(c, i + 1, napi_uint16_array, (double)bn_scales_len(w->out, w->in, w->block_size), 0);
  w->sal = typed(c, i + 2, napi_uint32_array, (double)bn_sal_len(w->out, w->n_sal), 0);
  w->sal_col = typed(c, i + 3, napi_int32_array, w->n_sal, 0);
  w->sal_start = typed(c, i + 4, napi_int32_array, w->n_blocks + 1, 0);
  if (!c->ok) return 0;
  return check_index(c, w);
}

static napi_value prepare(napi_env env, napi_callback_info info) {
  call_t c;
  bn_tensor w;
  if (!begin(env, info, &c, 14) || !bn_shape(&c, 10, &w)) return NULL;
  double rb = (w.in + 7) / 8, srb = (w.n_sal + 7) / 8;
  uint64_t *planes = typed(&c, 0, napi_biguint64_array, (double)bn_planes_len(w.out, w.in), 0);
  uint16_t *scales_t = typed(&c, 1, napi_uint16_array, (double)bn_scales_len(w.out, w.in, w.block_size), 0);
  uint32_t *sal = typed(&c, 2, napi_uint32_array, (double)bn_sal_len(w.out, w.n_sal), 0);
  int32_t *sal_col = typed(&c, 3, napi_int32_array, w.n_sal, 0);
  int32_t *sal_start = typed(&c, 4, napi_int32_array, w.n_blocks + 1, 0);
  const uint8_t *salient = typed(&c, 5, napi_uint8_array, rb, 0);
  const uint8_t *sign = typed(&c, 6, napi_uint8_array, (double)w.out * rb, 0);
  const uint8_t *split = typed(&c, 7, napi_uint8_array, (double)w.out * rb, 0);
  const uint8_t *res = typed(&c, 8, napi_uint8_array, (double)w.out * srb, w.n_sal == 0);
  const uint16_t *scales = typed(&c, 9, napi_uint16_array, (double)w.out * w.n_blocks * BN_NS, 0);
  if (!c.ok) return NULL;
  if (w.n_sal > 0 && !res) return fail(&c, "bitcrush_native: residual plane missing"), NULL;
  int n = 0;
  for (int j = 0; j < w.in; j++) n += (salient[j >> 3] >> (j & 7)) & 1;
  if (n != w.n_sal) return fail(&c, "bitcrush_native: salient mask does not hold nSal columns"), NULL;
  bn_prepare(planes, scales_t, sal, sal_col, sal_start, salient, sign, split, res, scales, w.out, w.in, w.block_size);
  return NULL;
}

static napi_value matvec(napi_env env, napi_callback_info info) {
  call_t c;
  bn_tensor w;
  if (!begin(env, info, &c, 11) || !bn_args(&c, 2, &w)) return NULL;
  float *y = typed(&c, 0, napi_float32_array, w.out, 0);
  const float *x = typed(&c, 1, napi_float32_array, w.in, 0);
  if (!c.ok || w.out == 0) return NULL;
  if (!bn_gemv(&w, x, y)) napi_throw_error(env, NULL, "bitcrush_native: out of memory");
  return NULL;
}

static napi_value gemm(napi_env env, napi_callback_info info) {
  call_t c;
  bn_tensor w;
  if (!begin(env, info, &c, 12) || !bn_args(&c, 3, &w)) return NULL;
  int rows = int_arg(&c, 2, 0, 1 << 20);
  float *y = typed(&c, 0, napi_float32_array, (double)rows * w.out, 0);
  const float *x = typed(&c, 1, napi_float32_array, (double)rows * w.in, 0);
  if (!c.ok || w.out == 0 || rows == 0) return NULL;
  if (!bn_gemm_simd()) return fail(&c, "bitcrush_native: the binary GEMM needs AVX-512 VNNI (binaryGemmSimd)"), NULL;
  if (!bn_gemm(&w, x, rows, y)) napi_throw_error(env, NULL, "bitcrush_native: out of memory");
  return NULL;
}

static napi_value gemm_simd(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value v;
  napi_get_boolean(env, bn_gemm_simd(), &v);
  return v;
}

static napi_value dequant(napi_env env, napi_callback_info info) {
  call_t c;
  bn_tensor w;
  if (!begin(env, info, &c, 12) || !bn_args(&c, 1, &w)) return NULL;
  int r0 = int_arg(&c, 10, 0, w.out), r1 = int_arg(&c, 11, 0, w.out);
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
      {"binaryGemm", NULL, gemm, NULL, NULL, NULL, napi_default, NULL},
      {"binaryGemmSimd", NULL, gemm_simd, NULL, NULL, NULL, napi_default, NULL},
      {"binaryDequant", NULL, dequant, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
