#ifndef BITCRUSH_LOWBIT_NAPI_H
#define BITCRUSH_LOWBIT_NAPI_H
#include <node_api.h>
/* Adds the low-bit kernels (lowbit-napi.c) to the addon's exports. */
void lowbit_define(napi_env env, napi_value exports);
#endif
