#ifndef BITCRUSH_BINARY_NAPI_H
#define BITCRUSH_BINARY_NAPI_H
#include <node_api.h>
/* Adds the binary-billm kernels (binary-napi.c) to the addon's exports. */
void binary_define(napi_env env, napi_value exports);
#endif
