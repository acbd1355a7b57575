/* The clocks that deadlines and intervals are measured on.
 *
 * Every deadline and interval in iserfs runs on CLOCK_MONOTONIC: the wall
 * clock steps (chrony at boot, an administrator's date(1)) and would stretch
 * or cut a timeout by the size of the step.  Suspended time does not count,
 * as with a kernel initiator's timers: a command gets its full timeout once
 * the machine runs again.  Only timestamps shown to users (the mount time)
 * read the wall clock.  Any thread. */
#ifndef ISERFS_CLOCK_H
#define ISERFS_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Seconds on the monotonic clock; never 0 once the machine has run for a
 * second, so 0 can mean "not set". */
static inline time_t
clock_mono_s (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec;
}

static inline uint64_t
clock_mono_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* A monotonic deadline ms milliseconds from now, for clock_cond_wait and
 * pthread_clockjoin_np. */
static inline struct timespec
clock_deadline_ms (unsigned ms)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (long) (ms % 1000) * 1000000;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000;
  }
  return ts;
}

/* pthread_cond_timedwait on the monotonic clock, whatever clock the
 * condition variable was made with (statically initialised ones too). */
static inline int
clock_cond_wait (pthread_cond_t *cond, pthread_mutex_t *lock,
                 const struct timespec *deadline)
{
  return pthread_cond_clockwait (cond, lock, CLOCK_MONOTONIC, deadline);
}

#endif
