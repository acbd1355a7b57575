/* region.h: a piece of registered memory the pool got from the system.
 *
 * Two kinds exist: a chunk (cut into buddy segments, see chunk.h) and a direct
 * allocation (one segment larger than a chunk, registered on its own).  Both
 * are aligned to the chunk size so that the region holding any address is
 * found in O(1) through the region map (regmap.h), keyed by address / chunk
 * size.
 */
#ifndef MEMPOOL_REGION_H
#define MEMPOOL_REGION_H

#include <stddef.h>

enum region_kind { REGION_CHUNK, REGION_DIRECT };

struct region {
  void *base;
  size_t len;
  void *handle;                 /* from the registration hook */
  enum region_kind kind;
  struct region *prev, *next;   /* the pool's list of this kind */
};

/* A doubly linked list with head and tail, appended at the tail. */
struct region_list {
  struct region *head, *tail;
  size_t count;
};

static inline void
region_list_append (struct region_list *l, struct region *r)
{
  r->next = NULL;
  r->prev = l->tail;
  if (l->tail)
    l->tail->next = r;
  else
    l->head = r;
  l->tail = r;
  l->count++;
}

static inline void
region_list_remove (struct region_list *l, struct region *r)
{
  if (r->prev)
    r->prev->next = r->next;
  else
    l->head = r->next;
  if (r->next)
    r->next->prev = r->prev;
  else
    l->tail = r->prev;
  r->prev = r->next = NULL;
  l->count--;
}

static inline int
region_contains (const struct region *r, const void *addr, size_t len)
{
  const char *a = addr, *b = r->base;
  return a >= b && (size_t) (a - b) <= r->len && len <= r->len - (size_t) (a - b);
}

#endif /* MEMPOOL_REGION_H */
