/* proxy: the plumbing shared by the test suite's TCP proxies (see proxy.h). */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy.h"

struct proxy_opt proxy = { .name = "proxy", .host = "127.0.0.1" };

static void
vsay (const char *suffix, const char *fmt, va_list ap)
{
  char line[512];

  vsnprintf (line, sizeof line, fmt, ap);
  fprintf (stderr, "%s: %s%s\n", proxy.name, line, suffix);
}

void
proxy_say (const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  vsay ("", fmt, ap);
  va_end (ap);
}

void
proxy_usage_error (const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  vsay (" (try --help)", fmt, ap);
  va_end (ap);
  exit (2);
}

bool
proxy_number (const char *s, uint64_t *v)
{
  char *end;

  errno = 0;
  *v = strtoull (s, &end, 10);
  return !(errno || end == s || *end || s[0] == '-');
}

const char *
proxy_connect_host (const char *s)
{
  static char host[64];
  const char *colon = strrchr (s, ':');

  if (colon == NULL || colon == s || (size_t) (colon - s) >= sizeof host)
    proxy_usage_error ("--connect: expected HOST:PORT, got '%s'", s);
  memcpy (host, s, (size_t) (colon - s));
  host[colon - s] = '\0';
  proxy.host = host;
  return colon + 1;
}

int
proxy_listen (int *port)
{
  struct sockaddr_in sa = { .sin_family = AF_INET };
  socklen_t salen = sizeof sa;
  int lfd, one = 1;

  lfd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (lfd < 0) {
    fprintf (stderr, "%s: socket: %s\n", proxy.name, strerror (errno));
    return -1;
  }
  setsockopt (lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  sa.sin_port = htons ((uint16_t) proxy.listen_port);
  if (bind (lfd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen (lfd, 16) < 0
      || getsockname (lfd, (struct sockaddr *) &sa, &salen) < 0) {
    fprintf (stderr, "%s: cannot listen on 127.0.0.1:%d: %s\n", proxy.name,
             proxy.listen_port, strerror (errno));
    close (lfd);
    return -1;
  }
  *port = ntohs (sa.sin_port);
  return lfd;
}

int
proxy_write_port_file (int port)
{
  char tmp[4096];
  FILE *fp;

  if (proxy.port_file == NULL)
    return 0;
  snprintf (tmp, sizeof tmp, "%s.tmp", proxy.port_file);
  fp = fopen (tmp, "w");
  if (fp == NULL || fprintf (fp, "%d\n", port) < 0
      || fclose (fp) != 0 || rename (tmp, proxy.port_file) < 0) {
    fprintf (stderr, "%s: cannot write %s: %s\n", proxy.name, proxy.port_file,
             strerror (errno));
    return -1;
  }
  return 0;
}

static int
connect_upstream (void)
{
  struct sockaddr_in sa = { .sin_family = AF_INET };
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

  if (fd < 0)
    return -1;
  sa.sin_port = htons ((uint16_t) proxy.port);
  if (inet_pton (AF_INET, proxy.host, &sa.sin_addr) != 1
      || connect (fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
    close (fd);
    return -1;
  }
  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

bool
proxy_accept (int lfd, bool room, int *cfd, int *sfd)
{
  int one = 1;

  *cfd = accept4 (lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (*cfd < 0)
    return false;
  if (!room) {
    proxy_say ("too many connections; refusing one");
    close (*cfd);
    return false;
  }
  /* A refused upstream looks like a target that is down: the client sees
   * its connection close, as it would against the target itself. */
  *sfd = connect_upstream ();
  if (*sfd < 0) {
    proxy_say ("upstream %s:%d: %s; closing the client connection",
               proxy.host, proxy.port, strerror (errno));
    close (*cfd);
    return false;
  }
  setsockopt (*cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return true;
}

ssize_t
proxy_read (int fd, void *b, size_t max, bool *eof)
{
  ssize_t n = read (fd, b, max);

  if (n == 0)
    *eof = true;
  else if (n < 0)
    return errno == EAGAIN || errno == EINTR ? 0 : -1;
  return n;
}

ssize_t
proxy_write (int fd, const void *b, size_t *off, size_t *len)
{
  ssize_t n = write (fd, (const char *) b + *off, *len - *off);

  if (n < 0)
    return errno == EAGAIN || errno == EINTR ? 0 : -1;
  if ((*off += (size_t) n) == *len)
    *off = *len = 0;
  return n;
}

void
proxy_catch (void (*handler) (int), const int *sigs)
{
  struct sigaction act = { .sa_handler = handler };

  sigemptyset (&act.sa_mask);
  for (; *sigs; sigs++)
    sigaction (*sigs, &act, NULL);
  signal (SIGPIPE, SIG_IGN);
}
