/* Unit tests of the buddy chunk pool (mempool/).  Every rule of the design
 * has a test here; test_random_model replays a long random workload against
 * a simple reference model (set MEMPOOL_SEED to replay a failing seed). */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>

#include "check_run.h"
#include "mempool.h"
#include "internal.h"           /* only to corrupt a pool on purpose */

/* ---------------------------------------------------------------- */
/* A registration hook that records what the pool asks of it. */

#define MAX_REGS 64

struct hook_log {
  unsigned regs, deregs;        /* successful calls */
  int fail_with;                /* if non-zero, reg returns this */
  uintptr_t next_handle;
  void *last_base;
  size_t last_len;
  void *last_handle, *last_dereg;
  size_t lens[MAX_REGS];        /* lengths of the first registrations */
  pthread_mutex_t lock;         /* the thread test calls from many threads */
};

static int
log_reg (void *ctx, void *base, size_t len, void **handle)
{
  struct hook_log *h = ctx;

  pthread_mutex_lock (&h->lock);
  if (h->fail_with) {
    pthread_mutex_unlock (&h->lock);
    return h->fail_with;
  }
  if (h->regs < MAX_REGS)
    h->lens[h->regs] = len;
  h->regs++;
  h->last_base = base;
  h->last_len = len;
  h->last_handle = *handle = (void *) ++h->next_handle;
  pthread_mutex_unlock (&h->lock);
  return 0;
}

static void
log_dereg (void *ctx, void *handle)
{
  struct hook_log *h = ctx;

  pthread_mutex_lock (&h->lock);
  h->deregs++;
  h->last_dereg = handle;
  pthread_mutex_unlock (&h->lock);
}

static struct hook_log hooks;

static void
reset_hooks (void)
{
  memset (&hooks, 0, sizeof hooks);
  pthread_mutex_init (&hooks.lock, NULL);
}

/* A pool of 2^units_order units of 4 KiB (0: default geometry), recording
 * its registrations in `hooks`, with warnings off; eager: no hysteresis. */
static struct mempool *
new_pool_policy (unsigned units_order, unsigned spares, int keep_no_spares,
                 int eager)
{
  struct mempool_config cfg = {
    .chunk_order = units_order ? 12 + units_order : 0,
    .unit_order = 12,
    .spare_chunks = spares,
    .keep_no_spares = keep_no_spares,
    .release_eagerly = eager,
    .hooks = { log_reg, log_dereg, &hooks },
  };
  struct mempool *pool;

  reset_hooks ();
  pool = mempool_create (&cfg);
  ck_assert_ptr_nonnull (pool);
  mempool_set_warnings (pool, NULL);
  return pool;
}

static struct mempool *
new_pool (unsigned units_order, unsigned spares, int keep_no_spares)
{
  return new_pool_policy (units_order, spares, keep_no_spares, 0);
}

static void
assert_consistent (struct mempool *pool)
{
  char msg[256] = "";
  int r = mempool_check (pool, msg, sizeof msg);

  ck_assert_msg (r == 0, "mempool_check: %s", msg);
}

static void *
alloc_ok (struct mempool *pool, size_t size, size_t want_len)
{
  struct mempool_seg seg;
  int r = mempool_alloc (pool, size, &seg);

  ck_assert_msg (r == 0, "alloc %zu: %s", size, strerror (-r));
  ck_assert_uint_eq (seg.len, want_len);
  assert_consistent (pool);
  return seg.addr;
}

static void
free_ok (struct mempool *pool, void *addr)
{
  ck_assert_int_eq (mempool_free (pool, addr), 0);
  assert_consistent (pool);
}

/* Where addr is: chunk number and offset; fails for a direct allocation. */
static size_t
offset_in (struct mempool *pool, void *addr, unsigned want_chunk)
{
  unsigned chunk;
  size_t offset;

  ck_assert_int_eq (mempool_locate (pool, addr, &chunk, &offset), 0);
  ck_assert_uint_eq (chunk, want_chunk);
  return offset;
}

/* Compare chunk 0's whole tree with the values listed from node 1 on. */
static void
assert_tree (struct mempool *pool, const int *values, unsigned n)
{
  for (unsigned node = 1; node <= n; node++)
    ck_assert_msg (mempool_tree_node (pool, 0, node) == values[node - 1],
                   "node 0x%x holds %d, expected %d", node,
                   mempool_tree_node (pool, 0, node), values[node - 1]);
  ck_assert_int_eq (mempool_tree_node (pool, 0, n + 1), -ENOENT);
}

#define KiB ((size_t) 1024)
#define MiB (KiB * KiB)

/* ---------------------------------------------------------------- */

START_TEST (test_defaults)
{
  struct mempool *pool = mempool_create (NULL);
  struct mempool_seg seg;

  ck_assert_ptr_nonnull (pool);
  ck_assert_uint_eq (mempool_chunk_size (pool), 4 * MiB);
  ck_assert_uint_eq (mempool_unit_size (pool), 4 * KiB);
  ck_assert_uint_eq (mempool_nr_chunks (pool), 0);
  ck_assert_int_eq (mempool_alloc (pool, 1, &seg), 0);
  ck_assert_uint_eq (seg.len, 4096);
  ck_assert_ptr_null (seg.handle);      /* no hook: no handle */
  ck_assert_uint_eq (mempool_nr_chunks (pool), 1);
  /* 1024 units: a free chunk's root holds 11; with one unit taken the
   * largest free segment is 2 MiB, level 10. */
  ck_assert_int_eq (mempool_tree_node (pool, 0, 1), 10);
  ck_assert_int_eq (mempool_tree_node (pool, 0, 2047), 1);
  ck_assert_int_eq (mempool_tree_node (pool, 0, 2048), -ENOENT);
  ck_assert_int_eq (mempool_tree_node (pool, 0, 1024), 0);
  memset (seg.addr, 0xa5, seg.len);
  ck_assert_int_eq (mempool_free (pool, seg.addr), 0);
  ck_assert_int_eq (mempool_tree_node (pool, 0, 1), 11);
  assert_consistent (pool);
  mempool_destroy (pool);
}
END_TEST

START_TEST (test_bad_geometry)
{
  struct mempool_config cfg = { 0 };

  cfg.unit_order = 3;                   /* a unit smaller than 16 bytes */
  errno = 0;
  ck_assert_ptr_null (mempool_create (&cfg));
  ck_assert_int_eq (errno, EINVAL);
  cfg.unit_order = 14;                  /* a unit larger than the chunk */
  cfg.chunk_order = 13;
  ck_assert_ptr_null (mempool_create (&cfg));
  cfg.unit_order = 4;                   /* a chunk smaller than a page */
  cfg.chunk_order = 8;
  ck_assert_ptr_null (mempool_create (&cfg));
  cfg.unit_order = 12;                  /* a tree too tall for its bytes */
  cfg.chunk_order = 12 + 21;
  ck_assert_ptr_null (mempool_create (&cfg));
  cfg.chunk_order = 12;                 /* one unit per chunk is fine */
  mempool_destroy (mempool_create (&cfg));
}
END_TEST

/* The design's worked example: a chunk of 8 units, 16 KiB allocated. */
START_TEST (test_worked_example)
{
  struct mempool *pool = new_pool (3, 0, 0);
  static const int after_alloc[15] = {
    3,
    0, 3,
    2, 2, 2, 2,             /* 0x4 and 0x5 are not rewritten */
    1, 1, 1, 1, 1, 1, 1, 1,
  };
  static const int all_free[15] = {
    4,
    3, 3,
    2, 2, 2, 2,
    1, 1, 1, 1, 1, 1, 1, 1,
  };
  void *p = alloc_ok (pool, 16 * KiB, 16 * KiB);

  ck_assert_uint_eq (offset_in (pool, p, 0), 0);
  assert_tree (pool, after_alloc, 15);
  free_ok (pool, p);
  assert_tree (pool, all_free, 15);
  mempool_destroy (pool);
}
END_TEST

START_TEST (test_rounding)
{
  static const struct { size_t size, len; } cases[] = {
    { 1, 4096 }, { 4095, 4096 }, { 4096, 4096 }, { 4097, 8192 },
    { 8192, 8192 }, { 8193, 16384 }, { 65535, 65536 }, { 65537, 131072 },
    { 3 * MiB, 4 * MiB }, { 4 * MiB, 4 * MiB },
    { 4 * MiB + 1, 8 * MiB },           /* direct, rounded the same way */
  };
  struct mempool *pool = new_pool (0, 0, 0);

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    void *p = alloc_ok (pool, cases[i].size, cases[i].len);
    /* Every byte of the usable length is ours. */
    memset (p, 0x5a, cases[i].len);
    free_ok (pool, p);
  }
  mempool_destroy (pool);
}
END_TEST

