/* The addon's thread pool (pool.h). One job at a time: N-API calls arrive on one JS thread. */
#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>

#define MAX_THREADS 64
/* Spins (with a pause) before a worker sleeps: ~50 µs, longer than the gap between the matvecs of one token. */
#define SPIN_LIMIT 20000

static struct {
  pthread_mutex_t lock;
  pthread_cond_t wake;
  atomic_int generation; /* bumped once per job */
  atomic_int pending;    /* ranges not yet finished */
  atomic_int sleepers;
  int started;           /* workers running */
  int threads;           /* threads a job uses, caller included */
  pool_fn fn;
  void *ctx;
  int n, align;
} P = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 1, 0, 0, 0, 1};

static inline void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

/* Range t of `threads` over [0, n), in multiples of align. */
static void range_of(int t, int threads, int n, int align, int *i0, int *i1) {
  int units = (n + align - 1) / align;
  int u0 = (int)((long long)units * t / threads), u1 = (int)((long long)units * (t + 1) / threads);
  *i0 = u0 * align < n ? u0 * align : n;
  *i1 = u1 * align < n ? u1 * align : n;
}

static void *worker(void *arg) {
  int id = (int)(long)arg, seen = 0;
  for (;;) {
    int g;
    int spins = 0;
    while ((g = atomic_load_explicit(&P.generation, memory_order_acquire)) == seen && spins < SPIN_LIMIT) {
      relax();
      spins++;
    }
    if (g == seen) {
      pthread_mutex_lock(&P.lock);
      atomic_fetch_add(&P.sleepers, 1);
      while ((g = atomic_load_explicit(&P.generation, memory_order_acquire)) == seen) pthread_cond_wait(&P.wake, &P.lock);
      atomic_fetch_sub(&P.sleepers, 1);
      pthread_mutex_unlock(&P.lock);
    }
    seen = g;
    if (id < P.threads) {
      int i0, i1;
      range_of(id, P.threads, P.n, P.align, &i0, &i1);
      if (i1 > i0) P.fn(P.ctx, i0, i1);
      atomic_fetch_sub_explicit(&P.pending, 1, memory_order_release);
    }
  }
  return 0;
}

void pool_set_threads(int threads) {
  if (threads < 1) threads = 1;
  if (threads > MAX_THREADS) threads = MAX_THREADS;
  P.threads = threads;
}

int pool_threads(void) { return P.threads; }

void pool_run(pool_fn fn, void *ctx, int n, int align) {
  if (align < 1) align = 1;
  int threads = P.threads;
  if (threads > (n + align - 1) / align) threads = (n + align - 1) / align;
  if (threads <= 1) {
    if (n > 0) fn(ctx, 0, n);
    return;
  }
  while (P.started < threads - 1) {
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* worker ids are 1..; a failed start leaves the job to fewer threads */
    if (pthread_create(&t, &attr, worker, (void *)(long)(P.started + 1)) != 0) {
      pthread_attr_destroy(&attr);
      break;
    }
    pthread_attr_destroy(&attr);
    P.started++;
  }
  if (threads > P.started + 1) threads = P.started + 1;
  int saved = P.threads;
  P.threads = threads;
  P.fn = fn;
  P.ctx = ctx;
  P.n = n;
  P.align = align;
  /* every started worker decrements once per generation, used or not */
  atomic_store(&P.pending, P.started);
  pthread_mutex_lock(&P.lock);
  atomic_fetch_add_explicit(&P.generation, 1, memory_order_release);
  if (atomic_load(&P.sleepers) > 0) pthread_cond_broadcast(&P.wake);
  pthread_mutex_unlock(&P.lock);
  int i0, i1;
  range_of(0, threads, n, align, &i0, &i1);
  if (i1 > i0) fn(ctx, i0, i1);
  while (atomic_load_explicit(&P.pending, memory_order_acquire) > 0) relax();
  P.threads = saved;
}
