/* The pool on the wire: a mempool whose chunks are registered on the iSER
 * transport's protection domain, handed to libiscsi through its allocator
 * hook (contrib/libiscsi).  One per iSER session: each connection has its
 * own protection domain. */
#ifndef ISERFS_RDMA_POOL_H
#define ISERFS_RDMA_POOL_H

#include "iobuf.h"

struct iscsi_context;
struct rdma_pool;

/* Whether this build can put the pool on the wire. */
int rdma_pool_supported (void);

/* Create a pool and install it as the context's RDMA allocator (before
 * connecting).  Returns NULL with errno set. */
struct rdma_pool *rdma_pool_attach (struct iscsi_context *iscsi);
/* After the context is destroyed. */
void rdma_pool_free (struct rdma_pool *rp);

/* The allocator the engine uses for this session's I/O buffers. */
const struct iobuf_allocator *rdma_pool_allocator (struct rdma_pool *rp);

#endif
