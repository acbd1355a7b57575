/* mempool.c: the pool: chunks searched head to tail, direct allocations for
 * requests larger than a chunk, spare chunks given back, misuse refused.
 * The buddy tree itself is in chunk.c; introspection in inspect.c. */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "sysmem.h"

/* Limits on the geometry: a unit must hold a few words (tests write tags in
 * every unit); a chunk must be whole pages (it is mapped and aligned on its
 * own); a tree's values must fit its bytes and its array stay modest. */
#define MIN_UNIT_ORDER 4
#define MAX_TREE_LEVELS 21

static unsigned
page_order (void)
{
  long page = sysconf (_SC_PAGESIZE);
  unsigned order = 0;

  while ((1L << order) < page)
    order++;
  return order;
}

struct mempool *
mempool_create (const struct mempool_config *cfg)
{
  struct mempool_config defaults = { 0 };
  struct mempool *pool;

  if (cfg == NULL)
    cfg = &defaults;

  pool = calloc (1, sizeof *pool);
  if (pool == NULL)
    return NULL;
  pool->chunk_order = cfg->chunk_order ? cfg->chunk_order
    : MEMPOOL_CHUNK_ORDER_DEFAULT;
  pool->unit_order = cfg->unit_order ? cfg->unit_order
    : MEMPOOL_UNIT_ORDER_DEFAULT;
  if (pool->unit_order < MIN_UNIT_ORDER ||
      pool->unit_order > pool->chunk_order ||
      pool->chunk_order < page_order () ||
      pool->chunk_order >= sizeof (size_t) * 8 - 2 ||
      pool->chunk_order - pool->unit_order + 1 > MAX_TREE_LEVELS) {
    free (pool);
    errno = EINVAL;
    return NULL;
  }
  pool->levels = pool->chunk_order - pool->unit_order + 1;
  pool->chunk_size = (size_t) 1 << pool->chunk_order;
  pool->unit_size = (size_t) 1 << pool->unit_order;
  /* 0 spares is the zero value of an unset field, so it means "default"
   * unless the caller says it really means none. */
  pool->spare_chunks = cfg->spare_chunks || cfg->keep_no_spares
    ? cfg->spare_chunks : MEMPOOL_SPARES_DEFAULT;
  pool->release_eagerly = cfg->release_eagerly;
  pool->hooks = cfg->hooks;
  pool->warn_fp = stderr;
  regmap_init (&pool->map);
  pool_lock_init (&pool->lock);
  return pool;
}

void
mempool_set_warnings (struct mempool *pool, FILE *fp)
{
  pool_lock_acquire (&pool->lock);
  pool->warn_fp = fp;
  pool_lock_release (&pool->lock);
}

/* Registration of a region through the hooks.  Only successful calls are
 * counted, so registrations - deregistrations == regions held. */
static int
region_register (struct mempool *pool, struct region *r)
{
  int err = 0;

  r->handle = NULL;
  if (pool->hooks.reg)
    err = pool->hooks.reg (pool->hooks.ctx, r->base, r->len, &r->handle);
  if (err > 0)                  /* a hook breaking the contract */
    err = -EIO;
  if (err == 0)
    pool->stats.registrations++;
  return err;
}

static void
region_deregister (struct mempool *pool, struct region *r)
{
  if (pool->hooks.dereg)
    pool->hooks.dereg (pool->hooks.ctx, r->handle);
  pool->stats.deregistrations++;
}

/* Map, register and index a region of r->len bytes.  Returns 0 or -errno
 * with everything undone. */
static int
region_open (struct mempool *pool, struct region *r)
{
  uintptr_t first, nslots, i;
  int err;

  r->base = sysmem_map (r->len, pool->chunk_size);
  if (r->base == NULL)
    return -ENOMEM;
  err = region_register (pool, r);
  if (err)
    goto unmap;
  first = pool_slot (pool, r->base);
  nslots = r->len >> pool->chunk_order;
  for (i = 0; i < nslots; i++) {
    err = regmap_insert (&pool->map, first + i, r);
    if (err)
      goto unindex;
  }
  return 0;

 unindex:
  while (i-- > 0)
    regmap_remove (&pool->map, first + i);
  region_deregister (pool, r);
 unmap:
  sysmem_unmap (r->base, r->len);
  return err;
}

static void
region_close (struct mempool *pool, struct region *r)
{
  uintptr_t first = pool_slot (pool, r->base);

  for (uintptr_t i = 0; i < r->len >> pool->chunk_order; i++)
    regmap_remove (&pool->map, first + i);
  region_deregister (pool, r);
  sysmem_unmap (r->base, r->len);
}

