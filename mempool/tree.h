/* tree.h: the arithmetic of one chunk's buddy tree, kept in one place.
 *
 * A chunk of 2^(levels-1) units is described by a complete binary tree stored
 * as an array: node 1 is the root, node i has children 2i and 2i+1, parent
 * i/2 and buddy i^1.  Levels count from the leaves up: a leaf (one unit) is at
 * level 1, the root at level `levels`.  A node at level L covers 2^(L-1) units.
 *
 * The value held in a node is the level of the largest free segment in its
 * subtree (order+1 in units: a free leaf holds 1, a free chunk's root holds
 * `levels`), or 0 when nothing in the subtree is free.  A node is therefore
 * "fully free" exactly when its value equals its own level.
 */
#ifndef MEMPOOL_TREE_H
#define MEMPOOL_TREE_H

#include <stddef.h>
#include <stdint.h>

typedef uint8_t tree_value;

static inline unsigned
tree_parent (unsigned node)
{
  return node >> 1;
}

static inline unsigned
tree_left (unsigned node)
{
  return node << 1;
}

static inline unsigned
tree_right (unsigned node)
{
  return (node << 1) | 1;
}

static inline unsigned
tree_buddy (unsigned node)
{
  return node ^ 1;
}

/* Depth from the root (root = 0): the index of the highest set bit. */
static inline unsigned
tree_depth (unsigned node)
{
  return 31 - (unsigned) __builtin_clz (node);
}

/* Level from the leaves (leaf = 1) in a tree of `levels` levels. */
static inline unsigned
tree_level (unsigned levels, unsigned node)
{
  return levels - tree_depth (node);
}

/* Number of nodes in the array, index 0 included (unused): 2^levels. */
static inline size_t
tree_array_size (unsigned levels)
{
  return (size_t) 1 << levels;
}

/* Units covered by a node at `level`. */
static inline size_t
tree_units_at (unsigned level)
{
  return (size_t) 1 << (level - 1);
}

/* Offset, in units from the start of the chunk, of the first unit of node. */
static inline size_t
tree_unit_offset (unsigned levels, unsigned node)
{
  unsigned depth = tree_depth (node);
  return (size_t) (node - (1u << depth)) << (levels - depth - 1);
}

/* The node at `level` whose segment starts at unit offset `unit` (which must
 * be aligned to that level's size). */
static inline unsigned
tree_node_at (unsigned levels, unsigned level, size_t unit)
{
  return (1u << (levels - level)) + (unsigned) (unit >> (level - 1));
}

/* Is `unit` aligned to a segment at `level`? */
static inline int
tree_aligned (unsigned level, size_t unit)
{
  return (unit & (tree_units_at (level) - 1)) == 0;
}

/* The value a node at `level` must hold given its children's values: by the
 * buddy rule two fully free children make the parent fully free; otherwise
 * the parent offers the larger of what its children offer. */
static inline tree_value
tree_combine (unsigned level, tree_value left, tree_value right)
{
  /* Written without branches: on the I/O path these comparisons depend on
   * the data and mispredict.  Both children are at most level-1, so their
   * sum reaches 2*(level-1) only when both are fully free. */
  unsigned larger = left > right ? left : right;
  return (tree_value) (larger + ((unsigned) left + right == 2 * level - 2));
}

/* The level (order+1 in units) of a segment of 2^order bytes. */
static inline unsigned
tree_level_of_order (unsigned unit_order, unsigned order)
{
  return order - unit_order + 1;
}

#endif /* MEMPOOL_TREE_H */
