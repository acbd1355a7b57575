/* Absolute deadlines for the Check tests' bounded waits. */
#ifndef ISERFS_TESTS_DEADLINE_H
#define ISERFS_TESTS_DEADLINE_H

#include <time.h>

/* ms from now on CLOCK_MONOTONIC, the clock of the deadlines behind.c and
 * jobs.c take (src/clock.h). */
static inline struct timespec
soon (long ms)
{
  struct timespec t;

  clock_gettime (CLOCK_MONOTONIC, &t);
  t.tv_nsec += ms * 1000000;
  t.tv_sec += t.tv_nsec / 1000000000;
  t.tv_nsec %= 1000000000;
  return t;
}

#endif