/* Room for one more chunk in the list arrays. */
static int
chunk_list_reserve (struct mempool *pool)
{
  size_t cap = pool->chunks_cap ? 2 * pool->chunks_cap : 16;
  struct chunk **v;
  tree_value *roots;

  if (pool->nchunks < pool->chunks_cap)
    return 0;
  v = realloc (pool->chunk_v, cap * sizeof *v);
  if (v == NULL)
    return -ENOMEM;
  pool->chunk_v = v;
  roots = realloc (pool->roots, cap * sizeof *roots);
  if (roots == NULL)
    return -ENOMEM;
  /* Unused entries hold 0 (fits nothing): the search reads whole words;
   * cap is a multiple of 16. */
  memset (roots + pool->chunks_cap, 0, cap - pool->chunks_cap);
  pool->roots = roots;
  pool->chunks_cap = cap;
  return 0;
}

/* A new empty chunk at the tail of the list.  Called with the lock held:
 * registration may be slow, but a new chunk is rare once the pool has
 * grown to its working set, and holding the lock keeps the list simple. */
static int
chunk_create (struct mempool *pool, struct chunk **cp)
{
  struct chunk *c;
  int err = chunk_list_reserve (pool);

  if (err)
    return err;
  c = chunk_new (pool->levels);
  if (c == NULL)
    return -ENOMEM;
  c->region.kind = REGION_CHUNK;
  c->region.len = pool->chunk_size;
  err = region_open (pool, &c->region);
  if (err) {
    chunk_delete (c);
    return err;
  }
  c->pos = pool->nchunks++;
  pool->chunk_v[c->pos] = c;
  pool->roots[c->pos] = c->tree[1];
  pool->stats.chunks++;
  pool->empty_chunks++;
  *cp = c;
  return 0;
}

static void
chunk_destroy (struct mempool *pool, struct chunk *c)
{
  if (chunk_is_empty (c))
    pool->empty_chunks--;
  /* Close the gap in the list, keeping its order. */
  for (size_t i = c->pos + 1; i < pool->nchunks; i++) {
    pool->chunk_v[i - 1] = pool->chunk_v[i];
    pool->roots[i - 1] = pool->roots[i];
    pool->chunk_v[i - 1]->pos = i - 1;
  }
  pool->nchunks--;
  pool->roots[pool->nchunks] = 0;
  region_close (pool, &c->region);
  pool->stats.chunks--;
  chunk_delete (c);
}

static int
direct_alloc (struct mempool *pool, size_t len, struct mempool_seg *seg)
{
  struct region *r = calloc (1, sizeof *r);
  int err;

  if (r == NULL)
    return -ENOMEM;
  r->kind = REGION_DIRECT;
  r->len = len;
  err = region_open (pool, r);
  if (err) {
    free (r);
    return err;
  }
  region_list_append (&pool->directs, r);
  pool->stats.direct_allocs++;
  pool->stats.direct_live++;
  seg->addr = r->base;
  seg->len = len;
  seg->handle = r->handle;
  return 0;
}

static void
direct_free (struct mempool *pool, struct region *r)
{
  region_list_remove (&pool->directs, r);
  region_close (pool, r);
  pool->stats.direct_live--;
  free (r);
}

/* The position of the first chunk whose root is at least level, or n if
 * none.  Sixteen roots per step: adding 0x80 - level to a byte sets its top
 * bit exactly when the byte is >= level (roots are at most MAX_TREE_LEVELS,
 * so no byte carries into the next), and the entries past n hold 0.  The
 * arrays are allocated in multiples of 16 (chunk_list_reserve), so whole
 * words are always there to read.  Two words per step, chosen between
 * without a branch: which word holds the first fit is as random as the
 * buffer freed last, and a branch on it mispredicted about every other
 * allocation with 16 chunks.  (Eight roots per step instead of one took
 * mempool_alloc from 126 to 84 instructions per call with 16 chunks.) */
static size_t
first_fit (const tree_value *roots, size_t n, unsigned level)
{
  const uint64_t ones = UINT64_C (0x0101010101010101);
  const uint64_t add = ones * (0x80 - level), tops = ones << 7;

  for (size_t i = 0; i < n; i += 16) {
    uint64_t lo, hi, hit;
    size_t base;

    memcpy (&lo, roots + i, sizeof lo);
    memcpy (&hi, roots + i + 8, sizeof hi);
    lo = (lo + add) & tops;
    hi = (hi + add) & tops;
    if ((lo | hi) == 0)
      continue;
    /* Arithmetic, not ?:, which compilers turn back into a branch. */
    hit = lo | (hi & -(uint64_t) (lo == 0));
    base = i + ((size_t) (lo == 0) << 3);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return base + (size_t) __builtin_ctzll (hit) / 8;
#else
    return base + (size_t) __builtin_clzll (hit) / 8;
#endif
  }
  return n;
}

