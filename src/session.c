/* Sessions: login, the per-session event loop, and waking that loop from
 * other threads.  What the loop does with commands is the client's
 * (session.h; command.c). */
#include <config.h>

#include <errno.h>
#include <malloc.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include "lun.h"
#include "clock.h"
#include "log.h"
#include "login_error.h"
#include "memlock.h"
#include "portal.h"
#include "rdma_pool.h"
#include "session.h"
#include "splice.h"
#include "stats.h"

static void
libiscsi_log (int level, const char *message)
{
  log_debug ("libiscsi[%d]: %s", level, message);
}

/* libiscsi 1.19 allocates its iSER connection state (4280 bytes) with plain
 * malloc and never initialises some of it: the head of its list of transmit
 * descriptors is appended to as found, so a non-zero leftover there makes
 * its CM thread follow a wild pointer during connect (valgrind: conditional
 * jump on an uninitialised value from a block allocated in
 * iscsi_init_transport).  glibc can fill every new block with a byte
 * (M_PERTURB fills with the value's complement): ask for zeros while that
 * block is allocated.  Fixed at the source in contrib/libiscsi. */
static int
init_iser_transport (struct iscsi_context *iscsi)
{
  int r;

#ifndef HAVE_LIBISCSI_1_20
  mallopt (M_PERTURB, 0xff);
#endif
  r = iscsi_init_transport (iscsi, ISER_TRANSPORT);
#ifndef HAVE_LIBISCSI_1_20
  mallopt (M_PERTURB, 0);
#endif
  return r;
}

/* Settings of a context before its login.  0, or -errno with the reason
 * in err. */
static int
configure_context (struct iscsi_context *iscsi, const struct session_config *cfg,
                   char *err, size_t errlen)
{
#ifndef HAVE_LIBISCSI_1_20
  /* 1.19's iSER login lands every response after the first in a 204-byte
   * receive buffer, so a CHAP exchange cannot work: say so plainly. */
  if (cfg->iser && cfg->password) {
    snprintf (err, errlen, "CHAP over iSER needs libiscsi 1.20 or newer "
              "(this iserfs is built with %s)", LIBISCSI_VERSION);
    return -ENOTSUP;
  }
#endif
  if (cfg->iser && init_iser_transport (iscsi) != 0) {
    snprintf (err, errlen, "cannot use the iSER transport: %s",
              iscsi_get_error (iscsi));
    return -EINVAL;
  }
  /* libiscsi 1.19's small-allocation cache and its iSER transport do not
   * agree on buffer sizes: a cached 32-byte block comes back as a
   * 48-byte one (ASan: heap-buffer-overflow in iscsi_szmalloc under
   * READ CAPACITY(16); without ASan, "double free or corruption").
   * The cache only saves a malloc per PDU: switch it off for iSER. */
  if (cfg->iser)
    iscsi_set_cache_allocations (iscsi, 0);
  iscsi_set_session_type (iscsi, cfg->target ? ISCSI_SESSION_NORMAL
                                              : ISCSI_SESSION_DISCOVERY);
  if (cfg->target && iscsi_set_targetname (iscsi, cfg->target) != 0) {
    snprintf (err, errlen, "invalid target name '%s'", cfg->target);
    return -EINVAL;
  }
  iscsi_set_header_digest (iscsi, cfg->header_digest
                           ? ISCSI_HEADER_DIGEST_CRC32C
                           : ISCSI_HEADER_DIGEST_NONE);
  if (cfg->user && cfg->password
      && iscsi_set_initiator_username_pwd (iscsi, cfg->user, cfg->password)) {
    snprintf (err, errlen, "cannot set CHAP credentials");
    return -EINVAL;
  }
  if (cfg->target_user && cfg->target_password
      && iscsi_set_target_username_pwd (iscsi, cfg->target_user,
                                        cfg->target_password)) {
    snprintf (err, errlen, "cannot set mutual CHAP credentials");
    return -EINVAL;
  }
  if (log_debug_enabled ()) {
    iscsi_set_log_level (iscsi, 3);
    iscsi_set_log_fn (iscsi, libiscsi_log);
  }
  /* Notice a dead peer on an idle connection within about 20 seconds; the
   * values apply to every socket libiscsi creates, reconnects included. */
  iscsi_set_tcp_keepidle (iscsi, 10);
  iscsi_set_tcp_keepintvl (iscsi, 3);
  iscsi_set_tcp_keepcnt (iscsi, 3);
  if (cfg->timeout) {
    /* Bound the login-time commands and the TCP handshake to a silent
     * host; commands in full-feature phase have our own deadline. */
    iscsi_set_timeout (iscsi, cfg->timeout);
    iscsi_set_tcp_syncnt (iscsi, 3);
  }
  return 0;
}

