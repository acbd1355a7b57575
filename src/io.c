/* The I/O engine.  See io.h for the model; this file holds the stages of a
 * request (split, read-modify-write, write), the range lock that keeps
 * overlapping writes from working on stale blocks, deadlines, and the
 * hand-off of requests to the path's thread.  Below it is a path
 * (path.h): the engine sends commands down and hears of their end through
 * the path's client calls, never the other way round. */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "io-internal.h"
#include "log.h"

static inline uint64_t
div_round_up (uint64_t a, uint64_t b)
{
  return (a + b - 1) / b;
}

static unsigned
commands_needed (struct lun *l, enum io_op op, uint64_t nblocks)
{
  switch (op) {
  case IO_READ:
  case IO_WRITE:
    /* the pieces, plus up to two partial-block reads */
    return div_round_up (nblocks, l->max_xfer_blocks) + 2;
  case IO_UNMAP:
    return div_round_up (nblocks, l->max_unmap_blocks);
  case IO_WRITESAME:
    return div_round_up (nblocks, l->max_ws_blocks);
  case IO_SYNC:
  case IO_CAPACITY:
  default:
    return 1;
  }
}

/* The request record for bytes [off, off+len), with room for its
 * commands; no data buffer yet. */
static struct io_req *
req_alloc (struct lun *l, enum io_op op, uint64_t off, size_t len,
           io_done_fn *done, void *ctx)
{
  uint64_t lba = off / l->block_size;
  uint64_t nblocks = div_round_up (off + len, l->block_size) - lba;
  unsigned n = commands_needed (l, op, nblocks);
  struct io_req *r;

  r = calloc (1, sizeof *r + n * sizeof r->scmd[0]);
  if (r == NULL)
    return NULL;
  r->lun = l;
  r->eng = l->engine;
  r->done = done;
  r->ctx = ctx;
  r->op = op;
  r->off = off;
  r->len = len;
  r->lba = lba;
  r->nblocks = nblocks;
  r->head = off - lba * l->block_size;
  r->max_scmd = n;
  return r;
}

int
io_req_new (struct io_req **rp, struct lun *l, enum io_op op, uint64_t off,
            size_t len, io_done_fn *done, void *ctx)
{
  struct io_req *r = req_alloc (l, op, off, len, done, ctx);

  *rp = NULL;
  if (r == NULL)
    return -ENOMEM;
  if (op == IO_READ || op == IO_WRITE || op == IO_WRITESAME) {
    /* WRITE SAME sends one block, repeated by the target. */
    size_t bytes = (op == IO_WRITESAME ? 1 : r->nblocks) * l->block_size;
    int e = iobuf_alloc (l->engine->path->alloc, bytes, &r->buf);

    if (e < 0) {
      free (r);
      return e;
    }
    r->data = r->buf.addr;
    if (op == IO_WRITESAME)
      memset (r->buf.addr, 0, bytes);
  }
  *rp = r;
  return 0;
}

int
io_req_new_query (struct io_req **rp, struct lun *l, enum io_query q,
                  unsigned page, size_t alloc, io_done_fn *done, void *ctx)
{
  struct io_req *r;

  *rp = NULL;
  if (alloc == 0 || alloc > 65535)
    return -EINVAL;
  r = calloc (1, sizeof *r + sizeof r->scmd[0]);
  if (r == NULL)
    return -ENOMEM;
  /* Plain memory, not the pool: libiscsi receives the answer into a
   * buffer of its own, and the command layer copies it here. */
  r->data = calloc (1, alloc);
  if (r->data == NULL) {
    free (r);
    return -ENOMEM;
  }
  r->lun = l;
  r->eng = l->engine;
  r->done = done;
  r->ctx = ctx;
  r->op = IO_QUERY;
  r->len = alloc;
  r->max_scmd = 1;
  r->scmd[0].query = q;
  r->scmd[0].page = page;
  *rp = r;
  return 0;
}

/* Whether [off, off+len) is whole blocks of l. */
static bool
io_whole_blocks (const struct lun *l, uint64_t off, size_t len)
{
  return off % l->block_size == 0 && len % l->block_size == 0;
}

/* Lent memory is read and written in whole blocks, and only where the
 * path takes any memory (TCP; an iSER transport sends from registered
 * memory, which a lender's is not). */
static bool
can_lend (const struct lun *l, uint64_t off, size_t len)
{
  return io_whole_blocks (l, off, len) && len > 0 && l->engine->path->can_lend;
}