/* Leftmost fit inside a chunk; the root alone says whether a chunk fits;
 * chunks are searched from the head. */
START_TEST (test_leftmost_fit_and_root_check)
{
  struct mempool *pool = new_pool (3, 0, 0);
  void *a = alloc_ok (pool, 4 * KiB, 4 * KiB);
  void *b = alloc_ok (pool, 8 * KiB, 8 * KiB);
  void *c = alloc_ok (pool, 4 * KiB, 4 * KiB);
  void *d, *e, *f;

  ck_assert_uint_eq (offset_in (pool, a, 0), 0x0);
  ck_assert_uint_eq (offset_in (pool, b, 0), 0x2000);  /* 0x1000 too small */
  ck_assert_uint_eq (offset_in (pool, c, 0), 0x1000);  /* the hole left */
  ck_assert_int_eq (mempool_tree_node (pool, 0, 1), 3);
  d = alloc_ok (pool, 16 * KiB, 16 * KiB);
  ck_assert_uint_eq (offset_in (pool, d, 0), 0x4000);
  /* Full: the root holds 0 and the next request opens chunk 1. */
  ck_assert_int_eq (mempool_tree_node (pool, 0, 1), 0);
  e = alloc_ok (pool, 4 * KiB, 4 * KiB);
  ck_assert_uint_eq (offset_in (pool, e, 1), 0);
  ck_assert_uint_eq (mempool_nr_chunks (pool), 2);
  /* A hole of one unit in chunk 0: a unit goes there, not to chunk 1; two
   * units do not fit chunk 0 (root 1) and go to chunk 1. */
  free_ok (pool, c);
  ck_assert_int_eq (mempool_tree_node (pool, 0, 1), 1);
  f = alloc_ok (pool, 8 * KiB, 8 * KiB);
  ck_assert_uint_eq (offset_in (pool, f, 1), 0x2000);
  c = alloc_ok (pool, 100, 4 * KiB);
  ck_assert_uint_eq (offset_in (pool, c, 0), 0x1000);
  mempool_destroy (pool);
}
END_TEST

/* Buddies merge upward only when both are fully free. */
START_TEST (test_buddy_merge)
{
  struct mempool *pool = new_pool (3, 0, 0);
  void *u[8];

  for (int i = 0; i < 8; i++) {
    u[i] = alloc_ok (pool, 4 * KiB, 4 * KiB);
    ck_assert_uint_eq (offset_in (pool, u[i], 0), (size_t) i * 4 * KiB);
  }
  ck_assert_int_eq (mempool_tree_node (pool, 0, 1), 0);
  free_ok (pool, u[0]);
  ck_assert_int_eq (mempool_tree_node (pool, 0, 0x8), 1);
  ck_assert_int_eq (mempool_tree_node (pool, 0, 0x4), 1);    /* 0x9 busy */
  ck_assert_int_eq (mempool_tree_node (pool, 0, 0x1), 1);
  free_ok (pool, u[3]);                 /* not u[0]'s buddy: no merge */
  ck_assert_int_eq (mempool_tree_node (pool, 0, 0x4), 1);
  ck_assert_int_eq (mempool_tree_node (pool, 0, 0x5), 1);
  ck_assert_int_eq (mempool_tree_node (pool, 0, 0x2), 1);
  free_ok (pool, u[1]);                 /* u[0]'s buddy: 0x4 whole again */
  ck_assert_int_eq (mempool_tree_node (pool, 0, 0x4), 2);
  ck_assert_int_eq (mempool_tree_node (pool, 0, 0x2), 2);
  ck_assert_int_eq (mempool_tree_node (pool, 0, 0x1), 2);
  free_ok (pool, u[2]);                 /* 0x5 whole, so 0x2 whole */
  ck_assert_int_eq (mempool_tree_node (pool, 0, 0x2), 3);
  ck_assert_int_eq (mempool_tree_node (pool, 0, 0x1), 3);
  for (int i = 4; i < 8; i++)
    free_ok (pool, u[i]);
  ck_assert_int_eq (mempool_tree_node (pool, 0, 0x1), 4);
  /* Merged: the whole chunk can be had again. */
  u[0] = alloc_ok (pool, 32 * KiB, 32 * KiB);
  ck_assert_uint_eq (offset_in (pool, u[0], 0), 0);
  mempool_destroy (pool);
}
END_TEST

/* Trimming keeps a segment's start and gives back the buddy halves beyond
 * what is kept, exactly as if the smaller segment had been allocated. */
START_TEST (test_trim)
{
  struct mempool *pool = new_pool (3, 0, 0);
  struct mempool_seg seg;
  struct mempool_stats st;
  size_t len = 0;
  void *a, *b, *c, *d;
  char *p;

  a = alloc_ok (pool, 32 * KiB, 32 * KiB);                /* the whole chunk */
  ck_assert_int_eq (mempool_trim (pool, a, 4 * KiB + 80, &len), 0);
  ck_assert_uint_eq (len, 8 * KiB);
  assert_consistent (pool);
  ck_assert_int_eq (mempool_tree_node (pool, 0, 0x4), 0);   /* kept */
  ck_assert_int_eq (mempool_tree_node (pool, 0, 0x5), 2);   /* given back */
  ck_assert_int_eq (mempool_tree_node (pool, 0, 0x3), 3);
  ck_assert_int_eq (mempool_tree_node (pool, 0, 0x1), 3);
  mempool_get_stats (pool, &st);
  ck_assert_uint_eq (st.bytes_in_use, 8 * KiB);
  /* The halves are allocatable where a fresh 8 KiB segment would leave
   * them, and nothing more fits in the chunk. */
  b = alloc_ok (pool, 16 * KiB, 16 * KiB);
  ck_assert_uint_eq (offset_in (pool, b, 0), 16 * KiB);
  c = alloc_ok (pool, 8 * KiB, 8 * KiB);
  ck_assert_uint_eq (offset_in (pool, c, 0), 8 * KiB);
  ck_assert_int_eq (mempool_tree_node (pool, 0, 0x1), 0);
  /* Keeping half or more of a segment changes nothing. */
  ck_assert_int_eq (mempool_trim (pool, b, 9 * KiB, &len), 0);
  ck_assert_uint_eq (len, 16 * KiB);
  assert_consistent (pool);
  /* Misuse: not a segment start, nothing to keep; refused and counted. */
  ck_assert_int_eq (mempool_trim (pool, (char *) b + 4 * KiB, 4 * KiB, &len),
                    -EINVAL);
  ck_assert_int_eq (mempool_trim (pool, b, 0, &len), -EINVAL);
  assert_consistent (pool);
  /* A deferred free next to a trim: the tree comes out exact. */
  free_ok (pool, c);
  ck_assert_int_eq (mempool_trim (pool, b, 1, &len), 0);
  ck_assert_uint_eq (len, 4 * KiB);
  assert_consistent (pool);
  d = alloc_ok (pool, 8 * KiB, 8 * KiB);        /* c's place again */
  ck_assert_uint_eq (offset_in (pool, d, 0), 8 * KiB);
  /* The trimmed segments free as what they became. */
  free_ok (pool, a);
  free_ok (pool, b);
  free_ok (pool, d);
  mempool_get_stats (pool, &st);
  ck_assert_uint_eq (st.bytes_in_use, 0);
  ck_assert_uint_eq (st.bad_frees, 1);
  ck_assert_int_eq (mempool_tree_node (pool, 0, 0x1), 4);
  /* A direct allocation stays whole. */
  ck_assert_int_eq (mempool_alloc (pool, 64 * KiB, &seg), 0);
  p = seg.addr;
  ck_assert_int_eq (mempool_trim (pool, p, 4 * KiB, &len), 0);
  ck_assert_uint_eq (len, 64 * KiB);
  free_ok (pool, p);
  mempool_destroy (pool);
}
END_TEST

/* Chunks are appended at the tail and searched head to tail; the hook sees
 * exactly one chunk-sized, chunk-aligned registration per chunk. */
