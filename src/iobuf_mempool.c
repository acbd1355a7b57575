/* The default allocator behind the iobuf hook: the buddy chunk pool. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "iobuf.h"
#include "log.h"
#include "mempool.h"

static struct mempool *pool;

static int
pool_alloc (void *ctx, size_t len, struct iobuf *buf)
{
  struct mempool_seg seg;
  int r = mempool_alloc (ctx, len, &seg);

  if (r < 0)
    return r;
  buf->addr = seg.addr;
  buf->len = seg.len;
  buf->handle = seg.handle;
  return 0;
}

static void
pool_free (void *ctx, struct iobuf *buf)
{
  /* A refused free is a bug in the engine; the pool has already counted it
   * and left its state unchanged, so say so and go on. */
  if (mempool_free (ctx, buf->addr) < 0)
    log_error ("internal error: buffer %p was not a live pool segment",
               buf->addr);
}

static void
pool_stats (void *ctx, FILE *fp)
{
  struct mempool_stats st;

  mempool_get_stats (ctx, &st);
  fprintf (fp,
           "pool_chunks=%" PRIu64 "\n"
           "pool_registrations=%" PRIu64 "\n"
           "pool_deregistrations=%" PRIu64 "\n"
           "pool_bytes_in_use=%" PRIu64 "\n"
           "pool_high_water=%" PRIu64 "\n"
           "pool_direct_allocs=%" PRIu64 "\n"
           "pool_failures=%" PRIu64 "\n",
           st.chunks, st.registrations, st.deregistrations, st.bytes_in_use,
           st.high_water, st.direct_allocs, st.failures);
}

void
iobuf_allocator_for_pool (struct mempool *p, struct iobuf_allocator *a)
{
  a->alloc = pool_alloc;
  a->free = pool_free;
  a->stats = pool_stats;
  a->ctx = p;
}

int
iobuf_use_mempool (void)
{
  struct iobuf_allocator a;

  pool = mempool_create (NULL);
  if (pool == NULL)
    return errno ? -errno : -ENOMEM;    /* mempool: NULL and errno */
  iobuf_allocator_for_pool (pool, &a);
  iobuf_set_default (&a);
  return 0;
}

void
iobuf_shutdown (void)
{
  struct iobuf_allocator none = { 0 };

  iobuf_set_default (&none);
  if (pool)
    mempool_destroy (pool);
  pool = NULL;
}