int
io_req_new_lent (struct io_req **rp, struct lun *l, enum io_op op,
                 uint64_t off, size_t len, void *data, io_done_fn *done,
                 void *ctx)
{
  struct io_req *r;

  *rp = NULL;
  if (op != IO_READ && op != IO_WRITE)
    return -EINVAL;
  if (!can_lend (l, off, len))
    return 0;
  r = req_alloc (l, op, off, len, done, ctx);
  if (r == NULL)
    return -ENOMEM;
  r->data = data;
  r->lent = true;
  *rp = r;
  return 0;
}

/* r is answered early while its commands are out: give it a buffer of its
 * own and point the commands there (libiscsi reads and writes through
 * their iovecs, on this thread), so that the lender can reuse its memory.
 * Returns 0, or -ENOMEM: then r must not be answered yet. */
static int
unlend (struct io_req *r)
{
  size_t bytes = (size_t) r->nblocks * r->lun->block_size;

  if (iobuf_alloc (r->eng->path->alloc, bytes, &r->buf) < 0)
    return -ENOMEM;
  memcpy (r->buf.addr, r->data, bytes);
  for (unsigned i = 0; i < r->nr_scmd; i++) {
    struct scmd *c = &r->scmd[i];

    c->iov.iov_base = (char *) r->buf.addr
      + ((char *) c->iov.iov_base - r->data);
  }
  r->data = r->buf.addr;
  r->lent = false;
  return 0;
}

void
io_req_free (struct io_req *r)
{
  if (r == NULL)
    return;
  splice_detach (&r->eng->pipes, &r->sink);
  if (r->op == IO_QUERY)
    free (r->data);
  iobuf_free (r->eng->path->alloc, &r->buf);
  iobuf_free (r->eng->path->alloc, &r->edge);
  free (r);
}

void
io_req_set_done (struct io_req *r, io_done_fn *done, void *ctx)
{
  r->done = done;
  r->ctx = ctx;
}

void
io_req_set_tag (struct io_req *r, void *tag)
{
  r->tag = tag;
}

void
io_req_allow_pipe (struct io_req *r)
{
  r->want_pipe = true;
}

void *
io_req_tag (const struct io_req *r)
{
  return r->tag;
}

void *
io_req_ctx (const struct io_req *r)
{
  return r->ctx;
}

void *
io_req_data (const struct io_req *r)
{
  return r->data + r->head;
}

uint64_t
io_req_off (const struct io_req *r)
{
  return r->off;
}

size_t
io_req_len (const struct io_req *r)
{
  return r->len;
}

int
io_req_err (const struct io_req *r)
{
  return r->err;
}

int
io_req_pipe_fd (const struct io_req *r)
{
  return splice_fd (&r->sink);
}

/* The path's thread takes the request from the submit queue (take) and
 * starts it there: all engine state belongs to that thread. */
void
io_submit (struct io_req *r)
{
  struct engine *e = r->eng;
  struct path *p = e->path;

  r->next = NULL;
  pthread_mutex_lock (&e->lock);
  if (e->submit_tail)
    e->submit_tail->next = r;
  else
    e->submit_head = r;
  e->submit_tail = r;
  pthread_mutex_unlock (&e->lock);
  /* The path's thread itself (a request from a FUSE io_uring) looks at
   * the queue before it sleeps again. */
  if (!p->ops->on_thread (p))
    p->ops->wake (p);
}

/* ---- synchronous wrapper ---- */

struct waiter {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool done;
  int err;
};

static void
wake_waiter (struct io_req *r, void *ctx)
{
  struct waiter *w = ctx;

  pthread_mutex_lock (&w->lock);
  w->err = r->err;
  w->done = true;
  pthread_cond_signal (&w->cond);
  pthread_mutex_unlock (&w->lock);
}

int
io_run_sync (struct io_req *r)
{
  struct waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0 };

  io_req_set_done (r, wake_waiter, &w);
  io_submit (r);
  pthread_mutex_lock (&w.lock);
  while (!w.done)
    pthread_cond_wait (&w.cond, &w.lock);
  pthread_mutex_unlock (&w.lock);
  return w.err;
}

/* ---- range lock (session thread only) ---- */

static bool
overlaps (const struct io_req *a, const struct io_req *b)
{
  return a->lba < b->lba + b->nblocks && b->lba < a->lba + a->nblocks;
}

/* Two reads never need each other's range; a read and a write do, both
 * ways round: a read queued behind a write must see its data, because the
 * write may already have been answered (write-behind, fuse/behind.c). */
