/* A set of byte ranges, kept sorted and merged: what an O_TRUNC handle has
 * written, so that the rest below its high-water mark can be zeroed. */
#ifndef ISERFS_WRITTEN_H
#define ISERFS_WRITTEN_H

#include <stddef.h>
#include <stdint.h>

struct range {
  uint64_t start, end;          /* [start, end) */
};

struct rangeset {
  struct range *r;
  size_t n, alloc;
};

int rangeset_add (struct rangeset *s, uint64_t start, uint64_t end);
/* Call fn for every gap of [0, limit) not covered by the set; stops at the
 * first non-zero return and returns it. */
int rangeset_gaps (const struct rangeset *s, uint64_t limit,
                   int (*fn) (void *opaque, uint64_t start, uint64_t end),
                   void *opaque);
void rangeset_free (struct rangeset *s);

#endif
