/* The pool on the wire: a mempool whose chunks are registered on the iSER
 * transport's protection domain, handed to libiscsi through its allocator
 * hook (contrib/libiscsi).  One per iSER session: each connection has its
 * own protection domain. */
#ifndef ISERFS_RDMA_POOL_H
#define ISERFS_RDMA_POOL_H

#include <stdbool.h>

#include "iobuf.h"

struct iscsi_context;
struct rdma_pool;

/* Whether this build can put the pool on the wire. */
bool rdma_pool_supported (void);

/* Create a pool and install it as the context's RDMA allocator (before
 * connecting, on the thread that owns the context).  Returns 0 and the
 * pool in *out, or -errno (-ENOMEM; -EINVAL: libiscsi refused the hook;
 * -ENOTSUP: a build without the hook). */
int rdma_pool_attach (struct iscsi_context *iscsi, struct rdma_pool **out);
/* After the context is destroyed. */
void rdma_pool_free (struct rdma_pool *rp);

/* The allocator the engine uses for this session's I/O buffers. */
const struct iobuf_allocator *rdma_pool_allocator (struct rdma_pool *rp);

#endif
