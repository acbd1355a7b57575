/* Logging.  Before the mount exists, messages go to stderr as "iserfs: ...",
 * one line each, because that is where a person running the command looks.
 * After daemonizing stderr is /dev/null, so messages go to syslog. */
#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "log.h"

static bool use_syslog;
static bool debug;

void
log_use_syslog (bool on)
{
  if (on && !use_syslog)
    openlog ("iserfs", LOG_PID, LOG_DAEMON);
  use_syslog = on;
}

void
log_set_debug (bool on)
{
  debug = on;
}

bool
log_debug_enabled (void)
{
  return debug;
}

static void
vlog (int prio, const char *fmt, va_list ap)
{
  if (use_syslog)
    vsyslog (prio, fmt, ap);
  else {
    /* One fprintf so lines from several threads do not interleave. */
    char line[1024];
    vsnprintf (line, sizeof line, fmt, ap);
    fprintf (stderr, "iserfs: %s\n", line);
  }
}

void
log_error (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  vlog (LOG_ERR, fmt, ap);
  va_end (ap);
}

void
log_info (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  vlog (LOG_INFO, fmt, ap);
  va_end (ap);
}

void
log_debug (const char *fmt, ...)
{
  va_list ap;
  if (!debug)
    return;
  va_start (ap, fmt);
  vlog (LOG_DEBUG, fmt, ap);
  va_end (ap);
}

/* libiscsi's error strings may span several lines; a person wants one. */
void
first_line (char *dst, size_t len, const char *src)
{
  size_t n = strcspn (src ? src : "", "\n");

  if (n >= len)
    n = len - 1;
  memcpy (dst, src ? src : "", n);
  dst[n] = '\0';
}