START_TEST (test_chunk_list)
{
  struct mempool *pool = new_pool (3, 3, 0);
  void *p[3], *q;
  struct mempool_stats st;

  for (unsigned i = 0; i < 3; i++) {
    p[i] = alloc_ok (pool, 32 * KiB, 32 * KiB);
    ck_assert_uint_eq (offset_in (pool, p[i], i), 0);
    ck_assert_ptr_eq (hooks.last_base, p[i]);
    ck_assert_uint_eq ((uintptr_t) p[i] % (32 * KiB), 0);
  }
  ck_assert_uint_eq (hooks.regs, 3);
  for (unsigned i = 0; i < 3; i++)
    ck_assert_uint_eq (hooks.lens[i], 32 * KiB);
  free_ok (pool, p[1]);
  free_ok (pool, p[0]);
  /* Both free chunks are kept (3 spares allowed); the head one is used. */
  q = alloc_ok (pool, 4 * KiB, 4 * KiB);
  ck_assert_uint_eq (offset_in (pool, q, 0), 0);
  ck_assert_ptr_eq (q, p[0]);
  mempool_get_stats (pool, &st);
  ck_assert_uint_eq (st.chunks, 3);
  ck_assert_uint_eq (st.registrations, 3);
  ck_assert_uint_eq (st.deregistrations, 0);
  mempool_destroy (pool);
  ck_assert_uint_eq (hooks.deregs, 3);  /* destroy deregisters everything */
}
END_TEST

START_TEST (test_direct)
{
  struct mempool *pool = new_pool (3, 0, 0);
  struct mempool_seg seg;
  struct mempool_stats st;
  void *handle = NULL;
  char *p;

  ck_assert_int_eq (mempool_alloc (pool, 33 * KiB, &seg), 0);
  p = seg.addr;
  ck_assert_uint_eq (seg.len, 64 * KiB);
  ck_assert_uint_eq (hooks.regs, 1);
  ck_assert_ptr_eq (hooks.last_base, p);
  ck_assert_uint_eq (hooks.last_len, 64 * KiB);
  ck_assert_ptr_eq (seg.handle, hooks.last_handle);
  ck_assert_uint_eq (mempool_nr_chunks (pool), 0);      /* no chunk for it */
  memset (p, 1, seg.len);
  mempool_get_stats (pool, &st);
  ck_assert_uint_eq (st.direct_allocs, 1);
  ck_assert_uint_eq (st.direct_live, 1);
  ck_assert_uint_eq (st.bytes_in_use, 64 * KiB);
  /* Found from any address inside it, not past its end. */
  ck_assert_int_eq (mempool_find (pool, p + 40 * KiB, 24 * KiB, &handle), 0);
  ck_assert_ptr_eq (handle, seg.handle);
  ck_assert_int_eq (mempool_find (pool, p + 40 * KiB, 24 * KiB + 1, &handle),
                    -ENOENT);
  ck_assert_int_eq (mempool_free (pool, p + 32 * KiB), -EINVAL);
  ck_assert_int_eq (mempool_free (pool, p + 1), -EINVAL);
  assert_consistent (pool);
  free_ok (pool, p);
  ck_assert_uint_eq (hooks.deregs, 1);
  ck_assert_ptr_eq (hooks.last_dereg, seg.handle);
  ck_assert_int_eq (mempool_find (pool, p, 1, &handle), -ENOENT);
  ck_assert_int_eq (mempool_free (pool, p), -EINVAL);
  mempool_get_stats (pool, &st);
  ck_assert_uint_eq (st.direct_allocs, 1);
  ck_assert_uint_eq (st.direct_live, 0);
  ck_assert_uint_eq (st.bytes_in_use, 0);
  ck_assert_uint_eq (st.bad_frees, 3);
  mempool_destroy (pool);
}
END_TEST

START_TEST (test_find)
{
  struct mempool *pool = new_pool (3, 0, 0);
  struct mempool_seg seg;
  void *handle = NULL;
  char local;

  ck_assert_int_eq (mempool_alloc (pool, 4 * KiB, &seg), 0);
  /* Any range inside the chunk, allocated or not, has the chunk's handle. */
  ck_assert_int_eq (mempool_find (pool, seg.addr, 4 * KiB, &handle), 0);
  ck_assert_ptr_eq (handle, seg.handle);
  ck_assert_int_eq (mempool_find (pool, (char *) seg.addr + 31 * KiB, KiB,
                                  &handle), 0);
  ck_assert_int_eq (mempool_find (pool, (char *) seg.addr + 31 * KiB,
                                  KiB + 1, &handle), -ENOENT);
  ck_assert_int_eq (mempool_find (pool, &local, 1, &handle), -ENOENT);
  mempool_destroy (pool);
}
END_TEST

/* Re-registration (a new protection domain): every region, chunks and
 * direct allocations alike, gets the handle the callback gives it, and a
 * callback's error stops the walk. */
struct rehandle_log {
  unsigned calls, stop_after;
  size_t bytes;
};

static int
swap_handle (void *arg, void *base, size_t len, void **handle)
{
  struct rehandle_log *log = arg;

  (void) base;
  if (log->stop_after && log->calls == log->stop_after)
    return -EIO;
  log->calls++;
  log->bytes += len;
  *handle = (void *) (uintptr_t) (0x1000 + log->calls);
  return 0;
}

START_TEST (test_rehandle)
{
  struct mempool *pool = new_pool (3, 0, 0);
  struct mempool_seg a, b, big;
  struct rehandle_log log = { 0 };
  void *h1 = NULL, *h2 = NULL, *h3 = NULL;

  ck_assert_int_eq (mempool_alloc (pool, 32 * KiB, &a), 0);     /* chunk 0 */
  ck_assert_int_eq (mempool_alloc (pool, 32 * KiB, &b), 0);     /* chunk 1 */
  ck_assert_int_eq (mempool_alloc (pool, 40 * KiB, &big), 0);   /* direct */
  ck_assert_int_eq (mempool_rehandle (pool, swap_handle, &log), 0);
  ck_assert_uint_eq (log.calls, 3);
  ck_assert_uint_eq (log.bytes, 2 * 32 * KiB + big.len);
  ck_assert_int_eq (mempool_find (pool, a.addr, a.len, &h1), 0);
  ck_assert_int_eq (mempool_find (pool, b.addr, b.len, &h2), 0);
  ck_assert_int_eq (mempool_find (pool, big.addr, big.len, &h3), 0);
  ck_assert_ptr_ne (h1, h2);
  ck_assert (h1 != a.handle && (uintptr_t) h1 > 0x1000 && (uintptr_t) h1 <= 0x1003);
  ck_assert (h3 != big.handle && (uintptr_t) h3 > 0x1000 && (uintptr_t) h3 <= 0x1003);
  /* An error ends the walk and is returned. */
  log = (struct rehandle_log) { .stop_after = 1 };
  ck_assert_int_eq (mempool_rehandle (pool, swap_handle, &log), -EIO);
  ck_assert_uint_eq (log.calls, 1);
  /* The pool deregisters the handles it now holds. */
  ck_assert_int_eq (mempool_free (pool, big.addr), 0);
  ck_assert_ptr_eq (hooks.last_dereg, h3);
  assert_consistent (pool);
  mempool_destroy (pool);
}
END_TEST

/* With release_eagerly, an empty chunk beyond the spares is deregistered
 * and unmapped at once. */
START_TEST (test_spares)
{
  struct mempool *pool;
  struct mempool_stats st;
  void *p[5];

  for (unsigned mode = 0; mode < 3; mode++) {
    /* mode 0: 1 spare; 1: 0 spares meaning none; 2: 0 meaning default */
    unsigned spares = mode == 0 ? 1 : 0;
    unsigned want = mode == 0 ? 1 : mode == 1 ? 0 : MEMPOOL_SPARES_DEFAULT;

    pool = new_pool_policy (3, spares, mode == 1, 1);
    for (int i = 0; i < 5; i++)
      p[i] = alloc_ok (pool, 32 * KiB, 32 * KiB);
    ck_assert_uint_eq (mempool_nr_chunks (pool), 5);
    for (int i = 0; i < 5; i++) {
      free_ok (pool, p[i]);
      ck_assert_uint_le (mempool_nr_chunks (pool), 5 - i - 1 + want);
    }
    mempool_get_stats (pool, &st);
    ck_assert_uint_eq (st.chunks, want);
    ck_assert_uint_eq (st.deregistrations, 5 - want);
    ck_assert_uint_eq (hooks.deregs, 5 - want);
    /* The spares serve the next burst without registering again. */
    for (unsigned i = 0; i < want; i++)
      p[i] = alloc_ok (pool, 32 * KiB, 32 * KiB);
    ck_assert_uint_eq (hooks.regs, 5);
    mempool_destroy (pool);
  }
}
END_TEST

/* By default empty chunks beyond the spares are kept while the chunks in
 * use stay within 1/MEMPOOL_SHRINK_RATIO of their peak, so a swinging
 * working set registers nothing; below that, all of them go, tail first. */
