/* Argument checks shared by the addon's N-API wrappers (lowbit-napi.c, codebook-napi.c): every
 * shape is checked against the typed arrays' lengths before a pointer is touched. */
#ifndef BITCRUSH_NAPI_ARGS_H
#define BITCRUSH_NAPI_ARGS_H

#include <math.h>
#include <stdbool.h>
#include <node_api.h>

#define MAX_ARGS 16

typedef struct {
  napi_env env;
  napi_value argv[MAX_ARGS];
  size_t argc;
  int ok;
} call_t;

static inline int fail(call_t *c, const char *msg) {
  if (c->ok) napi_throw_range_error(c->env, NULL, msg);
  c->ok = 0;
  return 0;
}

static inline int begin(napi_env env, napi_callback_info info, call_t *c, size_t want) {
  c->env = env;
  c->argc = MAX_ARGS;
  c->ok = napi_get_cb_info(env, info, &c->argc, c->argv, NULL, NULL) == napi_ok && c->argc >= want;
  if (!c->ok) napi_throw_type_error(env, NULL, "bitcrush_native: wrong number of arguments");
  return c->ok;
}

static inline int int_arg(call_t *c, int i, double lo, double hi) {
  double v = NAN;
  if (!c->ok) return 0;
  if (napi_get_value_double(c->env, c->argv[i], &v) != napi_ok || !(v >= lo && v <= hi) || v != floor(v)) {
    fail(c, "bitcrush_native: bad integer argument");
    return 0;
  }
  return (int)v;
}

/* A typed array of `type` with at least `need` elements; NULL (no error) for a JS null when nullable. */
static inline void *typed(call_t *c, int i, napi_typedarray_type type, double need, int nullable) {
  if (!c->ok) return NULL;
  napi_valuetype vt;
  if (nullable && napi_typeof(c->env, c->argv[i], &vt) == napi_ok && vt == napi_null) return NULL;
  napi_typedarray_type t;
  size_t length;
  void *data = NULL;
  bool is = false;
  napi_is_typedarray(c->env, c->argv[i], &is);
  if (!is || napi_get_typedarray_info(c->env, c->argv[i], &t, &length, &data, NULL, NULL) != napi_ok || t != type) {
    napi_throw_type_error(c->env, NULL, "bitcrush_native: an argument has the wrong typed-array type");
    c->ok = 0;
    return NULL;
  }
  if ((double)length < need) {
    fail(c, "bitcrush_native: array shorter than its shape");
    return NULL;
  }
  return data ? data : (void *)"";
}

#endif