static bool
conflicts (const struct io_req *r, const struct io_req *list,
           const struct io_req *stop)
{
  for (; list && list != stop; list = list->next)
    if (overlaps (r, list) && (r->op != IO_READ || list->op != IO_READ))
      return true;
  return false;
}

static void
push (struct io_req **list, struct io_req *r)
{
  r->next = *list;
  *list = r;
}

static void
append (struct io_req **list, struct io_req *r)
{
  while (*list)
    list = &(*list)->next;
  r->next = NULL;
  *list = r;
}

static void
unlink_req (struct io_req **list, struct io_req *r)
{
  while (*list && *list != r)
    list = &(*list)->next;
  if (*list)
    *list = r->next;
}

/* A request may start when no held range conflicts with it and no earlier
 * waiter does either (first come, first served).  Writes hold their range
 * until they finish; reads only wait for it, so they cost nothing when no
 * write overlaps them. */
static bool
lock_acquire (struct io_req *r)
{
  struct lun *l = r->lun;

  if (conflicts (r, l->locked, NULL) || conflicts (r, l->lock_waiters, NULL)) {
    append (&l->lock_waiters, r);
    r->lock_waiting = true;
    if (r->op == IO_READ)
      atomic_fetch_add (&stats.read_waits, 1);
    return false;
  }
  if (r->op != IO_READ) {
    push (&l->locked, r);
    r->locked = true;
  }
  return true;
}

static void begin (struct io_req *r);

static void
lock_release (struct io_req *r)
{
  struct lun *l = r->lun;
  struct io_req *granted = NULL, **granted_tail = &granted, *w, *next;

  if (r->lock_waiting) {
    /* Expired before it got the range.  Waiters behind it may have waited
     * for it alone: look at them as if it had held its range. */
    unlink_req (&l->lock_waiters, r);
    r->lock_waiting = false;
  }
  else if (r->locked) {
    unlink_req (&l->locked, r);
    r->locked = false;
  }
  else
    return;
  for (w = l->lock_waiters; w; w = next) {
    next = w->next;
    if (!conflicts (w, l->locked, NULL) && !conflicts (w, l->lock_waiters, w)) {
      unlink_req (&l->lock_waiters, w);
      w->lock_waiting = false;
      if (w->op != IO_READ) {
        push (&l->locked, w);
        w->locked = true;
      }
      w->granted_next = NULL;
      *granted_tail = w;
      granted_tail = &w->granted_next;
    }
  }
  /* Start them only now: starting may complete a request at once, which
   * re-enters lock_release. */
  for (w = granted; w; w = next) {
    next = w->granted_next;
    begin (w);
  }
}

/* ---- stages ---- */

static struct scmd *
new_command (struct io_req *r, enum cmd_kind kind, uint64_t lba,
             uint32_t nblocks, void *data)
{
  struct scmd *c = &r->scmd[r->nr_scmd++];

  memset (c, 0, sizeof *c);
  c->owner = r;
  c->lun = r->lun;
  c->abandoned = r->replied;
  if (kind == CMD_READ && r->sink.pipe)
    c->sink = &r->sink;
  c->kind = kind;
  c->lba = lba;
  c->nblocks = nblocks;
  c->iov.iov_base = data;
  c->iov.iov_len = (size_t) (kind == CMD_WRITESAME ? 1 : nblocks)
    * r->lun->block_size;
  r->pending++;
  return c;
}

static void piece_finished (struct io_req *r);
static void finish (struct io_req *r);

/* Split [first, first+count) blocks of the request's buffer into commands. */
static void
issue_split (struct io_req *r, enum cmd_kind kind, uint32_t max)
{
  struct path *p = r->eng->path;
  uint64_t done = 0;

  r->nr_scmd = 0;
  r->pending = 1;               /* held until every piece is issued */
  while (done < r->nblocks) {
    uint32_t n = r->nblocks - done < max ? r->nblocks - done : max;
    void *data = r->data && kind != CMD_WRITESAME
      ? r->data + done * r->lun->block_size : r->data;

    p->ops->send (p, new_command (r, kind, r->lba + done, n, data));
    done += n;
  }
  piece_finished (r);
}

static bool
head_partial (const struct io_req *r)
{
  return r->head != 0;
}

static bool
tail_partial (const struct io_req *r)
{
  return (r->head + r->len) % r->lun->block_size != 0;
}

