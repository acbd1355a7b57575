/* Jobs that may wait, on threads of their own (see jobs.h).
 *
 * Why not libfuse's worker pool: with the FUSE io_uring the requests do
 * not come from read() on /dev/fuse, which is what its workers wait in.
 * A thread is started for every job no idle thread would take, up to the
 * limit, so that a job waiting for the target (an fsync) does not hold up
 * a getattr queued behind it. */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "clock.h"
#include "jobs.h"

struct job {
  void (*run) (void *);
  void (*cancel) (void *);
  void *arg;
  struct job *next;
};

static struct {
  pthread_mutex_t lock;
  pthread_cond_t more;          /* a job queued, stopping, or a thread ended */
  struct job *head, *tail;
  unsigned queued, threads, idle, max;
  bool stopping;
} J = { .lock = PTHREAD_MUTEX_INITIALIZER, .more = PTHREAD_COND_INITIALIZER,
        .max = 1 };

void
jobs_init (unsigned max)
{
  pthread_mutex_lock (&J.lock);
  J.max = max ? max : 1;
  pthread_mutex_unlock (&J.lock);
}

/* J.lock held: the next job, or NULL once stopping with none left. */
static struct job *
next_job (void)
{
  struct job *j;

  while (J.head == NULL && !J.stopping) {
    J.idle++;
    pthread_cond_wait (&J.more, &J.lock);
    J.idle--;
  }
  j = J.head;
  if (j) {
    J.head = j->next;
    if (J.head == NULL)
      J.tail = NULL;
    J.queued--;
  }
  return j;
}

static void *
job_thread (void *unused)
{
  struct job *j;

  (void) unused;
  pthread_mutex_lock (&J.lock);
  while ((j = next_job ()) != NULL) {
    pthread_mutex_unlock (&J.lock);
    j->run (j->arg);
    free (j);
    pthread_mutex_lock (&J.lock);
  }
  J.threads--;
  pthread_cond_broadcast (&J.more);     /* for jobs_stop */
  pthread_mutex_unlock (&J.lock);
  return NULL;
}

/* J.lock held: start a thread if the queued jobs outnumber the idle
 * threads and the limit allows. */
static void
maybe_start_thread (void)
{
  pthread_attr_t attr;
  pthread_t t;

  if (J.queued <= J.idle || J.threads >= J.max)
    return;
  pthread_attr_init (&attr);
  pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
  if (pthread_create (&t, &attr, job_thread, NULL) == 0)
    J.threads++;
  pthread_attr_destroy (&attr);
}

int
jobs_run (void (*run) (void *), void (*cancel) (void *), void *arg)
{
  struct job *j = malloc (sizeof *j);

  if (j == NULL)
    return -ENOMEM;
  *j = (struct job) { .run = run, .cancel = cancel, .arg = arg };
  pthread_mutex_lock (&J.lock);
  if (J.stopping) {
    pthread_mutex_unlock (&J.lock);
    free (j);
    return -ESHUTDOWN;
  }
  if (J.tail)
    J.tail->next = j;
  else
    J.head = j;
  J.tail = j;
  J.queued++;
  maybe_start_thread ();
  if (J.threads == 0) {
    /* No thread to run it, now or later: the queue holds only this job. */
    J.head = J.tail = NULL;
    J.queued = 0;
    pthread_mutex_unlock (&J.lock);
    free (j);
    return -EAGAIN;
  }
  pthread_cond_signal (&J.more);
  pthread_mutex_unlock (&J.lock);
  return 0;
}

int
jobs_stop (const struct timespec *until)
{
  struct job *j, *queued;
  bool ended;

  pthread_mutex_lock (&J.lock);
  J.stopping = true;
  queued = J.head;
  J.head = J.tail = NULL;
  J.queued = 0;
  pthread_cond_broadcast (&J.more);
  pthread_mutex_unlock (&J.lock);

  /* Outside the lock: a cancel answers a request, which takes locks of
   * its own. */
  while ((j = queued) != NULL) {
    queued = j->next;
    j->cancel (j->arg);
    free (j);
  }

  pthread_mutex_lock (&J.lock);
  while (J.threads > 0
         && clock_cond_wait (&J.more, &J.lock, until) == 0)
    ;
  ended = J.threads == 0;
  pthread_mutex_unlock (&J.lock);
  return ended ? 0 : -ETIMEDOUT;
}
