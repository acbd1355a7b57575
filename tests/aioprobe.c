/* aioprobe: asynchronous writes (Linux AIO) on one descriptor, with fsync
 * and close of it, of a copy of it and of a second descriptor of the same
 * file in between, at steps the calling script decides.
 *
 *   aioprobe FILE FLAGS OP...
 *
 * FLAGS as ioprobe's (r, w, rw, trunc, direct, sync).  Each OP is
 *   pwrite:OFFSET:LENGTH:BYTE  a synchronous write of LENGTH copies of BYTE
 *   aio:OFFSET:LENGTH:BYTE     submit the same as an asynchronous write
 *                              and go on without waiting for it
 *   reap                       wait for every asynchronous write submitted
 *                              ("aio ok N" or "aio err ENAME" each, in
 *                              the order submitted)
 *   fsync | dupclose           as in ioprobe
 *   bg:fsync | bg:dupclose     the same on a thread of its own; "join"
 *                              waits for it and prints its result
 *   open2:FLAGS | pwrite2:OFFSET:LENGTH:BYTE | fsync2 | close2
 *                              a second descriptor of FILE
 *   step                       print "step", then wait for a line on stdin:
 *                              the script does something (stops the
 *                              target, looks at counters) in between
 * One line per step, flushed at once, "<op> ok N" or "<op> err ENAME".
 * The kernel sends a FUSE file's asynchronous O_DIRECT writes without
 * waiting for them (FUSE_CAP_ASYNC_DIO), which synchronous writes from
 * threads would not show: fsync takes the file's lock that those hold. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/aio_abi.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_AIO 64

static aio_context_t ctx;
static struct iocb iocbs[MAX_AIO];
static unsigned submitted, reaped;

static const char *path;
static int fd, fd2 = -1;
static pthread_t bg;
static const char *bg_op;
static ssize_t bg_result;
static int bg_errno;

static void usage (void) __attribute__((noreturn));
static void
usage (void)
{
  fprintf (stderr, "usage: aioprobe FILE r|w|rw[,trunc,direct,sync] "
           "pwrite:OFF:LEN:BYTE|aio:OFF:LEN:BYTE|reap|fsync|dupclose|"
           "bg:fsync|bg:dupclose|join|open2:FLAGS|pwrite2:OFF:LEN:BYTE|"
           "fsync2|close2|step...\n");
  exit (2);
}

#include "probe_flags.h"

static void
report_errno (const char *op, ssize_t r, int err)
{
  if (r < 0)
    printf ("%s err %s\n", op, strerrorname_np (err));
  else
    printf ("%s ok %zd\n", op, r);
  fflush (stdout);
}

static void
report (const char *op, ssize_t r)
{
  report_errno (op, r, errno);
}

/* OFF:LEN:BYTE into a page-aligned buffer, as O_DIRECT needs. */
static void *
parse_write (const char *arg, uint64_t *off, uint64_t *len)
{
  char *end;
  unsigned long byte;
  void *buf;

  errno = 0;
  *off = strtoull (arg, &end, 0);
  if (errno || *end != ':')
    usage ();
  *len = strtoull (end + 1, &end, 0);
  if (errno || *end != ':' || *len == 0)
    usage ();
  byte = strtoul (end + 1, &end, 0);
  if (errno || *end || byte > 255)
    usage ();
  if (posix_memalign (&buf, 4096, *len))
    abort ();
  memset (buf, (int) byte, *len);
  return buf;
}

static void
submit_aio (const char *arg)
{
  uint64_t off, len;
  void *buf = parse_write (arg, &off, &len);
  struct iocb *cb = &iocbs[submitted], *list[1] = { cb };
  long r;

  if (submitted == MAX_AIO)
    usage ();
  memset (cb, 0, sizeof *cb);
  cb->aio_lio_opcode = IOCB_CMD_PWRITE;
  cb->aio_fildes = fd;
  cb->aio_buf = (uintptr_t) buf;
  cb->aio_nbytes = len;
  cb->aio_offset = (int64_t) off;
  r = syscall (SYS_io_submit, ctx, 1L, list);
  if (r == 1)
    submitted++;
  else
    free (buf);
  report ("submit", r == 1 ? 0 : -1);
}

