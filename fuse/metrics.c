/* The metrics file writer (see metrics.h). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "stats.h"
#include "stats_export.h"

static struct {
  pthread_t thread;
  bool running, stop, failing;
  pthread_mutex_t lock;
  pthread_cond_t cond;          /* signalled by metrics_stop */
  unsigned interval_s;
  char *mountpoint, *url;
  char *path, *tmp;             /* DIR/iserfs-LABEL.prom and its .tmp */
} m = {
  .lock = PTHREAD_MUTEX_INITIALIZER,
};

int
metrics_check_dir (const char *dir)
{
  struct stat st;
  int r;

  if (dir[0] != '/') {
    log_error ("metrics=%s: give an absolute directory path", dir);
    return -EINVAL;
  }
  if (stat (dir, &st) < 0) {
    r = -errno;
    log_error ("metrics=%s: %s", dir, strerror (-r));
    return r;
  }
  if (!S_ISDIR (st.st_mode)) {
    log_error ("metrics=%s: not a directory", dir);
    return -ENOTDIR;
  }
  if (access (dir, W_OK | X_OK) < 0) {
    r = -errno;
    log_error ("metrics=%s: cannot write there: %s", dir, strerror (-r));
    return r;
  }
  return 0;
}

/* The mount point as one file name, as systemd-escape --path makes it:
 * "/mnt/x" -> "mnt-x", "/" -> "-"; characters other than letters, digits,
 * ':', '_' and '.' (and a leading '.') become \xHH, so two mount points
 * never share a file.  NULL: out of memory. */
static char *
label_of (const char *mountpoint)
{
  size_t n = strlen (mountpoint);
  char *out = malloc (4 * n + 2), *o = out;
  const char *p = mountpoint;

  if (out == NULL)
    return NULL;
  while (*p == '/')
    p++;
  if (*p == '\0') {
    strcpy (out, "-");
    return out;
  }
  for (; *p; p++) {
    unsigned char c = (unsigned char) *p;

    if (c == '/') {
      /* Runs of slashes and a trailing one are one separator or none. */
      if (p[1] != '/' && p[1] != '\0')
        *o++ = '-';
    }
    else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
             || (c >= '0' && c <= '9') || c == ':' || c == '_'
             || (c == '.' && o != out))
      *o++ = (char) c;
    else
      o += sprintf (o, "\\x%02x", c);
  }
  *o = '\0';
  return out;
}

/* Write the file once: the attribute's text, formatted, into the .tmp
 * file, flushed, then renamed over the .prom file.  0 or -errno. */
static int
write_once (void)
{
  char *text = NULL;
  size_t len;
  FILE *mem = open_memstream (&text, &len), *fp;
  int fd, r;

  if (mem == NULL)
    return -ENOMEM;
  stats_print (mem);
  if (fclose (mem) != 0) {
    free (text);
    return -ENOMEM;
  }
  fd = open (m.tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || (fp = fdopen (fd, "w")) == NULL) {
    r = -errno;
    if (fd >= 0)
      close (fd);
    free (text);
    return r;
  }
  r = stats_write_prometheus (fp, m.mountpoint, m.url, text);
  free (text);
  if (fclose (fp) != 0 && r == 0)
    r = -errno;
  if (r == 0 && rename (m.tmp, m.path) < 0)
    r = -errno;
  if (r < 0)
    unlink (m.tmp);
  return r;
}

/* Write, and say so once when writing starts or stops failing (a full
 * disk must not fill the log every few seconds). */
static void
write_and_report (void)
{
  int r = write_once ();

  if (r < 0 && !m.failing)
    log_error ("metrics: cannot write %s: %s", m.path, strerror (-r));
  else if (r == 0 && m.failing)
    log_info ("metrics: writing %s again", m.path);
  m.failing = r < 0;
}

static void *
writer (void *arg)
{
  struct timespec next;

  (void) arg;
  clock_gettime (CLOCK_MONOTONIC, &next);
  pthread_mutex_lock (&m.lock);
  while (!m.stop) {
    next.tv_sec += m.interval_s;
    while (!m.stop
           && pthread_cond_timedwait (&m.cond, &m.lock, &next) != ETIMEDOUT)
      ;
    if (m.stop)
      break;
    pthread_mutex_unlock (&m.lock);
    write_and_report ();
    pthread_mutex_lock (&m.lock);
  }
  pthread_mutex_unlock (&m.lock);
  return NULL;
}

static void
free_names (void)
{
  free (m.mountpoint);
  free (m.url);
  free (m.path);
  free (m.tmp);
  m.mountpoint = m.url = m.path = m.tmp = NULL;
}

int
metrics_start (const char *dir, const char *mountpoint, const char *url,
               unsigned interval_s)
{
  pthread_condattr_t ca;
  char *label = label_of (mountpoint);
  int r;

  m.interval_s = interval_s;
  m.mountpoint = strdup (mountpoint);
  m.url = strdup (url);
  if (label == NULL || m.mountpoint == NULL || m.url == NULL
      || asprintf (&m.path, "%s/iserfs-%s.prom", dir, label) < 0
      || asprintf (&m.tmp, "%s.tmp", m.path) < 0) {
    free (label);
    free_names ();
    return -ENOMEM;
  }
  free (label);
  /* The first file now, so that it is there once the mount is. */
  write_and_report ();
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&m.cond, &ca);
  pthread_condattr_destroy (&ca);
  m.stop = false;
  r = pthread_create (&m.thread, NULL, writer, NULL);
  if (r != 0) {
    unlink (m.path);
    pthread_cond_destroy (&m.cond);
    free_names ();
    return -r;
  }
  m.running = true;
  return 0;
}

void
metrics_stop (void)
{
  if (!m.running)
    return;
  pthread_mutex_lock (&m.lock);
  m.stop = true;
  pthread_cond_signal (&m.cond);
  pthread_mutex_unlock (&m.lock);
  pthread_join (m.thread, NULL);
  pthread_cond_destroy (&m.cond);
  if (unlink (m.path) < 0 && errno != ENOENT)
    log_error ("metrics: cannot remove %s: %m", m.path);
  unlink (m.tmp);
  free_names ();
  m.running = false;
}
