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

/* The attribute's text, NUL-terminated, or NULL with errno set.  Asks for
 * the size first; counters that grew in between make the read fail with
 * ERANGE, so that is tried again with more room. */
static char *
read_stats (const char *path)
{
  for (int tries = 0; tries < 5; tries++) {
    ssize_t size = getxattr (path, STATS_XATTR, NULL, 0), n;
    char *text;

    if (size < 0)
      return NULL;
    text = malloc ((size_t) size + 4096 + 1);
    if (text == NULL)
      return NULL;
    n = getxattr (path, STATS_XATTR, text, (size_t) size + 4096);
    if (n >= 0) {
      text[n] = '\0';
      return text;
    }
    free (text);
    if (errno != ERANGE)
      return NULL;
  }
  return NULL;
}

int
stats_command (const char *mountpoint)
{
  char abs[PATH_MAX], *text;
  int r;

  if (mountpoint == NULL) {
    log_error ("--stats needs the mount point: iserfs --stats MOUNTPOINT");
    return 1;
  }
  if (realpath (mountpoint, abs) == NULL) {
    log_error ("--stats %s: %m", mountpoint);
    return 1;
  }
  text = read_stats (abs);
  if (text == NULL) {
    if (errno == ENODATA || errno == ENOTSUP)
      log_error ("--stats %s: not the root of an iserfs mount (it has no "
                 "%s attribute)", mountpoint, STATS_XATTR);
    else
      log_error ("--stats %s: cannot read %s: %m", mountpoint, STATS_XATTR);
    return 1;
  }
  r = stats_write_json (stdout, abs, text);
  free (text);
  if (r < 0) {
    log_error ("--stats: cannot write to standard output");
    return 1;
  }
  return 0;
}
