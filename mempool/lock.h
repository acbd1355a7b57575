/* lock.h: the pool's lock, a test-and-set lock that yields while it waits.
 *
 * Why not a pthread mutex: every I/O takes the pool's lock twice (alloc and
 * free), the critical sections are a few tens of nanoseconds, and an
 * uncontended pthread_mutex_lock+unlock costs two atomic read-modify-writes
 * (~10 ns here, more than the buddy tree work of a 1 MiB segment).  This lock
 * takes one atomic exchange to acquire and a plain release store to let go
 * (~4.5 ns for the pair on the same machine).
 *
 * The price is that a waiter cannot sleep in the kernel: it spins briefly
 * (the holder is almost always about to finish), then yields the CPU between
 * attempts so that a holder that was preempted, or one that is registering a
 * new chunk with the transport, gets to run.
 */
#ifndef MEMPOOL_LOCK_H
#define MEMPOOL_LOCK_H

#include <stdatomic.h>

struct pool_lock {
  atomic_int held;
};

static inline void
pool_lock_init (struct pool_lock *l)
{
  atomic_init (&l->held, 0);
}

/* The contended path, out of line so the fast path stays small. */
void pool_lock_wait (struct pool_lock *l);

static inline void
pool_lock_acquire (struct pool_lock *l)
{
  if (atomic_exchange_explicit (&l->held, 1, memory_order_acquire) != 0)
    pool_lock_wait (l);
}

static inline void
pool_lock_release (struct pool_lock *l)
{
  atomic_store_explicit (&l->held, 0, memory_order_release);
}

#endif /* MEMPOOL_LOCK_H */
