/* Unit tests of the O_TRUNC bookkeeping (fuse/written.c): a write counts
 * as written from its submission, so the zero fill never covers a write in
 * flight; another descriptor's write is no gap either, but does not move
 * the mark; writes that come while the zeros are written are held and
 * given back in order; and running out of memory while recording a write
 * refuses that write and changes nothing, instead of leaving its range to
 * be zeroed.  realloc is wrapped (-Wl,--wrap=realloc) so that a test can
 * make the next allocations fail. */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#include <check.h>

#include "check_run.h"
#include "written.h"

void *__real_realloc (void *p, size_t size);
void *__wrap_realloc (void *p, size_t size);

static bool fail_alloc;

void *
__wrap_realloc (void *p, size_t size)
{
  return fail_alloc ? NULL : __real_realloc (p, size);
}

static struct trunc_map t;

static void
setup (void)
{
  fail_alloc = false;
}

static void
teardown (void)
{
  fail_alloc = false;
  trunc_free (&t);
}

static void
assert_range (const struct rangeset *s, size_t i, uint64_t start, uint64_t end)
{
  ck_assert_uint_gt (s->n, i);
  ck_assert_uint_eq (s->r[i].start, start);
  ck_assert_uint_eq (s->r[i].end, end);
}

/* A write submitted and not answered yet is no gap. */
START_TEST (test_in_flight_is_no_gap)
{
  struct rangeset gaps = { 0 };

  ck_assert_int_eq (trunc_claim (&t, 100 * 4096, 4096, true), 0);
  ck_assert_int_eq (trunc_claim (&t, 50 * 4096, 4096, true), 0);
  ck_assert_int_eq (trunc_zero_begin (&t, &gaps), 0);
  ck_assert_uint_eq (gaps.n, 2);
  assert_range (&gaps, 0, 0, 50 * 4096);
  assert_range (&gaps, 1, 51 * 4096, 100 * 4096);
  rangeset_free (&gaps);
}
END_TEST

/* Another descriptor's write is no gap, and moves no mark. */
START_TEST (test_other_descriptor)
{
  struct rangeset gaps = { 0 };

  ck_assert_int_eq (trunc_claim (&t, 100 * 4096, 4096, true), 0);
  ck_assert_int_eq (trunc_claim (&t, 30 * 4096, 4096, false), 0);
  ck_assert_int_eq (trunc_claim (&t, 200 * 4096, 4096, false), 0);
  ck_assert_uint_eq (t.hwm, 101 * 4096);
  ck_assert_int_eq (trunc_zero_begin (&t, &gaps), 0);
  ck_assert_uint_eq (gaps.n, 2);
  assert_range (&gaps, 0, 0, 30 * 4096);
  assert_range (&gaps, 1, 31 * 4096, 100 * 4096);
  rangeset_free (&gaps);
}
END_TEST

/* Writes that come during the zero fill are held, in order, until the
 * holder has taken them all; then writes go ahead again. */
START_TEST (test_held_during_zero_fill)
{
  struct rangeset gaps = { 0 };
  int a, b, c;
  void **held;
  size_t n;

  ck_assert_int_eq (trunc_claim (&t, 8192, 4096, true), 0);
  ck_assert_int_eq (trunc_hold (&t, &a), 0);
  ck_assert_int_eq (trunc_zero_begin (&t, &gaps), 0);
  assert_range (&gaps, 0, 0, 8192);
  ck_assert_int_eq (trunc_claim (&t, 0, 512, true), 0);
  ck_assert_int_eq (trunc_hold (&t, &a), 1);
  ck_assert_int_eq (trunc_claim (&t, 1 << 20, 512, true), 0);
  ck_assert_int_eq (trunc_hold (&t, &b), 1);
  held = trunc_take_held (&t, &n);
  ck_assert_uint_eq (n, 2);
  ck_assert_ptr_eq (held[0], &a);
  ck_assert_ptr_eq (held[1], &b);
  free (held);
  /* Still zeroing until a take comes back empty: a write meanwhile is
   * held behind the ones just taken. */
  ck_assert_int_eq (trunc_claim (&t, 4096, 512, true), 0);
  ck_assert_int_eq (trunc_hold (&t, &c), 1);
  held = trunc_take_held (&t, &n);
  ck_assert_uint_eq (n, 1);
  ck_assert_ptr_eq (held[0], &c);
  free (held);
  ck_assert_ptr_null (trunc_take_held (&t, &n));
  ck_assert_uint_eq (n, 0);
  ck_assert_int_eq (trunc_hold (&t, &a), 0);
  /* The held writes were claimed: the mark covers them, no gap left
   * but what nobody wrote. */
  ck_assert_uint_eq (t.hwm, (1 << 20) + 512);
  rangeset_free (&gaps);
}
END_TEST

