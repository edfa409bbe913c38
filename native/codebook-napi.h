#ifndef BITCRUSH_CODEBOOK_NAPI_H
#define BITCRUSH_CODEBOOK_NAPI_H
#include <node_api.h>
/* Adds the AQLM codebook kernels (codebook-napi.c) to the addon's exports. */
void codebook_define(napi_env env, napi_value exports);
#endif
