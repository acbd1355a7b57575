/* mempool: a buddy chunk pool of registered memory.
 *
 * Memory is taken from the system in chunks (default 4 MiB), each registered
 * once through a caller-supplied hook (for iSER: ibv_reg_mr).  A chunk is cut
 * into power-of-two segments of at least one unit (default 4 KiB) by a buddy
 * allocator whose state is a complete binary tree of 8-bit orders per chunk.
 * Requests larger than a chunk get memory of their own, registered on its own
 * and deregistered when freed.  The pool knows nothing about iSCSI or RDMA: a
 * registration handle is an opaque pointer to it.
 *
 * Thread safety: every function may be called from any thread; one pool may be
 * used by several threads at once (a segment may be allocated in one thread and
 * freed in another).  The pool serialises its own state with a lock.
 */
#ifndef MEMPOOL_H
#define MEMPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Registration hook.  reg() registers [base, base+len) and stores an opaque
 * handle in *handle (which may be NULL for a transport with nothing to
 * register); it returns 0, or a negative errno on failure.  dereg() undoes it.
 * Either function pointer may be NULL, meaning "nothing to do". */
struct mempool_hooks {
  int (*reg) (void *ctx, void *base, size_t len, void **handle);
  void (*dereg) (void *ctx, void *handle);
  void *ctx;
};

struct mempool_config {
  unsigned chunk_order;   /* log2 of the chunk size; 0 means 22 (4 MiB) */
  unsigned unit_order;    /* log2 of the unit size;  0 means 12 (4 KiB) */
  unsigned spare_chunks;  /* empty chunks kept registered; see MEMPOOL_SPARES_DEFAULT */
  int keep_no_spares;     /* if non-zero, spare_chunks = 0 really means zero */
  int release_eagerly;    /* if non-zero, no hysteresis: an empty chunk
                             beyond the spares is given back at once */
  struct mempool_hooks hooks;
};

#define MEMPOOL_CHUNK_ORDER_DEFAULT 22
#define MEMPOOL_UNIT_ORDER_DEFAULT 12
#define MEMPOOL_SPARES_DEFAULT 2
/* Hysteresis: empty chunks beyond the spares are kept while the chunks in
 * use number at least 1/MEMPOOL_SHRINK_RATIO of their peak; when use falls
 * below that, every empty chunk beyond the spares is given back (tail
 * first) and the peak restarts from the current use.  A working set that
 * swings within that band registers nothing; one that really shrinks (a
 * burst is over) gives its memory back.  See docs/mempool.md. */
#define MEMPOOL_SHRINK_RATIO 4

/* One allocation: where it is, how many bytes may be used (the request rounded
 * up to a power of two of at least one unit), and the registration handle of
 * the region it lies in. */
struct mempool_seg {
  void *addr;
  size_t len;
  void *handle;
};

struct mempool_stats {
  uint64_t chunks;             /* chunks currently held */
  uint64_t registrations;      /* regions registered (chunks + direct):
                                  successful reg() calls, counted even
                                  when there is no reg hook */
  uint64_t deregistrations;    /* regions deregistered */
  uint64_t bytes_in_use;       /* usable bytes of live segments (incl. direct) */
  uint64_t high_water;         /* largest bytes_in_use ever seen */
  uint64_t direct_allocs;      /* larger-than-chunk allocations made */
  uint64_t direct_live;        /* larger-than-chunk allocations still live */
  uint64_t allocs;             /* successful allocations */
  uint64_t frees;              /* successful frees */
  uint64_t failures;           /* refused or failed allocations */
  uint64_t bad_frees;          /* frees and trims refused as misuse */
};

struct mempool;

/* Create a pool.  cfg may be NULL for all defaults.  Returns NULL with errno
 * set (EINVAL for an impossible geometry, ENOMEM). */
struct mempool *mempool_create (const struct mempool_config *cfg);

/* Destroy a pool, deregistering and freeing every chunk and direct
 * allocation, live or not. */
void mempool_destroy (struct mempool *pool);

/* Allocate at least size bytes.  Returns 0 and fills *seg, or a negative
 * errno: -EINVAL for size 0, -EOVERFLOW for a size that cannot be rounded up,
 * -ENOMEM (or the hook's error) when memory or registration fails. */
int mempool_alloc (struct mempool *pool, size_t size, struct mempool_seg *seg);

/* Free the segment starting at addr.  Returns 0, or -EINVAL when addr is not
 * the start of a live segment of this pool (foreign pointer, middle of a
 * segment, double free); misuse is counted and the pool is left unchanged. */
int mempool_free (struct mempool *pool, void *addr);

/* Shrink the live segment starting at addr to the smallest segment that
 * holds its first keep bytes, giving the rest back to the pool: the buddy
 * halves beyond it become free, as a segment of that size would have left
 * them.  *len is the new usable length.  A direct allocation, or keep not
 * smaller than half the segment, stays as it is.  Returns 0, or -EINVAL
 * when addr is not the start of a live segment (counted as misuse) or keep
 * is 0. */
int mempool_trim (struct mempool *pool, void *addr, size_t keep, size_t *len);

/* Look up the registration handle of the region holding [addr, addr+len).
 * Returns 0 and sets *handle, or -ENOENT if the range is not wholly inside
 * one chunk or direct allocation of this pool. */
int mempool_find (struct mempool *pool, const void *addr, size_t len,
                  void **handle);

/* Let fn replace the registration handle of every region (chunk or direct
 * allocation) the pool holds, for example after the transport's protection
 * domain changed: deregister the old handle, register again, store the new
 * one (NULL is allowed).  Runs under the pool's lock: fn must not call the
 * pool.  Returns 0, or the first non-zero result of fn (the walk stops). */
int mempool_rehandle (struct mempool *pool,
                      int (*fn) (void *arg, void *base, size_t len,
                                 void **handle),
                      void *arg);

void mempool_get_stats (struct mempool *pool, struct mempool_stats *st);

/* Geometry, for callers and tests. */
size_t mempool_chunk_size (const struct mempool *pool);
size_t mempool_unit_size (const struct mempool *pool);
unsigned mempool_nr_chunks (struct mempool *pool);

/* The value of tree node `node` (1 = root) of chunk number `chunk`, or
 * -ENOENT if there is no such chunk or node.  For tests. */
int mempool_tree_node (struct mempool *pool, unsigned chunk, unsigned node);

/* Print chunk number `chunk` (0 = head of the list) as one line per tree
 * level from the root down: "level 4 4(0x1)", "level 3 3(0x2) 3(0x3)", ...
 * Returns 0, or -ENOENT if there is no such chunk. */
int mempool_dump (struct mempool *pool, unsigned chunk, FILE *fp);

/* Where misuse (a refused free) is reported, one line each: stderr unless
 * changed; NULL keeps it silent (it is counted in bad_frees either way). */
void mempool_set_warnings (struct mempool *pool, FILE *fp);

/* The position of addr inside the pool's chunks: the chunk number (0 = head
 * of the list) and the byte offset in it.  Returns 0, or -ENOENT if addr is
 * not in a chunk (a direct allocation or foreign memory).  O(chunks): for
 * tests and tools. */
int mempool_locate (struct mempool *pool, const void *addr,
                    unsigned *chunk, size_t *offset);

/* Check every invariant of every chunk's tree against the pool's own record of
 * live segments.  Returns 0 when consistent, else -EUCLEAN and a one-line
 * description in msg (if msg is not NULL).  For tests and debugging. */
int mempool_check (struct mempool *pool, char *msg, size_t msglen);

#ifdef __cplusplus
}
#endif

#endif /* MEMPOOL_H */