START_TEST (test_spares_hysteresis)
{
  enum { PEAK = 8 };
  const unsigned low = (PEAK + MEMPOOL_SHRINK_RATIO - 1) / MEMPOOL_SHRINK_RATIO;
  struct mempool *pool = new_pool (3, 0, 1);    /* no spares: only the band */
  struct mempool_stats st;
  void *p[PEAK];

  ck_assert_uint_ge (low, 1);
  for (unsigned i = 0; i < PEAK; i++)           /* one chunk each */
    p[i] = alloc_ok (pool, 32 * KiB, 32 * KiB);
  /* Down to the bottom of the band: every empty chunk is kept... */
  for (unsigned i = PEAK; i-- > low; ) {
    free_ok (pool, p[i]);
    ck_assert_uint_eq (mempool_nr_chunks (pool), PEAK);
  }
  ck_assert_uint_eq (hooks.deregs, 0);
  /* ...and serves the swing back up without registering. */
  for (unsigned i = low; i < PEAK; i++) {
    p[i] = alloc_ok (pool, 32 * KiB, 32 * KiB);
    ck_assert_uint_eq (offset_in (pool, p[i], i), 0);
  }
  ck_assert_uint_eq (hooks.regs, PEAK);
  /* Below the band: every empty chunk beyond the spares (none) goes, from
   * the tail; the chunks still in use stay where they were. */
  for (unsigned i = PEAK; i-- > low; )
    free_ok (pool, p[i]);
  ck_assert_uint_eq (hooks.deregs, 0);
  free_ok (pool, p[low - 1]);
  ck_assert_uint_eq (mempool_nr_chunks (pool), low - 1);
  ck_assert_uint_eq (hooks.deregs, PEAK - (low - 1));
  for (unsigned i = 0; i + 1 < low; i++)
    ck_assert_uint_eq (offset_in (pool, p[i], i), 0);
  /* The peak restarted from what was in use: freeing the rest returns
   * every chunk. */
  for (unsigned i = 0; i + 1 < low; i++)
    free_ok (pool, p[i]);
  mempool_get_stats (pool, &st);
  ck_assert_uint_eq (st.chunks, 0);
  ck_assert_uint_eq (st.deregistrations, PEAK);
  mempool_destroy (pool);

  /* With spares, the shrink keeps them: the head ones, nearest to where
   * allocation starts. */
  pool = new_pool (3, 2, 0);
  for (unsigned i = 0; i < PEAK; i++)
    p[i] = alloc_ok (pool, 32 * KiB, 32 * KiB);
  for (unsigned i = 0; i < PEAK; i++)
    free_ok (pool, p[i]);
  ck_assert_uint_eq (mempool_nr_chunks (pool), 2);
  ck_assert_uint_eq (hooks.deregs, PEAK - 2);
  ck_assert_ptr_eq (alloc_ok (pool, 32 * KiB, 32 * KiB), p[0]);
  ck_assert_uint_eq (hooks.regs, PEAK);
  mempool_destroy (pool);
}
END_TEST

/* Without the consistency check (which applies a deferred free first). */
static void *
raw_alloc (struct mempool *pool, size_t size)
{
  struct mempool_seg seg;

  ck_assert_int_eq (mempool_alloc (pool, size, &seg), 0);
  return seg.addr;
}

static void
raw_free (struct mempool *pool, void *addr)
{
  ck_assert_int_eq (mempool_free (pool, addr), 0);
}

/* Frees' tree updates are deferred so that allocations of the same size
 * can take the segments back without touching the tree; nothing of that
 * may be visible: placement stays leftmost fit, misuse is refused, and
 * the trees read as if every free had been applied at once. */
START_TEST (test_deferred_free)
{
  struct mempool *pool = new_pool (3, 0, 0);     /* 8 units of 4 KiB */
  struct mempool_stats st;
  void *u[8], *p, *q;

  for (int i = 0; i < 8; i++)
    u[i] = raw_alloc (pool, 4 * KiB);
  for (int i = 0; i < 8; i++)
    ck_assert_uint_eq (offset_in (pool, u[i], 0), (size_t) i * 4 * KiB);

  /* Freed then asked for again: the same unit. */
  raw_free (pool, u[5]);
  ck_assert_ptr_eq (raw_alloc (pool, 4 * KiB), u[5]);
  assert_consistent (pool);

  /* Two deferred: the leftmost comes back first, whatever the order of
   * the frees. */
  raw_free (pool, u[6]);
  raw_free (pool, u[1]);
  ck_assert_ptr_eq (raw_alloc (pool, 4 * KiB), u[1]);
  ck_assert_ptr_eq (raw_alloc (pool, 4 * KiB), u[6]);
  assert_consistent (pool);

  /* A fit in the tree left of the deferred segment wins: u[1] is applied
   * (introspection applies deferred frees), u[6] deferred. */
  raw_free (pool, u[1]);
  ck_assert_int_eq (mempool_tree_node (pool, 0, 0x9), 1);
  raw_free (pool, u[6]);
  ck_assert_ptr_eq (raw_alloc (pool, 4 * KiB), u[1]);
  ck_assert_ptr_eq (raw_alloc (pool, 4 * KiB), u[6]);
  assert_consistent (pool);

  /* The tree reads as if the free were applied: leaf 0xb (unit 3) is free,
   * and its parent 0x5 offers one unit. */
  raw_free (pool, u[3]);
  ck_assert_int_eq (mempool_tree_node (pool, 0, 0xb), 1);
  ck_assert_int_eq (mempool_tree_node (pool, 0, 0x5), 1);
  ck_assert_ptr_eq (raw_alloc (pool, 4 * KiB), u[3]);

  /* A double free of a deferred segment is refused, and the segment is
   * still free afterwards. */
  raw_free (pool, u[3]);
  ck_assert_int_eq (mempool_free (pool, u[3]), -EINVAL);
  mempool_get_stats (pool, &st);
  ck_assert_uint_eq (st.bad_frees, 1);
  ck_assert_uint_eq (st.bytes_in_use, 7 * 4 * KiB);
  assert_consistent (pool);
  u[3] = raw_alloc (pool, 4 * KiB);
  ck_assert_uint_eq (offset_in (pool, u[3], 0), 3 * 4 * KiB);

  /* Another size does not take the deferred unit: u[2] is applied, and 8
   * KiB (two aligned units) does not fit in chunk 0 and opens chunk 1. */
  raw_free (pool, u[2]);
  p = raw_alloc (pool, 8 * KiB);
  ck_assert_uint_eq (offset_in (pool, p, 1), 0);
  ck_assert_int_eq (mempool_tree_node (pool, 0, 0xa), 1);
  u[2] = raw_alloc (pool, 4 * KiB);
  ck_assert_uint_eq (offset_in (pool, u[2], 0), 2 * 4 * KiB);

  /* Deferred in chunk 1, while chunk 0 has a hole in its tree: the hole
   * comes first.  And both deferred: chunk 0's first. */
  q = raw_alloc (pool, 4 * KiB);                /* chunk 1, unit 2 */
  ck_assert_uint_eq (offset_in (pool, q, 1), 2 * 4 * KiB);
  raw_free (pool, u[4]);
  ck_assert_int_eq (mempool_tree_node (pool, 0, 0xc), 1);     /* applied */
  raw_free (pool, q);                           /* deferred */
  ck_assert_ptr_eq (raw_alloc (pool, 4 * KiB), u[4]);
  ck_assert_ptr_eq (raw_alloc (pool, 4 * KiB), q);
  raw_free (pool, q);
  raw_free (pool, u[4]);
  ck_assert_ptr_eq (raw_alloc (pool, 4 * KiB), u[4]);
  ck_assert_ptr_eq (raw_alloc (pool, 4 * KiB), q);
  assert_consistent (pool);
  mempool_destroy (pool);

  /* More frees in a row than are deferred at once (16): freed from the
   * highest unit down, they come back from the lowest up. */
  {
    enum { N = 32, FREED = 24 };
    void *v[N];

    pool = new_pool (5, 0, 0);                  /* 32 units */
    for (int i = 0; i < N; i++)
      v[i] = raw_alloc (pool, 4 * KiB);
    for (int i = N; i-- > N - FREED; )
      raw_free (pool, v[i]);
    for (int i = N - FREED; i < N; i++)
      ck_assert_uint_eq (offset_in (pool, raw_alloc (pool, 4 * KiB), 0),
                         (size_t) i * 4 * KiB);
    assert_consistent (pool);
    mempool_destroy (pool);
  }
}
END_TEST

