#ifndef BITCRUSH_DECODE_OPS_H
#define BITCRUSH_DECODE_OPS_H
#include <node_api.h>
/* Adds the decode step's vector ops (decode-ops.c) to the addon's exports. */
void decode_ops_define(napi_env env, napi_value exports);
#endif