/* Read the partial first/last blocks into the edge buffer. */
static bool
rmw_begin (struct io_req *r)
{
  struct path *p = r->eng->path;
  uint32_t bs = r->lun->block_size;
  bool head = head_partial (r), tail = tail_partial (r);
  int e;

  if (!head && !tail)
    return false;
  e = iobuf_alloc (p->alloc, 2 * bs, &r->edge);
  if (e < 0) {
    r->err = e;
    return false;
  }
  atomic_fetch_add (&stats.rmw, 1);
  r->nr_scmd = 0;
  r->pending = 1;
  if (head)
    p->ops->send (p, new_command (r, CMD_READ, r->lba, 1, r->edge.addr));
  if (tail && (r->nblocks > 1 || !head))
    p->ops->send (p, new_command (r, CMD_READ, r->lba + r->nblocks - 1, 1,
                                  (char *) r->edge.addr + bs));
  piece_finished (r);
  return true;
}

/* Put the old bytes around the new ones back in place. */
static void
rmw_merge (struct io_req *r)
{
  uint32_t bs = r->lun->block_size;
  char *buf = r->data, *edge = r->edge.addr;
  size_t end = r->head + r->len;               /* first byte after the data */
  size_t last_block = (r->nblocks - 1) * bs;

  if (head_partial (r))
    memcpy (buf, edge, r->head);
  if (tail_partial (r)) {
    /* One block holding both edges was read into the first slot. */
    const char *src = (r->nblocks == 1 && head_partial (r)) ? edge : edge + bs;
    memcpy (buf + end, src + (end - last_block), r->nblocks * bs - end);
  }
}

/* Whether r's data can come through a pipe: a READ of whole blocks in
 * one command (the pipe takes the data in order, from its start), large
 * enough that splicing pays (libfuse copies replies under two pages
 * anyway), answered by a caller that can reply from a pipe. */
static bool
wants_pipe (const struct io_req *r)
{
  return r->want_pipe && r->eng->path->splice
    && !head_partial (r) && !tail_partial (r)
    && r->nblocks <= r->lun->max_xfer_blocks && r->len >= SPLICE_MIN_BYTES;
}

/* The first commands of a request that got its range. */
static void
begin (struct io_req *r)
{
  if (r->op == IO_READ) {
    if (wants_pipe (r))
      splice_attach (&r->eng->pipes, &r->sink, r->len);
    issue_split (r, CMD_READ, r->lun->max_xfer_blocks);
    return;
  }
  if (r->op == IO_UNMAP) {
    issue_split (r, CMD_UNMAP, r->lun->max_unmap_blocks);
    return;
  }
  if (r->op == IO_WRITESAME) {
    issue_split (r, CMD_WRITESAME, r->lun->max_ws_blocks);
    return;
  }
  if (!r->rmw_done && rmw_begin (r))
    return;
  r->rmw_done = true;
  if (r->err) {
    /* rmw_begin had no buffer for the edges: nothing was sent, so nothing
     * is pending (piece_finished would count below zero and the range
     * would stay held). */
    finish (r);
    return;
  }
  issue_split (r, CMD_WRITE, r->lun->max_xfer_blocks);
}

/* ---- lifetime ---- */

static void
active_add (struct engine *e, struct io_req *r)
{
  r->active_prev = NULL;
  r->active_next = e->active;
  if (e->active)
    e->active->active_prev = r;
  e->active = r;
}

static void
active_remove (struct engine *e, struct io_req *r)
{
  if (r->active_prev)
    r->active_prev->active_next = r->active_next;
  else if (e->active == r)
    e->active = r->active_next;
  if (r->active_next)
    r->active_next->active_prev = r->active_prev;
  r->active_prev = r->active_next = NULL;
}

/* Once answered, nothing more of r is sent or retried, and the path may
 * let go of what it holds of r once the target can no longer act on it
 * (recovery.h). */
static void
reply (struct io_req *r)
{
  if (!r->replied) {
    r->replied = true;
    for (unsigned i = 0; i < r->nr_scmd; i++)
      r->scmd[i].abandoned = true;
    if (r->done)
      r->done (r, r->ctx);
  }
}

/* Every command of the request is back: answer (unless the deadline did
 * already) and free it. */
static void
finish (struct io_req *r)
{
  if (r->sink.pipe && r->err == 0 && splice_settle (&r->sink, r->data) < 0)
    r->err = -EIO;
  lock_release (r);
  active_remove (r->eng, r);
  reply (r);
  io_req_free (r);
}