/* Results in submission order, whatever order they came in. */
static void
reap (void)
{
  struct io_event ev[MAX_AIO];
  long long res[MAX_AIO];

  while (reaped < submitted) {
    long n = syscall (SYS_io_getevents, ctx, 1L, (long) MAX_AIO, ev, NULL);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      report ("reap", -1);
      return;
    }
    for (long i = 0; i < n; i++)
      res[(struct iocb *) (uintptr_t) ev[i].obj - iocbs] = ev[i].res;
    reaped += n;
  }
  for (unsigned i = 0; i < submitted; i++) {
    report_errno ("aio", res[i] < 0 ? -1 : res[i], (int) -res[i]);
    free ((void *) (uintptr_t) iocbs[i].aio_buf);
  }
  submitted = reaped = 0;
}

static ssize_t
sync_op (const char *op)
{
  if (!strcmp (op, "fsync"))
    return fsync (fd);
  if (!strcmp (op, "dupclose")) {
    int copy = dup (fd);
    return copy < 0 ? -1 : close (copy);
  }
  usage ();
}

static void *
bg_run (void *arg)
{
  (void) arg;
  bg_result = sync_op (bg_op);
  bg_errno = errno;
  return NULL;
}

static void
run_op (const char *op)
{
  char line[64];

  if (!strncmp (op, "pwrite:", 7) || !strncmp (op, "pwrite2:", 8)) {
    bool second = op[6] == '2';
    uint64_t off, len;
    void *buf = parse_write (op + (second ? 8 : 7), &off, &len);
    report (second ? "pwrite2" : "pwrite",
            pwrite (second ? fd2 : fd, buf, len, (off_t) off));
    free (buf);
  }
  else if (!strncmp (op, "aio:", 4))
    submit_aio (op + 4);
  else if (!strcmp (op, "reap"))
    reap ();
  else if (!strcmp (op, "fsync") || !strcmp (op, "dupclose"))
    report (op, sync_op (op));
  else if (!strncmp (op, "bg:", 3)) {
    bg_op = op + 3;
    if (strcmp (bg_op, "fsync") && strcmp (bg_op, "dupclose"))
      usage ();
    if (pthread_create (&bg, NULL, bg_run, NULL))
      abort ();
    report ("bg", 0);
  }
  else if (!strcmp (op, "join")) {
    pthread_join (bg, NULL);
    report_errno (bg_op, bg_result, bg_errno);
  }
  else if (!strncmp (op, "open2:", 6)) {
    fd2 = open (path, parse_flags (op + 6));
    report ("open2", fd2 < 0 ? -1 : 0);
  }
  else if (!strcmp (op, "fsync2"))
    report ("fsync2", fsync (fd2));
  else if (!strcmp (op, "close2"))
    report ("close2", close (fd2));
  else if (!strcmp (op, "step")) {
    printf ("step\n");
    fflush (stdout);
    if (fgets (line, sizeof line, stdin) == NULL)
      exit (1);
  }
  else
    usage ();
}

int
main (int argc, char *argv[])
{
  if (argc < 3)
    usage ();
  path = argv[1];
  if (syscall (SYS_io_setup, (long) MAX_AIO, &ctx) < 0) {
    perror ("aioprobe: io_setup");
    return 1;
  }
  fd = open (path, parse_flags (argv[2]));
  report ("open", fd < 0 ? -1 : 0);
  if (fd < 0)
    return 0;
  for (int i = 3; i < argc; i++)
    run_op (argv[i]);
  if (submitted > reaped)
    reap ();
  report ("close", close (fd));
  return 0;
}
