/* READ data moved from the socket to the reader by splice(2); see splice.h. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include "log.h"
#include "splice.h"
#include "stats.h"

/* Where a request's data stands. */
enum {
  PIPE_FILLING,         /* all of it so far went into the pipe, in order */
  PIPE_SPILLED,         /* the rest goes to the buffer after the pipe's */
  PIPE_STALE,           /* sent again: the buffer gets all; the pipe's is old */
  PIPE_READY,           /* all of it is in the pipe */
};

/* Pipes of the whole process at most, in use or kept for reuse by the
 * sessions: enough for the READs programs keep in flight, few enough that
 * a mount of many targets keeps file descriptors for its sockets (two per
 * pipe) and that their size stays within fs.pipe-user-pages-soft (64 MiB
 * of pipes for a user without CAP_SYS_RESOURCE or CAP_SYS_ADMIN).  A READ
 * that finds none free is copied. */
#define PIPES_MAX 24
static atomic_uint pipes_open;

/* The size pipes are made with, and the largest request spliced.  A
 * pipe's slots hold at most a page each, and spliced socket data is not
 * page aligned (each DATA-IN segment follows a 48-byte header), so a
 * request's data can take nearly a slot per page more: pipes get twice
 * the largest request.  Above fs.pipe-max-size (1 MiB by default) that
 * needs CAP_SYS_RESOURCE; without it, requests up to half that size are
 * spliced.  libfuse's own pipe, which the reply passes through, obeys the
 * same limit and needs the data plus a few pages.
 *
 * ISERFS_TEST_PIPE_BYTES (tests only) makes pipes of that size and still
 * splices every request, so that pipes fill up and the fallback runs. */
static size_t pipe_bytes, splice_max;

static struct spipe *
pipe_new (void)
{
  struct spipe *p;
  int fd[2], size;

  if (atomic_fetch_add (&pipes_open, 1) >= PIPES_MAX) {
    atomic_fetch_sub (&pipes_open, 1);
    return NULL;
  }
  p = calloc (1, sizeof *p);
  if (p == NULL || pipe2 (fd, O_CLOEXEC | O_NONBLOCK) < 0) {
    free (p);
    atomic_fetch_sub (&pipes_open, 1);
    return NULL;
  }
  size = fcntl (fd[0], F_SETPIPE_SZ, (int) pipe_bytes);
  if (size < 0 || (size_t) size < pipe_bytes) {
    close (fd[0]);
    close (fd[1]);
    free (p);
    atomic_fetch_sub (&pipes_open, 1);
    return NULL;
  }
  p->rd = fd[0];
  p->wr = fd[1];
  return p;
}

static void
pipe_close (struct spipe *p)
{
  close (p->rd);
  close (p->wr);
  free (p);
  atomic_fetch_sub (&pipes_open, 1);
}

#ifdef LIBISCSI_FEATURE_DATA_IN_SINK
/* fs.pipe-max-size, or 0. */
static size_t
pipe_max_size (void)
{
  FILE *fp = fopen ("/proc/sys/fs/pipe-max-size", "re");
  unsigned long v = 0;

  if (fp) {
    if (fscanf (fp, "%lu", &v) != 1)
      v = 0;
    fclose (fp);
  }
  return v;
}
#endif

bool
splice_supported (size_t max_request, const char **why)
{
#ifdef LIBISCSI_FEATURE_DATA_IN_SINK
  const char *test = getenv ("ISERFS_TEST_PIPE_BYTES");
  struct spipe *p;

  pipe_bytes = test ? strtoul (test, NULL, 10) : 2 * max_request;
  splice_max = test ? max_request : pipe_bytes / 2;
  p = pipe_new ();
  if (p == NULL && test == NULL) {
    pipe_bytes = pipe_max_size ();
    splice_max = pipe_bytes / 2;
    p = pipe_new ();
  }
  if (p == NULL || splice_max < SPLICE_MIN_BYTES) {
    *why = "no pipe large enough (see fs.pipe-max-size)";
    if (p)
      pipe_close (p);
    return false;
  }
  pipe_close (p);
  log_debug ("READs of %zu KiB to %zu KiB are spliced, through pipes of "
             "%zu KiB", (size_t) SPLICE_MIN_BYTES / 1024, splice_max / 1024,
             pipe_bytes / 1024);
  return true;
#else
  (void) max_request;
  *why = "this libiscsi has no DATA-IN sink (contrib/libiscsi patch 0008)";
  return false;
#endif
}

