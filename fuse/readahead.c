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
#include "readahead.h"

/* Undo mountinfo's octal escapes (\040 for a space, ...), in place. */
static void
unescape (char *s)
{
  char *out = s;

  for (; *s; s++) {
    if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0'
        && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
      *out++ = (char) ((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
      s += 3;
    }
    else
      *out++ = *s;
  }
  *out = '\0';
}

/* The "MAJ:MIN" of the newest FUSE mount on path, from mountinfo (not from
 * stat, which would ask our own, not yet running, FUSE loop). */
static int
mount_device (const char *path, char *dev, size_t devlen)
{
  FILE *fp = fopen ("/proc/self/mountinfo", "re");
  char *line = NULL;
  size_t cap = 0;
  int found = -1;

  if (fp == NULL)
    return -1;
  while (getline (&line, &cap, fp) > 0) {
    char majmin[64], mnt[PATH_MAX + 1];
    const char *sep = strstr (line, " - ");

    /* id parent MAJ:MIN root mountpoint ... - fstype source options */
    if (sep == NULL || strncmp (sep + 3, "fuse", 4) != 0
        || sscanf (line, "%*u %*u %63s %*s %4096s", majmin, mnt) != 2)
      continue;
    unescape (mnt);
    if (strcmp (mnt, path) == 0) {
      snprintf (dev, devlen, "%s", majmin);
      found = 0;
    }
  }
  free (line);
  fclose (fp);
  return found;
}

void
readahead_set (const char *abs_mountpoint, unsigned bytes, bool explicit)
{
  void (*say) (const char *, ...) = explicit ? log_error : log_debug;
  char dev[64], file[128];
  FILE *fp;

  if (mount_device (abs_mountpoint, dev, sizeof dev) < 0) {
    say ("readahead: cannot find the mount of %s in /proc/self/mountinfo",
         abs_mountpoint);
    return;
  }
  snprintf (file, sizeof file, "/sys/class/bdi/%s/read_ahead_kb", dev);
  fp = fopen (file, "we");
  if (fp == NULL) {
    say ("readahead: cannot open %s: %s", file, strerror (errno));
    return;
  }
  fprintf (fp, "%u\n", bytes / 1024);
  if (fclose (fp) != 0) {               /* the write happens at the flush */
    say ("readahead: cannot write %s: %s", file, strerror (errno));
    return;
  }
  log_debug ("read-ahead of the mount (bdi %s): %u KiB", dev, bytes / 1024);
}
