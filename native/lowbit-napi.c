/*
 * N-API wrappers of the uniform low-bit kernels (lowbit.h). Every call checks its shapes
 * against the typed arrays' lengths before a pointer is touched, so a bad call throws instead
 * of reading out of bounds:
 *   uniformMatvec(y, x, q, scale, zero, perm, out, in, groupSize, bits)
 *   uniformDequant(w, q, scale, zero, perm, out, in, groupSize, bits, r0, r1)
 *   uniformRepack3(dst, src, out, in)
 *   uniformGemm(y, x, rows, q, scale, zero, perm, out, in, groupSize, bits): y [rows, out] = x [rows, in] · Wᵀ
 *     (int8 activations, lb_gemm); mixedGemm(y, x, rows, M...) the same for a mixed tensor
 *   mixedMatvec(y, x, M...), mixedDequant(w, M..., r0, r1), mixedRepack3(M...) with
 *     M = q, scale, zero, zero1, widths, goff, zbit, out, in, rowStride, zbytes, n1 (lowbit.h lb_mixed)
 *   lowbitIsa() -> string, lowbitSetIsa(name) -> boolean
 * y, x, w: Float32Array; q, zero, dst, src: Uint8Array; scale: Uint16Array (float16 bits);
 * perm: Int32Array; zero and perm may be null.
 */
#include "lowbit-napi.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lowbit.h"

#include "napi-args.h"

static size_t row_stride(int in, int bits) {
  return bits == 3 ? (size_t)((in + LB_BLOCK - 1) / LB_BLOCK) * 48 : ((size_t)in * bits + 7) / 8;
}

/* Arguments q, scale, zero, perm, out, in, groupSize, bits at index i.. into w; perm returned. */
static const int32_t *uniform_args(call_t *c, int i, lb_uniform *w) {
  int out = int_arg(c, i + 4, 0, 2147483647.0), in = int_arg(c, i + 5, 1, 2147483647.0);
  int gs = int_arg(c, i + 6, 1, 2147483647.0), bits = int_arg(c, i + 7, 2, 8);
  if (!c->ok) return NULL;
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8) return fail(c, "bitcrush_native: bits must be 2, 3, 4 or 8"), NULL;
  if (gs > in) gs = in;
  if (gs < in && gs % LB_BLOCK != 0 && gs != 32 && gs != 64) return fail(c, "bitcrush_native: groupSize must be 32, 64, a multiple of 128 or one group per row"), NULL;
  memset(w, 0, sizeof *w);
  w->out = out, w->in = in, w->bits = bits;
  w->blocks = (in + LB_BLOCK - 1) / LB_BLOCK;
  w->n_groups = (in + gs - 1) / gs;
  w->gsub = gs < in && gs < LB_BLOCK ? LB_BLOCK / gs : 1;
  w->group_blocks = gs < in ? (gs < LB_BLOCK ? 1 : gs / LB_BLOCK) : w->blocks;
  w->row_stride = row_stride(in, bits);
  w->zbytes = (w->n_groups * bits + 7) / 8;
  w->q = typed(c, i, napi_uint8_array, (double)out * w->row_stride, 0);
  w->scale = typed(c, i + 1, napi_uint16_array, (double)out * w->n_groups, 0);
  w->zero = typed(c, i + 2, napi_uint8_array, (double)out * w->zbytes, 1);
  const int32_t *perm = typed(c, i + 3, napi_int32_array, in, 1);
  if (c->ok && perm) {
    for (int j = 0; j < in; j++)
      if (perm[j] < 0 || perm[j] >= in) return fail(c, "bitcrush_native: perm entry out of range"), NULL;
  }
  return perm;
}

static napi_value uniform_matvec(napi_env env, napi_callback_info info) {
  call_t c;
  lb_uniform w;
  if (!begin(env, info, &c, 10)) return NULL;
  const int32_t *perm = uniform_args(&c, 2, &w);
  float *y = typed(&c, 0, napi_float32_array, w.out, 0);
  const float *x = typed(&c, 1, napi_float32_array, w.in, 0);
  if (!c.ok || w.out == 0) return NULL;
  /* one allocation per call: the addon may be called from several JS threads */
  size_t nb = (size_t)w.blocks, nxq = (nb + 1) / 2 * 256; /* room for pair order (lowbit.h) */
  size_t ng = (size_t)w.n_groups;
  void *mem = malloc(nxq + nb * 24 + ng * 4 + 64);
  if (!mem) {
    napi_throw_error(env, NULL, "bitcrush_native: out of memory");
    return NULL;
  }
  char *m = mem;
  /* xq [nxq], xs [nb], xsum [nb], xsum32 [4·nb], gx [n_groups]; pair order only where groups are whole blocks */
  lb_act a = {(int8_t *)m, (float *)(m + nxq), (int32_t *)(m + nxq + nb * 4), (float *)(m + nxq + nb * 24),
              (int32_t *)(m + nxq + nb * 8), w.gsub == 1 && lb_pairs(w.bits)};
  lb_quantize_act(x, perm, w.in, w.blocks, w.bits, NULL, &a);
  lb_gemv(&w, &a, y);
  free(mem);
  return NULL;
}

