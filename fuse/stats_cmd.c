/* iserfs --stats (see stats_cmd.h). */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "log.h"
#include "stats.h"
#include "stats_cmd.h"
#include "stats_export.h"

/* The attribute's text, NUL-terminated, into *out (the caller frees it):
 * 0 or -errno.  Asks for the size first; counters that grew in between
 * make the read fail with ERANGE, so that is tried again with more room. */
static int
read_stats (const char *path, char **out)
{
  for (int tries = 0; tries < 5; tries++) {
    ssize_t size = getxattr (path, STATS_XATTR, NULL, 0), n;
    char *text;
    int r;

    if (size < 0)
      return -errno;
    text = malloc ((size_t) size + 4096 + 1);
    if (text == NULL)
      return -ENOMEM;
    n = getxattr (path, STATS_XATTR, text, (size_t) size + 4096);
    if (n >= 0) {
      text[n] = '\0';
      *out = text;
      return 0;
    }
    r = -errno;
    free (text);
    if (r != -ERANGE)
      return r;
  }
  return -ERANGE;
}

int
stats_command (const char *mountpoint)
{
  char abs[PATH_MAX], *text = NULL;
  int r;

  if (mountpoint == NULL) {
    log_error ("--stats needs the mount point: iserfs --stats MOUNTPOINT");
    return -EINVAL;
  }
  if (realpath (mountpoint, abs) == NULL) {
    r = -errno;
    log_error ("--stats %s: %s", mountpoint, strerror (-r));
    return r;
  }
  r = read_stats (abs, &text);
  if (r == -ENODATA || r == -ENOTSUP) {
    log_error ("--stats %s: not the root of an iserfs mount (it has no "
               "%s attribute)", mountpoint, STATS_XATTR);
    return r;
  }
  if (r < 0) {
    log_error ("--stats %s: cannot read %s: %s", mountpoint, STATS_XATTR,
               strerror (-r));
    return r;
  }
  r = stats_write_json (stdout, abs, text);
  free (text);
  if (r < 0)
    log_error ("--stats: cannot write to standard output");
  return r;
}
