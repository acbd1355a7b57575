/* chunk.c: the buddy tree of one chunk: leftmost-fit take, give with buddy
 * merging, and the consistency check.  See tree.h for the representation. */
#include <config.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"

struct chunk *
chunk_new (unsigned levels)
{
  size_t nodes = tree_array_size (levels);
  size_t units = tree_units_at (levels);
  struct chunk *c;

  /* The tree and the record in one allocation: they are always used
   * together, and one allocation is one less way to fail. */
  c = calloc (1, sizeof *c + nodes + units);
  if (c == NULL)
    return NULL;
  c->levels = levels;
  c->seg_level = c->tree + nodes;
  /* Every node fully free: its value is its level. */
  for (unsigned level = levels, node = 1; level >= 1; level--) {
    unsigned end = node << 1;
    memset (&c->tree[node], (int) level, end - node);
    node = end;
  }
  return c;
}

void
chunk_delete (struct chunk *c)
{
  free (c);
}

/* Set node (at level) to value and recompute its ancestors, stopping at
 * the first one whose value does not change (the tree was consistent, so
 * nothing above it changes either).  The new value travels up in a
 * register and only the buddies are loaded, so the loads do not wait for
 * the stores just made, and combining is branch-free.  (The register
 * value and buddy-only loads took the 4 KiB pair from ~90 to ~63 ns
 * against a loop that reloaded both children; stopping early, compared
 * with always walking to the root, then took it from ~67 to ~58 ns: with
 * buffers packed at the head of a chunk, the walk from a 4 KiB leaf
 * usually stops 3-4 levels below the root.  Neutral at 64 KiB and 1 MiB.) */
static void
set_node (struct chunk *c, unsigned node, unsigned level, tree_value value)
{
  c->tree[node] = value;
  while (node > 1) {
    tree_value buddy = c->tree[tree_buddy (node)];

    level++;
    value = tree_combine (level, value, buddy);   /* symmetric */
    node = tree_parent (node);
    if (c->tree[node] == value)
      break;
    c->tree[node] = value;
  }
}

/* For each byte of w, 0x80 in that byte if the byte is >= level, else 0.
 * Tree values are at most 21, so adding 0x80 - level never carries from
 * one byte into the next. */
static inline uint64_t
bytes_fit (uint64_t w, unsigned level)
{
  const uint64_t ones = UINT64_C (0x0101010101010101);
  return (w + ones * (0x80 - level)) & (ones << 7);
}

/* Three levels of the descent in one step.  The one-level step loads a
 * child and decides from its value where to load next: one load latency
 * per level is the critical path of an allocation.  Here the children,
 * grandchildren and great-grandchildren of node (2, 4 and 8 consecutive
 * bytes) are loaded at once, all addressed from node alone, and the
 * three decisions are made in registers.  (A small gain, ~69 to ~67 ns for
 * the 4 KiB pair, whose allocation descends 10 levels: the one-level loop
 * was less latency-bound than it looks.) */
static inline unsigned
descend3 (const tree_value *tree, unsigned node, unsigned level)
{
  uint16_t kids;
  uint32_t grand;
  uint64_t great;
  unsigned i;

  memcpy (&kids, &tree[node << 1], sizeof kids);
  memcpy (&grand, &tree[node << 2], sizeof grand);
  memcpy (&great, &tree[node << 3], sizeof great);
  /* i: the position of the chosen node among its generation under node,
   * right (1) whenever the left candidate does not fit. */
  i = !(bytes_fit (kids, level) & 0x80);
  i = 2 * i + !((bytes_fit (grand, level) >> (16 * i)) & 0x80);
  i = 2 * i + !((bytes_fit (great, level) >> (16 * i)) & 0x80);
  return (node << 3) + i;
}

unsigned
chunk_find (const struct chunk *c, unsigned level)
{
  unsigned node = 1, l = c->levels;

  /* Descend to the leftmost node of the wanted level that is fully free:
   * go left whenever the left subtree can serve the request. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  for (; l >= level + 3; l -= 3)
    node = descend3 (c->tree, node, level);
#endif
  for (; l > level; l--) {
    node = tree_left (node);
    node += c->tree[node] < level;      /* branch-free: to the right buddy */
  }
  return node;
}

int
chunk_fit_left_of (const struct chunk *c, unsigned node, unsigned level)
{
  unsigned any = 0;

  /* Nothing free below the floor: then nothing left of node either.  The
   * floor rises as leftmost fit fills a chunk from its start, so in a
   * steady state it is usually above the segments being recycled. */
  if (tree_unit_offset (c->levels, node) <= c->free_floor)
    return 0;
  /* Everything left of node lies in the left siblings of the ancestors
   * (and node itself) that are right children.  node is a live segment,
   * so no ancestor is one and their siblings' values are exact. */
  for (; node > 1; node = tree_parent (node))
    any |= (node & 1) & (c->tree[tree_buddy (node)] >= level);
  return (int) any;
}

size_t
chunk_mark (struct chunk *c, unsigned node, unsigned level)
{
  /* Mark only this node; its subtree keeps its (fully free) values and is
   * not rewritten, which is what makes the later free O(levels). */
  set_node (c, node, level, 0);
  return chunk_relive (c, node, level);
}