/* When an iSER connect or login fails, libiscsi 1.19's CM thread notes the
 * error in the context and exits on its own, racing with whoever frees the
 * context (ASan: heap-use-after-free, a 255-byte write from its thread).
 * A failed session ends the program anyway, so keep such a context,
 * reachable, instead of destroying it under that thread. */
static void
park_failed_iser_context (struct iscsi_context *iscsi)
{
#ifdef HAVE_LIBISCSI_1_20
  iscsi_destroy_context (iscsi);
#else
  static struct iscsi_context *parked[64];
  static unsigned nr_parked;

  if (nr_parked < sizeof parked / sizeof parked[0])
    parked[nr_parked++] = iscsi;
  else
    iscsi_destroy_context (iscsi);
#endif
}

struct session *
session_open (const struct session_config *cfg, char *err, size_t errlen)
{
  struct session *s = calloc (1, sizeof *s);

  if (s == NULL) {
    snprintf (err, errlen, "out of memory");
    return NULL;
  }
  s->wake_fd = -1;
  s->ext.fd = -1;
  s->iser = cfg->iser;
  s->timeout = cfg->timeout;
  s->fence_timeout = cfg->fence_timeout;
  s->queue_depth = cfg->queue_depth ? cfg->queue_depth : 64;
  s->poll_ns = (uint64_t) cfg->poll_us * 1000;
  s->portal = strdup (cfg->portal);
  s->target = cfg->target ? strdup (cfg->target) : NULL;
  s->iscsi = iscsi_create_context (cfg->initiator_name);
  if (s->iscsi == NULL || s->portal == NULL || (cfg->target && !s->target)) {
    snprintf (err, errlen, "cannot create an iSCSI context (initiator name '%s')",
              cfg->initiator_name);
    goto fail;
  }
  if (configure_context (s->iscsi, cfg, err, errlen) < 0)
    goto fail;
  /* libiscsi's iSER transport does not survive a registration of its own
   * buffers failing (a crash or a login that times out): refuse here, in
   * words, when the memory lock limit cannot hold them. */
  if (s->iser) {
    s->memlock_reserved = memlock_reserve_iser (s->queue_depth, err, errlen);
    if (s->memlock_reserved < 0)
      goto fail;
  }
  /* With libiscsi's allocator hook, this session's buffers come from a pool
   * registered on the connection: READ/WRITE data goes to the wire from
   * the engine's buffers, and no I/O registers memory. */
  if (s->iser && rdma_pool_supported ()) {
    int e = rdma_pool_attach (s->iscsi, &s->rdma);
    if (e < 0) {
      snprintf (err, errlen, "cannot install the RDMA allocator: %s",
                strerror (-e));
      goto fail;
    }
    s->alloc = rdma_pool_allocator (s->rdma);
  }

  if (!cfg->iser && portal_probe (cfg->portal, cfg->timeout, err, errlen) < 0)
    goto fail;
  /* The full connect records the portal, which libiscsi's automatic
   * reconnect needs. */
  if (iscsi_full_connect_sync (s->iscsi, cfg->portal, -1) != 0) {
    login_error_explain (cfg, iscsi_get_error (s->iscsi), err, errlen);
    goto fail;
  }
  /* The synchronous commands before the session thread starts (LUN
   * probing, discovery) and the logout at exit are bounded by libiscsi's
   * own timeout; commands of the thread are not (session_start). */
  if (cfg->timeout)
    iscsi_set_timeout (s->iscsi, (int) cfg->timeout + 2);

  /* Debian's libiscsi 1.19 iSER transport moves at most 256 KiB per command
   * through its fixed registered buffers and has 256 task slots; stay inside
   * both rather than crash it.  Over TCP 1 MiB matches FUSE's largest
   * request, so a request is never split without need. */
#ifdef HAVE_LIBISCSI_1_20
  /* tgtd drops an iSER connection whose command carries more than 512 KiB. */
  s->max_xfer_bytes = s->iser ? 512 * 1024 : 1024 * 1024;
#else
  s->max_xfer_bytes = s->iser ? 256 * 1024 : 1024 * 1024;
  if (s->iser && s->queue_depth > 128)
    s->queue_depth = 128;
#endif
  if (cfg->splice && !s->iser) {
    const char *no;

    s->splice = splice_supported (s->max_xfer_bytes, &no);
    if (!s->splice)
      log_debug ("READ data is copied, not spliced: %s", no);
  }
  return s;

 fail:
  if (s->iser && s->iscsi && !iscsi_is_logged_in (s->iscsi)) {
    park_failed_iser_context (s->iscsi);
    s->iscsi = NULL;
  }
  session_close (s);
  return NULL;
}

