/* What an O_TRUNC open file description owes (fuse/ops.c), and the set of
 * byte ranges it is built on.
 *
 * A range counts as written from the moment a write to it is submitted --
 * a write of this description or of any other of the LUN since its open,
 * before the target answers, and also if the write then fails: the zero
 * fill at flush/fsync must never write over a write still in flight (the
 * engine would order the zeros after it, and lose it), nor over what
 * another descriptor wrote after the truncation (a file keeps that), and
 * the content of a range whose write failed is what that failure left,
 * reported to the writer, not zeros written behind its back.  So a gap is
 * only what no write ever covered.
 *
 * While the zero fill of its gaps runs, new writes to the LUN are held and
 * submitted once it is done: the gaps were collected before them, and a
 * write sent into a gap before that gap's zeros would be overtaken by
 * them.
 *
 * Not thread-safe: the owner (the handle) holds its own lock around every
 * call. */
#ifndef ISERFS_WRITTEN_H
#define ISERFS_WRITTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct range {
  uint64_t start, end;          /* [start, end) */
};

struct rangeset {
  struct range *r;
  size_t n, alloc;
};

/* 0, or -ENOMEM with the set unchanged. */
int rangeset_add (struct rangeset *s, uint64_t start, uint64_t end);
/* Call fn for every gap of [0, limit) not covered by the set; stops at the
 * first non-zero return and returns it. */
int rangeset_gaps (const struct rangeset *s, uint64_t limit,
                   int (*fn) (void *opaque, uint64_t start, uint64_t end),
                   void *opaque);
void rangeset_free (struct rangeset *s);

struct trunc_map {
  struct rangeset claimed;      /* submitted writes, zeros written */
  uint64_t hwm;                 /* high-water mark: zero fill stops here */
  bool zeroing;                 /* between trunc_zero_begin and the end */
  void **held;                  /* writes that came meanwhile, in order */
  size_t nheld, held_alloc;
};

/* A write of [off, off + len) is about to be submitted: the range is no
 * gap.  own: the description's own write, which also raises its mark (a
 * write of another description does not: the zero fill stops where this
 * one's data ends).  0, or -ENOMEM with nothing changed: then fail the
 * write, or it would be zeroed. */
int trunc_claim (struct trunc_map *t, uint64_t off, uint64_t len, bool own);
/* While the zero fill runs, keep write (claimed already) to be given back
 * by trunc_take_held: 1.  Otherwise 0: submit it.  -ENOMEM: not kept, fail
 * the write (its range stays claimed: what a failed write left). */
int trunc_hold (struct trunc_map *t, void *write);
/* [start, end) holds what the description meant (zeros it wrote, a punched
 * or zeroed range): no need to zero it again, and the mark covers it.
 * -ENOMEM only means it may be zeroed again later. */
int trunc_record (struct trunc_map *t, uint64_t start, uint64_t end);
/* ftruncate(2) to end: the zero fill reaches up to it. */
void trunc_extend (struct trunc_map *t, uint64_t end);
/* Begin the zero fill: the gaps below the mark are added to *gaps, and
 * writes are held from now on.  0, or -ENOMEM and nothing begun.  Only one
 * zero fill at a time: the caller serialises them. */
int trunc_zero_begin (struct trunc_map *t, struct rangeset *gaps);
/* The writes held so far, in arrival order (*n of them; the caller frees
 * the array and submits them).  When there are none the zero fill is over:
 * NULL, *n 0, and writes go ahead again.  So the caller submits what it
 * gets until it gets nothing, and a write arriving meanwhile can never
 * pass one held before it. */
void **trunc_take_held (struct trunc_map *t, size_t *n);
void trunc_free (struct trunc_map *t);

#endif
