/* Re-registration: a transport whose protection domain changes (an iSER
 * reconnect) needs every region of the pool registered again, once. */
#include <config.h>

#include "internal.h"

static int
rehandle_region (struct region *r,
                 int (*fn) (void *arg, void *base, size_t len, void **handle),
                 void *arg)
{
  return fn (arg, r->base, r->len, &r->handle);
}

int
mempool_rehandle (struct mempool *pool,
                  int (*fn) (void *arg, void *base, size_t len, void **handle),
                  void *arg)
{
  int err = 0;

  pool_lock_acquire (&pool->lock);
  for (size_t i = 0; i < pool->nchunks && err == 0; i++)
    err = rehandle_region (&pool->chunk_v[i]->region, fn, arg);
  for (struct region *r = pool->directs.head; r && err == 0; r = r->next)
    err = rehandle_region (r, fn, arg);
  pool_lock_release (&pool->lock);
  return err;
}
