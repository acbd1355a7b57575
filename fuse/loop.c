/* The FUSE request loop: requests are read straight into I/O buffers.
 *
 * libfuse's own loops read each request into a buffer they malloc, so the
 * data of a WRITE had to be copied once more, into the pool buffer the I/O
 * engine sends from.  Our workers read /dev/fuse into a buffer of the
 * engine's allocator instead.  A write of whole blocks takes that buffer
 * over (trimmed to what it holds) and its data goes to the target from
 * where the kernel put it -- over iSER with the allocator hook, from
 * registered memory, by RDMA.  The worker then receives its next request
 * into a fresh buffer.
 *
 * Otherwise this is what fuse_session_loop_mt() does: a worker is added when
 * none is idle (an fsync, or an open with O_TRUNC, waits for the target), up
 * to max_threads; idle workers above max_idle exit; on exit the workers
 * blocked in read() are interrupted, the others finish their request first.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "loop.h"

struct loop;

struct worker {
  struct loop *loop;
  pthread_t thread;
  struct iobuf rx;                          /* requests are read into it */
  bool rx_malloced;                         /* the pool was out of memory */
  const struct iobuf_allocator *rx_alloc;   /* rx came from here */
  const struct iobuf_allocator *want;       /* the next rx comes from here */
  struct worker *prev, *next;
};

struct loop {
  struct fuse_session *se;
  pthread_mutex_t lock;
  sem_t finished;                   /* a worker saw the session exit */
  struct worker *workers;
  unsigned nr_workers, nr_idle, max_threads;
  int max_idle;
  int error;
  bool stopping;                    /* workers no longer leave by themselves */
  const struct iobuf_allocator *alloc;
  size_t rx_size;                   /* request_buffer_size () */
};

static __thread struct worker *self;

/* How many bytes libfuse reads from /dev/fuse at once (its se->bufsize):
 * from 3.12 to 3.16 that is 256 pages plus a page of header room before
 * INIT, and less after.  A buffer smaller than that read could be
 * overrun, so other versions keep libfuse's own loop. */
static size_t
request_buffer_size (void)
{
  return 256 * (size_t) sysconf (_SC_PAGESIZE) + 4096;
}

bool
loop_supported (void)
{
  int v = fuse_version ();

  return v >= 312 && v <= 316;
}

static void
rx_release (struct worker *w)
{
  if (w->rx_malloced)
    free (w->rx.addr);
  else
    iobuf_free (w->rx_alloc, &w->rx);
  w->rx.addr = NULL;
  w->rx_malloced = false;
}

/* Give w a buffer to receive into, from the allocator it should come from.
 * When the pool cannot, malloc: such a buffer is never taken over, so the
 * pool is asked again before each request until it can. */
static int
rx_ready (struct worker *w)
{
  size_t size = w->loop->rx_size;

  if (w->rx.addr && !w->rx_malloced && w->rx_alloc == w->want)
    return 0;
  if (w->rx_malloced) {
    struct iobuf pooled;

    if (iobuf_alloc (w->want, size, &pooled) != 0)
      return 0;                         /* keep the malloc'd one */
    rx_release (w);
    w->rx_alloc = w->want;
    w->rx = pooled;
    return 0;
  }
  if (w->rx.addr)
    rx_release (w);
  w->rx_alloc = w->want;
  if (iobuf_alloc (w->rx_alloc, size, &w->rx) == 0)
    return 0;
  w->rx.addr = malloc (size);
  if (w->rx.addr == NULL)
    return -ENOMEM;
  w->rx.len = size;
  w->rx_malloced = true;
  return 0;
}

bool
loop_take_request_buffer (const void *data, size_t len,
                          const struct iobuf_allocator *alloc,
                          struct iobuf *buf)
{
  struct worker *w = self;
  const char *p = data, *rx;

  if (w == NULL || w->rx.addr == NULL || w->rx_malloced)
    return false;
  if (w->rx_alloc != alloc) {
    w->want = alloc;
    return false;
  }
  rx = w->rx.addr;
  if (p < rx || len > w->rx.len || (size_t) (p - rx) > w->rx.len - len)
    return false;
  *buf = w->rx;
  w->rx.addr = NULL;
  return true;
}

void
loop_block_stop_signals (sigset_t *old)
{
  sigset_t stop;

  sigemptyset (&stop);
  sigaddset (&stop, SIGTERM);
  sigaddset (&stop, SIGINT);
  sigaddset (&stop, SIGHUP);
  pthread_sigmask (SIG_BLOCK, &stop, old);
}

static void *worker_main (void *arg);

/* lp->lock held. */
static int
start_worker (struct loop *lp)
{
  struct worker *w = calloc (1, sizeof *w);
  int e;

  if (w == NULL)
    return -ENOMEM;
  w->loop = lp;
  w->want = lp->alloc;
  e = pthread_create (&w->thread, NULL, worker_main, w);
  if (e != 0) {
    free (w);
    return -e;
  }
  w->next = lp->workers;
  if (lp->workers)
    lp->workers->prev = w;
  lp->workers = w;
  lp->nr_workers++;
  lp->nr_idle++;
  return 0;
}