/* Misuse is refused, counted, reported, and changes nothing. */
START_TEST (test_misuse)
{
  struct mempool *pool = new_pool (3, 0, 0);
  char *before = NULL, *after = NULL, *warnings = NULL;
  size_t before_len, after_len, warnings_len;
  FILE *fp, *warn;
  struct mempool_stats st;
  char *p, *q, local, *heap = malloc (64);

  ck_assert_ptr_nonnull (heap);
  p = alloc_ok (pool, 16 * KiB, 16 * KiB);
  q = alloc_ok (pool, 4 * KiB, 4 * KiB);
  free_ok (pool, q);                    /* q is now a freed segment */
  warn = open_memstream (&warnings, &warnings_len);
  ck_assert_ptr_nonnull (warn);
  mempool_set_warnings (pool, warn);
  fp = open_memstream (&before, &before_len);
  ck_assert_int_eq (mempool_dump (pool, 0, fp), 0);
  fclose (fp);

  ck_assert_int_eq (mempool_free (pool, &local), -EINVAL);   /* foreign */
  ck_assert_int_eq (mempool_free (pool, heap), -EINVAL);     /* foreign */
  ck_assert_int_eq (mempool_free (pool, NULL), -EINVAL);
  ck_assert_int_eq (mempool_free (pool, p + 4 * KiB), -EINVAL); /* middle */
  ck_assert_int_eq (mempool_free (pool, p + 8 * KiB), -EINVAL); /* middle */
  ck_assert_int_eq (mempool_free (pool, p + 1), -EINVAL);    /* unaligned */
  ck_assert_int_eq (mempool_free (pool, q), -EINVAL);        /* double */
  ck_assert_int_eq (mempool_free (pool, p + 28 * KiB), -EINVAL); /* free */

  fclose (warn);
  fp = open_memstream (&after, &after_len);
  ck_assert_int_eq (mempool_dump (pool, 0, fp), 0);
  fclose (fp);
  ck_assert_str_eq (after, before);
  assert_consistent (pool);
  mempool_get_stats (pool, &st);
  ck_assert_uint_eq (st.bad_frees, 8);
  ck_assert_uint_eq (st.frees, 1);
  ck_assert_uint_eq (st.bytes_in_use, 16 * KiB);
  /* One line of warning per refusal. */
  {
    unsigned lines = 0;
    for (char *s = warnings; *s; s++)
      lines += *s == '\n';
    ck_assert_uint_eq (lines, 8);
    ck_assert_ptr_nonnull (strstr (warnings, "mempool: refused to free"));
  }
  /* The segment is still freeable once, and only once. */
  mempool_set_warnings (pool, NULL);
  free_ok (pool, p);
  ck_assert_int_eq (mempool_free (pool, p), -EINVAL);
  free (before);
  free (after);
  free (warnings);
  free (heap);
  mempool_destroy (pool);
}
END_TEST

START_TEST (test_size_zero_and_overflow)
{
  struct mempool *pool = new_pool (0, 0, 0);
  struct mempool_seg seg;
  struct mempool_stats st;

  ck_assert_int_eq (mempool_alloc (pool, 0, &seg), -EINVAL);
  ck_assert_int_eq (mempool_alloc (pool, SIZE_MAX, &seg), -EOVERFLOW);
  ck_assert_int_eq (mempool_alloc (pool, (SIZE_MAX >> 1) + 2, &seg),
                    -EOVERFLOW);
  /* Rounds up fine, but no system has that much memory to map. */
  ck_assert_int_eq (mempool_alloc (pool, (SIZE_MAX >> 1) + 1, &seg),
                    -ENOMEM);
  mempool_get_stats (pool, &st);
  ck_assert_uint_eq (st.failures, 4);
  ck_assert_uint_eq (st.allocs, 0);
  ck_assert_uint_eq (st.registrations, 0);
  ck_assert_uint_eq (st.chunks, 0);
  assert_consistent (pool);
  mempool_destroy (pool);
}
END_TEST

/* A failing registration fails the allocation cleanly and is counted. */
START_TEST (test_hook_failure)
{
  struct mempool *pool = new_pool (3, 0, 0);
  struct mempool_seg seg;
  struct mempool_stats st;

  hooks.fail_with = -EPERM;
  ck_assert_int_eq (mempool_alloc (pool, 4 * KiB, &seg), -EPERM);
  ck_assert_int_eq (mempool_alloc (pool, 64 * KiB, &seg), -EPERM); /* direct */
  hooks.fail_with = 1;                  /* breaks the contract: still fails */
  ck_assert_int_eq (mempool_alloc (pool, 4 * KiB, &seg), -EIO);
  mempool_get_stats (pool, &st);
  ck_assert_uint_eq (st.failures, 3);
  ck_assert_uint_eq (st.chunks, 0);
  ck_assert_uint_eq (st.registrations, 0);
  ck_assert_uint_eq (st.direct_live, 0);
  ck_assert_uint_eq (mempool_nr_chunks (pool), 0);
  assert_consistent (pool);
  hooks.fail_with = 0;
  alloc_ok (pool, 4 * KiB, 4 * KiB);
  ck_assert_uint_eq (hooks.regs, 1);
  /* With a chunk held, a failing hook only matters for new regions. */
  hooks.fail_with = -ENOMEM;
  alloc_ok (pool, 4 * KiB, 4 * KiB);
  ck_assert_int_eq (mempool_alloc (pool, 32 * KiB, &seg), -ENOMEM);
  assert_consistent (pool);
  mempool_destroy (pool);
}
END_TEST

START_TEST (test_counters)
{
  struct mempool *pool = new_pool (3, 0, 0);
  struct mempool_stats st;
  void *a = alloc_ok (pool, 4 * KiB, 4 * KiB);
  void *b = alloc_ok (pool, 64 * KiB, 64 * KiB);
  void *c = alloc_ok (pool, 9 * KiB, 16 * KiB);

  mempool_get_stats (pool, &st);
  ck_assert_uint_eq (st.bytes_in_use, 84 * KiB);
  ck_assert_uint_eq (st.high_water, 84 * KiB);
  free_ok (pool, b);
  free_ok (pool, a);
  mempool_get_stats (pool, &st);
  ck_assert_uint_eq (st.chunks, 1);
  ck_assert_uint_eq (st.registrations, 2);
  ck_assert_uint_eq (st.deregistrations, 1);
  ck_assert_uint_eq (st.bytes_in_use, 16 * KiB);
  ck_assert_uint_eq (st.high_water, 84 * KiB);
  ck_assert_uint_eq (st.direct_allocs, 1);
  ck_assert_uint_eq (st.direct_live, 0);
  ck_assert_uint_eq (st.allocs, 3);
  ck_assert_uint_eq (st.frees, 2);
  ck_assert_uint_eq (st.failures, 0);
  ck_assert_uint_eq (st.bad_frees, 0);
  free_ok (pool, c);
  mempool_destroy (pool);
}
END_TEST

START_TEST (test_dump_format)
{
  struct mempool *pool = new_pool (0, 0, 0);
  char *text = NULL, *line, *save;
  size_t len;
  unsigned level = 11;
  FILE *fp;

  alloc_ok (pool, 4 * KiB, 4 * KiB);
  fp = open_memstream (&text, &len);
  ck_assert_int_eq (mempool_dump (pool, 0, fp), 0);
  ck_assert_int_eq (mempool_dump (pool, 1, fp), -ENOENT);
  fclose (fp);
  ck_assert_int_eq (strncmp (text, "level 11 10(0x1)\nlevel 10 9(0x2) 10(0x3)\n",
                             41), 0);
  for (line = strtok_r (text, "\n", &save); line;
       line = strtok_r (NULL, "\n", &save), level--) {
    char want[32];
    unsigned first = 1u << (11 - level), items = 0;

    snprintf (want, sizeof want, "level %u ", level);
    ck_assert_int_eq (strncmp (line, want, strlen (want)), 0);
    for (char *s = line; *s; s++)
      items += *s == '(';
    ck_assert_uint_eq (items, first);
    if (level == 1)
      ck_assert_int_eq (strncmp (line, "level 1 0(0x400) 1(0x401) ", 26), 0);
  }
  ck_assert_uint_eq (level, 0);
  free (text);
  mempool_destroy (pool);
}
END_TEST

