/* The main() of every Check test program: run one suite, exit non-zero
 * if any of its tests failed. */
#ifndef ISERFS_TESTS_CHECK_RUN_H
#define ISERFS_TESTS_CHECK_RUN_H

#include <check.h>

/* fork: CK_FORK where the code under test keeps process-wide state that
 * every test must find fresh; CK_FORK_GETENV leaves it to CK_FORK in the
 * environment (Check's own default). */
static inline int
check_run (Suite *s, enum fork_status fork)
{
  SRunner *sr = srunner_create (s);
  int failed;

  srunner_set_fork_status (sr, fork);
  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed ? 1 : 0;
}

#endif
