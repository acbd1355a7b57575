/* faultproxy: a TCP proxy that breaks connections on purpose.
 *
 * It sits between iserfs and tgtd on 127.0.0.1 and, for each connection it
 * accepts, picks (from a seeded PRNG, so a run is reproducible) how many
 * bytes to pass before a fault: either the connection is dropped (both
 * sockets closed, as when a cable is pulled or a NAT forgets it) or stalled
 * (nothing moves for a while, as on a congested or flapping link).  After
 * --max-faults faults, or on SIGUSR1, it stops injecting and is a plain
 * proxy; SIGUSR2 resumes.  That lets a test end with a clean path and check
 * that nothing was lost.
 *
 * One thread, one poll() loop, no dependencies (the plumbing it shares
 * with aluaproxy is in proxy.c).  Every fault and every connection is
 * logged on stderr, one line each, so a failing test shows exactly what
 * was done to the traffic.
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proxy.h"

#define MAX_CONNS 64
#define BUF_SIZE (64 * 1024)

enum fault { FAULT_DROP, FAULT_STALL };
enum mode { MODE_DROP, MODE_STALL, MODE_MIX };

/* One direction of a proxied connection: bytes read from `from` and not
 * yet written to `to`. */
struct pipe_ {
  int from, to;
  char buf[BUF_SIZE];
  size_t len, off;
  bool eof;
};

struct conn {
  bool used;
  unsigned id;
  struct pipe_ up, down;        /* client->server, server->client */
  uint64_t passed;              /* bytes forwarded, both directions */
  uint64_t fault_at;            /* inject when passed reaches this; 0 = never */
  enum fault fault;
  int64_t stalled_until;        /* ms clock; 0 = not stalled */
};

static struct {
  uint64_t seed;
  uint64_t drop_min, drop_max;
  unsigned stall_ms;
  enum mode mode;
  long max_faults;              /* -1: unlimited */
} opt = {
  .seed = 1, .drop_min = 1, .drop_max = 1 << 20, .stall_ms = 3000,
  .mode = MODE_DROP, .max_faults = -1,
};

static struct conn conns[MAX_CONNS];
static unsigned next_id = 1;
static long faults_done;
static uint64_t rng;
static volatile sig_atomic_t injecting = 1, quit;

/* The names the log calls in this file have always used. */
#define say proxy_say
#define usage_error proxy_usage_error

/* splitmix64: tiny, seedable, good enough to choose byte counts. */
static uint64_t
next_random (void)
{
  uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);

  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static int64_t
now_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
on_signal (int sig)
{
  if (sig == SIGUSR1)
    injecting = 0;
  else if (sig == SIGUSR2)
    injecting = 1;
  else
    quit = 1;
}

static bool
may_inject (void)
{
  return injecting && (opt.max_faults < 0 || faults_done < opt.max_faults);
}

/* Draw the next connection's fault from the PRNG.  Every connection draws
 * the same number of values whether or not injection is on, so the
 * sequence of choices depends only on the seed.  While injection is off
 * the fault stays pending and happens as soon as it is turned on. */
static void
plan_fault (struct conn *c)
{
  uint64_t span = opt.drop_max - opt.drop_min + 1;
  uint64_t at = opt.drop_min + next_random () % span;
  uint64_t kind = next_random ();

  c->fault_at = c->passed + at;
  if (opt.mode == MODE_MIX)
    c->fault = kind & 1 ? FAULT_STALL : FAULT_DROP;
  else
    c->fault = opt.mode == MODE_STALL ? FAULT_STALL : FAULT_DROP;
}

static void
conn_close (struct conn *c, const char *why)
{
  say ("conn %u: closed after %" PRIu64 " bytes (%s)", c->id, c->passed, why);
  close (c->up.from);
  close (c->up.to);
  c->used = false;
}

static void
accept_one (int lfd)
{
  struct conn *c = NULL;
  int cfd, sfd;

  for (int i = 0; i < MAX_CONNS; i++)
    if (!conns[i].used) {
      c = &conns[i];
      break;
    }
  if (!proxy_accept (lfd, c != NULL, &cfd, &sfd))
    return;
  memset (c, 0, sizeof *c);
  c->used = true;
  c->id = next_id++;
  c->up.from = c->down.to = cfd;
  c->up.to = c->down.from = sfd;
  plan_fault (c);
  if (c->fault_at)
    say ("conn %u: will %s after %" PRIu64 " bytes", c->id,
         c->fault == FAULT_DROP ? "drop" : "stall", c->fault_at);
  else
    say ("conn %u: no fault", c->id);
}

