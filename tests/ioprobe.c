/* ioprobe: run a sequence of system calls on one file descriptor and print
 * what each returned, so shell tests can assert exact return counts and
 * errno values (a short write, ENOSPC, EFBIG, EROFS) that dd and friends
 * only report as prose.
 *
 *   ioprobe FILE FLAGS OP...
 *
 * FLAGS is a comma list of r, w, rw, trunc, direct, sync.  Each OP is
 *   pwrite:OFFSET:LENGTH:BYTE   write LENGTH copies of BYTE (0..255)
 *   pread:OFFSET:LENGTH         read, print the count
 *   punch:OFFSET:LENGTH         fallocate(PUNCH_HOLE|KEEP_SIZE)
 *   ftruncate:SIZE | fsync | fstat (prints the size)
 *   dupclose                    close a dup of the descriptor (FUSE sends
 *                               FLUSH, as for a child's inherited copy)
 * One line per step: "open ok", "pwrite ok N", "pread ok N", or
 * "<op> err ENAME".  The process exits 0 unless the usage is wrong, so
 * the caller decides what is expected.  If open fails nothing else runs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage (void) __attribute__((noreturn));
static void
usage (void)
{
  fprintf (stderr, "usage: ioprobe FILE r|w|rw[,trunc,direct,sync] "
           "pwrite:OFF:LEN:BYTE|pread:OFF:LEN|punch:OFF:LEN|ftruncate:SIZE|fsync|fstat|dupclose...\n");
  exit (2);
}

static uint64_t
number (const char *s)
{
  char *end;
  errno = 0;
  unsigned long long v = strtoull (s, &end, 0);
  if (errno || end == s || (*end && *end != ':'))
    usage ();
  return v;
}

#include "probe_flags.h"

/* Print the outcome of one step: a count, or the errno's name. */
static void
report (const char *op, ssize_t r)
{
  if (r < 0)
    printf ("%s err %s\n", op, strerrorname_np (errno));
  else
    printf ("%s ok %zd\n", op, r);
  fflush (stdout);
}

/* Buffers are page aligned so the same ops also work with O_DIRECT. */
static void *
buffer (size_t len)
{
  void *p;
  if (posix_memalign (&p, 4096, len ? len : 1))
    abort ();
  return p;
}

static void
run_op (int fd, const char *op)
{
  const char *arg = strchr (op, ':');
  arg = arg ? arg + 1 : "";
  if (!strncmp (op, "pwrite:", 7)) {
    uint64_t off = number (arg);
    const char *p2 = strchr (arg, ':');
    if (!p2) usage ();
    uint64_t len = number (p2 + 1);
    const char *p3 = strchr (p2 + 1, ':');
    if (!p3) usage ();
    char *buf = buffer (len);
    memset (buf, (int) number (p3 + 1), len);
    report ("pwrite", pwrite (fd, buf, len, (off_t) off));
    free (buf);
  }
  else if (!strncmp (op, "pread:", 6)) {
    uint64_t off = number (arg);
    const char *p2 = strchr (arg, ':');
    if (!p2) usage ();
    uint64_t len = number (p2 + 1);
    char *buf = buffer (len);
    report ("pread", pread (fd, buf, len, (off_t) off));
    free (buf);
  }
  else if (!strncmp (op, "punch:", 6)) {
    uint64_t off = number (arg);
    const char *p2 = strchr (arg, ':');
    if (!p2) usage ();
    report ("punch", fallocate (fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                (off_t) off, (off_t) number (p2 + 1)));
  }
  else if (!strncmp (op, "ftruncate:", 10))
    report ("ftruncate", ftruncate (fd, (off_t) number (arg)));
  else if (!strcmp (op, "fsync"))
    report ("fsync", fsync (fd));
  else if (!strcmp (op, "dupclose")) {
    int copy = dup (fd);
    report ("dupclose", copy < 0 ? -1 : close (copy));
  }
  else if (!strcmp (op, "fstat")) {
    struct stat st;
    report ("fstat", fstat (fd, &st) ? -1 : (ssize_t) st.st_size);
  }
  else
    usage ();
}

int
main (int argc, char *argv[])
{
  if (argc < 3)
    usage ();
  int fd = open (argv[1], parse_flags (argv[2]));
  report ("open", fd < 0 ? -1 : 0);
  if (fd < 0)
    return 0;
  for (int i = 3; i < argc; i++)
    run_op (fd, argv[i]);
  report ("close", close (fd));
  return 0;
}