/* Deferred frees.
 *
 * The commonest steady state of an I/O path is "requests complete and
 * free their buffers, the next ones allocate buffers of the same size".
 * With leftmost fit the new buffers are very often the ones just freed,
 * and updating the tree for each free and again for each allocation is
 * most of the cost of a pair (two walks of up to `levels` nodes).  So a
 * free takes the segment out of the record and the counters at once
 * (misuse is still refused at once) but leaves its node marked in the
 * tree, in a small set of deferred segments of one level; an allocation
 * of that level takes back the leftmost of them without touching the tree
 * when leftmost fit would have chosen it anyway.  Anything else applies
 * the updates first (pool_flush_deferred): a free or an allocation of
 * another level, a full set, a free that empties its chunk (so the spare
 * policy sees exactly what it saw before), and introspection (so trees,
 * dumps and mempool_check read as before).
 *
 * Why the choice is exact: let the deferred segments be of level L and
 * X the leftmost of them (chunk position first, then offset), in chunk C.
 * A fully free aligned block of level L that contains part of a deferred
 * segment is that segment (they are aligned at level L too), so the
 * blocks of level L free once the updates are applied are those free in
 * the tree now plus the deferred segments.  The leftmost fit is therefore
 * the leftmost of X and the tree's own leftmost fit F: X if no chunk
 * before C fits and C's tree has no fit left of X, else F, which the
 * ordinary path takes while the deferred segments stay as they are.
 * Whether C has a fit left of X is answered by its free floor or read off
 * the left siblings of X's ancestors (chunk_fit_left_of): no descent. */
void
pool_flush_deferred (struct mempool *pool)
{
  for (unsigned k = 0; k < pool->deferred.n; k++) {
    struct chunk *c = pool->deferred.v[k].chunk;

    chunk_restore (c, pool->deferred.v[k].node, pool->deferred.level);
    pool->roots[c->pos] = c->tree[1];
  }
  pool->deferred.n = 0;
}

/* Defer the tree update of the segment at node (level) of c. */
static void
defer_free (struct mempool *pool, struct chunk *c, unsigned node,
            unsigned level)
{
  if (pool->deferred.n &&
      (pool->deferred.level != level || pool->deferred.n == POOL_DEFERRED_MAX))
    pool_flush_deferred (pool);
  pool->deferred.v[pool->deferred.n].chunk = c;
  pool->deferred.v[pool->deferred.n].node = node;
  pool->deferred.level = level;
  pool->deferred.n++;
}

/* An allocation at level (the deferred level) that a deferred segment can
 * serve, leftmost fit being at position i of the list as the trees stand.
 * Returns the unit offset in chunk *cp, or -1 if the ordinary path must
 * run. */
static long
take_deferred (struct mempool *pool, unsigned level, size_t i,
               struct chunk **cp)
{
  struct deferred_seg *v = pool->deferred.v, x;
  unsigned best = 0;

  for (unsigned k = 1; k < pool->deferred.n; k++)
    if (v[k].chunk->pos < v[best].chunk->pos ||
        (v[k].chunk == v[best].chunk && v[k].node < v[best].node))
      best = k;
  x = v[best];
  if (i < x.chunk->pos ||               /* an earlier chunk fits */
      (i == x.chunk->pos && chunk_fit_left_of (x.chunk, x.node, level)))
    return -1;
  /* X is the leftmost fit: live again, and its tree is already right. */
  v[best] = v[--pool->deferred.n];
  *cp = x.chunk;
  return (long) chunk_relive (x.chunk, x.node, level);
}

