/*
 * A small persistent thread pool for the addon's own kernels (the low-bit matvecs and the
 * bandwidth probe). OpenBLAS keeps its own threads; this pool serves the kernels it lacks.
 * pool_run splits [0, n) into one contiguous range per thread (multiples of `align`), runs the
 * first range on the caller and returns when every range is done. Workers spin briefly for the
 * next job (decode issues ~60 short calls per token), then sleep on a condition variable so an
 * idle model costs no CPU on a shared machine.
 */
#ifndef BITCRUSH_POOL_H
#define BITCRUSH_POOL_H

typedef void (*pool_fn)(void *ctx, int i0, int i1);

/* Threads including the caller (1..64); the pool's workers are started on first use. */
void pool_set_threads(int threads);
int pool_threads(void);
void pool_run(pool_fn fn, void *ctx, int n, int align);

#endif