static void
expire (void *opaque, time_t now)
{
  struct engine *e = opaque;
  struct io_req *r, *next;

  for (r = e->active; r; r = next) {
    next = r->active_next;
    if (r->replied || (now && (r->deadline == 0 || now < r->deadline)))
      continue;
    r->err = -EIO;
    if (r->lock_waiting) {              /* nothing of it was sent yet */
      finish (r);
      continue;
    }
    /* Commands of it are still with the transport: answer now, free when
     * they come back (their buffers must live until then). */
    if (r->lent && unlend (r) < 0)
      continue;                         /* at the next scan */
    reply (r);
  }
}

static void
piece_finished (struct io_req *r)
{
  if (--r->pending > 0)
    return;
  if (r->op == IO_WRITE && !r->rmw_done) {
    /* The edge reads are back. */
    r->rmw_done = true;
    if (r->err == 0) {
      rmw_merge (r);
      issue_split (r, CMD_WRITE, r->lun->max_xfer_blocks);
      return;
    }
  }
  finish (r);
}

static void
start (struct io_req *r)
{
  struct path *p = r->eng->path;
  time_t now = clock_mono_s ();

  active_add (r->eng, r);
  /* The target no longer has this LUN, or has another one under its
   * number: nothing may reach it through the old one. */
  if (lun_removed (r->lun)) {
    r->err = -EIO;
    finish (r);
    return;
  }
  if (p->timeout) {
    r->deadline = now + p->timeout;
    /* Like a kernel initiator past its replacement timeout: while the
     * path has been down that long, fail at once instead of queueing. */
    if (p->down_since && now - p->down_since >= (time_t) p->timeout) {
      r->err = -EIO;
      finish (r);
      return;
    }
  }
  switch (r->op) {
  case IO_READ:
  case IO_WRITE:
  case IO_UNMAP:
  case IO_WRITESAME:
    if (lock_acquire (r))
      begin (r);
    break;
  case IO_SYNC:
  case IO_CAPACITY:
    r->nr_scmd = 0;
    r->pending = 0;
    p->ops->send (p, new_command (r, r->op == IO_SYNC ? CMD_SYNC
                                  : CMD_CAPACITY, 0, 0, NULL));
    break;
  case IO_QUERY: {
    unsigned char q = r->scmd[0].query, page = r->scmd[0].page;
    struct scmd *c;

    r->nr_scmd = 0;
    r->pending = 0;
    c = new_command (r, CMD_QUERY, 0, 0, r->data);
    c->query = q;
    c->page = page;
    c->iov.iov_len = r->len;
    p->ops->send (p, c);
    break;
  }
  }
}

static void
command_done (struct scmd *c, int err)
{
  struct io_req *r = c->owner;

  /* SYNCHRONIZE CACHE(16) is optional; (10) is what every target has. */
  if (err == -EOPNOTSUPP && c->kind == CMD_SYNC && r->lun->sync16) {
    r->lun->sync16 = false;
    r->eng->path->ops->send (r->eng->path, c);
    return;
  }
  if (err && r->err == 0)
    r->err = err;
  if (c->kind == CMD_QUERY && err == 0)
    r->len = c->datain;
  piece_finished (r);
}

/* ---- the path's client calls ---- */

/* Start what was handed over, in submission order. */
static void
take (void *opaque)
{
  struct engine *e = opaque;
  struct io_req *r;

  pthread_mutex_lock (&e->lock);
  r = e->submit_head;
  e->submit_head = e->submit_tail = NULL;
  pthread_mutex_unlock (&e->lock);
  while (r) {
    struct io_req *next = r->next;
    start (r);
    r = next;
  }
}

static bool
idle (void *opaque)
{
  struct engine *e = opaque;
  bool yes;

  pthread_mutex_lock (&e->lock);
  yes = e->submit_head == NULL;
  pthread_mutex_unlock (&e->lock);
  return yes && e->active == NULL;
}

static void
closed (void *opaque)
{
  struct engine *e = opaque;

  splice_pool_free (&e->pipes);
  pthread_mutex_destroy (&e->lock);
  free (e);
}

struct engine *
io_engine_new (struct path *p)
{
  struct engine *e = calloc (1, sizeof *e);

  if (e == NULL)
    return NULL;
  e->path = p;
  pthread_mutex_init (&e->lock, NULL);
  p->client = (struct path_client) {
    .done = command_done, .take = take, .expire = expire, .idle = idle,
    .closed = closed, .eng = e,
  };
  return e;
}
