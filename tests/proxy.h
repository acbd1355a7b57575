/* proxy: the plumbing shared by the test suite's TCP proxies.
 *
 * tests/faultproxy (breaks connections) and tests/aluaproxy (rewrites
 * iSCSI answers) are both one thread and one poll() loop that listen on
 * 127.0.0.1, open a connection upstream for each one they accept and move
 * bytes both ways.  This file owns what they do alike: the lines on stderr
 * (prefixed by the program's name), the checks of option values, the
 * listening socket and its --port-file, the upstream connection of an
 * accepted client, non-blocking reads and writes, signal set-up.  What each
 * does to the traffic, its connections and its poll loop stay in its own
 * file.
 *
 * Not thread safe (nothing here needs to be: one thread per proxy). */
#ifndef PROXY_H
#define PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Set by the proxy (host/port from --connect, listen_port from --listen,
 * port_file from --port-file), read here. */
struct proxy_opt {
  const char *name;             /* "faultproxy": prefixes every line */
  const char *host;             /* upstream, dotted IPv4 */
  int port;
  int listen_port;              /* 0: any free port */
  const char *port_file;
};
extern struct proxy_opt proxy;

/* "NAME: MESSAGE" on stderr, one line. */
void proxy_say (const char *fmt, ...)
  __attribute__ ((format (printf, 1, 2)));

/* "NAME: MESSAGE (try --help)" on stderr, exit status 2. */
void proxy_usage_error (const char *fmt, ...)
  __attribute__ ((format (printf, 1, 2), noreturn));

/* Whether s is a whole decimal number without a sign, stored in *v. */
bool proxy_number (const char *s, uint64_t *v);

/* --connect HOST:PORT: HOST into proxy.host (a usage error if there is
 * none); the PORT string returned, for the caller to check. */
const char *proxy_connect_host (const char *s);

/* Listen on 127.0.0.1:proxy.listen_port: the socket, non-blocking, or -1
 * with the reason said.  *port: the port it got. */
int proxy_listen (int *port);

/* Write port to proxy.port_file (if any) through a rename, so a poller
 * never reads half a number: 0, or -1 with the reason said. */
int proxy_write_port_file (int port);

/* Accept a client on lfd and connect upstream for it; room: whether the
 * caller has a slot for one more.  true with both sockets (non-blocking,
 * TCP_NODELAY) in *cfd and *sfd; false (said why, nothing left open) when
 * there is no room or upstream refuses, as a target that is down. */
bool proxy_accept (int lfd, bool room, int *cfd, int *sfd);

/* One non-blocking read of up to max bytes: the count; 0 when nothing
 * came (EAGAIN, EINTR) or at end of stream (*eof set); -1 on an error. */
ssize_t proxy_read (int fd, void *b, size_t max, bool *eof);

/* One non-blocking write of b[*off, *len): the count written (0 when the
 * socket is full), *off moved, both reset to 0 once all is out; -1 on an
 * error. */
ssize_t proxy_write (int fd, const void *b, size_t *off, size_t *len);

/* handler for each signal of sigs (ended by 0); SIGPIPE ignored. */
void proxy_catch (void (*handler) (int), const int *sigs);

#endif