/* Out of memory recording a write: -ENOMEM, and nothing recorded (no
 * claim, no higher mark), so the caller fails the write. */
START_TEST (test_enomem_refuses_write)
{
  struct rangeset gaps = { 0 };

  /* Fill the set's first allocation with disjoint ranges. */
  for (uint64_t i = 0; i < 16; i++)
    ck_assert_int_eq (trunc_claim (&t, i * 8192, 4096, true), 0);
  ck_assert_uint_eq (t.claimed.n, 16);
  fail_alloc = true;
  ck_assert_int_eq (trunc_claim (&t, 1 << 30, 4096, true), -ENOMEM);
  ck_assert_uint_eq (t.claimed.n, 16);
  ck_assert_uint_eq (t.hwm, 15 * 8192 + 4096);
  /* A write that merges into recorded ranges needs no memory. */
  ck_assert_int_eq (trunc_claim (&t, 4096, 4096, true), 0);
  ck_assert_uint_eq (t.claimed.n, 15);
  fail_alloc = false;
  ck_assert_int_eq (trunc_zero_begin (&t, &gaps), 0);
  /* What was refused is not claimed, and not below the mark either. */
  ck_assert_uint_eq (gaps.n, 14);
  assert_range (&gaps, 0, 3 * 4096, 4 * 4096);
  rangeset_free (&gaps);
}
END_TEST

/* Out of memory holding a write during the zero fill: refused, not
 * held. */
START_TEST (test_enomem_while_zeroing)
{
  struct rangeset gaps = { 0 };
  size_t n;
  int a;

  ck_assert_int_eq (trunc_zero_begin (&t, &gaps), 0);
  fail_alloc = true;
  ck_assert_int_eq (trunc_hold (&t, &a), -ENOMEM);
  ck_assert_ptr_null (trunc_take_held (&t, &n));
  ck_assert_uint_eq (n, 0);
  rangeset_free (&gaps);
}
END_TEST

/* Zeros written count as written; ftruncate raises the mark only. */
START_TEST (test_record_and_extend)
{
  struct rangeset gaps = { 0 };
  size_t n;

  trunc_extend (&t, 10000);
  ck_assert_int_eq (trunc_record (&t, 0, 5000), 0);
  ck_assert_int_eq (trunc_zero_begin (&t, &gaps), 0);
  ck_assert_uint_eq (gaps.n, 1);
  assert_range (&gaps, 0, 5000, 10000);
  ck_assert_ptr_null (trunc_take_held (&t, &n));
  rangeset_free (&gaps);
}
END_TEST

static Suite *
written_suite (void)
{
  Suite *s = suite_create ("written");
  TCase *tc = tcase_create ("core");

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_in_flight_is_no_gap);
  tcase_add_test (tc, test_other_descriptor);
  tcase_add_test (tc, test_held_during_zero_fill);
  tcase_add_test (tc, test_enomem_refuses_write);
  tcase_add_test (tc, test_enomem_while_zeroing);
  tcase_add_test (tc, test_record_and_extend);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return check_run (written_suite (), CK_FORK_GETENV);
}
