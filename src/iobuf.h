/* The allocator hook: every data buffer of the I/O engine comes from here.
 *
 * The engine does not call mempool directly; it calls iobuf_alloc/iobuf_free,
 * which go through whichever allocator is installed.  The default allocator is
 * the buddy chunk pool (iobuf_mempool.c), with no registration: Debian's
 * libiscsi copies iSER data through buffers of its own.  A libiscsi with an
 * allocator hook (contrib/libiscsi) lets the pool register its chunks.
 */
#ifndef ISERFS_IOBUF_H
#define ISERFS_IOBUF_H

#include <stddef.h>
#include <stdio.h>

struct iobuf {
  void *addr;
  size_t len;       /* usable length, >= the requested length */
  void *handle;     /* registration handle of the region (opaque) */
};

struct iobuf_allocator {
  int (*alloc) (void *ctx, size_t len, struct iobuf *buf);   /* 0 or -errno */
  void (*free) (void *ctx, struct iobuf *buf);
  /* Print key=value counter lines (may be NULL). */
  void (*stats) (void *ctx, FILE *fp);
  void *ctx;
};

void iobuf_set_allocator (const struct iobuf_allocator *a);
int iobuf_alloc (size_t len, struct iobuf *buf);
void iobuf_free (struct iobuf *buf);
void iobuf_stats (FILE *fp);

/* Install the default allocator: a mempool with no registration (TCP).
 * Returns 0 or -errno. */
int iobuf_use_mempool (void);
void iobuf_shutdown (void);

#endif
