/* The kernel's read-ahead for the mount.
 *
 * The kernel gives a FUSE mount's backing device (bdi) the default
 * read-ahead of 128 KiB, and at INIT keeps the smaller of that and what the
 * filesystem asks for: through the protocol a filesystem can only lower it.
 * Root can raise it in /sys/class/bdi/MAJ:MIN/read_ahead_kb.  We write it
 * after the mount and before INIT is answered (our workers are not reading
 * yet), and ask for the same at INIT (fs_init), so the smaller of the two
 * is the value wanted.  Why it matters: buffered sequential reads (dd, cp)
 * keep only the read-ahead window in flight; measured with dd bs=1M of a
 * LUN file, cold cache, tgtd on /dev/shm, 128 KiB gave 495-859 MB/s and
 * 4 MiB 996-1051 MB/s.
 */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mountinfo.h"
#include "readahead.h"

struct find_dev {
  const char *path;
  char *dev;
  size_t devlen;
  bool found;
};

static int
match_mount (const struct mountinfo_entry *e, void *opaque)
{
  struct find_dev *f = opaque;

  /* The last match wins: the newest mount on the path is ours. */
  if (strncmp (e->fstype, "fuse", 4) == 0 && strcmp (e->mountpoint, f->path) == 0) {
    snprintf (f->dev, f->devlen, "%s", e->majmin);
    f->found = true;
  }
  return 0;
}

/* The "MAJ:MIN" of the newest FUSE mount on path, from mountinfo (not from
 * stat, which would ask our own, not yet running, FUSE loop): 0, -ENOENT
 * if there is none, or mountinfo's -errno. */
static int
mount_device (const char *path, char *dev, size_t devlen)
{
  struct find_dev f = { path, dev, devlen, false };
  int r = mountinfo_each (match_mount, &f);

  if (r < 0)
    return r;
  return f.found ? 0 : -ENOENT;
}

void
readahead_set (const char *abs_mountpoint, unsigned bytes, bool explicit)
{
  /* Explicitly asked for: a warning (the mount exists by now, and works
   * with the kernel's read-ahead); the default: a debug line. */
  void (*say) (const char *, ...) = explicit ? log_error : log_debug;
  char dev[64], file[128];
  FILE *fp;

  if (mount_device (abs_mountpoint, dev, sizeof dev) < 0) {
    say ("warning: readahead=%u not applied: no mount of %s in "
         "/proc/self/mountinfo; the mount keeps the kernel's read-ahead",
         bytes, abs_mountpoint);
    return;
  }
  snprintf (file, sizeof file, "/sys/class/bdi/%s/read_ahead_kb", dev);
  fp = fopen (file, "we");
  if (fp == NULL) {
    say ("warning: readahead=%u not applied: cannot open %s: %s; the mount "
         "keeps the kernel's read-ahead", bytes, file, strerror (errno));
    return;
  }
  fprintf (fp, "%u\n", bytes / 1024);
  if (fclose (fp) != 0) {               /* the write happens at the flush */
    say ("warning: readahead=%u not applied: cannot write %s: %s; the mount "
         "keeps the kernel's read-ahead", bytes, file, strerror (errno));
    return;
  }
  log_debug ("read-ahead of the mount (bdi %s): %u KiB", dev, bytes / 1024);
}