static napi_value uniform_dequant(napi_env env, napi_callback_info info) {
  call_t c;
  lb_uniform w;
  if (!begin(env, info, &c, 11)) return NULL;
  const int32_t *perm = uniform_args(&c, 1, &w);
  int r0 = int_arg(&c, 9, 0, w.out), r1 = int_arg(&c, 10, 0, w.out);
  if (c.ok && r1 < r0) fail(&c, "bitcrush_native: r1 < r0");
  float *dst = typed(&c, 0, napi_float32_array, (double)(r1 - r0) * w.in, 0);
  if (!c.ok) return NULL;
  lb_dequant_rows(&w, perm, dst, r0, r1);
  return NULL;
}

static napi_value uniform_gemm(napi_env env, napi_callback_info info) {
  call_t c;
  lb_uniform w;
  if (!begin(env, info, &c, 11)) return NULL;
  int rows = int_arg(&c, 2, 0, 2147483647.0);
  const int32_t *perm = uniform_args(&c, 3, &w);
  float *y = typed(&c, 0, napi_float32_array, (double)rows * w.out, 0);
  const float *x = typed(&c, 1, napi_float32_array, (double)rows * w.in, 0);
  if (!c.ok || w.out == 0 || rows == 0) return NULL;
  if (!lb_gemm(&w, perm, x, rows, y)) napi_throw_error(env, NULL, "bitcrush_native: out of memory");
  return NULL;
}

static napi_value uniform_repack3(napi_env env, napi_callback_info info) {
  call_t c;
  if (!begin(env, info, &c, 4)) return NULL;
  int out = int_arg(&c, 2, 0, 2147483647.0), in = int_arg(&c, 3, 1, 2147483647.0);
  uint8_t *dst = typed(&c, 0, napi_uint8_array, (double)out * row_stride(in, 3), 0);
  const uint8_t *src = typed(&c, 1, napi_uint8_array, (double)out * (double)(((size_t)in * 3 + 7) / 8), 0);
  if (!c.ok) return NULL;
  lb_repack3(dst, src, out, in);
  return NULL;
}

/* Mixed arguments q, scale, zero, zero1, widths, goff, zbit, out, in, rowStride, zbytes, n1 at index i.. */
static int mixed_args(call_t *c, int i, lb_mixed *w) {
  memset(w, 0, sizeof *w);
  w->out = int_arg(c, i + 7, 0, 2147483647.0);
  w->in = int_arg(c, i + 8, LB_BLOCK, 2147483647.0);
  double stride = int_arg(c, i + 9, 0, 2147483647.0);
  w->zbytes = int_arg(c, i + 10, 0, 2147483647.0);
  w->n1 = int_arg(c, i + 11, 0, 2147483647.0);
  if (!c->ok) return 0;
  if (w->in % LB_BLOCK != 0) return fail(c, "bitcrush_native: mixed kernels need in % 128 == 0");
  w->row_stride = (size_t)stride;
  w->n_groups = w->in / LB_BLOCK;
  int ng = w->n_groups;
  w->q = typed(c, i, napi_uint8_array, (double)w->out * stride, 0);
  w->scale = typed(c, i + 1, napi_uint16_array, (double)w->out * ng, 0);
  w->zero = typed(c, i + 2, napi_uint8_array, (double)w->out * w->zbytes, 1);
  w->zero1 = typed(c, i + 3, napi_uint16_array, (double)w->out * w->n1, 1);
  w->widths = typed(c, i + 4, napi_uint8_array, ng, 0);
  w->goff = typed(c, i + 5, napi_int32_array, ng, 0);
  w->zbit = typed(c, i + 6, napi_int32_array, ng, 0);
  if (!c->ok) return 0;
  for (int g = 0; g < ng; g++) {
    int b = w->widths[g], zb = w->zbit[g];
    if (b < 1 || b > 4) return fail(c, "bitcrush_native: mixed widths must be 1..4");
    if (w->goff[g] < 0 || (double)w->goff[g] + 16.0 * b > stride) return fail(c, "bitcrush_native: mixed group offset out of the row");
    if (b == 1 ? !(zb < 0 && -1 - zb < w->n1 && w->zero1) : !(zb >= 0 && (double)zb + b <= 8.0 * w->zbytes && w->zero))
      return fail(c, "bitcrush_native: mixed zero index out of range");
  }
  return 1;
}