void
session_close (struct session *s)
{
  if (s == NULL)
    return;
  /* The other paths first: the engine above them all goes with the
   * last command layer (mpath.c counts them). */
  while (s->next_path) {
    struct session *o = s->next_path;

    s->next_path = o->next_path;
    o->next_path = NULL;
    o->first_path = NULL;
    session_close (o);
  }
  if (s->iscsi) {
    /* Bound the logout to a target that no longer answers. */
    if (s->timeout)
      iscsi_set_timeout (s->iscsi, (int) s->timeout + 2);
    if (iscsi_is_logged_in (s->iscsi))
      iscsi_logout_sync (s->iscsi);
    iscsi_destroy_context (s->iscsi);
  }
  if (s->client.closed)
    s->client.closed (s->client.opaque);
  rdma_pool_free (s->rdma);     /* after libiscsi gave every buffer back */
  memlock_release_iser (s->memlock_reserved);
  if (s->wake_fd >= 0)
    close (s->wake_fd);
  for (unsigned i = 0; i < s->nr_luns; i++)
    alua_forget (&s->luns[i].alua);     /* the stats count live pairs */
  free (s->luns);
  free (s->portal);
  free (s->target);
  free (s);
}

/* ---- the session thread ---- */

#ifdef HAVE_LIBISCSI_1_20
#define LIBISCSI_1_19 0
#else
#define LIBISCSI_1_19 1
#endif

void
session_wake (struct session *s)
{
  uint64_t one = 1;

  if (s->first_path)
    s = s->first_path;          /* its thread serves this one */
  if (s->wake_fd < 0)
    return;                     /* not started */
  /* eventfd writes only fail on counter overflow, which a reader prevents. */
  if (write (s->wake_fd, &one, sizeof one) != sizeof one)
    log_error ("cannot wake session thread: %m");
}

/* The session whose thread this is, if any. */
static __thread const struct session *this_session;

bool
session_on_thread (const struct session *s)
{
  return this_session == (s->first_path ? s->first_path : s);
}

void
session_add_path (struct session *s, struct session *other)
{
  struct session **pp = &s->next_path;

  while (*pp)
    pp = &(*pp)->next_path;
  *pp = other;
  other->first_path = s;
}

bool
session_all_down (const struct session *s)
{
  for (; s; s = s->next_path)
    if (s->down_since == 0)
      return false;
  return true;
}

void
session_attach (struct session *s, const struct session_ext *ext)
{
  s->ext = *ext;
}

void
session_set_client (struct session *s, const struct session_client *c)
{
  s->client = *c;
}

/* Reset the eventfd: what was handed over is taken next. */
static void
drain_wake (struct session *s)
{
  uint64_t n;

  if (read (s->wake_fd, &n, sizeof n) < 0 && errno != EAGAIN)
    log_error ("session wake-up read failed: %m");
}

/* libiscsi reconnects by itself; we only watch the login state, to count
 * reconnects and to fail new I/O fast while the target stays away.
 * Returns whether the login came back. */
