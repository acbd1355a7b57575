/* The allocator hook: a thin indirection so that the engine never depends on
 * which allocator (and which registration) backs its buffers. */
#include <config.h>

#include <errno.h>
#include <stdlib.h>

#include "iobuf.h"

static struct iobuf_allocator default_allocator;

/* NULL stands for the default allocator. */
static const struct iobuf_allocator *
resolve (const struct iobuf_allocator *a)
{
  return a ? a : &default_allocator;
}

void
iobuf_set_default (const struct iobuf_allocator *a)
{
  default_allocator = *a;
}

int
iobuf_alloc (const struct iobuf_allocator *a, size_t len, struct iobuf *buf)
{
  a = resolve (a);
  if (a->alloc == NULL)
    return -ENOSYS;
  return a->alloc (a->ctx, len, buf);
}

void
iobuf_free (const struct iobuf_allocator *a, struct iobuf *buf)
{
  a = resolve (a);
  if (buf->addr && a->free)
    a->free (a->ctx, buf);
  buf->addr = NULL;
  buf->len = 0;
  buf->handle = NULL;
}

void
iobuf_stats (FILE *fp)
{
  if (default_allocator.stats)
    default_allocator.stats (default_allocator.ctx, fp);
}
