/* A TCP reachability check of a portal before libiscsi connects to it.
 * libiscsi reports a refused or unreachable portal only as a failed
 * reconnect; a person deserves "Connection refused" or "timed out". */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "portal.h"

/* Split "host", "host:port", "[v6]" or "[v6]:port" as libiscsi does.
 * 0, or -EINVAL for an unclosed or overlong "[v6]". */
static int
split_portal (const char *portal, char *host, size_t hostlen, char *port,
              size_t portlen)
{
  const char *colon;

  if (portal[0] == '[') {
    const char *close = strchr (portal, ']');
    if (close == NULL || (size_t) (close - portal - 1) >= hostlen)
      return -EINVAL;
    snprintf (host, hostlen, "%.*s", (int) (close - portal - 1), portal + 1);
    colon = close[1] == ':' ? close + 1 : NULL;
  }
  else {
    colon = strrchr (portal, ':');
    snprintf (host, hostlen, "%.*s",
              (int) (colon ? (size_t) (colon - portal) : strlen (portal)), portal);
  }
  snprintf (port, portlen, "%s", colon ? colon + 1 : "3260");
  return 0;
}

int
portal_check (const char *portal, char *err, size_t errlen)
{
  char host[256], port[32], *end;
  unsigned long n;

  if (split_portal (portal, host, sizeof host, port, sizeof port) < 0
      || host[0] == '\0') {
    snprintf (err, errlen, "invalid portal '%s'", portal);
    return -EINVAL;
  }
  n = strtoul (port, &end, 10);
  if (port[0] < '0' || port[0] > '9' || *end != '\0' || n == 0 || n > 65535) {
    snprintf (err, errlen, "invalid port '%s' (expected 1 to 65535)", port);
    return -EINVAL;
  }
  return 0;
}

int
portal_check_listed (const char *portal, char *err, size_t errlen)
{
  char bare[300], host[256], port[32];
  struct in6_addr a6;
  struct in_addr a4;
  int r;

  /* The portal group tag after the comma is no part of the address. */
  snprintf (bare, sizeof bare, "%.*s", (int) strcspn (portal, ","), portal);
  r = portal_check (bare, err, errlen);
  if (r < 0)
    return r;
  split_portal (bare, host, sizeof host, port, sizeof port);
  if ((inet_pton (AF_INET, host, &a4) == 1 && a4.s_addr == htonl (INADDR_ANY))
      || (inet_pton (AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_UNSPECIFIED (&a6))) {
    snprintf (err, errlen, "portal %s names no address", portal);
    return -EADDRNOTAVAIL;
  }
  return 0;
}

/* Connect to one address within timeout_ms: 0 or -errno. */
static int
connect_one (const struct addrinfo *ai, int timeout_ms)
{
  int fd = socket (ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                   ai->ai_protocol);
  int err = 0;                  /* SO_ERROR's: 0 or a positive errno */
  socklen_t len = sizeof err;
  struct pollfd pfd;

  if (fd < 0)
    return -errno;
  if (connect (fd, ai->ai_addr, ai->ai_addrlen) == 0)
    goto out;
  if (errno != EINPROGRESS) {
    err = errno;
    goto out;
  }
  pfd.fd = fd;
  pfd.events = POLLOUT;
  if (poll (&pfd, 1, timeout_ms) == 0)
    err = ETIMEDOUT;
  else if (getsockopt (fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
    err = errno;
 out:
  close (fd);
  return -err;
}

int
portal_probe (const char *portal, unsigned timeout, char *err, size_t errlen)
{
  char host[256], port[32];
  struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
  int e, last = 0;

  if (split_portal (portal, host, sizeof host, port, sizeof port) < 0) {
    snprintf (err, errlen, "invalid portal '%s'", portal);
    return -EINVAL;
  }
  e = getaddrinfo (host, port, &hints, &res);
  if (e != 0) {
    int r = e == EAI_SYSTEM && errno ? -errno
      : e == EAI_MEMORY ? -ENOMEM : -EHOSTUNREACH;

    snprintf (err, errlen, "cannot resolve portal %s: %s", portal,
              gai_strerror (e));
    return r;
  }
  for (ai = res; ai; ai = ai->ai_next)
    if ((last = connect_one (ai, (timeout ? timeout : 30) * 1000)) == 0)
      break;
  freeaddrinfo (res);
  if (last < 0) {
    snprintf (err, errlen, "cannot connect to portal %s: %s", portal,
              strerror (-last));
    return last;
  }
  return 0;
}