/* mixedMatvec(y, x, q, scale, zero, zero1, widths, goff, zbit, out, in, rowStride, zbytes, n1) */
static napi_value mixed_matvec(napi_env env, napi_callback_info info) {
  call_t c;
  lb_mixed w;
  if (!begin(env, info, &c, 14)) return NULL;
  if (!mixed_args(&c, 2, &w)) return NULL;
  float *y = typed(&c, 0, napi_float32_array, w.out, 0);
  const float *x = typed(&c, 1, napi_float32_array, w.in, 0);
  if (!c.ok || w.out == 0) return NULL;
  size_t nb = (size_t)w.n_groups;
  char *m = malloc(nb * LB_BLOCK + nb * 12 + 64);
  if (!m) {
    napi_throw_error(env, NULL, "bitcrush_native: out of memory");
    return NULL;
  }
  lb_act a = {(int8_t *)m, (float *)(m + nb * LB_BLOCK), (int32_t *)(m + nb * LB_BLOCK + nb * 4), (float *)(m + nb * LB_BLOCK + nb * 8), NULL, 0};
  lb_quantize_act(x, NULL, w.in, w.n_groups, 0, w.widths, &a);
  lb_gemv_mixed(&w, &a, y);
  free(m);
  return NULL;
}

/* mixedGemm(y, x, rows, q, scale, zero, zero1, widths, goff, zbit, out, in, rowStride, zbytes, n1) */
static napi_value mixed_gemm(napi_env env, napi_callback_info info) {
  call_t c;
  lb_mixed w;
  if (!begin(env, info, &c, 15)) return NULL;
  int rows = int_arg(&c, 2, 0, 2147483647.0);
  if (!mixed_args(&c, 3, &w)) return NULL;
  float *y = typed(&c, 0, napi_float32_array, (double)rows * w.out, 0);
  const float *x = typed(&c, 1, napi_float32_array, (double)rows * w.in, 0);
  if (!c.ok || w.out == 0 || rows == 0) return NULL;
  if (!lb_gemm_mixed(&w, x, rows, y)) napi_throw_error(env, NULL, "bitcrush_native: out of memory");
  return NULL;
}

/* mixedDequant(w, q, scale, zero, zero1, widths, goff, zbit, out, in, rowStride, zbytes, n1, r0, r1) */
static napi_value mixed_dequant(napi_env env, napi_callback_info info) {
  call_t c;
  lb_mixed w;
  if (!begin(env, info, &c, 15)) return NULL;
  if (!mixed_args(&c, 1, &w)) return NULL;
  int r0 = int_arg(&c, 13, 0, w.out), r1 = int_arg(&c, 14, 0, w.out);
  if (c.ok && r1 < r0) fail(&c, "bitcrush_native: r1 < r0");
  float *dst = typed(&c, 0, napi_float32_array, (double)(r1 - r0) * w.in, 0);
  if (!c.ok) return NULL;
  lb_dequant_mixed(&w, dst, r0, r1);
  return NULL;
}

/* mixedRepack3(q, scale, zero, zero1, widths, goff, zbit, out, in, rowStride, zbytes, n1): q in place */
static napi_value mixed_repack3(napi_env env, napi_callback_info info) {
  call_t c;
  lb_mixed w;
  if (!begin(env, info, &c, 12)) return NULL;
  if (!mixed_args(&c, 0, &w)) return NULL;
  lb_repack_mixed3((uint8_t *)w.q, &w);
  return NULL;
}

static napi_value isa(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value s;
  napi_create_string_utf8(env, lb_isa(), NAPI_AUTO_LENGTH, &s);
  return s;
}

static napi_value set_isa(napi_env env, napi_callback_info info) {
  call_t c;
  char name[32] = {0};
  size_t len;
  napi_value r;
  if (!begin(env, info, &c, 1)) return NULL;
  if (napi_get_value_string_utf8(env, c.argv[0], name, sizeof name, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "bitcrush_native: expected an instruction-set name");
    return NULL;
  }
  napi_get_boolean(env, lb_set_isa(name), &r);
  return r;
}

void lowbit_define(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"uniformMatvec", NULL, uniform_matvec, NULL, NULL, NULL, napi_default, NULL},
      {"uniformDequant", NULL, uniform_dequant, NULL, NULL, NULL, napi_default, NULL},
      {"uniformRepack3", NULL, uniform_repack3, NULL, NULL, NULL, napi_default, NULL},
      {"uniformGemm", NULL, uniform_gemm, NULL, NULL, NULL, napi_default, NULL},
      {"mixedGemm", NULL, mixed_gemm, NULL, NULL, NULL, napi_default, NULL},
      {"lowbitIsa", NULL, isa, NULL, NULL, NULL, napi_default, NULL},
      {"mixedMatvec", NULL, mixed_matvec, NULL, NULL, NULL, napi_default, NULL},
      {"mixedDequant", NULL, mixed_dequant, NULL, NULL, NULL, napi_default, NULL},
      {"mixedRepack3", NULL, mixed_repack3, NULL, NULL, NULL, napi_default, NULL},
      {"lowbitSetIsa", NULL, set_isa, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
