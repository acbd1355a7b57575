/* Sorted, merged byte ranges, and the O_TRUNC bookkeeping on top of them
 * (see written.h).  Writers from cp/dd arrive mostly in order, so the
 * common case appends to or extends the last range. */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "written.h"

static int
grow (struct rangeset *s)
{
  size_t alloc = s->alloc ? s->alloc * 2 : 16;
  struct range *r = realloc (s->r, alloc * sizeof *r);

  if (r == NULL)
    return -ENOMEM;
  s->r = r;
  s->alloc = alloc;
  return 0;
}

int
rangeset_add (struct rangeset *s, uint64_t start, uint64_t end)
{
  size_t i = s->n, j;

  if (start >= end)
    return 0;
  /* i = first range that does not end before `start` (touching merges). */
  while (i > 0 && s->r[i - 1].end >= start)
    i--;
  /* j = first range that starts after `end`. */
  for (j = i; j < s->n && s->r[j].start <= end; j++) {
    if (s->r[j].start < start)
      start = s->r[j].start;
    if (s->r[j].end > end)
      end = s->r[j].end;
  }
  if (j == i) {                         /* no overlap: insert at i */
    if (s->n == s->alloc && grow (s) < 0)
      return -ENOMEM;
    memmove (&s->r[i + 1], &s->r[i], (s->n - i) * sizeof s->r[0]);
    s->n++;
  }
  else if (j > i + 1) {                 /* ranges i..j-1 become one */
    memmove (&s->r[i + 1], &s->r[j], (s->n - j) * sizeof s->r[0]);
    s->n -= j - i - 1;
  }
  s->r[i].start = start;
  s->r[i].end = end;
  return 0;
}

int
rangeset_gaps (const struct rangeset *s, uint64_t limit,
               int (*fn) (void *opaque, uint64_t start, uint64_t end),
               void *opaque)
{
  uint64_t pos = 0;
  int r;

  for (size_t i = 0; i < s->n && pos < limit; i++) {
    if (s->r[i].start > pos) {
      uint64_t end = s->r[i].start < limit ? s->r[i].start : limit;
      if ((r = fn (opaque, pos, end)) != 0)
        return r;
    }
    if (s->r[i].end > pos)
      pos = s->r[i].end;
  }
  if (pos < limit)
    return fn (opaque, pos, limit);
  return 0;
}

void
rangeset_free (struct rangeset *s)
{
  free (s->r);
  memset (s, 0, sizeof *s);
}

/* ---- O_TRUNC bookkeeping ---- */

int
trunc_claim (struct trunc_map *t, uint64_t off, uint64_t len, bool own)
{
  int err = rangeset_add (&t->claimed, off, off + len);

  if (err == 0 && own)
    trunc_extend (t, off + len);
  return err;
}

int
trunc_hold (struct trunc_map *t, void *write)
{
  if (!t->zeroing)
    return 0;
  if (t->nheld == t->held_alloc) {
    size_t alloc = t->held_alloc ? t->held_alloc * 2 : 8;
    void **held = realloc (t->held, alloc * sizeof *held);

    if (held == NULL)
      return -ENOMEM;
    t->held = held;
    t->held_alloc = alloc;
  }
  t->held[t->nheld++] = write;
  return 1;
}

int
trunc_record (struct trunc_map *t, uint64_t start, uint64_t end)
{
  trunc_extend (t, end);
  return rangeset_add (&t->claimed, start, end);
}

void
trunc_extend (struct trunc_map *t, uint64_t end)
{
  if (end > t->hwm)
    t->hwm = end;
}

static int
collect_gap (void *opaque, uint64_t start, uint64_t end)
{
  return rangeset_add (opaque, start, end);
}

int
trunc_zero_begin (struct trunc_map *t, struct rangeset *gaps)
{
  int err = rangeset_gaps (&t->claimed, t->hwm, collect_gap, gaps);

  if (err == 0)
    t->zeroing = true;
  return err;
}

void **
trunc_take_held (struct trunc_map *t, size_t *n)
{
  void **held = t->held;

  *n = t->nheld;
  if (*n == 0) {
    t->zeroing = false;
    return NULL;
  }
  t->held = NULL;
  t->nheld = t->held_alloc = 0;
  return held;
}

void
trunc_free (struct trunc_map *t)
{
  rangeset_free (&t->claimed);
  free (t->held);
  memset (t, 0, sizeof *t);
}
