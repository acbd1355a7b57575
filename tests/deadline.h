/* Absolute deadlines for the Check tests' bounded waits. */
#ifndef ISERFS_TESTS_DEADLINE_H
#define ISERFS_TESTS_DEADLINE_H

#include <time.h>

/* ms from now on CLOCK_REALTIME, the clock of pthread_cond_timedwait and
 * of the deadlines behind.c and jobs.c take. */
static inline struct timespec
soon (long ms)
{
  struct timespec t;

  clock_gettime (CLOCK_REALTIME, &t);
  t.tv_nsec += ms * 1000000;
  t.tv_sec += t.tv_nsec / 1000000000;
  t.tv_nsec %= 1000000000;
  return t;
}

#endif
