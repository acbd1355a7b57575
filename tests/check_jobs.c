/* Unit tests of the job threads (fuse/jobs.c): every job runs, no more
 * threads than the limit run at once, and stopping refuses what has not
 * started, waits for what has, and gives up at its deadline. */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include <check.h>

#include "check_run.h"
#include "deadline.h"
#include "jobs.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static unsigned running, most_running, ran, cancelled;

/* A job that waits until the gate opens, counting how many wait at once. */
static void
gated (void *arg)
{
  (void) arg;
  pthread_mutex_lock (&lock);
  running++;
  if (running > most_running)
    most_running = running;
  pthread_cond_broadcast (&changed);
  while (!gate_open)
    pthread_cond_wait (&changed, &lock);
  running--;
  ran++;
  pthread_cond_broadcast (&changed);
  pthread_mutex_unlock (&lock);
}

static void
cancel (void *arg)
{
  (void) arg;
  pthread_mutex_lock (&lock);
  cancelled++;
  pthread_mutex_unlock (&lock);
}

/* Wait up to 10 s for *counter to reach n; returns whether it did. */
static bool
wait_for (unsigned *counter, unsigned n)
{
  struct timespec until = soon (10000);
  bool ok;

  pthread_mutex_lock (&lock);
  while (*counter < n
         && pthread_cond_clockwait (&changed, &lock, CLOCK_MONOTONIC, &until) == 0)
    ;
  ok = *counter >= n;
  pthread_mutex_unlock (&lock);
  return ok;
}

/* Stop the jobs, allowing 10 s for those running; whether all ended. */
static bool
stop_all (void)
{
  struct timespec until = soon (10000);

  return jobs_stop (&until) == 0;
}

static void
open_gate (void)
{
  pthread_mutex_lock (&lock);
  gate_open = true;
  pthread_cond_broadcast (&changed);
  pthread_mutex_unlock (&lock);
}

START_TEST (test_every_job_runs)
{
  jobs_init (3);
  open_gate ();
  for (int i = 0; i < 50; i++)
    ck_assert_int_eq (jobs_run (gated, cancel, NULL), 0);
  ck_assert (wait_for (&ran, 50));
  ck_assert (stop_all ());
  ck_assert_uint_eq (cancelled, 0);
  ck_assert_uint_le (most_running, 3);
}
END_TEST

/* With two threads at most, two jobs waiting hold the others back until
 * they end. */
START_TEST (test_limit)
{
  jobs_init (2);
  for (int i = 0; i < 5; i++)
    ck_assert_int_eq (jobs_run (gated, cancel, NULL), 0);
  ck_assert (wait_for (&running, 2));
  pthread_mutex_lock (&lock);
  ck_assert_uint_eq (ran, 0);
  pthread_mutex_unlock (&lock);
  open_gate ();
  ck_assert (wait_for (&ran, 5));
  ck_assert_uint_eq (most_running, 2);
  ck_assert (stop_all ());
}
END_TEST

/* Stopping cancels the queued jobs at once, waits for the running one
 * only until its deadline, and refuses new jobs. */
START_TEST (test_stop)
{
  struct timespec until;

  jobs_init (1);
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq (jobs_run (gated, cancel, NULL), 0);
  ck_assert (wait_for (&running, 1));
  until = soon (100);
  ck_assert_int_eq (jobs_stop (&until), -ETIMEDOUT); /* the running job still waits */
  pthread_mutex_lock (&lock);
  ck_assert_uint_eq (cancelled, 2);
  ck_assert_uint_eq (running, 1);
  pthread_mutex_unlock (&lock);
  ck_assert_int_eq (jobs_run (gated, cancel, NULL), -ESHUTDOWN);
  open_gate ();
  ck_assert (stop_all ());
  ck_assert_uint_eq (ran, 1);
  ck_assert_uint_eq (cancelled, 2);     /* the refused job was not queued */
}
END_TEST

static Suite *
jobs_suite (void)
{
  Suite *s = suite_create ("jobs");
  TCase *tc = tcase_create ("core");

  tcase_set_timeout (tc, 30);           /* above wait_for's 10 s */
  tcase_add_test (tc, test_every_job_runs);
  tcase_add_test (tc, test_limit);
  tcase_add_test (tc, test_stop);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  /* jobs.c keeps one set of threads per process: a process per test. */
  return check_run (jobs_suite (), CK_FORK);
}
