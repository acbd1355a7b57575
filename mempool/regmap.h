/* regmap.h: from a chunk-sized slot of the address space to the region that
 * covers it, in O(1).
 *
 * Every region is aligned to the chunk size, so address >> chunk_order names
 * a slot, and each slot belongs to at most one region (a chunk covers one
 * slot, a direct allocation several).  This is an open-addressing hash table
 * with linear probing and backward-shift deletion: no tombstones, so lookups
 * stay short however long the pool lives.
 */
#ifndef MEMPOOL_REGMAP_H
#define MEMPOOL_REGMAP_H

#include <stddef.h>
#include <stdint.h>

#include "region.h"

struct regmap_entry {
  uintptr_t slot;
  struct region *region;        /* NULL: empty entry */
};

struct regmap {
  struct regmap_entry *entries;
  size_t capacity;              /* a power of two */
  size_t count;
};

void regmap_init (struct regmap *m);
void regmap_free (struct regmap *m);

/* Returns 0, or -ENOMEM (the map is unchanged). */
int regmap_insert (struct regmap *m, uintptr_t slot, struct region *r);
void regmap_remove (struct regmap *m, uintptr_t slot);
struct region *regmap_get (const struct regmap *m, uintptr_t slot);

#endif /* MEMPOOL_REGMAP_H */
