/* sysmem.h: memory from and back to the system, aligned to a power of two.
 *
 * Regions are mapped with mmap (not malloc) so that releasing a spare chunk
 * really returns its pages, and aligned to the chunk size so that the region
 * of any address is found by a shift (see regmap.h).
 */
#ifndef MEMPOOL_SYSMEM_H
#define MEMPOOL_SYSMEM_H

#include <stddef.h>

/* Map len bytes aligned to align (a power of two).  NULL on failure. */
void *sysmem_map (size_t len, size_t align);
void sysmem_unmap (void *base, size_t len);

#endif /* MEMPOOL_SYSMEM_H */