static bool
watch_connection (struct session *s, time_t now)
{
  bool up = !s->dropped && iscsi_is_logged_in (s->iscsi);

  /* Stored atomically: the LUN scanner reads it (lunwatch.c). */
  if (!up && s->down_since == 0) {
    __atomic_store_n (&s->down_since, now, __ATOMIC_RELAXED);
    log_error ("lost the session to %s at %s; reconnecting", s->target,
               s->portal);
  }
  else if (up && s->down_since) {
    __atomic_store_n (&s->down_since, 0, __ATOMIC_RELAXED);
    atomic_fetch_add (&stats.reconnects, 1);
    log_info ("session to %s at %s is back", s->target, s->portal);
    return true;
  }
  return false;
}

/* Look for an event without sleeping, for up to poll_ns, while at most one
 * command is in flight.  Why: at one request at a time, every turn waits
 * for either the target's reply or the application's next request, and
 * waking a thread that sleeps in poll() costs tens of microseconds inside
 * a VM, each way; polling keeps the thread on its CPU and saves both.
 * With more in flight, events come anyway and the CPU is better left to
 * the target and the application (measured: docs/bench/history.md,
 * "4 KiB random read, 1 in flight: poll_us").
 * Returns poll()'s result, 0 if nothing came.  A hit is counted only for
 * an event that turned up after a look that found nothing: one that was
 * there at once (over TCP, the socket writable for a command just queued)
 * would not have made the thread sleep either. */
static int
poll_briefly (struct session *s, struct pollfd *pfd, nfds_t nfds)
{
  bool waited = false;
  unsigned inflight = 0;
  uint64_t end;
  int n;

  for (const struct session *m = s; m; m = m->next_path)
    inflight += m->inflight;
  if (s->poll_ns == 0 || inflight > 1)
    return 0;
  end = clock_mono_ns () + s->poll_ns;
  do {
    n = poll (pfd, nfds, 0);
    if (n != 0) {
      if (n > 0 && waited)
        atomic_fetch_add_explicit (&stats.poll_hits, 1, memory_order_relaxed);
      return n;
    }
    waited = true;
  } while (clock_mono_ns () < end);
  atomic_fetch_add_explicit (&stats.poll_misses, 1, memory_order_relaxed);
  return 0;
}

/* At most this many sessions (paths) on one thread. */
#define MAX_PATHS 16

/* Give one session's libiscsi context its turn: the events poll() found
 * on its socket, or none now and then, for libiscsi's timers and
 * reconnects.  Of several paths, one may be quiet while another is busy,
 * so each gets its eventless call once a second at least. */
static void
service (struct session *m, short revents, bool quiet, bool throttle,
         time_t now)
{
  bool idle_call = quiet || throttle
    || (m->first_path || m->next_path ? now != m->last_service : false);

  if (m->dropped)
    return;                     /* until the layer above logs in again */

  /* A call without events now and then checks timeouts and retries a
   * reconnect; over iSER, libiscsi 1.20 reads its connection events
   * (a disconnect) only then.  1.19's iSER transport understands nothing
   * but POLLIN on its completion fd. */
  if (revents || (idle_call && !(m->iser && LIBISCSI_1_19))) {
    if (!revents)
      m->last_service = now;
    if (iscsi_service (m->iscsi, revents) < 0) {
      log_debug ("iscsi_service: %s", iscsi_get_error (m->iscsi));
      /* Without automatic reconnects a lost connection stays lost, and
       * its socket would wake every poll. */
      m->dropped = m->relogin_by_hand;
    }
  }
  if (revents & (POLLERR | POLLHUP | POLLNVAL))
    m->error_wakeups++;
}