size_t
chunk_relive (struct chunk *c, unsigned node, unsigned level)
{
  size_t unit = tree_unit_offset (c->levels, node);

  /* Units below the floor were not free, these no longer are. */
  if (unit == c->free_floor)
    c->free_floor = unit + tree_units_at (level);
  c->seg_level[unit] = (tree_value) level;
  c->live_units += tree_units_at (level);
  return unit;
}

size_t
chunk_take (struct chunk *c, unsigned level)
{
  return chunk_mark (c, chunk_find (c, level), level);
}

unsigned
chunk_level_at (const struct chunk *c, size_t unit)
{
  return unit < tree_units_at (c->levels) ? c->seg_level[unit] : 0;
}

unsigned
chunk_release (struct chunk *c, size_t unit)
{
  unsigned level = chunk_level_at (c, unit);

  if (level == 0)
    return 0;
  c->seg_level[unit] = 0;
  c->live_units -= tree_units_at (level);
  return level;
}

void
chunk_restore (struct chunk *c, unsigned node, unsigned level)
{
  /* The subtree below still holds its fully free values, so restoring this
   * node is enough; the ancestors merge buddies by the buddy rule. */
  size_t unit = tree_unit_offset (c->levels, node);

  if (unit < c->free_floor)
    c->free_floor = unit;
  set_node (c, node, level, (tree_value) level);
}

unsigned
chunk_give (struct chunk *c, size_t unit)
{
  unsigned level = chunk_release (c, unit);

  if (level)
    chunk_restore (c, tree_node_at (c->levels, level, unit), level);
  return level;
}

static int __attribute__ ((format (printf, 3, 4)))
fail (char *msg, size_t msglen, const char *fmt, ...)
{
  va_list ap;

  if (msg && msglen) {
    va_start (ap, fmt);
    vsnprintf (msg, msglen, fmt, ap);
    va_end (ap);
  }
  return -1;
}

/* The subtree of an allocated node must still be fully free (untouched). */
static int
check_untouched (const struct chunk *c, unsigned node, char *msg, size_t msglen)
{
  unsigned level = tree_level (c->levels, node);

  if (c->tree[node] != level)
    return fail (msg, msglen, "node 0x%x under an allocated node holds %u, "
                 "expected %u", node, c->tree[node], level);
  if (level == 1)
    return 0;
  if (check_untouched (c, tree_left (node), msg, msglen) == -1)
    return -1;
  return check_untouched (c, tree_right (node), msg, msglen);
}

/* Compute what node must hold from the record and compare.  Returns the
 * expected value, or -1 on the first inconsistency. */
static int
check_node (const struct chunk *c, unsigned node, char *msg, size_t msglen)
{
  unsigned level = tree_level (c->levels, node);
  size_t unit = tree_unit_offset (c->levels, node);
  int left, right;
  tree_value want;

  if (c->seg_level[unit] == level) {
    /* A live segment is exactly this node. */
    if (c->tree[node] != 0)
      return fail (msg, msglen, "node 0x%x is a live segment but holds %u",
                   node, c->tree[node]);
    if (level > 1) {
      if (check_untouched (c, tree_left (node), msg, msglen) == -1 ||
          check_untouched (c, tree_right (node), msg, msglen) == -1)
        return -1;
    }
    return 0;
  }
  if (level == 1)
    want = 1;
  else {
    left = check_node (c, tree_left (node), msg, msglen);
    if (left == -1)
      return -1;
    right = check_node (c, tree_right (node), msg, msglen);
    if (right == -1)
      return -1;
    want = tree_combine (level, (tree_value) left, (tree_value) right);
  }
  if (c->tree[node] != want)
    return fail (msg, msglen, "node 0x%x holds %u, expected %u",
                 node, c->tree[node], want);
  return want;
}

int
chunk_check (const struct chunk *c, char *msg, size_t msglen)
{
  size_t units = tree_units_at (c->levels), live = 0, first_free = units;

  /* The record first: each live segment properly sized and aligned, and
   * no other segment starting inside it. */
  for (size_t unit = 0; unit < units; ) {
    unsigned level = c->seg_level[unit];

    if (level == 0) {
      if (first_free == units)
        first_free = unit;
      unit++;
      continue;
    }
    if (level > c->levels || !tree_aligned (level, unit))
      return fail (msg, msglen, "record: segment of level %u at unit %zu "
                   "is impossible", level, unit);
    for (size_t i = 1; i < tree_units_at (level); i++)
      if (c->seg_level[unit + i] != 0)
        return fail (msg, msglen, "record: segment at unit %zu overlaps the "
                     "one at unit %zu", unit + i, unit);
    live += tree_units_at (level);
    unit += tree_units_at (level);
  }
  if (live != c->live_units)
    return fail (msg, msglen, "record: %zu units live, counter says %zu",
                 live, c->live_units);
  if (first_free < c->free_floor)
    return fail (msg, msglen, "unit %zu is free, below the floor %zu",
                 first_free, c->free_floor);

  return check_node (c, 1, msg, msglen) == -1 ? -1 : 0;
}

void
chunk_dump (const struct chunk *c, FILE *fp)
{
  for (unsigned level = c->levels, node = 1; level >= 1; level--) {
    unsigned end = node << 1;

    fprintf (fp, "level %u", level);
    for (; node < end; node++)
      fprintf (fp, " %u(0x%x)", c->tree[node], node);
    fputc ('\n', fp);
  }
}