/* mempool_check really finds corruption (so the other tests mean it). */
START_TEST (test_check_detects_corruption)
{
  struct mempool *pool = new_pool (3, 0, 0);
  struct chunk *c;
  char msg[256];
  tree_value saved;

  alloc_ok (pool, 8 * KiB, 8 * KiB);
  c = pool->chunk_v[0];
  for (unsigned node = 1; node < 16; node++) {
    saved = c->tree[node];
    c->tree[node] = saved == 1 ? 2 : 1;
    ck_assert_int_eq (mempool_check (pool, msg, sizeof msg), -EUCLEAN);
    ck_assert_msg (strncmp (msg, "chunk 0: ", 9) == 0, "message: %s", msg);
    c->tree[node] = saved;
    assert_consistent (pool);
  }
  c->seg_level[1] = 1;                  /* inside the live 8 KiB segment */
  ck_assert_int_eq (mempool_check (pool, msg, sizeof msg), -EUCLEAN);
  c->seg_level[1] = 0;
  c->seg_level[4] = 1;                  /* a segment the tree does not know */
  ck_assert_int_eq (mempool_check (pool, msg, sizeof msg), -EUCLEAN);
  c->seg_level[4] = 0;
  pool->stats.bytes_in_use++;
  ck_assert_int_eq (mempool_check (pool, msg, sizeof msg), -EUCLEAN);
  pool->stats.bytes_in_use--;
  pool->roots[0]++;                     /* the list's copy of the root */
  ck_assert_int_eq (mempool_check (pool, msg, sizeof msg), -EUCLEAN);
  pool->roots[0]--;
  assert_consistent (pool);
  mempool_destroy (pool);
}
END_TEST

/* ---------------------------------------------------------------- */
/* Threads allocate, tag, and hand segments to the next thread, which
 * verifies and frees them. */

#define NTHREADS 4
#define THREAD_OPS 20000
#define MAILBOX 32

struct mailbox {
  pthread_mutex_t lock;
  struct mempool_seg segs[MAILBOX];
  unsigned n;
};

struct worker {
  struct mempool *pool;
  struct mailbox *boxes;
  unsigned id;
  uint64_t rng;
  unsigned long freed, allocated, errors;
};

