/* Jobs that may wait, on threads of their own: at most a set number of
 * threads, started when no idle one would take a job, ended at shutdown.
 * The FUSE io_uring (uring.c) runs its requests other than READ and WRITE
 * here, so that the session thread never waits for itself. */
#ifndef ISERFS_JOBS_H
#define ISERFS_JOBS_H

#include <stdbool.h>
#include <time.h>

/* At most max threads (at least 1). */
void jobs_init (unsigned max);

/* Run run(arg) on a job thread.  If the jobs are stopping, or no thread
 * can be started and none exists, returns -ESHUTDOWN or -EAGAIN and
 * runs nothing: the caller answers for arg.  -ENOMEM likewise. */
int jobs_run (void (*run) (void *arg), void (*cancel) (void *arg),
              void *arg);

/* Take no more jobs, call cancel(arg) for those not started yet, and wait
 * until the running ones have ended or until (CLOCK_MONOTONIC) has passed.
 * Returns 0 once every thread has ended, or -ETIMEDOUT if some still run
 * (their memory must then be left alone). */
int jobs_stop (const struct timespec *until);

#endif
