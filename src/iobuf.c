/* The allocator hook: a thin indirection so that the engine never depends on
 * which allocator (and which registration) backs its buffers. */
#include <config.h>

#include <errno.h>
#include <stdlib.h>

#include "iobuf.h"

static struct iobuf_allocator allocator;

void
iobuf_set_allocator (const struct iobuf_allocator *a)
{
  allocator = *a;
}

int
iobuf_alloc (size_t len, struct iobuf *buf)
{
  if (allocator.alloc == NULL)
    return -ENOSYS;
  return allocator.alloc (allocator.ctx, len, buf);
}

void
iobuf_free (struct iobuf *buf)
{
  if (buf->addr && allocator.free)
    allocator.free (allocator.ctx, buf);
  buf->addr = NULL;
  buf->len = 0;
  buf->handle = NULL;
}

void
iobuf_stats (FILE *fp)
{
  if (allocator.stats)
    allocator.stats (allocator.ctx, fp);
}
