/*
 * The read-bandwidth probe of `npm run bench:decode`: a streaming sum of a buffer far larger
 * than the caches, split across the pool's threads. Four independent 64-bit accumulators keep
 * the loop load-bound; the sum is returned so the reads cannot be optimised away.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pool.h"
#include "probe.h"

typedef struct {
  const uint8_t *p;
  uint64_t total; /* atomic: one add per thread */
} probe_t;

/* The pool splits 4 KiB pages; each thread sums its pages. */
static void sum_pages(void *ctx, int i0, int i1) {
  probe_t *c = ctx;
  const uint64_t *w = (const uint64_t *)(c->p + (size_t)i0 * 4096);
  size_t n = (size_t)(i1 - i0) * 512;
  uint64_t a = 0, b = 0, d = 0, e = 0;
  for (size_t i = 0; i < n; i += 4) {
    a += w[i];
    b += w[i + 1];
    d += w[i + 2];
    e += w[i + 3];
  }
  __atomic_fetch_add(&c->total, a + b + d + e, __ATOMIC_RELAXED);
}

double probe_stream_sum(const uint8_t *p, size_t bytes) {
  probe_t c;
  memset(&c, 0, sizeof c);
  c.p = p;
  pool_run(sum_pages, &c, (int)(bytes / 4096), 1);
  return (double)(c.total & 0xffffffffu);
}
