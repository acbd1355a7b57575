/* chunk.h: one chunk's buddy state: its tree and its record of live segments.
 *
 * The tree (tree.h) answers "is there room, and where is the leftmost fit";
 * the record (one byte per unit: the level of the live segment that starts at
 * that unit, 0 if none) answers "does a segment start exactly here" so that a
 * free of the middle of a segment or a double free is refused in O(1) instead
 * of corrupting the tree.  Keeping both also lets chunk_check() compare them.
 *
 * This file knows nothing of memory, registration or locking: the pool
 * (mempool.c) does that.
 */
#ifndef MEMPOOL_CHUNK_H
#define MEMPOOL_CHUNK_H

#include <stddef.h>
#include <stdio.h>

#include "region.h"
#include "tree.h"

struct chunk {
  struct region region;     /* first, so a region of kind CHUNK is a chunk */
  unsigned levels;          /* tree height: root level */
  size_t pos;               /* position in the pool's chunk list */
  size_t live_units;        /* units in live segments */
  size_t free_floor;        /* no unit below this one is free (a lower
                               bound, kept in O(1); see chunk_fit_left_of) */
  tree_value *seg_level;    /* per unit: level of the segment starting there */
  tree_value tree[];        /* tree_array_size (levels) entries, [0] unused */
};

/* Allocate the bookkeeping of a chunk of 2^(levels-1) units, all free.  The
 * memory and registration are the caller's (region fields left zero). */
struct chunk *chunk_new (unsigned levels);
void chunk_delete (struct chunk *c);

static inline int
chunk_is_empty (const struct chunk *c)
{
  return c->tree[1] == c->levels;
}

/* Take the leftmost free segment at `level`; the chunk must fit it.
 * Returns its offset in units.  Same as chunk_mark (c, chunk_find (c,
 * level), level). */
size_t chunk_take (struct chunk *c, unsigned level);

/* The node of the leftmost free segment at `level` (the chunk must fit it),
 * changing nothing. */
unsigned chunk_find (const struct chunk *c, unsigned level);

/* Is there a free segment of `level` left of node, a live segment at that
 * level?  No descent: one independent load per level. */
int chunk_fit_left_of (const struct chunk *c, unsigned node, unsigned level);

/* Make node (at level) a live segment: the tree and the record.  Returns
 * its offset in units. */
size_t chunk_mark (struct chunk *c, unsigned node, unsigned level);

/* Give back the live segment starting at unit offset `unit`.  Returns its
 * level, or 0 (and changes nothing) if no live segment starts there.  Same
 * as chunk_release followed by chunk_restore. */
unsigned chunk_give (struct chunk *c, size_t unit);

/* The two halves of a give, for a pool that defers the tree update (see
 * mempool.c): chunk_release takes the segment out of the record only
 * (returns its level, or 0 if no live segment starts at unit); the tree
 * still shows it allocated until chunk_restore (node, level) is called,
 * or until chunk_relive (node, level) puts it back in the record, which
 * leaves the tree as it was: no tree work at all. */
unsigned chunk_release (struct chunk *c, size_t unit);
/* The level of the live segment starting at unit, or 0; changes nothing. */
unsigned chunk_level_at (const struct chunk *c, size_t unit);
void chunk_restore (struct chunk *c, unsigned node, unsigned level);
size_t chunk_relive (struct chunk *c, unsigned node, unsigned level);

/* Check the tree against the record.  Returns 0, or -1 with a description. */
int chunk_check (const struct chunk *c, char *msg, size_t msglen);

/* Print the tree, one line per level, root first. */
void chunk_dump (const struct chunk *c, FILE *fp);

#endif /* MEMPOOL_CHUNK_H */