static uint64_t
rng_next (uint64_t *s)
{
  /* splitmix64: small, good enough, and reproducible from the seed. */
  uint64_t z = (*s += UINT64_C (0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C (0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C (0x94D049BB133111EB);
  return z ^ (z >> 31);
}

static void
tag_seg (const struct mempool_seg *seg, uint64_t tag)
{
  for (size_t off = 0; off < seg->len; off += 4 * KiB)
    *(uint64_t *) ((char *) seg->addr + off) = tag + off;
}

static int
tag_ok (const struct mempool_seg *seg, uint64_t tag)
{
  for (size_t off = 0; off < seg->len; off += 4 * KiB)
    if (*(uint64_t *) ((char *) seg->addr + off) != tag + off)
      return 0;
  return 1;
}

static uint64_t
seg_tag (const struct mempool_seg *seg)
{
  return (uint64_t) (uintptr_t) seg->addr * 31 + seg->len;
}

static void
worker_free (struct worker *w, struct mempool_seg *seg)
{
  if (!tag_ok (seg, seg_tag (seg)) || mempool_free (w->pool, seg->addr) != 0)
    w->errors++;
  w->freed++;
}

static void *
worker_run (void *arg)
{
  struct worker *w = arg;
  struct mailbox *mine = &w->boxes[w->id];
  struct mailbox *next = &w->boxes[(w->id + 1) % NTHREADS];

  for (unsigned i = 0; i < THREAD_OPS; i++) {
    struct mempool_seg seg, got[MAILBOX];
    unsigned n;

    if (mempool_alloc (w->pool, 1 + rng_next (&w->rng) % (256 * KiB),
                       &seg) != 0) {
      w->errors++;
      continue;
    }
    w->allocated++;
    tag_seg (&seg, seg_tag (&seg));
    /* Hand it to the next thread; if its box is full, free it here. */
    pthread_mutex_lock (&next->lock);
    if (next->n < MAILBOX) {
      next->segs[next->n++] = seg;
      n = 1;
    }
    else
      n = 0;
    pthread_mutex_unlock (&next->lock);
    if (n == 0)
      worker_free (w, &seg);
    /* Free what others handed to us. */
    pthread_mutex_lock (&mine->lock);
    n = mine->n;
    memcpy (got, mine->segs, n * sizeof got[0]);
    mine->n = 0;
    pthread_mutex_unlock (&mine->lock);
    for (unsigned j = 0; j < n; j++)
      worker_free (w, &got[j]);
  }
  return NULL;
}

START_TEST (test_threads)
{
  struct mempool_config cfg = {
    .chunk_order = 20, .unit_order = 12, .spare_chunks = 1,
    .hooks = { log_reg, log_dereg, &hooks },
  };
  struct mempool *pool;
  struct mailbox boxes[NTHREADS];
  struct worker w[NTHREADS];
  pthread_t tid[NTHREADS];
  struct mempool_stats st;
  unsigned long allocated = 0, freed = 0;

  reset_hooks ();
  pool = mempool_create (&cfg);
  ck_assert_ptr_nonnull (pool);
  for (unsigned i = 0; i < NTHREADS; i++) {
    pthread_mutex_init (&boxes[i].lock, NULL);
    boxes[i].n = 0;
    w[i] = (struct worker) { .pool = pool, .boxes = boxes, .id = i,
                             .rng = 1000 + i };
  }
  for (unsigned i = 0; i < NTHREADS; i++)
    ck_assert_int_eq (pthread_create (&tid[i], NULL, worker_run, &w[i]), 0);
  for (unsigned i = 0; i < NTHREADS; i++)
    ck_assert_int_eq (pthread_join (tid[i], NULL), 0);
  /* What is left in the boxes, freed by this thread. */
  for (unsigned i = 0; i < NTHREADS; i++)
    for (unsigned j = 0; j < boxes[i].n; j++)
      worker_free (&w[0], &boxes[i].segs[j]);
  for (unsigned i = 0; i < NTHREADS; i++) {
    ck_assert_uint_eq (w[i].errors, 0);
    allocated += w[i].allocated;
    freed += w[i].freed;
  }
  ck_assert_uint_eq (allocated, NTHREADS * THREAD_OPS);
  ck_assert_uint_eq (freed, allocated);
  assert_consistent (pool);
  mempool_get_stats (pool, &st);
  ck_assert_uint_eq (st.allocs, allocated);
  ck_assert_uint_eq (st.frees, freed);
  ck_assert_uint_eq (st.bytes_in_use, 0);
  ck_assert_uint_eq (st.bad_frees, 0);
  ck_assert_uint_eq (st.failures, 0);
  ck_assert_uint_le (st.chunks, 1);     /* only the spare is left */
  ck_assert_uint_eq (st.registrations, hooks.regs);
  ck_assert_uint_eq (st.deregistrations, hooks.deregs);
  ck_assert_uint_eq (hooks.regs - hooks.deregs, st.chunks);
  mempool_destroy (pool);
}
END_TEST

/* ---------------------------------------------------------------- */
/* The randomized model test.  A reference model of the pool's policy, as
 * plain as possible (a bitmap per chunk, the lowest aligned free run, the
 * chunk list as an array), predicts where every allocation must land, which
 * registrations and deregistrations happen, and how many chunks exist; the
 * pool must agree after every step.  Independently, every unit of every
 * segment carries a tag written at allocation and verified at free, which
 * catches overlapping segments even if the model were wrong the same way. */

#define MODEL_MAX_LIVE 48

struct ref_chunk {
  char *base;
  void *handle;
  size_t live_units;
  uint64_t bits[];              /* one bit per unit, 1 = in a live segment */
};

struct ref_live {
  char *addr;
  size_t len;
  struct ref_chunk *chunk;      /* NULL: a direct allocation */
  void *handle;
  uint64_t tag;
};

struct model {
  struct mempool *pool;
  unsigned chunk_order, unit_order, spares;
  int eager;                    /* release_eagerly: no hysteresis */
  unsigned peak;                /* most chunks in use since the last shrink */
  size_t units, words;
  struct ref_chunk **chunks;    /* in list order */
  size_t nchunks, chunks_cap;
  unsigned empty;
  struct ref_live live[MODEL_MAX_LIVE];
  unsigned nlive;
  unsigned regs, deregs, bad_frees;
  uint64_t seed, rng, step;
};

/* Not ck_assert_msg: Check records every passed assertion in a file, which
 * would make a million steps slow.  ck_abort_msg costs nothing until used. */
#define MODEL_ASSERT(m, cond, fmt, ...)                                   \
  do {                                                                    \
    if (!(cond))                                                          \
      ck_abort_msg ("seed %" PRIu64 " step %" PRIu64 ": " fmt,            \
                    (m)->seed, (m)->step, ##__VA_ARGS__);                 \
  } while (0)

static int
ref_run_free (const struct ref_chunk *c, size_t unit, size_t n)
{
  if (n >= 64) {
    for (size_t w = unit / 64; w < (unit + n) / 64; w++)
      if (c->bits[w])
        return 0;
    return 1;
  }
  return ((c->bits[unit / 64] >> (unit % 64)) & ((UINT64_C (1) << n) - 1))
    == 0;
}

static void
ref_mark (struct ref_chunk *c, size_t unit, size_t n, int set)
{
  for (size_t u = unit; u < unit + n; u++) {
    if (set)
      c->bits[u / 64] |= UINT64_C (1) << (u % 64);
    else
      c->bits[u / 64] &= ~(UINT64_C (1) << (u % 64));
  }
}

/* The lowest offset, aligned to n, where n units are free; or -1. */
static long
ref_find (const struct model *m, const struct ref_chunk *c, size_t n)
{
  for (size_t unit = 0; unit < m->units; unit += n) {
    if (n < 64 && c->bits[unit / 64] == UINT64_MAX) {
      unit = (unit / 64 + 1) * 64 - n;  /* skip a full word */
      continue;
    }
    if (ref_run_free (c, unit, n))
      return (long) unit;
  }
  return -1;
}

static void
tag_units (char *addr, size_t len, size_t unit, uint64_t tag)
{
  for (size_t off = 0; off < len; off += unit)
    *(uint64_t *) (addr + off) = tag ^ off;
}

static int
tags_intact (const char *addr, size_t len, size_t unit, uint64_t tag)
{
  for (size_t off = 0; off < len; off += unit)
    if (*(const uint64_t *) (addr + off) != (tag ^ off))
      return 0;
  return 1;
}

static void
model_compare (struct model *m)
{
  struct mempool_stats st;

  mempool_get_stats (m->pool, &st);
  MODEL_ASSERT (m, st.chunks == m->nchunks && mempool_nr_chunks (m->pool)
                == m->nchunks, "%" PRIu64 " chunks, model has %zu",
                st.chunks, m->nchunks);
  MODEL_ASSERT (m, hooks.regs == m->regs && st.registrations == m->regs,
                "%u registrations, model expects %u", hooks.regs, m->regs);
  MODEL_ASSERT (m, hooks.deregs == m->deregs &&
                st.deregistrations == m->deregs,
                "%u deregistrations, model expects %u", hooks.deregs,
                m->deregs);
  MODEL_ASSERT (m, st.bad_frees == m->bad_frees, "bad_frees %" PRIu64,
                st.bad_frees);
}

static void
model_check (struct model *m)
{
  char msg[256] = "";

  MODEL_ASSERT (m, mempool_check (m->pool, msg, sizeof msg) == 0,
                "mempool_check: %s", msg);
}

static size_t
model_size (struct model *m)
{
  /* Orders from one unit to twice a chunk (a direct allocation), skewed
   * towards small ones as real I/O is: the minimum of three draws. */
  unsigned span = m->chunk_order + 1 - m->unit_order + 1, r = span;
  size_t lo, hi;

  for (int i = 0; i < 3; i++) {
    unsigned d = (unsigned) (rng_next (&m->rng) % span);
    if (d < r)
      r = d;
  }
  /* Sizes in (2^(order-1), 2^order], or 1..unit: exercises rounding. */
  hi = (size_t) 1 << (m->unit_order + r);
  lo = r == 0 ? 1 : hi / 2 + 1;
  return lo + rng_next (&m->rng) % (hi - lo + 1);
}

static void
model_alloc (struct model *m)
{
  size_t size = model_size (m), len = (size_t) 1 << m->unit_order;
  struct mempool_seg seg;
  struct ref_live *l = &m->live[m->nlive];
  unsigned regs_before = hooks.regs;
  int r;

  while (len < size)
    len <<= 1;
  r = mempool_alloc (m->pool, size, &seg);
  MODEL_ASSERT (m, r == 0, "alloc %zu: %s", size, strerror (-r));
  MODEL_ASSERT (m, seg.len == len, "alloc %zu: len %zu, want %zu",
                size, seg.len, len);
  /* Aligned to its own rounded size within its chunk (chunks are aligned
   * to the chunk size); a direct allocation to the chunk size. */
  MODEL_ASSERT (m, (uintptr_t) seg.addr %
                (len < ((size_t) 1 << m->chunk_order) ? len
                 : (size_t) 1 << m->chunk_order) == 0,
                "alloc %zu at %p: misaligned", size, seg.addr);
  *l = (struct ref_live) { .addr = seg.addr, .len = len,
                           .handle = seg.handle,
                           .tag = rng_next (&m->rng) };

  if (len > ((size_t) 1 << m->chunk_order)) {
    /* Direct: registered on its own, exactly its length. */
    m->regs++;
    MODEL_ASSERT (m, hooks.regs == regs_before + 1 && hooks.last_base ==
                  seg.addr && hooks.last_len == len && hooks.last_handle ==
                  seg.handle, "direct alloc %zu not registered alone", len);
  }
  else {
    size_t n = len >> m->unit_order;
    struct ref_chunk *c = NULL;
    long unit = -1;

    for (size_t i = 0; i < m->nchunks && unit < 0; i++) {
      unit = ref_find (m, m->chunks[i], n);
      if (unit >= 0)
        c = m->chunks[i];
    }
    if (c == NULL) {
      /* No chunk fits: the pool must have registered a new one. */
      MODEL_ASSERT (m, hooks.regs == regs_before + 1 && hooks.last_len ==
                    ((size_t) 1 << m->chunk_order),
                    "alloc %zu: expected one new chunk", size);
      c = calloc (1, sizeof *c + m->words * sizeof c->bits[0]);
      MODEL_ASSERT (m, c != NULL, "out of memory");
      c->base = hooks.last_base;
      c->handle = hooks.last_handle;
      if (m->nchunks == m->chunks_cap) {
        m->chunks_cap = m->chunks_cap ? 2 * m->chunks_cap : 16;
        m->chunks = realloc (m->chunks, m->chunks_cap * sizeof *m->chunks);
        MODEL_ASSERT (m, m->chunks != NULL, "out of memory");
      }
      m->chunks[m->nchunks++] = c;
      m->regs++;
      m->empty++;
      unit = 0;
    }
    MODEL_ASSERT (m, hooks.regs == m->regs, "unexpected registration");
    MODEL_ASSERT (m, seg.addr == c->base + ((size_t) unit << m->unit_order),
                  "alloc %zu: at %p, model says %p", size, seg.addr,
                  (void *) (c->base + ((size_t) unit << m->unit_order)));
    MODEL_ASSERT (m, seg.handle == c->handle, "wrong handle");
    if (c->live_units == 0) {
      m->empty--;
      if (m->nchunks - m->empty > m->peak)
        m->peak = (unsigned) (m->nchunks - m->empty);
    }
    ref_mark (c, (size_t) unit, n, 1);
    c->live_units += n;
    l->chunk = c;
  }
  tag_units (l->addr, len, (size_t) 1 << m->unit_order, l->tag);
  m->nlive++;
}

static void
model_remove_chunk (struct model *m, struct ref_chunk *c)
{
  for (size_t i = 0; i < m->nchunks; i++)
    if (m->chunks[i] == c) {
      memmove (&m->chunks[i], &m->chunks[i + 1],
               (m->nchunks - i - 1) * sizeof m->chunks[0]);
      m->nchunks--;
      free (c);
      return;
    }
  ck_abort_msg ("model lost a chunk");
}

static void
model_free (struct model *m, unsigned i)
{
  struct ref_live l = m->live[i];
  unsigned deregs_before = hooks.deregs;
  int r;

  MODEL_ASSERT (m, tags_intact (l.addr, l.len, (size_t) 1 << m->unit_order,
                                l.tag),
                "segment %p len %zu was overwritten: overlap", l.addr, l.len);
  /* Now and then, misuse first: the middle of the segment. */
  if (l.len > ((size_t) 1 << m->unit_order) && rng_next (&m->rng) % 16 == 0) {
    r = mempool_free (m->pool, l.addr + l.len / 2);
    MODEL_ASSERT (m, r == -EINVAL, "free of a middle not refused");
    m->bad_frees++;
  }
  r = mempool_free (m->pool, l.addr);
  MODEL_ASSERT (m, r == 0, "free %p: %s", l.addr, strerror (-r));
  m->live[i] = m->live[--m->nlive];

  if (l.chunk == NULL) {
    m->deregs++;
    MODEL_ASSERT (m, hooks.last_dereg == l.handle, "direct not deregistered");
  }
  else {
    size_t n = l.len >> m->unit_order;
    size_t unit = (size_t) (l.addr - l.chunk->base) >> m->unit_order;

    ref_mark (l.chunk, unit, n, 0);
    l.chunk->live_units -= n;
    if (l.chunk->live_units == 0 && ++m->empty > m->spares) {
      if (m->eager) {
        m->deregs++;
        m->empty--;
        MODEL_ASSERT (m, hooks.deregs == deregs_before + 1 &&
                      hooks.last_dereg == l.chunk->handle,
                      "empty chunk beyond the spares not deregistered");
        model_remove_chunk (m, l.chunk);
      }
      else if ((uint64_t) (m->nchunks - m->empty) * MEMPOOL_SHRINK_RATIO
               < m->peak) {
        /* Below the band: empty chunks go from the tail to the spares. */
        unsigned gone = 0;
        void *last = NULL;

        for (size_t j = m->nchunks; j-- > 0 && m->empty > m->spares; )
          if (m->chunks[j]->live_units == 0) {
            last = m->chunks[j]->handle;
            model_remove_chunk (m, m->chunks[j]);
            m->empty--;
            m->deregs++;
            gone++;
          }
        m->peak = (unsigned) (m->nchunks - m->empty);
        MODEL_ASSERT (m, hooks.deregs == deregs_before + gone &&
                      hooks.last_dereg == last,
                      "shrink: %u deregistrations, model expects %u",
                      hooks.deregs - deregs_before, gone);
      }
    }
  }
  MODEL_ASSERT (m, hooks.deregs == m->deregs, "unexpected deregistration");
}

/* Trim live segment i to a random length it keeps: the model gives back
 * the units past the new power-of-two length (a direct allocation and a
 * keep of half or more stay whole). */
static void
model_trim (struct model *m, unsigned i)
{
  struct ref_live *l = &m->live[i];
  size_t keep = 1 + rng_next (&m->rng) % l->len;
  size_t want = (size_t) 1 << m->unit_order, len = 0;
  int r;

  while (want < keep)
    want <<= 1;
  if (l->chunk == NULL || want >= l->len)
    want = l->len;
  r = mempool_trim (m->pool, l->addr, keep, &len);
  MODEL_ASSERT (m, r == 0, "trim %p to %zu: %s", l->addr, keep, strerror (-r));
  MODEL_ASSERT (m, len == want, "trim %p (%zu) to %zu: len %zu, want %zu",
                l->addr, l->len, keep, len, want);
  MODEL_ASSERT (m, tags_intact (l->addr, want, (size_t) 1 << m->unit_order,
                                l->tag), "trim %p: kept bytes changed", l->addr);
  if (l->chunk && want < l->len) {
    size_t unit = (size_t) (l->addr - l->chunk->base) >> m->unit_order;
    size_t kept = want >> m->unit_order, gone = (l->len - want) >> m->unit_order;

    ref_mark (l->chunk, unit + kept, gone, 0);
    l->chunk->live_units -= gone;
    l->len = want;
  }
}

/* Run ops random operations on a pool of the given geometry; a full
 * mempool_check every check_every steps (1 on small chunks, where it is
 * cheap; rarer on 1024-unit chunks, where it walks 2047 nodes per chunk and
 * would dominate the run). */
static void
model_run (uint64_t seed, unsigned chunk_order, unsigned spares,
           int keep_no_spares, int eager, unsigned long ops,
           unsigned check_every)
{
  struct mempool_config cfg = {
    .chunk_order = chunk_order, .unit_order = 12, .spare_chunks = spares,
    .keep_no_spares = keep_no_spares, .release_eagerly = eager,
    .hooks = { log_reg, log_dereg, &hooks },
  };
  struct model m = {
    .chunk_order = chunk_order, .unit_order = 12,
    .spares = spares || keep_no_spares ? spares : MEMPOOL_SPARES_DEFAULT,
    .eager = eager,
    .units = (size_t) 1 << (chunk_order - 12),
    .seed = seed, .rng = seed,
  };

  m.words = (m.units + 63) / 64;
  reset_hooks ();
  m.pool = mempool_create (&cfg);
  ck_assert_ptr_nonnull (m.pool);
  mempool_set_warnings (m.pool, NULL);

  for (m.step = 0; m.step < ops; m.step++) {
    /* Drift between empty and full so that chunks fill, drain and are
     * given back: the bias changes every 4096 steps. */
    unsigned bias = (m.step >> 12) & 1 ? 40 : 60;
    int alloc = m.nlive == 0 ||
      (m.nlive < MODEL_MAX_LIVE && rng_next (&m.rng) % 100 < bias);

    if (alloc)
      model_alloc (&m);
    else if (rng_next (&m.rng) % 16 == 0)
      model_trim (&m, (unsigned) (rng_next (&m.rng) % m.nlive));
    else
      model_free (&m, (unsigned) (rng_next (&m.rng) % m.nlive));
    model_compare (&m);
    if (m.step % check_every == 0)
      model_check (&m);
  }
  while (m.nlive)
    model_free (&m, m.nlive - 1);
  model_compare (&m);
  model_check (&m);
  MODEL_ASSERT (&m, m.nchunks <= m.spares, "chunks left beyond spares");
  {
    struct mempool_stats st;
    mempool_get_stats (m.pool, &st);
    fprintf (stderr, "  %lu operations on %zu-unit chunks: %" PRIu64
             " allocations (%" PRIu64 " direct), %" PRIu64
             " registrations, high water %" PRIu64 " KiB\n", ops, m.units,
             st.allocs, st.direct_allocs, st.registrations,
             st.high_water / 1024);
  }
  mempool_destroy (m.pool);
  for (size_t i = 0; i < m.nchunks; i++)
    free (m.chunks[i]);
  free (m.chunks);
}

START_TEST (test_random_model)
{
  const char *env = getenv ("MEMPOOL_SEED");
  const char *ops_env = getenv ("MEMPOOL_MODEL_OPS");
  uint64_t seed = env ? strtoull (env, NULL, 0) : (uint64_t) time (NULL);
  unsigned long ops = ops_env ? strtoul (ops_env, NULL, 0) : 1000000;

  fprintf (stderr, "test_random_model: seed %" PRIu64 " (replay with "
           "MEMPOOL_SEED=%" PRIu64 "), %lu operations\n", seed, seed, ops);
  /* A million operations in all: most on small chunks (8, 16 and 64
   * units, checked fully often), the rest on the default 4 MiB chunk
   * with sizes up to 8 MiB.  The first run gives chunks back eagerly, the
   * others with the default hysteresis. */
  model_run (seed, 15, 1, 0, 1, ops / 4, 1);
  model_run (seed + 1, 18, 0, 1, 0, ops / 4, 1);
  /* Checked every step, the runs above apply each deferred free before the
   * next allocation; this one lets them reach it. */
  model_run (seed + 3, 16, 1, 0, 0, ops / 4, 13);
  model_run (seed + 2, 22, 0, 0, 0, ops - 3 * (ops / 4), 512);
}
END_TEST

/* ---------------------------------------------------------------- */

static Suite *
mempool_suite (void)
{
  Suite *s = suite_create ("mempool");
  TCase *tc = tcase_create ("rules");
  TCase *slow = tcase_create ("workloads");

  tcase_add_test (tc, test_defaults);
  tcase_add_test (tc, test_bad_geometry);
  tcase_add_test (tc, test_worked_example);
  tcase_add_test (tc, test_rounding);
  tcase_add_test (tc, test_leftmost_fit_and_root_check);
  tcase_add_test (tc, test_buddy_merge);
  tcase_add_test (tc, test_trim);
  tcase_add_test (tc, test_chunk_list);
  tcase_add_test (tc, test_direct);
  tcase_add_test (tc, test_find);
  tcase_add_test (tc, test_rehandle);
  tcase_add_test (tc, test_spares);
  tcase_add_test (tc, test_spares_hysteresis);
  tcase_add_test (tc, test_deferred_free);
  tcase_add_test (tc, test_misuse);
  tcase_add_test (tc, test_size_zero_and_overflow);
  tcase_add_test (tc, test_hook_failure);
  tcase_add_test (tc, test_counters);
  tcase_add_test (tc, test_dump_format);
  tcase_add_test (tc, test_check_detects_corruption);
  suite_add_tcase (s, tc);

  /* Bounded, generous: these run a million operations (under ASan too). */
  tcase_set_timeout (slow, 240);
  tcase_add_test (slow, test_threads);
  tcase_add_test (slow, test_random_model);
  suite_add_tcase (s, slow);
  return s;
}

int
main (void)
{
  return check_run (mempool_suite (), CK_FORK_GETENV);
}
