/* Sessions: login, the per-session event loop, and the hand-off of requests
 * from FUSE threads to that loop. */
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

#include "clock.h"
#include "io-internal.h"
#include "log.h"
#include "login_error.h"
#include "portal.h"
#include "rdma_pool.h"
#include "sense.h"
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
    return -1;
  }
#endif
  if (cfg->iser && init_iser_transport (iscsi) != 0) {
    snprintf (err, errlen, "cannot use the iSER transport: %s",
              iscsi_get_error (iscsi));
    return -1;
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
    return -1;
  }
  iscsi_set_header_digest (iscsi, cfg->header_digest
                           ? ISCSI_HEADER_DIGEST_CRC32C
                           : ISCSI_HEADER_DIGEST_NONE);
  if (cfg->user && cfg->password
      && iscsi_set_initiator_username_pwd (iscsi, cfg->user, cfg->password)) {
    snprintf (err, errlen, "cannot set CHAP credentials");
    return -1;
  }
  if (cfg->target_user && cfg->target_password
      && iscsi_set_target_username_pwd (iscsi, cfg->target_user,
                                        cfg->target_password)) {
    snprintf (err, errlen, "cannot set mutual CHAP credentials");
    return -1;
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
  s->queue_depth = cfg->queue_depth ? cfg->queue_depth : 64;
  s->poll_ns = (uint64_t) cfg->poll_us * 1000;
  s->portal = strdup (cfg->portal);
  s->target = cfg->target ? strdup (cfg->target) : NULL;
  s->iscsi = iscsi_create_context (cfg->initiator_name);
  pthread_mutex_init (&s->lock, NULL);
  if (s->iscsi == NULL || s->portal == NULL || (cfg->target && !s->target)) {
    snprintf (err, errlen, "cannot create an iSCSI context (initiator name '%s')",
              cfg->initiator_name);
    goto fail;
  }
  if (configure_context (s->iscsi, cfg, err, errlen) < 0)
    goto fail;
  /* With libiscsi's allocator hook, this session's buffers come from a pool
   * registered on the connection: READ/WRITE data goes to the wire from
   * the engine's buffers, and no I/O registers memory. */
  if (s->iser && rdma_pool_supported ()) {
    s->rdma = rdma_pool_attach (s->iscsi);
    if (s->rdma == NULL) {
      snprintf (err, errlen, "cannot install the RDMA allocator: %s",
                strerror (errno));
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
  if (s->iscsi) {
    /* Bound the logout to a target that no longer answers. */
    if (s->timeout)
      iscsi_set_timeout (s->iscsi, (int) s->timeout + 2);
    if (iscsi_is_logged_in (s->iscsi))
      iscsi_logout_sync (s->iscsi);
    iscsi_destroy_context (s->iscsi);
  }
  recovery_close (s);
  rdma_pool_free (s->rdma);     /* after libiscsi gave every buffer back */
  splice_pool_free (s);
  if (s->wake_fd >= 0)
    close (s->wake_fd);
  pthread_mutex_destroy (&s->lock);
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
session_submit (struct session *s, struct io_req *r)
{
  r->next = NULL;
  pthread_mutex_lock (&s->lock);
  if (s->submit_tail)
    s->submit_tail->next = r;
  else
    s->submit_head = r;
  s->submit_tail = r;
  pthread_mutex_unlock (&s->lock);
  /* The session thread itself (a request from s->ext) looks at the list
   * before it sleeps again. */
  if (!session_on_thread (s))
    session_wake (s);
}

void
session_wake (struct session *s)
{
  uint64_t one = 1;

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
  return this_session == s;
}

void
session_attach (struct session *s, const struct session_ext *ext)
{
  s->ext = *ext;
}

static void
start_submissions (struct session *s)
{
  struct io_req *r;

  pthread_mutex_lock (&s->lock);
  r = s->submit_head;
  s->submit_head = s->submit_tail = NULL;
  pthread_mutex_unlock (&s->lock);
  while (r) {
    struct io_req *next = r->next;
    io_start (r);
    r = next;
  }
}

static void
take_submissions (struct session *s)
{
  uint64_t n;

  if (read (s->wake_fd, &n, sizeof n) < 0 && errno != EAGAIN)
    log_error ("session wake-up read failed: %m");
  start_submissions (s);
}

static bool
has_submissions (struct session *s)
{
  bool yes;

  pthread_mutex_lock (&s->lock);
  yes = s->submit_head != NULL;
  pthread_mutex_unlock (&s->lock);
  return yes;
}

static void pump_waiting (struct session *s);

/* libiscsi reconnects by itself; we only watch the login state, to count
 * reconnects and to fail new I/O fast while the target stays away. */
static void
watch_connection (struct session *s, time_t now)
{
  bool up = iscsi_is_logged_in (s->iscsi);

  if (!up && s->down_since == 0) {
    s->down_since = now;
    log_error ("lost the session to %s at %s; reconnecting", s->target,
               s->portal);
  }
  else if (up && s->down_since) {
    s->down_since = 0;
    pump_waiting (s);
    atomic_fetch_add (&stats.reconnects, 1);
    log_info ("session to %s at %s is back", s->target, s->portal);
  }
}

/* Look for an event without sleeping, for up to poll_ns, while at most one
 * command is in flight.  Why: at one request at a time, every turn waits
 * for either the target's reply or the application's next request, and
 * waking a thread that sleeps in poll() costs tens of microseconds inside
 * a VM, each way; polling keeps the thread on its CPU and saves both.
 * With more in flight, events come anyway and the CPU is better left to
 * the target and the application (measured: see docs/bench/README.md).
 * Returns poll()'s result, 0 if nothing came.  A hit is counted only for
 * an event that turned up after a look that found nothing: one that was
 * there at once (over TCP, the socket writable for a command just queued)
 * would not have made the thread sleep either. */
static int
poll_briefly (struct session *s, struct pollfd *pfd)
{
  bool waited = false;
  uint64_t end;
  int n;

  if (s->poll_ns == 0 || s->inflight > 1)
    return 0;
  end = clock_mono_ns () + s->poll_ns;
  do {
    n = poll (pfd, 3, 0);
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

/* At the end nothing will send the commands still waiting for a slot or
 * a login: fail them, so that their requests are freed. */
static void
fail_waiting (struct session *s)
{
  while (s->wait_head) {
    struct scmd *c = s->wait_head;

    s->wait_head = c->next;
    if (s->wait_head == NULL)
      s->wait_tail = NULL;
    io_cmd_done (c, -ECANCELED);
  }
}

static void *
session_loop (void *arg)
{
  struct session *s = arg;
  time_t stop_deadline = 0;

  this_session = s;
  for (;;) {
    /* A socket in error makes poll() return at once until libiscsi's next
     * reconnect attempt; after many such wake-ups in one second, wait on
     * the timer instead of spinning. */
    bool throttle = s->error_wakeups > 50;
    struct pollfd pfd[3] = {
      { .fd = s->wake_fd, .events = POLLIN },
      { .fd = throttle ? -1 : iscsi_get_fd (s->iscsi),
        .events = iscsi_which_events (s->iscsi) },
      { .fd = s->ext.fd, .events = POLLIN },
    };
    short revents;
    int n;
    time_t now = clock_mono_s ();

    if (atomic_load (&s->stopping)) {
      if (stop_deadline == 0)
        stop_deadline = now + (s->timeout ? s->timeout : 30);
      if (s->active == NULL && !has_submissions (s))
        break;
      /* Nothing will come back from a session that is down: do not keep
       * the unmount waiting for it. */
      if (now > stop_deadline || s->down_since) {
        /* Answer everything while FUSE is still there to hear it. */
        take_submissions (s);
        io_expire (s, 0);
        fail_waiting (s);
        break;
      }
    }
    if (s->ext.turn)
      s->ext.turn (s->ext.opaque);
    /* Wake at least once a second: libiscsi checks its timeouts and retries
     * reconnects from iscsi_service(). */
    n = throttle ? 0 : poll_briefly (s, pfd);
    if (n == 0)
      n = poll (pfd, 3, throttle ? 100 : 1000);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      log_error ("poll: %m");
      break;
    }
    revents = pfd[1].fd >= 0 ? pfd[1].revents : 0;
    /* A call without events now and then checks timeouts and retries a
     * reconnect; over iSER, libiscsi 1.20 reads its connection events
     * (a disconnect) only then.  1.19's iSER transport understands nothing
     * but POLLIN on its completion fd. */
    if (revents || ((n == 0 || throttle) && !(s->iser && LIBISCSI_1_19)))
      if (iscsi_service (s->iscsi, revents) < 0)
        log_debug ("iscsi_service: %s", iscsi_get_error (s->iscsi));
    if (revents & (POLLERR | POLLHUP | POLLNVAL))
      s->error_wakeups++;
    if (pfd[2].revents & POLLIN)
      s->ext.ready (s->ext.opaque);
    if (pfd[0].revents & POLLIN)
      take_submissions (s);
    else if (pfd[2].revents & POLLIN)
      start_submissions (s);
    now = clock_mono_s ();
    /* Every turn, not once a second: libiscsi can lose and re-establish a
     * connection within one second, and a reconnect seen only by its
     * effects would go uncounted. */
    watch_connection (s, now);
    if (now != s->last_scan) {
      s->last_scan = now;
      s->error_wakeups = 0;
      io_expire (s, now);
      recovery_tick (s, now);
      pump_waiting (s);
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

  /* From here on every command has our own deadline (io.c, io_expire),
   * answered with EIO between timeout and timeout+1 seconds, as iserfs(8)
   * says, and a command past it is recovered (recovery.h).  libiscsi's
   * own timeout is off: it would drop a command from its queues without
   * telling the target, which may still carry it out -- after a newer
   * write to the same blocks, or, over iSER, into memory given to another
   * request by then -- and it reads the wall clock. */
  iscsi_set_timeout (s->iscsi, 0);
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

/* ---- commands ---- */

static void command_cb (struct iscsi_context *iscsi, int status,
                        void *command_data, void *private_data);

static struct scsi_task *
send_command (struct session *s, struct scmd *c)
{
  struct lun *l = c->req->lun;
  size_t bytes = (size_t) c->nblocks * l->block_size;
  struct scsi_task *task;

  switch (c->kind) {
  case CMD_READ:
    task = iscsi_read16_iov_task (s->iscsi, l->lun, c->lba, bytes,
                                  l->block_size, 0, 0, 0, 0, 0,
                                  command_cb, c, &c->iov, 1);
    if (task && c->req->pipe)
      splice_arm (c, task);
    return task;
  case CMD_WRITE:
    return iscsi_write16_iov_task (s->iscsi, l->lun, c->lba, NULL, bytes,
                                   l->block_size, 0, 0, 0, 0, 0,
                                   command_cb, c, &c->iov, 1);
  case CMD_SYNC:
    if (l->sync16)
      return iscsi_synchronizecache16_task (s->iscsi, l->lun, 0, 0, 0, 0,
                                            command_cb, c);
    return iscsi_synchronizecache10_task (s->iscsi, l->lun, 0, 0, 0, 0,
                                          command_cb, c);
  case CMD_UNMAP:
    c->unmap.lba = c->lba;
    c->unmap.num = c->nblocks;
    return iscsi_unmap_task (s->iscsi, l->lun, 0, 0, &c->unmap, 1,
                             command_cb, c);
  case CMD_WRITESAME:
    return iscsi_writesame16_iov_task (s->iscsi, l->lun, c->lba, NULL,
                                       l->block_size, c->nblocks, 0, 0, 0, 0,
                                       command_cb, c, &c->iov, 1);
  case CMD_CAPACITY:
    return iscsi_readcapacity16_task (s->iscsi, l->lun, command_cb, c);
  default:
    return NULL;
  }
}

static void
send_or_fail (struct session *s, struct scmd *c)
{
  /* Its request was already answered (deadline): do not start more of it. */
  if (c->req->replied) {
    io_cmd_done (c, -ECANCELED);
    return;
  }
  s->inflight++;
  stats_inflight_inc ();
  atomic_fetch_add (&stats.sent[c->kind], 1);
  c->task = send_command (s, c);
  if (c->task == NULL) {
    log_error ("cannot queue a command: %s", iscsi_get_error (s->iscsi));
    s->inflight--;
    stats_inflight_dec ();
    stats_command_failed (c->kind, false);
    io_cmd_done (c, -EIO);
  }
}

/* Whether a command can go to libiscsi now.  While an iSER session logs
 * in again, libiscsi would post it on the old connection, torn down by
 * then, and on that failure leave the freed PDU on its wait queue: keep
 * it here until the login is back.  Over TCP libiscsi queues it for the
 * new connection itself. */
static bool
can_send (struct session *s)
{
  return !s->iser || iscsi_is_logged_in (s->iscsi);
}

void
session_issue (struct session *s, struct scmd *c)
{
  c->next = NULL;
  if (s->inflight >= s->queue_depth || s->wait_head || !can_send (s)) {
    if (s->wait_tail)
      s->wait_tail->next = c;
    else
      s->wait_head = c;
    s->wait_tail = c;
    return;
  }
  send_or_fail (s, c);
}

static void
pump_waiting (struct session *s)
{
  while (s->wait_head && s->inflight < s->queue_depth && can_send (s)) {
    struct scmd *c = s->wait_head;

    s->wait_head = c->next;
    if (s->wait_head == NULL)
      s->wait_tail = NULL;
    send_or_fail (s, c);
  }
}

/* Transient conditions a kernel initiator retries: a UNIT ATTENTION after a
 * target restart or a capacity change, BUSY, TASK SET FULL. */
static bool
worth_retrying (int status, struct scsi_task *task, unsigned retries)
{
  if (retries >= 5)
    return false;
  if (status == SCSI_STATUS_BUSY || status == SCSI_STATUS_TASK_SET_FULL)
    return true;
  return status == SCSI_STATUS_CHECK_CONDITION && task
    && (task->sense.key == SCSI_SENSE_UNIT_ATTENTION
        || (task->sense.key == SCSI_SENSE_NOT_READY
            && task->sense.ascq != SCSI_SENSE_ASCQ_MEDIUM_NOT_PRESENT));
}

static const char *const kind_what[CMD_NR] = {
  [CMD_READ] = "READ(16)", [CMD_WRITE] = "WRITE(16)",
  [CMD_SYNC] = "SYNCHRONIZE CACHE", [CMD_UNMAP] = "UNMAP",
  [CMD_WRITESAME] = "WRITE SAME(16)", [CMD_CAPACITY] = "READ CAPACITY(16)",
};

/* A resize reaches us as new READ CAPACITY data; a LUN deleted on the
 * target as LOGICAL UNIT NOT SUPPORTED. */
static void
note_capacity (struct lun *l, struct scsi_task *task)
{
  struct scsi_readcapacity16 *rc = scsi_datain_unmarshall (task);

  if (rc == NULL || rc->block_length != l->block_size)
    return;
  if (rc->returned_lba + 1 != l->nr_blocks) {
    log_info ("lun%d of %s changed size: %" PRIu64 " -> %" PRIu64 " bytes",
              l->lun, l->session->target, l->nr_blocks * l->block_size,
              (rc->returned_lba + 1) * l->block_size);
    l->nr_blocks = rc->returned_lba + 1;
    __atomic_store_n (&l->size, l->nr_blocks * l->block_size, __ATOMIC_RELAXED);
  }
  if (lun_gone (l)) {
    log_info ("lun%d of %s is back", l->lun, l->session->target);
    __atomic_store_n (&l->gone, false, __ATOMIC_RELAXED);
  }
}

static void
note_sense (struct lun *l, struct scsi_task *task)
{
  if (task == NULL)
    return;
  if (task->sense.key == SCSI_SENSE_ILLEGAL_REQUEST
      && task->sense.ascq == SCSI_SENSE_ASCQ_LOGICAL_UNIT_NOT_SUPPORTED
      && !lun_gone (l)) {
    log_error ("lun%d of %s is gone from the target", l->lun,
               l->session->target);
    __atomic_store_n (&l->gone, true, __ATOMIC_RELAXED);
  }
  if (task->sense.key == SCSI_SENSE_UNIT_ATTENTION
      && task->sense.ascq == SCSI_SENSE_ASCQ_CAPACITY_DATA_HAS_CHANGED)
    __atomic_store_n (&l->capacity_checked, 0, __ATOMIC_RELAXED);
}

static void
command_cb (struct iscsi_context *iscsi, int status, void *command_data,
            void *private_data)
{
  struct scmd *c = private_data;
  /* A cancelled command comes back without its task; it is still ours. */
  struct scsi_task *task = command_data ? command_data : c->task;
  struct session *s = c->req->lun->session;
  int err = 0;

  (void) iscsi;
  /* Recovery let it go: the target can no longer act on it, and its
   * request was answered at the deadline. */
  if (status == SCSI_STATUS_CANCELLED && recovery_releasing (c)) {
    recovery_forget (s, c);
    c->task = NULL;
    s->inflight--;
    stats_inflight_dec ();
    atomic_fetch_add (&stats.failed[c->kind], 1);
    if (task)
      scsi_free_scsi_task (task);
    pump_waiting (s);
    io_cmd_done (c, -EIO);
    return;
  }
  recovery_forget (s, c);
  c->task = NULL;
  s->inflight--;
  stats_inflight_dec ();
  if (status == SCSI_STATUS_CHECK_CONDITION)
    note_sense (c->req->lun, task);
  if (status == SCSI_STATUS_GOOD && c->kind == CMD_CAPACITY && task)
    note_capacity (c->req->lun, task);
  if (status != SCSI_STATUS_GOOD) {
    if (!c->req->replied && worth_retrying (status, task, c->retries)) {
      c->retries++;
      atomic_fetch_add (&stats.retries, 1);
      if (task)
        scsi_free_scsi_task (task);
      /* Behind any commands that wait for a slot, and then the slot this
       * one freed goes to the first of them: without the pump, a retry
       * with nothing else in flight left the queue waiting for a
       * completion that would never come. */
      session_issue (s, c);
      pump_waiting (s);
      return;
    }
    err = task_errno (status, task);
    if (err == 0)
      err = EIO;
    /* An unsupported optional command is the caller's to handle quietly;
     * so is WRITE SAME, which some targets (tgtd's file store among them)
     * fail with nonsense: the caller falls back to plain writes. */
    if (c->kind != CMD_READ && c->kind != CMD_WRITE
        && task_unsupported (status, task))
      err = EOPNOTSUPP;
    else if (c->kind == CMD_WRITESAME)
      log_debug ("WRITE SAME(16) failed with status 0x%x", status);
    else
      task_log_failure (kind_what[c->kind], status, task);
    stats_command_failed (c->kind, err == EOPNOTSUPP);
  }
  else if (c->kind == CMD_READ)
    atomic_fetch_add (&stats.bytes_read, c->iov.iov_len);
  else if (c->kind == CMD_WRITE)
    atomic_fetch_add (&stats.bytes_written, c->iov.iov_len);
  if (task)
    scsi_free_scsi_task (task);
  pump_waiting (s);
  io_cmd_done (c, -err);
}
