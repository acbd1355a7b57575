/* sysmem.c: aligned anonymous mappings (see sysmem.h). */
#include <config.h>

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sysmem.h"

void *
sysmem_map (size_t len, size_t align)
{
  size_t page = (size_t) sysconf (_SC_PAGESIZE);
  size_t extra = align > page ? align - page : 0;
  char *p, *aligned;
  size_t head, tail;

  if (len > SIZE_MAX - extra)
    return NULL;
  /* Over-map by the alignment, then cut off the unaligned head and the
   * tail: the kernel has no "aligned mmap". */
  p = mmap (NULL, len + extra, PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return NULL;
  aligned = (char *) (((uintptr_t) p + align - 1) & ~(uintptr_t) (align - 1));
  head = (size_t) (aligned - p);
  tail = extra - head;
  if (head)
    munmap (p, head);
  if (tail)
    munmap (aligned + len, tail);
  return aligned;
}

void
sysmem_unmap (void *base, size_t len)
{
  munmap (base, len);
}
