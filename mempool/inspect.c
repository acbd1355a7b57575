/* inspect.c: looking into a pool, for tests, tools and debugging: node
 * values, dumps, the position of a segment, and the full consistency check. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

/* The chunk at position index in the list, or NULL. */
static struct chunk *
chunk_at (struct mempool *pool, unsigned index)
{
  return index < pool->nchunks ? pool->chunk_v[index] : NULL;
}

unsigned
mempool_nr_chunks (struct mempool *pool)
{
  unsigned n;

  pool_lock_acquire (&pool->lock);
  n = (unsigned) pool->nchunks;
  pool_lock_release (&pool->lock);
  return n;
}

int
mempool_tree_node (struct mempool *pool, unsigned chunk, unsigned node)
{
  struct chunk *c;
  int ret = -ENOENT;

  pool_lock_acquire (&pool->lock);
  pool_flush_deferred (pool);
  c = chunk_at (pool, chunk);
  if (c && node >= 1 && node < tree_array_size (c->levels))
    ret = c->tree[node];
  pool_lock_release (&pool->lock);
  return ret;
}

int
mempool_dump (struct mempool *pool, unsigned chunk, FILE *fp)
{
  struct chunk *c;
  int ret = -ENOENT;

  pool_lock_acquire (&pool->lock);
  pool_flush_deferred (pool);
  c = chunk_at (pool, chunk);
  if (c) {
    chunk_dump (c, fp);
    ret = 0;
  }
  pool_lock_release (&pool->lock);
  return ret;
}

int
mempool_locate (struct mempool *pool, const void *addr,
                unsigned *chunk, size_t *offset)
{
  int ret = -ENOENT;

  pool_lock_acquire (&pool->lock);
  for (size_t index = 0; index < pool->nchunks; index++) {
    struct region *r = &pool->chunk_v[index]->region;

    if (region_contains (r, addr, 1)) {
      *chunk = (unsigned) index;
      *offset = (size_t) ((const char *) addr - (const char *) r->base);
      ret = 0;
      break;
    }
  }
  pool_lock_release (&pool->lock);
  return ret;
}

static int __attribute__ ((format (printf, 3, 4)))
inconsistent (char *msg, size_t msglen, const char *fmt, ...)
{
  va_list ap;

  if (msg && msglen) {
    va_start (ap, fmt);
    vsnprintf (msg, msglen, fmt, ap);
    va_end (ap);
  }
  return -EUCLEAN;
}

/* Is r reachable through the map from every slot it covers? */
static int
region_indexed (struct mempool *pool, struct region *r)
{
  uintptr_t first = pool_slot (pool, r->base);

  if (((uintptr_t) r->base & (pool->chunk_size - 1)) != 0)
    return 0;
  for (uintptr_t i = 0; i < r->len >> pool->chunk_order; i++)
    if (regmap_get (&pool->map, first + i) != r)
      return 0;
  return 1;
}

static int
check_locked (struct mempool *pool, char *msg, size_t msglen)
{
  const struct mempool_stats *st = &pool->stats;
  uint64_t bytes = 0, slots = 0, empty = 0, nchunks = 0, ndirect = 0;
  uint64_t segs = 0;
  char why[160];
  for (unsigned index = 0; index < pool->nchunks; index++) {
    struct chunk *c = pool->chunk_v[index];
    struct region *r = &c->region;

    if (r->kind != REGION_CHUNK || r->len != pool->chunk_size)
      return inconsistent (msg, msglen, "chunk %u: not a chunk", index);
    if (!region_indexed (pool, r))
      return inconsistent (msg, msglen, "chunk %u: not found by address",
                           index);
    if (c->pos != index || pool->roots[index] != c->tree[1])
      return inconsistent (msg, msglen, "chunk %u: list position %zu, "
                           "root copy %u, root %u", index, c->pos,
                           pool->roots[index], c->tree[1]);
    if (chunk_check (c, why, sizeof why) == -1)
      return inconsistent (msg, msglen, "chunk %u: %s", index, why);
    bytes += (uint64_t) c->live_units << pool->unit_order;
    empty += chunk_is_empty (c);
    for (size_t u = 0; u < tree_units_at (c->levels); u++)
      segs += c->seg_level[u] != 0;
    slots++;
    nchunks++;
  }
  for (struct region *r = pool->directs.head; r; r = r->next) {
    if (r->kind != REGION_DIRECT || !region_indexed (pool, r))
      return inconsistent (msg, msglen, "direct allocation %p: not found "
                           "by address", r->base);
    bytes += r->len;
    slots += r->len >> pool->chunk_order;
    ndirect++;
  }
  if (nchunks != st->chunks)
    return inconsistent (msg, msglen, "%" PRIu64 " chunks in the list, "
                         "counter says %" PRIu64, nchunks, st->chunks);
  if (ndirect != st->direct_live)
    return inconsistent (msg, msglen, "%" PRIu64 " direct allocations live, "
                         "counter says %" PRIu64, ndirect, st->direct_live);
  if (slots != pool->map.count)
    return inconsistent (msg, msglen, "address map has %zu entries, "
                         "regions cover %" PRIu64, pool->map.count, slots);
  if (bytes != st->bytes_in_use)
    return inconsistent (msg, msglen, "%" PRIu64 " bytes live, counter "
                         "says %" PRIu64, bytes, st->bytes_in_use);
  if (st->high_water < st->bytes_in_use)
    return inconsistent (msg, msglen, "high water below bytes in use");
  if (empty != pool->empty_chunks ||
      (empty > pool->spare_chunks && !pool_in_band (pool)))
    return inconsistent (msg, msglen, "%" PRIu64 " empty chunks, counter "
                         "says %u, spares allowed %u, %u in use, peak %u",
                         empty, pool->empty_chunks, pool->spare_chunks,
                         pool_busy_chunks (pool), pool->busy_peak);
  if (pool_busy_chunks (pool) > pool->busy_peak)
    return inconsistent (msg, msglen, "%u chunks in use, above the peak %u",
                         pool_busy_chunks (pool), pool->busy_peak);
  if (st->registrations - st->deregistrations != nchunks + ndirect)
    return inconsistent (msg, msglen, "%" PRIu64 " registrations and %"
                         PRIu64 " deregistrations for %" PRIu64 " regions",
                         st->registrations, st->deregistrations,
                         nchunks + ndirect);
  if (st->allocs - st->frees != segs + ndirect)
    return inconsistent (msg, msglen, "%" PRIu64 " allocations and %" PRIu64
                         " frees for %" PRIu64 " live segments",
                         st->allocs, st->frees, segs + ndirect);
  return 0;
}

int
mempool_check (struct mempool *pool, char *msg, size_t msglen)
{
  int ret;

  pool_lock_acquire (&pool->lock);
  pool_flush_deferred (pool);
  ret = check_locked (pool, msg, msglen);
  pool_lock_release (&pool->lock);
  return ret;
}