static int
chunk_alloc (struct mempool *pool, unsigned level, struct mempool_seg *seg)
{
  struct chunk *c = NULL;
  size_t i;
  long unit = -1;
  int err;

  if (pool->deferred.n && pool->deferred.level != level)
    pool_flush_deferred (pool);
  /* Head to tail: the first chunks stay full and the last ones drain, which
   * is what lets spare chunks at the tail be given back.  Whether a chunk
   * fits is one comparison with (a copy of) its root. */
  i = first_fit (pool->roots, pool->nchunks, level);
  if (pool->deferred.n)
    unit = take_deferred (pool, level, i, &c);
  if (unit < 0) {
    if (i < pool->nchunks)
      c = pool->chunk_v[i];
    else {
      err = chunk_create (pool, &c);
      if (err)
        return err;
    }
    if (chunk_is_empty (c)) {
      pool->empty_chunks--;
      if (pool_busy_chunks (pool) > pool->busy_peak)
        pool->busy_peak = pool_busy_chunks (pool);
    }
    unit = (long) chunk_take (c, level);
    pool->roots[c->pos] = c->tree[1];
  }
  seg->addr = (char *) c->region.base + ((size_t) unit << pool->unit_order);
  seg->len = tree_units_at (level) << pool->unit_order;
  seg->handle = c->region.handle;
  return 0;
}

/* The order of the power of two that size rounds up to, or -1 if it does
 * not fit a size_t. */
static int
size_order (size_t size)
{
  unsigned order;

  if (size <= 1)
    return 0;
  order = (unsigned) (sizeof (size_t) * 8) -
    (unsigned) __builtin_clzl ((unsigned long) (size - 1));
  return order >= sizeof (size_t) * 8 ? -1 : (int) order;
}

/* The order of the segment that holds size bytes: at least a unit; -1 if
 * no size_t can hold it. */
static int
segment_order (const struct mempool *pool, size_t size)
{
  int order = size_order (size);

  return order >= 0 && (unsigned) order < pool->unit_order
    ? (int) pool->unit_order : order;
}

int
mempool_alloc (struct mempool *pool, size_t size, struct mempool_seg *seg)
{
  int order = segment_order (pool, size);
  int err;

  pool_lock_acquire (&pool->lock);
  if (size == 0)
    err = -EINVAL;
  else if (order < 0)
    err = -EOVERFLOW;
  else {
    if ((unsigned) order > pool->chunk_order)
      err = direct_alloc (pool, (size_t) 1 << order, seg);
    else
      err = chunk_alloc (pool,
                         tree_level_of_order (pool->unit_order,
                                              (unsigned) order), seg);
  }
  if (err) {
    pool->stats.failures++;
  }
  else {
    pool->stats.allocs++;
    pool->stats.bytes_in_use += seg->len;
    if (pool->stats.bytes_in_use > pool->stats.high_water)
      pool->stats.high_water = pool->stats.bytes_in_use;
  }
  pool_lock_release (&pool->lock);
  return err;
}

/* Use has fallen below the hysteresis band (or there is none): give back
 * empty chunks beyond the spares, from the tail, where allocation comes
 * last, and let the peak restart from here. */
static void
chunks_shrink (struct mempool *pool)
{
  for (size_t i = pool->nchunks; i-- > 0 &&
         pool->empty_chunks > pool->spare_chunks; )
    if (chunk_is_empty (pool->chunk_v[i]))
      chunk_destroy (pool, pool->chunk_v[i]);   /* moves only entries > i */
  pool->busy_peak = pool_busy_chunks (pool);
}

/* Free within a chunk.  Returns the bytes freed, or 0 if no live segment
 * starts at addr. */
static size_t
chunk_free (struct mempool *pool, struct chunk *c, void *addr)
{
  size_t off = (size_t) ((char *) addr - (char *) c->region.base);
  size_t unit = off >> pool->unit_order;
  unsigned level, node;

  if (off & (pool->unit_size - 1))
    return 0;
  level = chunk_release (c, unit);
  if (level == 0)
    return 0;
  node = tree_node_at (c->levels, level, unit);
  if (c->live_units > 0) {
    /* Defer the tree update: an allocation may take it back. */
    defer_free (pool, c, node, level);
    return tree_units_at (level) << pool->unit_order;
  }
  pool_flush_deferred (pool);           /* the chunk may be given back */
  chunk_restore (c, node, level);
  pool->roots[c->pos] = c->tree[1];
  if (chunk_is_empty (c)) {
    pool->empty_chunks++;
    /* Keep a few empty chunks for the next burst, and more while the
     * working set only swings; give the rest back when it shrinks. */
    if (pool->empty_chunks > pool->spare_chunks) {
      if (pool->release_eagerly)
        chunk_destroy (pool, c);
      else if (!pool_in_band (pool))
        chunks_shrink (pool);
    }
  }
  return tree_units_at (level) << pool->unit_order;
}

