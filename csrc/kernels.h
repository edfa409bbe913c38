/*
 * Shared definitions for the WebAssembly SIMD kernels (no libc: -nostdlib -ffreestanding).
 *
 * Every exported kernel takes a range (r0, r1) of output rows or columns as its last two
 * arguments so the JavaScript pool can split one call across threads; a range covering the
 * whole output computes everything. Pointers are byte offsets into the one shared memory.
 *
 * Rules that keep the module thread-safe without any runtime support:
 *  - no static or global data (each thread instantiates the module over the same memory);
 *  - no arrays on the C stack: the shadow stack pointer is a per-instance global that would
 *    start at the same address in every thread. Temporaries live in caller-provided scratch.
 */
#ifndef BITCRUSH_KERNELS_H
#define BITCRUSH_KERNELS_H

#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(#name), visibility("default")))

typedef __SIZE_TYPE__ size_t;

static inline int min_i(int a, int b) { return a < b ? a : b; }

#endif