static void *
session_loop (void *arg)
{
  struct session *s = arg;
  time_t stop_deadline = 0;

  this_session = s;
  for (;;) {
    /* pfd[0] the wake-up, pfd[1] the other source, then every path's
     * socket, this session's first. */
    struct pollfd pfd[2 + MAX_PATHS];
    struct session *m;
    nfds_t nfds = 2;
    int n;
    bool back, second, throttle = false;
    time_t now = clock_mono_s ();

    pfd[0] = (struct pollfd) { .fd = s->wake_fd, .events = POLLIN };
    pfd[1] = (struct pollfd) { .fd = s->ext.fd, .events = POLLIN };
    for (m = s; m && nfds < 2 + MAX_PATHS; m = m->next_path, nfds++) {
      /* A socket in error makes poll() return at once until libiscsi's
       * next reconnect attempt; after many such wake-ups in one second,
       * wait on the timer instead of spinning. */
      bool t = m->error_wakeups > 50;

      throttle = throttle || t;
      pfd[nfds] = (struct pollfd) {
        .fd = t || m->dropped ? -1 : iscsi_get_fd (m->iscsi),
        .events = iscsi_which_events (m->iscsi),
      };
    }
    if (atomic_load (&s->stopping)) {
      if (stop_deadline == 0)
        stop_deadline = now + (s->timeout ? s->timeout : 30);
      if (s->client.idle (s->client.opaque))
        break;
      /* Nothing will come back from a target that is down: do not keep
       * the unmount waiting for it. */
      if (now > stop_deadline || session_all_down (s)) {
        /* Answer everything while FUSE is still there to hear it. */
        drain_wake (s);
        for (m = s; m; m = m->next_path)
          m->client.cancel_all (m->client.opaque);
        break;
      }
    }
    if (s->ext.turn)
      s->ext.turn (s->ext.opaque);
    /* Wake at least once a second: libiscsi checks its timeouts and retries
     * reconnects from iscsi_service(). */
    n = throttle ? 0 : poll_briefly (s, pfd, nfds);
    if (n == 0)
      n = poll (pfd, nfds, throttle ? 100 : 1000);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      log_error ("poll: %m");
      break;
    }
    {
      nfds_t i = 2;

      for (m = s; m && i < nfds; m = m->next_path, i++)
        service (m, pfd[i].fd >= 0 ? pfd[i].revents : 0, n == 0,
                 pfd[i].fd < 0 && m->error_wakeups > 50, now);
    }
    if (pfd[1].revents & POLLIN)
      s->ext.ready (s->ext.opaque);
    if (pfd[0].revents & POLLIN)
      drain_wake (s);
    if ((pfd[0].revents | pfd[1].revents) & POLLIN)
      s->client.take (s->client.opaque);
    now = clock_mono_s ();
    second = now != s->last_scan;
    if (second) {
      s->last_scan = now;
      for (m = s; m; m = m->next_path)
        m->error_wakeups = 0;
    }
    for (m = s; m; m = m->next_path) {
      /* Every turn, not once a second: libiscsi can lose and re-establish
       * a connection within one second, and a reconnect seen only by its
       * effects would go uncounted. */
      back = watch_connection (m, now);
      m->client.tick (m->client.opaque, now, back, second);
    }
  }
  /* What the last turn answered goes out too. */
  if (s->ext.turn)
    s->ext.turn (s->ext.opaque);
  return NULL;
}

int
session_start (struct session *s)
{
  int r;

  if (s->client.take == NULL)
    return -EINVAL;
  /* From here on every command has our own deadline (io.c, expire),
   * answered with EIO between timeout and timeout+1 seconds, as iserfs(8)
   * says, and a command past it is recovered (recovery.h).  libiscsi's
   * own timeout is off: it would drop a command from its queues without
   * telling the target, which may still carry it out -- after a newer
   * write to the same blocks, or, over iSER, into memory given to another
   * request by then -- and, without contrib/libiscsi's patch 0012, it
   * reads the wall clock. */
  for (struct session *m = s; m; m = m->next_path)
    iscsi_set_timeout (m->iscsi, 0);
  s->wake_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->wake_fd < 0)
    return -errno;
  r = pthread_create (&s->thread, NULL, session_loop, s);
  if (r != 0)
    return -r;
  s->running = true;
  return 0;
}

void
session_stop (struct session *s)
{
  uint64_t one = 1;

  if (!s->running)
    return;
  atomic_store (&s->stopping, true);
  if (write (s->wake_fd, &one, sizeof one) != sizeof one)
    log_error ("cannot wake session thread: %m");
  pthread_join (s->thread, NULL);
  s->running = false;
}
