/* lock.c: the contended path of the pool's lock (see lock.h). */
#include <config.h>

#include <sched.h>

#include "lock.h"

/* Spins between yields: long enough to cover a typical critical section
 * (tens of ns), short enough not to burn a time slice. */
#define SPINS 128

static inline void
cpu_relax (void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause ();
#elif defined(__aarch64__)
  __asm__ __volatile__ ("yield");
#endif
}

void
pool_lock_wait (struct pool_lock *l)
{
  for (;;) {
    /* Read, not exchange, while it is held: reading keeps the cache line
     * shared instead of bouncing it between the waiters. */
    for (unsigned i = 0; i < SPINS; i++) {
      if (atomic_load_explicit (&l->held, memory_order_relaxed) == 0 &&
          atomic_exchange_explicit (&l->held, 1, memory_order_acquire) == 0)
        return;
      cpu_relax ();
    }
    sched_yield ();
  }
}