int
mempool_free (struct mempool *pool, void *addr)
{
  struct region *r;
  size_t len = 0;
  const char *why = "not memory of this pool";

  pool_lock_acquire (&pool->lock);
  r = regmap_get (&pool->map, pool_slot (pool, addr));
  if (r && r->kind == REGION_DIRECT) {
    why = "not the start of a direct allocation";
    if (r->base == addr) {
      len = r->len;
      direct_free (pool, r);
    }
  }
  else if (r) {
    why = "not the start of a live segment (middle of one, or freed already)";
    len = chunk_free (pool, (struct chunk *) r, addr);
  }
  if (len == 0) {
    pool->stats.bad_frees++;
    if (pool->warn_fp)
      fprintf (pool->warn_fp, "mempool: refused to free %p: %s\n", addr, why);
    pool_lock_release (&pool->lock);
    return -EINVAL;
  }
  pool->stats.frees++;
  pool->stats.bytes_in_use -= len;
  pool_lock_release (&pool->lock);
  return 0;
}

/* Trim within a chunk: the segment at unit becomes its leftmost part of
 * `level` (same start, same record slot); the halves right of it are free.
 * Done as give back, then mark the smaller node live: the tree update is
 * the same as freeing the whole and allocating that node.  Returns the new
 * length in bytes, or 0 if no live segment starts at addr. */
static size_t
chunk_trim (struct mempool *pool, struct chunk *c, void *addr, size_t keep,
            size_t *old_len)
{
  size_t off = (size_t) ((char *) addr - (char *) c->region.base);
  size_t unit = off >> pool->unit_order;
  int order = segment_order (pool, keep);
  unsigned level, want;

  if (off & (pool->unit_size - 1))
    return 0;
  level = chunk_level_at (c, unit);
  if (level == 0)
    return 0;
  *old_len = tree_units_at (level) << pool->unit_order;
  /* keep fits in no smaller segment (a FUSE receive buffer kept whole for
   * a 1 MiB write): no tree work, and the deferred frees stay deferred. */
  want = tree_level_of_order (pool->unit_order, (unsigned) order);
  if (want >= level)
    return *old_len;
  pool_flush_deferred (pool);           /* the tree must be exact below */
  chunk_release (c, unit);
  chunk_restore (c, tree_node_at (c->levels, level, unit), level);
  chunk_mark (c, tree_node_at (c->levels, want, unit), want);
  pool->roots[c->pos] = c->tree[1];
  return tree_units_at (want) << pool->unit_order;
}

int
mempool_trim (struct mempool *pool, void *addr, size_t keep, size_t *len)
{
  struct region *r;
  size_t old_len = 0, new_len = 0;

  if (keep == 0)
    return -EINVAL;
  pool_lock_acquire (&pool->lock);
  r = regmap_get (&pool->map, pool_slot (pool, addr));
  if (r && r->kind == REGION_DIRECT) {
    if (r->base == addr)
      old_len = new_len = r->len;
  }
  else if (r)
    new_len = chunk_trim (pool, (struct chunk *) r, addr, keep, &old_len);
  if (new_len == 0) {
    pool->stats.bad_frees++;
    if (pool->warn_fp)
      fprintf (pool->warn_fp, "mempool: refused to trim %p: not the start "
               "of a live segment\n", addr);
    pool_lock_release (&pool->lock);
    return -EINVAL;
  }
  pool->stats.bytes_in_use -= old_len - new_len;
  *len = new_len;
  pool_lock_release (&pool->lock);
  return 0;
}

int
mempool_find (struct mempool *pool, const void *addr, size_t len,
              void **handle)
{
  struct region *r;
  int err = -ENOENT;

  pool_lock_acquire (&pool->lock);
  r = regmap_get (&pool->map, pool_slot (pool, addr));
  if (r && region_contains (r, addr, len)) {
    *handle = r->handle;
    err = 0;
  }
  pool_lock_release (&pool->lock);
  return err;
}

void
mempool_get_stats (struct mempool *pool, struct mempool_stats *st)
{
  pool_lock_acquire (&pool->lock);
  *st = pool->stats;
  pool_lock_release (&pool->lock);
}

size_t
mempool_chunk_size (const struct mempool *pool)
{
  return pool->chunk_size;
}

size_t
mempool_unit_size (const struct mempool *pool)
{
  return pool->unit_size;
}

void
mempool_destroy (struct mempool *pool)
{
  if (pool == NULL)
    return;
  while (pool->nchunks)
    chunk_destroy (pool, pool->chunk_v[pool->nchunks - 1]);
  free (pool->chunk_v);
  free (pool->roots);
  while (pool->directs.head)
    direct_free (pool, pool->directs.head);
  regmap_free (&pool->map);
  free (pool);
}
