/* Write-behind accounting; see behind.h for what it promises. */
#include <config.h>

#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "behind.h"
#include "clock.h"
#include "log.h"
#include "stats.h"

static size_t limit;
static atomic_size_t behind_bytes;

void
behind_set_limit (size_t bytes)
{
  limit = bytes;
}

void
behind_init (struct behind *b)
{
  memset (b, 0, sizeof *b);
  pthread_mutex_init (&b->lock, NULL);
  pthread_cond_init (&b->progress, NULL);
}

void
behind_destroy (struct behind *b)
{
  pthread_cond_destroy (&b->progress);
  pthread_mutex_destroy (&b->lock);
}

/* Take len bytes of the bound, unless that would pass it. */
static bool
reserve (size_t len)
{
  size_t cur = atomic_load (&behind_bytes);

  do {
    if (len > limit || cur > limit - len)
      return false;
  } while (!atomic_compare_exchange_weak (&behind_bytes, &cur, cur + len));
  return true;
}

struct behind_write *
behind_start (struct behind *b, int open_flags, uint64_t off, size_t len)
{
  struct behind_write *w;

  /* O_SYNC includes the O_DSYNC bit. */
  if ((open_flags & (O_DIRECT | O_DSYNC)) || !reserve (len))
    return NULL;
  w = calloc (1, sizeof *w);
  if (w == NULL) {
    atomic_fetch_sub (&behind_bytes, len);
    return NULL;
  }
  w->off = off;
  w->len = len;
  pthread_mutex_lock (&b->lock);
  w->ticket = b->next_ticket++;
  w->prev = b->newest;
  if (b->newest)
    b->newest->next = w;
  else
    b->oldest = w;
  b->newest = w;
  pthread_mutex_unlock (&b->lock);
  atomic_fetch_add (&stats.write_behind_bytes, len);
  return w;
}

void
behind_done (struct behind *b, struct behind_write *w, int lun, int err)
{
  atomic_fetch_sub (&behind_bytes, w->len);
  pthread_mutex_lock (&b->lock);
  if (err) {
    b->err_seq++;
    b->err = err;
    b->reported = false;
    atomic_fetch_add (&stats.write_behind_errors, 1);
    /* One line per burst: a dead target fails every write behind. */
    if (!b->logged)
      log_error ("lun%d: write of %zu bytes at %" PRIu64 " failed after it "
                 "was answered (write-behind): %s; the next fsync or close "
                 "reports it", lun, w->len, w->off, strerror (err));
    b->logged = true;
  }
  if (w->prev)
    w->prev->next = w->next;
  else
    b->oldest = w->next;
  if (w->next)
    w->next->prev = w->prev;
  else
    b->newest = w->prev;
  /* Only the oldest write coming back can end a wait. */
  if (w->prev == NULL)
    pthread_cond_broadcast (&b->progress);
  pthread_mutex_unlock (&b->lock);
  free (w);
}

unsigned
behind_seen (struct behind *b)
{
  unsigned seq;

  pthread_mutex_lock (&b->lock);
  seq = b->err_seq;
  if (seq > 0 && !b->reported)
    seq--;
  pthread_mutex_unlock (&b->lock);
  return seq;
}

int
behind_wait (struct behind *b, unsigned *seen, bool consume,
             const struct timespec *deadline)
{
  int err = 0;                  /* positive, as pthread's waits return it */
  uint64_t before;

  pthread_mutex_lock (&b->lock);
  before = b->next_ticket;
  while (b->oldest && b->oldest->ticket < before && err == 0)
    err = deadline ? clock_cond_wait (&b->progress, &b->lock, deadline)
                   : pthread_cond_wait (&b->progress, &b->lock);
  if (err == 0 && b->err_seq != *seen) {
    err = b->err;
    b->reported = true;
    b->logged = false;
    if (consume)
      *seen = b->err_seq;
  }
  pthread_mutex_unlock (&b->lock);
  return -err;
}
