/* See rdma_pool.h.  libiscsi calls these hooks from inside its own calls on
 * the session (connect, service, destroy); the engine allocates and frees
 * I/O buffers from FUSE threads and the session thread.  mempool is thread
 * safe; the protection domain pointer is only changed by libiscsi's calls,
 * while no buffer of the old connection is in the transport's hands. */
#include <config.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "rdma_pool.h"

#ifdef HAVE_RDMA_ALLOCATOR

#include <infiniband/verbs.h>
#include <iscsi/iscsi.h>

#include "log.h"
#include "memlock.h"
#include "mempool.h"
#include "stats.h"

struct rdma_pool {
  struct mempool *pool;
  struct ibv_pd *pd;            /* the connection's, or NULL between them */
  struct iobuf_allocator allocator;
};

enum {
  ACCESS = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ
    | IBV_ACCESS_REMOTE_WRITE,
};

/* Registering memory pins it, charged to RLIMIT_MEMLOCK unless the process
 * has CAP_IPC_LOCK: memlock_raise (memlock.h) raises the limit first. */

/* Bytes the pools of this process have registered now. */
static atomic_uint_fast64_t registered;

/* A registration refused for the memory lock limit: the region stays
 * unregistered and its buffers are copied through libiscsi's own, so I/O
 * goes on, slower.  Said once; counted every time. */
static void
memlock_refused (size_t len)
{
  static atomic_int said;

  atomic_fetch_add (&stats.memlock_refused, 1);
  if (atomic_exchange (&said, 1) == 0)
    log_error ("cannot register %zu more bytes for RDMA within the memory lock "
               "limit (RLIMIT_MEMLOCK, %llu bytes, without CAP_IPC_LOCK); data "
               "beyond it is copied (raise the limit, e.g. LimitMEMLOCK=infinity, "
               "for zero copy)", len,
               (unsigned long long) atomic_load (&stats.memlock_limit));
}

/* Whether len more bytes fit the share of the memory lock limit the pools
 * may take: half of it, the other half is left to libiscsi's own buffers
 * (headers, receive descriptors, the copies of unregistered data), whose
 * registrations must not fail. */
static bool
memlock_fits (size_t len)
{
  uint64_t limit = atomic_load (&stats.memlock_limit);

  return limit == 0 || atomic_load (&registered) + len <= limit / 2;
}

/* Registration hook of the pool.  Without a PD the region stays
 * unregistered (handle NULL) until pd_changed registers it. */
static int
reg (void *ctx, void *base, size_t len, void **handle)
{
  struct rdma_pool *rp = ctx;
  struct ibv_mr *mr;

  *handle = NULL;
  if (rp->pd == NULL)
    return 0;
  /* Called through the function, not verbs.h's macro, which may pick a
   * newer symbol version than IBVERBS_1.1. */
  if (!memlock_fits (len)) {
    memlock_refused (len);
    return 0;                   /* usable, unregistered: copied */
  }
  mr = (ibv_reg_mr) (rp->pd, base, len, ACCESS);
  if (mr == NULL && errno == ENOMEM && atomic_load (&stats.memlock_limit)) {
    memlock_refused (len);
    return 0;
  }
  if (mr == NULL)
    return errno ? -errno : -ENOMEM;
  atomic_fetch_add (&registered, len);
  atomic_fetch_add (&stats.transport_registrations, 1);
  *handle = mr;
  return 0;
}

static void
dereg (void *ctx, void *handle)
{
  struct ibv_mr *mr = handle;
  size_t len;

  (void) ctx;
  if (mr == NULL)
    return;
  len = mr->length;
  if (ibv_dereg_mr (mr) != 0)
    log_error ("ibv_dereg_mr failed: %m");
  else
    atomic_fetch_sub (&registered, len);
}

/* For mempool_rehandle: drop the old registration, make a new one. */
static int
reregister (void *arg, void *base, size_t len, void **handle)
{
  struct rdma_pool *rp = arg;

  dereg (rp, *handle);
  *handle = NULL;
  if (reg (rp, base, len, handle) < 0)
    log_error ("cannot register %zu bytes of the pool: %m", len);
  return 0;
}

/* libiscsi's hooks. */

static void
pd_changed (void *opaque, struct ibv_pd *pd)
{
  struct rdma_pool *rp = opaque;

  rp->pd = pd;
  mempool_rehandle (rp->pool, reregister, rp);
}

static void *
hook_alloc (void *opaque, size_t len, struct ibv_mr **mr)
{
  struct rdma_pool *rp = opaque;
  struct mempool_seg seg;

  if (mempool_alloc (rp->pool, len, &seg) < 0)
    return NULL;
  if (seg.handle == NULL) {     /* not registered: libiscsi uses its own */
    mempool_free (rp->pool, seg.addr);
    return NULL;
  }
  *mr = seg.handle;
  return seg.addr;
}

static void
hook_free (void *opaque, void *buf)
{
  struct rdma_pool *rp = opaque;

  mempool_free (rp->pool, buf);
}

/* A READ or WRITE whose buffer is ours goes to the wire from it directly. */
static int
hook_lookup (void *opaque, void *buf, size_t len, struct ibv_mr **mr)
{
  struct rdma_pool *rp = opaque;
  void *handle;

  if (mempool_find (rp->pool, buf, len, &handle) == 0 && handle) {
    *mr = handle;
    atomic_fetch_add (&stats.zero_copy_bytes, len);
    return 1;
  }
  atomic_fetch_add (&stats.bounce_bytes, len);
  return 0;
}

bool
rdma_pool_supported (void)
{
  return true;
}

int
rdma_pool_attach (struct iscsi_context *iscsi, struct rdma_pool **out)
{
  struct rdma_pool *rp = calloc (1, sizeof *rp);
  struct mempool_config cfg = { 0 };
  struct iscsi_rdma_allocator hook = {
    .pd_changed = pd_changed, .alloc = hook_alloc, .free = hook_free,
    .lookup = hook_lookup,
  };

  if (rp == NULL)
    return -ENOMEM;
  memlock_raise ();
  cfg.hooks.reg = reg;
  cfg.hooks.dereg = dereg;
  cfg.hooks.ctx = rp;
  rp->pool = mempool_create (&cfg);
  if (rp->pool == NULL) {
    int r = errno ? -errno : -ENOMEM;   /* mempool: NULL and errno */

    free (rp);
    return r;
  }
  /* The engine's buffers come from the same pool, so READ/WRITE data is
   * found by lookup and goes to the wire from them. */
  iobuf_allocator_for_pool (rp->pool, &rp->allocator);
  hook.opaque = rp;
  if (iscsi_set_rdma_allocator (iscsi, &hook) != 0) {
    mempool_destroy (rp->pool);
    free (rp);
    return -EINVAL;
  }
  *out = rp;
  return 0;
}

void
rdma_pool_free (struct rdma_pool *rp)
{
  if (rp == NULL)
    return;
  mempool_destroy (rp->pool);
  free (rp);
}

const struct iobuf_allocator *
rdma_pool_allocator (struct rdma_pool *rp)
{
  return &rp->allocator;
}

#else /* !HAVE_RDMA_ALLOCATOR */

bool
rdma_pool_supported (void)
{
  return false;
}

int
rdma_pool_attach (struct iscsi_context *iscsi, struct rdma_pool **out)
{
  (void) iscsi;
  (void) out;
  return -ENOTSUP;
}

void
rdma_pool_free (struct rdma_pool *rp)
{
  (void) rp;
}

const struct iobuf_allocator *
rdma_pool_allocator (struct rdma_pool *rp)
{
  (void) rp;
  return NULL;
}

#endif
