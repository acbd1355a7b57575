/* Unit tests of the write-behind accounting (fuse/behind.c): which writes
 * may be answered early, the bound on bytes behind, the order fsync waits
 * in, and how a failure is reported (once per descriptor by fsync, without
 * being used up by close, to an opener who was not told yet). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <time.h>

#include <check.h>

#include "behind.h"
#include "check_run.h"
#include "deadline.h"
#include "stats.h"

static struct behind b;

static void
setup (void)
{
  behind_init (&b);
  behind_set_limit (1 << 20);
}

static void
teardown (void)
{
  behind_destroy (&b);
}

START_TEST (test_flags)
{
  struct behind_write *w;

  ck_assert_ptr_null (behind_start (&b, O_WRONLY | O_DIRECT, 0, 4096));
  ck_assert_ptr_null (behind_start (&b, O_WRONLY | O_DSYNC, 0, 4096));
  ck_assert_ptr_null (behind_start (&b, O_WRONLY | O_SYNC, 0, 4096));
  w = behind_start (&b, O_WRONLY, 0, 4096);
  ck_assert_ptr_nonnull (w);
  behind_done (&b, w, 1, 0);
}
END_TEST

START_TEST (test_bound)
{
  struct behind_write *w1, *w2, *w3;
  uint64_t counted = atomic_load (&stats.write_behind_bytes);

  behind_set_limit (8192);
  w1 = behind_start (&b, O_RDWR, 0, 4096);
  w2 = behind_start (&b, O_RDWR, 4096, 4096);
  ck_assert_ptr_nonnull (w1);
  ck_assert_ptr_nonnull (w2);
  /* Full: the next one waits for the target instead. */
  ck_assert_ptr_null (behind_start (&b, O_RDWR, 8192, 1));
  behind_done (&b, w1, 1, 0);
  w3 = behind_start (&b, O_RDWR, 8192, 4096);
  ck_assert_ptr_nonnull (w3);
  /* Larger than the whole bound: never early. */
  behind_done (&b, w2, 1, 0);
  behind_done (&b, w3, 1, 0);
  ck_assert_ptr_null (behind_start (&b, O_RDWR, 0, 8193));
  behind_set_limit (0);
  ck_assert_ptr_null (behind_start (&b, O_RDWR, 0, 1));
  ck_assert_uint_eq (atomic_load (&stats.write_behind_bytes) - counted, 3 * 4096);
}
END_TEST

/* fsync waits for the writes started before it, in any completion order,
 * and then reports a failure among them once. */
START_TEST (test_wait_and_report_once)
{
  unsigned seen = behind_seen (&b);
  struct behind_write *w0 = behind_start (&b, O_RDWR, 0, 4096);
  struct behind_write *w1 = behind_start (&b, O_RDWR, 4096, 4096);
  struct timespec t = soon (50);

  ck_assert_int_eq (behind_wait (&b, &seen, true, &t), -ETIMEDOUT);
  behind_done (&b, w1, 1, EIO);         /* the later one fails first */
  t = soon (50);
  ck_assert_int_eq (behind_wait (&b, &seen, true, &t), -ETIMEDOUT);
  behind_done (&b, w0, 1, 0);
  ck_assert_int_eq (behind_wait (&b, &seen, true, NULL), -EIO);
  ck_assert_int_eq (behind_wait (&b, &seen, true, NULL), 0);
}
END_TEST

/* close reports without using the failure up; the fsync after it still
 * gets it (FUSE flushes at the close of every copy of a descriptor). */
START_TEST (test_close_leaves_it_for_fsync)
{
  unsigned seen = behind_seen (&b);
  struct behind_write *w = behind_start (&b, O_RDWR, 0, 4096);

  behind_done (&b, w, 1, EROFS);
  ck_assert_int_eq (behind_wait (&b, &seen, false, NULL), -EROFS);
  ck_assert_int_eq (behind_wait (&b, &seen, false, NULL), -EROFS);
  ck_assert_int_eq (behind_wait (&b, &seen, true, NULL), -EROFS);
  ck_assert_int_eq (behind_wait (&b, &seen, false, NULL), 0);
}
END_TEST

/* A descriptor opened after a failure: told of it only if nobody was. */
START_TEST (test_new_opener)
{
  unsigned a = behind_seen (&b), c, d;
  struct behind_write *w = behind_start (&b, O_RDWR, 0, 4096);

  behind_done (&b, w, 1, EIO);
  c = behind_seen (&b);                 /* nobody told yet */
  ck_assert_int_eq (behind_wait (&b, &c, true, NULL), -EIO);
  d = behind_seen (&b);                 /* c was told */
  ck_assert_int_eq (behind_wait (&b, &d, true, NULL), 0);
  ck_assert_int_eq (behind_wait (&b, &a, true, NULL), -EIO);
}
END_TEST

static Suite *
behind_suite (void)
{
  Suite *s = suite_create ("behind");
  TCase *tc = tcase_create ("core");

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_flags);
  tcase_add_test (tc, test_bound);
  tcase_add_test (tc, test_wait_and_report_once);
  tcase_add_test (tc, test_close_leaves_it_for_fsync);
  tcase_add_test (tc, test_new_opener);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return check_run (behind_suite (), CK_FORK_GETENV);
}
