/* See mountinfo.h.  A line is
 *   ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
 * with spaces, tabs, newlines and backslashes in the paths octal-escaped. */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mountinfo.h"

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

/* The n-th space-separated field of s (0-based), NUL-terminated in place;
 * *rest points after it.  NULL if there are fewer fields. */
static char *
field (char *s, int n, char **rest)
{
  char *f = NULL;

  for (int i = 0; i <= n; i++) {
    f = strsep (&s, " ");
    if (f == NULL)
      return NULL;
  }
  *rest = s;
  return f;
}

int
mountinfo_each (int (*fn) (const struct mountinfo_entry *e, void *opaque),
                void *opaque)
{
  FILE *fp = fopen ("/proc/self/mountinfo", "re");
  char *line = NULL;
  size_t cap = 0;
  int r = 0;

  if (fp == NULL)
    return -errno;
  while (r == 0 && getline (&line, &cap, fp) > 0) {
    struct mountinfo_entry e;
    char *sep = strstr (line, " - "), *rest, *majmin, *mnt, *fstype, *source;

    if (sep == NULL)
      continue;
    *sep = '\0';
    line[strcspn (line, "\n")] = '\0';
    sep[3 + strcspn (sep + 3, "\n")] = '\0';
    if ((majmin = field (line, 2, &rest)) == NULL
        || (mnt = field (rest, 1, &rest)) == NULL
        || (fstype = field (sep + 3, 0, &rest)) == NULL
        || (source = field (rest, 0, &rest)) == NULL)
      continue;
    unescape (mnt);
    unescape (source);
    e.majmin = majmin;
    e.mountpoint = mnt;
    e.fstype = fstype;
    e.source = source;
    r = fn (&e, opaque);
  }
  free (line);
  fclose (fp);
  return r;
}