/* How many bytes may pass before the fault point (so a drop happens after
 * exactly fault_at bytes, not at the end of some larger read). */
static size_t
allowance (const struct conn *c)
{
  if (c->fault_at == 0 || c->passed >= c->fault_at)
    return BUF_SIZE;
  return c->fault_at - c->passed < BUF_SIZE ? c->fault_at - c->passed : BUF_SIZE;
}

/* Returns false if the connection has ended. */
static bool
pump (struct conn *c, struct pipe_ *p, short rev_from, short rev_to)
{
  if (p->len == 0 && !p->eof && (rev_from & (POLLIN | POLLHUP | POLLERR))) {
    ssize_t n = proxy_read (p->from, p->buf, allowance (c), &p->eof);

    if (n < 0)
      return false;
    if (n > 0) {
      p->len = (size_t) n;
      p->off = 0;
    }
  }
  if (p->len > p->off && (rev_to & POLLOUT)) {
    ssize_t n = proxy_write (p->to, p->buf, &p->off, &p->len);

    if (n < 0)
      return false;
    c->passed += (uint64_t) n;
  }
  if (p->eof && p->len == 0)
    return false;               /* half-close is not worth modelling */
  return true;
}

static void
check_fault (struct conn *c)
{
  if (c->fault_at == 0 || c->passed < c->fault_at || c->stalled_until)
    return;
  if (!may_inject ())
    return;
  faults_done++;
  if (c->fault == FAULT_DROP) {
    say ("fault %ld: conn %u: dropping after %" PRIu64 " bytes", faults_done,
         c->id, c->passed);
    conn_close (c, "injected drop");
    return;
  }
  say ("fault %ld: conn %u: stalling %u ms after %" PRIu64 " bytes",
       faults_done, c->id, opt.stall_ms, c->passed);
  c->stalled_until = now_ms () + opt.stall_ms;
}

static void
end_stall (struct conn *c, int64_t now)
{
  if (c->stalled_until == 0 || now < c->stalled_until)
    return;
  c->stalled_until = 0;
  /* A stalled connection lives on: plan its next fault from here. */
  plan_fault (c);
  say ("conn %u: stall over; next %s after %" PRIu64 " more bytes", c->id,
       c->fault == FAULT_DROP ? "drop" : "stall", c->fault_at - c->passed);
}

static short
events_for (const struct pipe_ *p, bool from_side)
{
  if (from_side)
    return p->len == 0 && !p->eof ? POLLIN : 0;
  return p->len > p->off ? POLLOUT : 0;
}

static int
serve (int lfd)
{
  while (!quit) {
    struct pollfd pfd[1 + 2 * MAX_CONNS];
    int idx[MAX_CONNS], n = 1, timeout = 1000;
    int64_t now = now_ms ();

    pfd[0] = (struct pollfd) { .fd = lfd, .events = POLLIN };
    for (int i = 0; i < MAX_CONNS; i++) {
      struct conn *c = &conns[i];

      idx[i] = -1;
      if (!c->used)
        continue;
      end_stall (c, now);
      if (c->stalled_until) {
        int64_t left = c->stalled_until - now;
        if (left < timeout)
          timeout = (int) left;
        continue;               /* stalled: not even watched */
      }
      idx[i] = n;
      pfd[n++] = (struct pollfd) {
        .fd = c->up.from,
        .events = events_for (&c->up, true) | events_for (&c->down, false),
      };
      pfd[n++] = (struct pollfd) {
        .fd = c->down.from,
        .events = events_for (&c->down, true) | events_for (&c->up, false),
      };
    }
    if (poll (pfd, n, timeout) < 0) {
      if (errno == EINTR)
        continue;
      perror ("faultproxy: poll");
      return 1;
    }
    if (pfd[0].revents & POLLIN)
      accept_one (lfd);
    for (int i = 0; i < MAX_CONNS; i++) {
      struct conn *c = &conns[i];
      short cli, srv;

      if (!c->used || idx[i] < 0)
        continue;
      cli = pfd[idx[i]].revents;
      srv = pfd[idx[i] + 1].revents;
      if (!pump (c, &c->up, cli, srv) || !pump (c, &c->down, srv, cli)) {
        conn_close (c, "peer closed");
        continue;
      }
      check_fault (c);
    }
  }
  say ("exiting after %ld faults", faults_done);
  return 0;
}

static uint64_t
parse_u64 (const char *what, const char *s)
{
  uint64_t v;

  if (!proxy_number (s, &v))
    usage_error ("%s: '%s' is not a non-negative number", what, s);
  return v;
}

