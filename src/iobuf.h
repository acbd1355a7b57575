/* The allocator hook: every data buffer of the I/O engine comes from here.
 *
 * The engine does not call mempool directly; it asks an allocator, which is
 * the session's own when its transport registers memory (an iSER session
 * with libiscsi's allocator hook, see rdma_pool.c), or else the default:
 * the buddy chunk pool with no registration (iobuf_mempool.c).
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

/* The default allocator, used when `a` is NULL below. */
void iobuf_set_default (const struct iobuf_allocator *a);

int iobuf_alloc (const struct iobuf_allocator *a, size_t len,
                 struct iobuf *buf);
void iobuf_free (const struct iobuf_allocator *a, struct iobuf *buf);
/* The default allocator's counters. */
void iobuf_stats (FILE *fp);

struct mempool;

/* An allocator over any pool (the pool's registration handle travels in
 * each buffer). */
void iobuf_allocator_for_pool (struct mempool *pool, struct iobuf_allocator *a);

/* Install the default allocator: a mempool with no registration (TCP).
 * Returns 0 or -errno. */
int iobuf_use_mempool (void);
void iobuf_shutdown (void);

#endif