bool
splice_attach (struct spipe **pool, struct splice_sink *sk, size_t len)
{
  struct spipe *p = *pool;

  if (len > splice_max)
    return false;
  if (p)
    *pool = p->next;
  else if ((p = pipe_new ()) == NULL)
    return false;
  sk->pipe = p;
  sk->len = len;
  sk->piped = 0;
  sk->state = PIPE_FILLING;
  return true;
}

#ifdef LIBISCSI_FEATURE_DATA_IN_SINK
/* libiscsi's DATA-IN sink: take count bytes, which belong at offset of
 * the READ's data, off the socket into the pipe -- or decline (0), and
 * libiscsi reads them into the buffer. */
static ssize_t
sink (int fd, uint32_t offset, size_t count, void *opaque)
{
  struct splice_sink *r = opaque;
  ssize_t n;
  int avail;

  /* Data from the start again: the command went out again (a reconnect,
   * a retry), and what the pipe holds is from the first time. */
  if (offset < r->piped && r->state != PIPE_STALE)
    r->state = PIPE_STALE;
  if (r->state != PIPE_FILLING)
    return 0;
  /* More data than the READ asked for: leave it to libiscsi, whose
   * buffer bounds refuse it (the connection is made again). */
  if (offset > r->len || count > r->len - offset) {
    r->state = PIPE_SPILLED;
    return 0;
  }
  if (offset > r->piped) {
    /* A gap.  Targets send DATA-IN in order (DataPDUInOrder=Yes is all
     * libiscsi negotiates), so this is a broken stream: fail it like a
     * read error, and the connection is made again. */
    errno = EPROTO;
    return -1;
  }
  n = splice (fd, NULL, r->pipe->wr, NULL, count,
              SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  if (n > 0) {
    r->piped += n;
    return n;
  }
  /* EAGAIN: an empty socket (wait for more), or a full pipe. */
  if (n < 0 && errno == EAGAIN && ioctl (fd, FIONREAD, &avail) == 0
      && avail == 0) {
    errno = EAGAIN;
    return -1;
  }
  /* A full pipe, the end of the stream, an error: the buffer takes the
   * rest, and libiscsi's own read sees the end or the error. */
  r->state = PIPE_SPILLED;
  return 0;
}
#endif

void
splice_arm (struct splice_sink *sk, struct scsi_task *task)
{
#ifdef LIBISCSI_FEATURE_DATA_IN_SINK
  scsi_task_set_data_in_sink (task, sink, sk);
#else
  (void) sk;
  (void) task;
#endif
}

/* Move what the pipe holds, the first r->piped bytes of the data, into
 * the buffer at data.  0 or -EIO. */
static int
spill (struct splice_sink *r, char *data)
{
  size_t got = 0;

  if (r->piped > r->len)
    return -EIO;
  while (got < r->piped) {
    ssize_t n = read (r->pipe->rd, data + got, r->piped - got);

    if (n <= 0) {
      log_error ("cannot read back spliced READ data: %s",
                 n < 0 ? strerror (errno) : "pipe empty");
      return -EIO;
    }
    got += n;
  }
  r->piped = 0;
  return 0;
}

int
splice_settle (struct splice_sink *r, void *data)
{
  if (r->pipe == NULL)
    return 0;
  if (r->state == PIPE_FILLING && r->piped == r->len) {
    r->state = PIPE_READY;
    atomic_fetch_add (&stats.spliced_read_bytes, r->len);
    return 0;
  }
  /* Stale data stays in the pipe, which is closed with it. */
  if (r->state == PIPE_STALE) {
    atomic_fetch_add (&stats.splice_resent, 1);
    return 0;
  }
  atomic_fetch_add (&stats.splice_spilled, 1);
  return spill (r, data);
}

int
splice_fd (const struct splice_sink *r)
{
  return r->pipe && r->state == PIPE_READY ? r->pipe->rd : -1;
}

void
splice_detach (struct spipe **pool, struct splice_sink *r)
{
  struct spipe *p = r->pipe;
  int left = 0;

  if (p == NULL)
    return;
  r->pipe = NULL;
  if (ioctl (p->rd, FIONREAD, &left) < 0 || left > 0) {
    pipe_close (p);
    return;
  }
  p->next = *pool;
  *pool = p;
}

void
splice_pool_free (struct spipe **pool)
{
  while (*pool) {
    struct spipe *p = *pool;

    *pool = p->next;
    pipe_close (p);
  }
}