static void
parse_range (const char *s)
{
  const char *dash = strchr (s, '-');
  char lo[32];

  if (dash == NULL) {
    opt.drop_min = opt.drop_max = parse_u64 ("--after", s);
  }
  else {
    if ((size_t) (dash - s) >= sizeof lo)
      usage_error ("--after: '%s' is not MIN-MAX", s);
    memcpy (lo, s, dash - s);
    lo[dash - s] = '\0';
    opt.drop_min = parse_u64 ("--after", lo);
    opt.drop_max = parse_u64 ("--after", dash + 1);
  }
  if (opt.drop_min == 0 || opt.drop_min > opt.drop_max)
    usage_error ("--after: need 1 <= MIN <= MAX, got '%s'", s);
}

static void
parse_upstream (const char *s)
{
  uint64_t port = parse_u64 ("--connect port", proxy_connect_host (s));

  if (port == 0 || port > 65535)
    usage_error ("--connect: port out of range in '%s'", s);
  proxy.port = (int) port;
}

static void
usage (void)
{
  printf (
"Usage: faultproxy --connect HOST:PORT [OPTIONS]\n"
"Forward TCP connections from 127.0.0.1 to HOST:PORT, breaking them on purpose.\n"
"\n"
"  --listen PORT        port to listen on (default 0: any free port)\n"
"  --port-file FILE     write the listening port there once ready\n"
"  --seed N             PRNG seed (default 1): same seed, same faults\n"
"  --after MIN-MAX      fault after a random byte count in this range,\n"
"                       counted over both directions (default 1-1048576)\n"
"  --mode drop|stall|mix  what a fault does (default drop)\n"
"  --stall MS           how long a stall lasts (default 3000)\n"
"  --max-faults N       stop injecting after N faults (default: never)\n"
"\n"
"SIGUSR1 stops injecting (a plain proxy from then on), SIGUSR2 resumes,\n"
"SIGTERM/SIGINT exit.\n");
}

int
main (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "connect", required_argument, NULL, 'c' },
    { "listen", required_argument, NULL, 'l' },
    { "port-file", required_argument, NULL, 'p' },
    { "seed", required_argument, NULL, 's' },
    { "after", required_argument, NULL, 'a' },
    { "mode", required_argument, NULL, 'm' },
    { "stall", required_argument, NULL, 't' },
    { "max-faults", required_argument, NULL, 'n' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  int c, lfd, port;
  uint64_t v;

  proxy.name = "faultproxy";
  while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case 'c': parse_upstream (optarg); break;
    case 'l':
      v = parse_u64 ("--listen", optarg);
      if (v > 65535)
        usage_error ("--listen: port %s out of range", optarg);
      proxy.listen_port = (int) v;
      break;
    case 'p': proxy.port_file = optarg; break;
    case 's': opt.seed = parse_u64 ("--seed", optarg); break;
    case 'a': parse_range (optarg); break;
    case 'm':
      if (!strcmp (optarg, "drop")) opt.mode = MODE_DROP;
      else if (!strcmp (optarg, "stall")) opt.mode = MODE_STALL;
      else if (!strcmp (optarg, "mix")) opt.mode = MODE_MIX;
      else usage_error ("--mode: expected drop, stall or mix, got '%s'", optarg);
      break;
    case 't':
      v = parse_u64 ("--stall", optarg);
      if (v > 600000)
        usage_error ("--stall: at most 600000 ms");
      opt.stall_ms = (unsigned) v;
      break;
    case 'n':
      v = parse_u64 ("--max-faults", optarg);
      if (v > 1000000)
        usage_error ("--max-faults: at most 1000000");
      opt.max_faults = (long) v;
      break;
    case 'h': usage (); return 0;
    default: usage_error ("bad option");
    }
  }
  if (optind != argc)
    usage_error ("unexpected argument '%s'", argv[optind]);
  if (proxy.port == 0)
    usage_error ("--connect HOST:PORT is required");
  rng = opt.seed;

  proxy_catch (on_signal, (const int[]) { SIGUSR1, SIGUSR2, SIGTERM, SIGINT, 0 });
  if ((lfd = proxy_listen (&port)) < 0)
    return 1;
  say ("listening on 127.0.0.1:%d -> %s:%d, seed %" PRIu64 ", after %" PRIu64
       "-%" PRIu64 ", max faults %ld", port, proxy.host, proxy.port, opt.seed,
       opt.drop_min, opt.drop_max, opt.max_faults);
  if (proxy_write_port_file (port) < 0)
    return 1;
  return serve (lfd);
}