/* lp->lock held. */
static void
unlink_worker (struct loop *lp, struct worker *w)
{
  if (w->prev)
    w->prev->next = w->next;
  else
    lp->workers = w->next;
  if (w->next)
    w->next->prev = w->prev;
  lp->nr_workers--;
}

/* A request arrived: add a worker if this was the last idle one, so that a
 * request waiting for the target does not hold up the others. */
static void
request_started (struct loop *lp)
{
  pthread_mutex_lock (&lp->lock);
  lp->nr_idle--;
  if (lp->nr_idle == 0 && lp->nr_workers < lp->max_threads && !lp->stopping
      && start_worker (lp) < 0)
    log_error ("cannot start another FUSE worker thread");
  pthread_mutex_unlock (&lp->lock);
}

/* A request was handled.  Returns false if this worker is one idle worker
 * too many and has left (its memory is gone then). */
static bool
request_finished (struct loop *lp, struct worker *w)
{
  pthread_mutex_lock (&lp->lock);
  lp->nr_idle++;
  if (lp->max_idle >= 0 && lp->nr_idle > (unsigned) lp->max_idle
      && lp->nr_workers > 1 && !lp->stopping) {
    unlink_worker (lp, w);
    lp->nr_idle--;
    pthread_mutex_unlock (&lp->lock);
    pthread_detach (w->thread);
    rx_release (w);
    free (w);
    return false;
  }
  pthread_mutex_unlock (&lp->lock);
  return true;
}

static void *
worker_main (void *arg)
{
  struct worker *w = arg;
  struct loop *lp = w->loop;

  loop_block_stop_signals (NULL);
  self = w;
  while (!fuse_session_exited (lp->se)) {
    struct fuse_buf fbuf = { 0 };
    int res;

    if (rx_ready (w) < 0) {
      log_error ("out of memory for a FUSE request buffer");
      res = -ENOMEM;
    }
    else {
      fbuf.mem = w->rx.addr;
      fbuf.size = w->rx.len;
      res = fuse_session_receive_buf (lp->se, &fbuf);
    }
    if (res == -EINTR)
      continue;
    /* The kernel shut the connection down while this read was taking a
     * request (an unmount, lazy or not, racing with it, or an abort in
     * /sys/fs/fuse/connections): the end, as ENODEV is, not a failure. */
    if (res == -ECONNABORTED) {
      fuse_session_exit (lp->se);
      break;
    }
    if (res <= 0) {
      if (res < 0) {
        pthread_mutex_lock (&lp->lock);
        lp->error = res;
        pthread_mutex_unlock (&lp->lock);
        fuse_session_exit (lp->se);
      }
      break;
    }
    request_started (lp);
    fuse_session_process_buf (lp->se, &fbuf);
    if (!request_finished (lp, w))
      return NULL;
  }
  sem_post (&lp->finished);
  return NULL;
}

/* The wake-up signal only interrupts a worker's read(). */
static void
on_wake (int sig)
{
  (void) sig;
}

/* Stop and free every worker.  One blocked in read() on /dev/fuse is
 * interrupted with a signal (it then sees the session exited); one busy
 * with a request finishes it first.  The signal can land just before a
 * worker enters read(), so it is sent again until the worker is gone.
 * (Not pthread_cancel: unwinding a thread out of read() upsets
 * AddressSanitizer, and a signal needs no cancellation points.) */
static void
stop_workers (struct loop *lp)
{
  struct sigaction sa = { .sa_handler = on_wake }, old;

  sigemptyset (&sa.sa_mask);            /* no SA_RESTART: read() returns */
  sigaction (SIGRTMIN, &sa, &old);
  pthread_mutex_lock (&lp->lock);
  lp->stopping = true;
  pthread_mutex_unlock (&lp->lock);
  while (lp->workers) {
    struct worker *w = lp->workers;

    for (;;) {
      struct timespec until;

      pthread_kill (w->thread, SIGRTMIN);
      until = clock_deadline_ms (100);
      if (pthread_clockjoin_np (w->thread, NULL, CLOCK_MONOTONIC, &until) == 0)
        break;
    }
    unlink_worker (lp, w);
    rx_release (w);
    free (w);
  }
  sigaction (SIGRTMIN, &old, NULL);
}

int
loop_run (struct fuse_session *se, unsigned max_threads, int max_idle,
          const struct iobuf_allocator *alloc)
{
  struct loop lp = {
    .se = se, .max_threads = max_threads ? max_threads : 1,
    .max_idle = max_idle, .alloc = alloc, .rx_size = request_buffer_size (),
  };
  int e;

  pthread_mutex_init (&lp.lock, NULL);
  sem_init (&lp.finished, 0, 0);
  pthread_mutex_lock (&lp.lock);
  e = start_worker (&lp);
  pthread_mutex_unlock (&lp.lock);
  if (e < 0) {
    log_error ("cannot start a FUSE worker thread");
    lp.error = e;
    goto out;
  }
  /* A stop signal interrupts the wait (EINTR) after libfuse's handler
   * marked the session exited; an unmount wakes it through a worker. */
  while (!fuse_session_exited (se))
    sem_wait (&lp.finished);

  stop_workers (&lp);
 out:
  sem_destroy (&lp.finished);
  pthread_mutex_destroy (&lp.lock);
  return lp.error;
}
