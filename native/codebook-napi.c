/*
 * N-API wrappers of the AQLM codebook kernels (codebook.h), shapes checked before any pointer
 * is touched (napi-args.h):
 *   codebookPrepare(cbt, cb16, M, B, g)   cbt Float32Array [2·M·g·2^B] from the file's float16 bits
 *   codebookTile(dst, codes, out, in, M, g)  B = 8: the file's code rows into the tiled layout (same size)
 *   codebookMatvec(y, x, C...)            y [out] = W·x
 *   codebookGemm(y, x, rows, C...)        B = 8: y [rows, out] = x [rows, in]·Wᵀ (int8 tables)
 *   codebookDequant(w, C..., r0, r1)      rows [r0, r1) into w [(r1 − r0)·in]
 *   codebookSetKernel(level)              caps the B = 8 kernel (tests): 0 scalar, 1 AVX2, 2 AVX-512 VBMI / NEON, −1 best
 *   codebookKernel() -> level             the B = 8 kernel in use
 * with C = codes (Uint8Array: B < 8 the file's bitstream rows, B = 8 tiled by codebookTile), cbt,
 * scale (Uint16Array float16 bits), out, in, M, B (1..8), g.
 */
#include "codebook-napi.h"

#include "codebook.h"
#include "napi-args.h"

/* C at index i.. into w. */
static int cb_args(call_t *c, int i, cb_tensor *w) {
  w->out = int_arg(c, i + 3, 0, 2147483647.0);
  w->in = int_arg(c, i + 4, 1, 2147483647.0);
  w->M = int_arg(c, i + 5, 1, 16);
  w->B = int_arg(c, i + 6, 1, 8);
  w->g = int_arg(c, i + 7, 1, 64);
  if (!c->ok) return 0;
  if (w->in % w->g != 0) return fail(c, "bitcrush_native: g must divide in");
  w->K = 1 << w->B;
  w->nG = w->in / w->g;
  double n = (double)w->nG * w->M;
  if (n * w->K > 67108864.0) return fail(c, "bitcrush_native: codebook lookup table too large");
  w->row_bytes = (size_t)((n * w->B + 7) / 8);
  w->codes = typed(c, i, napi_uint8_array, (double)w->out * w->row_bytes, 0);
  w->cbt = typed(c, i + 1, napi_float32_array, 2.0 * w->M * w->K * w->g, 0);
  w->scale = typed(c, i + 2, napi_uint16_array, w->out, 0);
  return c->ok;
}

static napi_value prepare(napi_env env, napi_callback_info info) {
  call_t c;
  if (!begin(env, info, &c, 5)) return NULL;
  int M = int_arg(&c, 2, 1, 16), B = int_arg(&c, 3, 1, 8), g = int_arg(&c, 4, 1, 64);
  double n = (double)M * (1 << B) * g;
  float *cbt = typed(&c, 0, napi_float32_array, 2 * n, 0);
  const uint16_t *cb16 = typed(&c, 1, napi_uint16_array, n, 0);
  if (!c.ok) return NULL;
  cb_prepare(cbt, cb16, M, 1 << B, g);
  return NULL;
}

static napi_value matvec(napi_env env, napi_callback_info info) {
  call_t c;
  cb_tensor w;
  if (!begin(env, info, &c, 10) || !cb_args(&c, 2, &w)) return NULL;
  float *y = typed(&c, 0, napi_float32_array, w.out, 0);
  const float *x = typed(&c, 1, napi_float32_array, w.in, 0);
  if (!c.ok || w.out == 0) return NULL;
  if (!cb_gemv(&w, x, y)) napi_throw_error(env, NULL, "bitcrush_native: out of memory");
  return NULL;
}

static napi_value tile(napi_env env, napi_callback_info info) {
  call_t c;
  if (!begin(env, info, &c, 6)) return NULL;
  int out = int_arg(&c, 2, 0, 2147483647.0), in = int_arg(&c, 3, 1, 2147483647.0);
  int M = int_arg(&c, 4, 1, 16), g = int_arg(&c, 5, 1, 64);
  if (c.ok && in % g != 0) fail(&c, "bitcrush_native: g must divide in");
  if (!c.ok) return NULL;
  double bytes = (double)out * (in / g) * M;
  uint8_t *dst = typed(&c, 0, napi_uint8_array, bytes, 0);
  const uint8_t *codes = typed(&c, 1, napi_uint8_array, bytes, 0);
  if (c.ok && dst == codes) fail(&c, "bitcrush_native: codebookTile needs two buffers");
  if (!c.ok || bytes == 0) return NULL;
  cb_tile_codes(dst, codes, out, in / g, M);
  return NULL;
}

static napi_value gemm(napi_env env, napi_callback_info info) {
  call_t c;
  cb_tensor w;
  if (!begin(env, info, &c, 11) || !cb_args(&c, 3, &w)) return NULL;
  int rows = int_arg(&c, 2, 0, 1048576.0);
  if (c.ok && w.B != 8) fail(&c, "bitcrush_native: codebookGemm takes 8-bit codes");
  float *y = typed(&c, 0, napi_float32_array, (double)rows * w.out, 0);
  const float *x = typed(&c, 1, napi_float32_array, (double)rows * w.in, 0);
  if (!c.ok || w.out == 0 || rows == 0) return NULL;
  if (!cb_gemm8(&w, x, y, rows)) napi_throw_error(env, NULL, "bitcrush_native: out of memory");
  return NULL;
}

static napi_value dequant(napi_env env, napi_callback_info info) {
  call_t c;
  cb_tensor w;
  if (!begin(env, info, &c, 11) || !cb_args(&c, 1, &w)) return NULL;
  int r0 = int_arg(&c, 9, 0, w.out), r1 = int_arg(&c, 10, 0, w.out);
  if (c.ok && r1 < r0) fail(&c, "bitcrush_native: r1 < r0");
  float *dst = typed(&c, 0, napi_float32_array, (double)(r1 - r0) * w.in, 0);
  if (!c.ok) return NULL;
  cb_dequant(&w, dst, r0, r1);
  return NULL;
}

static napi_value set_kernel(napi_env env, napi_callback_info info) {
  call_t c;
  if (!begin(env, info, &c, 1)) return NULL;
  int level = int_arg(&c, 0, -1, 2);
  if (c.ok) cb_set_kernel(level);
  return NULL;
}

static napi_value kernel_level(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value v;
  napi_create_int32(env, cb_kernel_level(), &v);
  return v;
}

void codebook_define(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"codebookPrepare", NULL, prepare, NULL, NULL, NULL, napi_default, NULL},
      {"codebookTile", NULL, tile, NULL, NULL, NULL, napi_default, NULL},
      {"codebookMatvec", NULL, matvec, NULL, NULL, NULL, napi_default, NULL},
      {"codebookGemm", NULL, gemm, NULL, NULL, NULL, napi_default, NULL},
      {"codebookDequant", NULL, dequant, NULL, NULL, NULL, napi_default, NULL},
      {"codebookSetKernel", NULL, set_kernel, NULL, NULL, NULL, napi_default, NULL},
      {"codebookKernel", NULL, kernel_level, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
