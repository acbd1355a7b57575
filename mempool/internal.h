/* internal.h: the pool's state, shared by the files of the library. */
#ifndef MEMPOOL_INTERNAL_H
#define MEMPOOL_INTERNAL_H

#include <stdio.h>

#include "chunk.h"
#include "lock.h"
#include "mempool.h"
#include "region.h"
#include "regmap.h"

/* At most this many frees wait for their tree updates: enough for the
 * completions of one batch, few enough to scan on every allocation. */
#define POOL_DEFERRED_MAX 16

struct mempool {
  /* Geometry, fixed at creation (read without the lock). */
  unsigned chunk_order, unit_order, levels;
  size_t chunk_size, unit_size;
  unsigned spare_chunks;
  int release_eagerly;
  struct mempool_hooks hooks;

  struct pool_lock lock;        /* protects everything below */
  /* The chunk list, head first, as arrays: the search from the head reads
   * only the bytes of roots[] (a copy of each chunk's tree root), not one
   * cache line per chunk; chunks are added and removed rarely. */
  struct chunk **chunk_v;
  tree_value *roots;
  size_t nchunks, chunks_cap;
  struct region_list directs;
  struct regmap map;            /* slot -> region, for O(1) free and find */
  unsigned empty_chunks;        /* chunks with nothing live in them */
  unsigned busy_peak;           /* most chunks in use since the last shrink */
  /* The last frees, all of one level, whose tree updates are deferred
   * (see mempool.c): out of the record and the counters, but their nodes
   * still marked in the trees and in roots[]. */
  struct {
    struct deferred_seg {
      struct chunk *chunk;
      unsigned node;
    } v[POOL_DEFERRED_MAX];
    unsigned n, level;
  } deferred;
  FILE *warn_fp;                /* where misuse is reported; NULL: silent */
  struct mempool_stats stats;
};

static inline uintptr_t
pool_slot (const struct mempool *pool, const void *addr)
{
  return (uintptr_t) addr >> pool->chunk_order;
}

/* Apply the deferred tree updates, if any, so that the trees and roots[]
 * describe exactly the live segments.  Called with the lock held. */
void pool_flush_deferred (struct mempool *pool);

/* Chunks with something live in them. */
static inline unsigned
pool_busy_chunks (const struct mempool *pool)
{
  return (unsigned) pool->nchunks - pool->empty_chunks;
}

/* May the pool hold more empty chunks than its spares right now?  Only
 * with hysteresis, and only while use has not fallen below the band. */
static inline int
pool_in_band (const struct mempool *pool)
{
  return !pool->release_eagerly &&
    (uint64_t) pool_busy_chunks (pool) * MEMPOOL_SHRINK_RATIO >=
    pool->busy_peak;
}

#endif /* MEMPOOL_INTERNAL_H */
