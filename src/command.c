/* The command layer: see command.h.  Everything here runs on the session
 * thread, except command_path_new (main thread, before the start) and
 * the path's wake/on_thread (any thread). */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include "alua.h"
#include "clock.h"
#include "command.h"
#include "io.h"
#include "log.h"
#include "lun.h"
#include "recovery.h"
#include "sense.h"
#include "session.h"
#include "splice.h"
#include "stats.h"

/* libiscsi reads and writes a command's data through the iovec the engine
 * filled in (path.h): its struct scsi_iovec is laid out as struct iovec,
 * which libiscsi itself relies on when it hands them to readv/writev. */
_Static_assert (sizeof (struct scsi_iovec) == sizeof (struct iovec)
                && offsetof (struct scsi_iovec, iov_base)
                   == offsetof (struct iovec, iov_base)
                && offsetof (struct scsi_iovec, iov_len)
                   == offsetof (struct iovec, iov_len),
                "struct scsi_iovec is not struct iovec");

static struct scsi_iovec *
wire_iov (struct scmd *c)
{
  return (struct scsi_iovec *) (void *) &c->iov;
}

static struct cmdq *
cmdq_of (const struct path *p)
{
  return (struct cmdq *) ((char *) p - offsetof (struct cmdq, path));
}

static void
inflight_inc (struct cmdq *q)
{
  q->inflight++;
  q->s->inflight = q->inflight;
  stats_inflight_inc ();
}

static void
inflight_dec (struct cmdq *q)
{
  q->inflight--;
  q->s->inflight = q->inflight;
  stats_inflight_dec ();
}

/* The commands libiscsi holds, for recovery (recovery.c walks them). */
static void
sent_add (struct cmdq *q, struct scmd *c)
{
  c->sent_prev = NULL;
  c->sent_next = q->sent;
  if (q->sent)
    q->sent->sent_prev = c;
  q->sent = c;
}

static void
sent_remove (struct cmdq *q, struct scmd *c)
{
  if (c->sent_prev)
    c->sent_prev->sent_next = c->sent_next;
  else if (q->sent == c)
    q->sent = c->sent_next;
  if (c->sent_next)
    c->sent_next->sent_prev = c->sent_prev;
  c->sent_prev = c->sent_next = NULL;
}

/* Tell the engine: c's end.  Last, since it may free c. */
static void
finished (struct cmdq *q, struct scmd *c, int err)
{
  q->path.client.done (c, err);
}

/* ---- sending ---- */

static void command_cb (struct iscsi_context *iscsi, int status,
                        void *command_data, void *private_data);

/* REPORT TARGET PORT GROUPS has no call of its own in libiscsi: the
 * raw CDB (alua.c), sent as any other query. */
static struct scsi_task *
send_rtpg (struct session *s, struct scmd *c)
{
  struct scsi_task *task = alua_rtpg_task (c->iov.iov_len);

  if (task == NULL)
    return NULL;
  if (iscsi_scsi_command_async (s->iscsi, c->lun->lun, task, command_cb,
                                NULL, c) != 0) {
    scsi_free_scsi_task (task);
    return NULL;
  }
  return task;
}

/* A query: libiscsi receives the answer, command_cb copies it to c->iov. */
static struct scsi_task *
send_query (struct session *s, struct scmd *c)
{
  int lun = c->lun->lun, len = (int) c->iov.iov_len;

  switch (c->query) {
  case QUERY_REPORT_LUNS:
    return iscsi_reportluns_task (s->iscsi, 0, len, command_cb, c);
  case QUERY_INQUIRY:
    return iscsi_inquiry_task (s->iscsi, lun, 0, 0, len, command_cb, c);
  case QUERY_VPD:
    return iscsi_inquiry_task (s->iscsi, lun, 1, c->page, len, command_cb, c);
  case QUERY_CAPACITY:
    return iscsi_readcapacity16_task (s->iscsi, lun, command_cb, c);
  case QUERY_MODE_SENSE:
    return iscsi_modesense6_task (s->iscsi, lun, 1, SCSI_MODESENSE_PC_CURRENT,
                                  SCSI_MODEPAGE_RETURN_ALL_PAGES, 0,
                                  len > 255 ? 255 : len, command_cb, c);
  case QUERY_RTPG:
    return send_rtpg (s, c);
  default:
    return NULL;
  }
}

static struct scsi_task *
send_command (struct session *s, struct scmd *c)
{
  struct lun *l = c->lun;
  size_t bytes = (size_t) c->nblocks * l->block_size;
  struct scsi_task *task;

  switch (c->kind) {
  case CMD_READ:
    task = iscsi_read16_iov_task (s->iscsi, l->lun, c->lba, bytes,
                                  l->block_size, 0, 0, 0, 0, 0,
                                  command_cb, c, wire_iov (c), 1);
    if (task && c->sink)
      splice_arm (c->sink, task);
    return task;
  case CMD_WRITE:
    return iscsi_write16_iov_task (s->iscsi, l->lun, c->lba, NULL, bytes,
                                   l->block_size, 0, 0, 0, 0, 0,
                                   command_cb, c, wire_iov (c), 1);
  case CMD_SYNC:
    if (l->sync16)
      return iscsi_synchronizecache16_task (s->iscsi, l->lun, 0, 0, 0, 0,
                                            command_cb, c);
    return iscsi_synchronizecache10_task (s->iscsi, l->lun, 0, 0, 0, 0,
                                          command_cb, c);
  case CMD_UNMAP: {
    /* Copied into the command's data when it is built. */
    struct unmap_list unmap = { .lba = c->lba, .num = c->nblocks };

    return iscsi_unmap_task (s->iscsi, l->lun, 0, 0, &unmap, 1,
                             command_cb, c);
  }
  case CMD_WRITESAME:
    return iscsi_writesame16_iov_task (s->iscsi, l->lun, c->lba, NULL,
                                       l->block_size, c->nblocks, 0, 0, 0, 0,
                                       command_cb, c, wire_iov (c), 1);
  case CMD_CAPACITY:
    return iscsi_readcapacity16_task (s->iscsi, l->lun, command_cb, c);
  case CMD_QUERY:
    return send_query (s, c);
  default:
    return NULL;
  }
}

static void
send_or_fail (struct cmdq *q, struct scmd *c)
{
  struct session *s = q->s;

  /* Its request was already answered (deadline): do not start more of it. */
  if (c->abandoned) {
    finished (q, c, -ECANCELED);
    return;
  }
  inflight_inc (q);
  atomic_fetch_add (&stats.sent[c->kind], 1);
  c->task = send_command (s, c);
  if (c->task == NULL) {
    log_error ("cannot queue a command: %s", iscsi_get_error (s->iscsi));
    inflight_dec (q);
    stats_command_failed (c->kind, false);
    finished (q, c, -EIO);
    return;
  }
  sent_add (q, c);
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

/* The path's send (path.h). */
static void
issue (struct path *p, struct scmd *c)
{
  struct cmdq *q = cmdq_of (p);

  c->path = p;
  c->next = NULL;
  if (q->inflight >= q->queue_depth || q->wait_head || !can_send (q->s)) {
    if (q->wait_tail)
      q->wait_tail->next = c;
    else
      q->wait_head = c;
    q->wait_tail = c;
    return;
  }
  send_or_fail (q, c);
}

static void
pump_waiting (struct cmdq *q)
{
  while (q->wait_head && q->inflight < q->queue_depth && can_send (q->s)) {
    struct scmd *c = q->wait_head;

    q->wait_head = c->next;
    if (q->wait_head == NULL)
      q->wait_tail = NULL;
    send_or_fail (q, c);
  }
}

/* At the end nothing will send the commands still waiting for a slot or
 * a login: fail them, so that their requests are freed. */
static void
fail_waiting (struct cmdq *q)
{
  while (q->wait_head) {
    struct scmd *c = q->wait_head;

    q->wait_head = c->next;
    if (q->wait_head == NULL)
      q->wait_tail = NULL;
    finished (q, c, -ECANCELED);
  }
}

/* ---- answers ---- */

/* Not named in libiscsi's scsi-lowlevel.h. */
#define ASCQ_REPORTED_LUNS_DATA_HAS_CHANGED 0x3f0e

static const char *const kind_what[CMD_NR] = {
  [CMD_READ] = "READ(16)", [CMD_WRITE] = "WRITE(16)",
  [CMD_SYNC] = "SYNCHRONIZE CACHE", [CMD_UNMAP] = "UNMAP",
  [CMD_WRITESAME] = "WRITE SAME(16)", [CMD_CAPACITY] = "READ CAPACITY(16)",
  [CMD_QUERY] = "query (INQUIRY, REPORT LUNS, ...)",
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
  if (__atomic_load_n (&l->gone, __ATOMIC_RELAXED)) {
    log_info ("lun%d of %s is back", l->lun, l->session->target);
    __atomic_store_n (&l->gone, false, __ATOMIC_RELAXED);
  }
}

/* The struct lun of l's number in session m: l itself, or the LUN as
 * another path's session probed it, which holds the ALUA state of the
 * (LUN, that path) pair (lun.h).  A command reaches a path other than its
 * LUN's own only where the identities matched (mpath.h).  NULL: none. */
static struct lun *
pair_of (const struct session *m, struct lun *l)
{
  /* Found while mounted and still being probed by the scanner's thread
   * (lunscan.c), which fills in its ALUA state: not ours to touch yet. */
  if (l->live && !l->paired)
    return NULL;
  if (l->session == m)
    return l;
  /* Found while mounted: its number may have been another LUN's at
   * mount time (lunscan.h), so only its own pairs count. */
  if (l->live) {
    for (struct lun *p = l->pair_next; p; p = p->pair_next)
      if (p->session == m)
        return p;
    return NULL;
  }
  for (unsigned i = 0; i < m->nr_luns; i++)
    if (m->luns[i].lun == l->lun)
      return &m->luns[i];
  return NULL;
}

/* Every path's state of l read again: a target port group's change is
 * announced on one path, but concerns the others too, and a path not
 * used for I/O would never get its own unit attention. */
static void
alua_reread_all (struct session *s, struct lun *l)
{
  for (struct session *m = s->first_path ? s->first_path : s; m;
       m = m->next_path) {
    struct lun *p = pair_of (m, l);

    if (p && !lun_removed (p))
      alua_reread (m->iscsi, &p->alua, can_send (m));
  }
}

static void
note_sense (struct cmdq *q, struct lun *l, struct scsi_task *task)
{
  if (task == NULL)
    return;
  if (task->sense.key == SCSI_SENSE_ILLEGAL_REQUEST
      && task->sense.ascq == SCSI_SENSE_ASCQ_LOGICAL_UNIT_NOT_SUPPORTED
      && !__atomic_load_n (&l->gone, __ATOMIC_RELAXED)) {
    log_error ("lun%d of %s is gone from the target", l->lun,
               l->session->target);
    __atomic_store_n (&l->gone, true, __ATOMIC_RELAXED);
  }
  if (task->sense.key == SCSI_SENSE_UNIT_ATTENTION
      && task->sense.ascq == SCSI_SENSE_ASCQ_CAPACITY_DATA_HAS_CHANGED) {
    __atomic_store_n (&l->capacity_checked, 0, __ATOMIC_RELAXED);
    __atomic_store_n (&l->capacity_stale, true, __ATOMIC_RELAXED);
  }
  /* LUNs were added or removed: the FUSE side scans the target again. */
  if (task->sense.key == SCSI_SENSE_UNIT_ATTENTION
      && task->sense.ascq == ASCQ_REPORTED_LUNS_DATA_HAS_CHANGED)
    atomic_store (&l->session->luns_changed, true);
  /* The target's port groups changed state: ask which, as a kernel
   * initiator's ALUA handler does (the command itself is retried). */
  if (alua_sense (task->sense.key, task->sense.ascq) & ALUA_SENSE_REREAD)
    alua_reread_all (q->s, l);
}

/* Whether c, sent on a connection that is now lost, could still change
 * the medium if that connection's target carries it out late (mpath.h,
 * Fencing).  A READ or a query changes nothing; SYNCHRONIZE CACHE only
 * makes durable what was already written. */
static bool
changes_medium (const struct scmd *c)
{
  return c->kind == CMD_WRITE || c->kind == CMD_UNMAP
         || c->kind == CMD_WRITESAME;
}

/* One path of several, and the target says this path cannot do the
 * command now (standby, unavailable, in transition): it goes back to the
 * path above as a path error, to be sent on another usable path, and
 * this pair is not used until its states are read again (note_sense
 * asked).  Bounded like a retry, since without ALUA states nothing stops
 * it from coming back here. */
static bool
send_elsewhere (struct cmdq *q, struct scmd *c, int status,
                const struct scsi_task *task)
{
  struct lun *p;

  if (!q->give_back || status != SCSI_STATUS_CHECK_CONDITION || task == NULL
      || c->abandoned || c->retries >= 5
      || !(alua_sense (task->sense.key, task->sense.ascq)
           & ALUA_SENSE_ELSEWHERE))
    return false;
  c->retries++;
  atomic_fetch_add (&stats.retries, 1);
  if ((p = pair_of (q->s, c->lun)) != NULL)
    alua_refused (&p->alua);
  c->path_lost = true;
  return true;
}

/* An answer to a query: its bytes go where the engine asked (c->iov). */
static void
copy_answer (struct scmd *c, struct scsi_task *task)
{
  size_t n = 0;

  if (task && task->datain.data && task->datain.size > 0) {
    n = (size_t) task->datain.size;
    if (n > c->iov.iov_len)
      n = c->iov.iov_len;
    memcpy (c->iov.iov_base, task->datain.data, n);
  }
  c->datain = n;
}

static void
command_cb (struct iscsi_context *iscsi, int status, void *command_data,
            void *private_data)
{
  struct scmd *c = private_data;
  /* A cancelled command comes back without its task; it is still ours. */
  struct scsi_task *task = command_data ? command_data : c->task;
  struct cmdq *q = cmdq_of (c->path);
  int err = 0;

  (void) iscsi;
  sent_remove (q, c);
#ifndef HAVE_LIBISCSI_1_20
  /* libiscsi 1.19 without automatic reconnects (relogin, below) cancels
   * every command of a lost connection at once: hand them back. */
  if (status == SCSI_STATUS_CANCELLED && q->give_back && !c->path_lost
      && !recovery_releasing (c)) {
    c->path_lost = true;
    c->unfenced = changes_medium (c);
    if (q->relogin == RELOGIN_NONE) {
      /* Down from now on: nothing more may be sent this way. */
      q->relogin = RELOGIN_LOST;
      q->lost_since = clock_mono_s ();
      if (q->path.down_since == 0) {
        q->path.down_since = q->lost_since;
        if (q->path.client.changed)
          q->path.client.changed (q->path.client.eng);
      }
    }
  }
#endif
  /* Handed back: the path above sends it elsewhere (give_back). */
  if (status == SCSI_STATUS_CANCELLED && c->path_lost) {
    recovery_forget (&q->eh, c);
    c->task = NULL;
    inflight_dec (q);
    if (task)
      scsi_free_scsi_task (task);
    finished (q, c, -ENOTCONN);
    return;
  }
  /* Recovery let it go: the target can no longer act on it, and its
   * request was answered at the deadline. */
  if (status == SCSI_STATUS_CANCELLED && recovery_releasing (c)) {
    recovery_forget (&q->eh, c);
    c->task = NULL;
    inflight_dec (q);
    atomic_fetch_add (&stats.failed[c->kind], 1);
    if (task)
      scsi_free_scsi_task (task);
    pump_waiting (q);
    finished (q, c, -EIO);
    return;
  }
  recovery_forget (&q->eh, c);
  c->task = NULL;
  inflight_dec (q);
  if (status == SCSI_STATUS_CHECK_CONDITION)
    note_sense (q, c->lun, task);
  if (send_elsewhere (q, c, status, task)) {
    if (task)
      scsi_free_scsi_task (task);
    pump_waiting (q);
    finished (q, c, -ENOTCONN);
    return;
  }
  if (status == SCSI_STATUS_GOOD && c->kind == CMD_CAPACITY && task)
    note_capacity (c->lun, task);
  if (status == SCSI_STATUS_GOOD && c->kind == CMD_QUERY)
    copy_answer (c, task);
  if (status != SCSI_STATUS_GOOD) {
    if (!c->abandoned && task_worth_retrying (status, task, c->retries)) {
      c->retries++;
      atomic_fetch_add (&stats.retries, 1);
      if (task)
        scsi_free_scsi_task (task);
      /* Behind any commands that wait for a slot, and then the slot this
       * one freed goes to the first of them: without the pump, a retry
       * with nothing else in flight left the queue waiting for a
       * completion that would never come. */
      issue (&q->path, c);
      pump_waiting (q);
      return;
    }
    err = task_error (status, task);
    if (err == 0)
      err = -EIO;
    /* An unsupported optional command is the caller's to handle quietly;
     * so is WRITE SAME, which some targets (tgtd's file store among them)
     * fail with nonsense: the caller falls back to plain writes. */
    if (c->kind != CMD_READ && c->kind != CMD_WRITE
        && task_unsupported (status, task))
      err = -EOPNOTSUPP;
    else if (c->kind == CMD_WRITESAME)
      log_debug ("WRITE SAME(16) failed with status 0x%x", status);
    else
      task_log_failure (kind_what[c->kind], status, task);
    stats_command_failed (c->kind, err == -EOPNOTSUPP);
  }
  else if (c->kind == CMD_READ)
    atomic_fetch_add (&stats.bytes_read, c->iov.iov_len);
  else if (c->kind == CMD_WRITE)
    atomic_fetch_add (&stats.bytes_written, c->iov.iov_len);
  if (task)
    scsi_free_scsi_task (task);
  pump_waiting (q);
  finished (q, c, err);
}

/* ---- the session's client calls (session.h) ---- */

static void
take (void *opaque)
{
  struct cmdq *q = opaque;

  q->path.client.take (q->path.client.eng);
}

/* ALUA states to read again: after a reconnect (the target may have
 * moved its port groups meanwhile, and a unit attention saying so may
 * have been lost with the connection), and those that had to wait for
 * the login. */
static void
alua_tick (struct cmdq *q, bool back)
{
  const struct session *first = q->s->first_path ? q->s->first_path : q->s;

  for (unsigned i = 0; i < q->s->nr_luns; i++) {
    struct lun *l = &q->s->luns[i];
    struct alua_path *ap = &l->alua;
    const struct lun *f = pair_of (first, l);

    /* Its LUN was removed (the FUSE side's scanner marks the first
     * path's struct lun): out of the stats, nothing more asked. */
    if (f && lun_removed (f)) {
      alua_forget (ap);
      continue;
    }
    if (back || alua_pending (ap))
      alua_reread (q->s->iscsi, ap, can_send (q->s));
  }
  /* And the pairs of LUNs found while mounted (command_path_watch). */
  for (unsigned i = 0; i < q->nr_live; i++) {
    struct alua_path *ap = &q->live[i].pair->alua;

    if (lun_removed (q->live[i].first)) {
      alua_forget (ap);
      continue;
    }
    if (back || alua_pending (ap))
      alua_reread (q->s->iscsi, ap, can_send (q->s));
  }
}

int
command_path_watch (struct path *p, struct lun *pair, const struct lun *first)
{
  struct cmdq *q = cmdq_of (p);

  if (q->nr_live == q->cap_live) {
    unsigned cap = q->cap_live ? 2 * q->cap_live : 8;
    void *n = realloc (q->live, cap * sizeof *q->live);

    if (n == NULL)
      return -ENOMEM;
    q->live = n;
    q->cap_live = cap;
  }
  q->live[q->nr_live].pair = pair;
  q->live[q->nr_live].first = first;
  q->nr_live++;
  return 0;
}

/* The session is lost: hand back what libiscsi holds, oldest first
 * (the list is newest first), then what waits.  A snapshot, since each
 * hand-back may send new commands (never to this path, which is down by
 * now) and free requests, but never a command still in the snapshot:
 * a request is freed only when all its commands are back. */
static void
give_back (struct cmdq *q)
{
  unsigned n = 0, i = 0;
  struct scmd **all, *c;

  for (c = q->sent; c; c = c->sent_next)
    n++;
  all = n ? malloc (n * sizeof *all) : NULL;
  if (n && all == NULL) {
    log_error ("out of memory handing commands to another path");
    return;
  }
  for (c = q->sent; c; c = c->sent_next)
    all[n - 1 - i++] = c;
  for (i = 0; i < n; i++) {
    c = all[i];
    c->path_lost = true;
    c->unfenced = changes_medium (c);
    if (iscsi_scsi_cancel_task (q->s->iscsi, c->task) != 0) {
      /* libiscsi does not know it: leave it to its answer. */
      c->path_lost = false;
      c->unfenced = false;
      log_error ("a command to %s at %s cannot be taken back", q->s->target,
                 q->s->portal);
    }
  }
  free (all);
  while (q->wait_head) {
    c = q->wait_head;
    q->wait_head = c->next;
    if (q->wait_head == NULL)
      q->wait_tail = NULL;
    c->path_lost = true;
    finished (q, c, -ENOTCONN);
  }
}

void
command_path_give_back_on_loss (struct path *p)
{
  struct cmdq *q = cmdq_of (p);

  q->give_back = true;
#ifndef HAVE_LIBISCSI_1_20
  iscsi_set_noautoreconnect (q->s->iscsi, 1);
  q->s->relogin_by_hand = true;
#endif
}

#ifndef HAVE_LIBISCSI_1_20
/* libiscsi 1.19 cannot cancel a command of a connection it is logging in
 * again: its cancel does not look at the lost connection's queues, so
 * a command there would wait for that portal to come back.  A path of
 * several therefore runs without automatic reconnects: on a loss
 * libiscsi cancels every command at once (command_cb hands them back)
 * and then only fails (the session marks itself dropped); here the path
 * hands back what waited, asks for a new login, and is down until that
 * login is back. */
static void
relogin (struct cmdq *q, time_t now, bool back)
{
  struct session *s = q->s;

  if (q->relogin == RELOGIN_NONE && s->down_since) {
    q->relogin = RELOGIN_LOST;
    q->lost_since = s->down_since;
  }
  switch (q->relogin) {
  case RELOGIN_NONE:
    return;
  case RELOGIN_LOST:
    give_back (q);
    q->relogin = RELOGIN_ASKED;
    s->dropped = false;
    iscsi_set_noautoreconnect (s->iscsi, 0);
    log_debug ("logging in to %s at %s again", s->target, s->portal);
    return;
  case RELOGIN_ASKED:
  default:
    (void) now;
    if (back) {
      iscsi_set_noautoreconnect (s->iscsi, 1);
      q->relogin = RELOGIN_NONE;
      q->lost_since = 0;
    }
    return;
  }
}
#endif

static void
tick (void *opaque, time_t now, bool back, bool second)
{
  struct cmdq *q = opaque;
  bool was_down = q->path.down_since != 0;

#ifndef HAVE_LIBISCSI_1_20
  if (q->give_back)
    relogin (q, now, back);
#endif
  q->path.down_since = q->s->down_since ? q->s->down_since : q->lost_since;
  if (was_down != (q->path.down_since != 0) && q->path.client.changed)
    q->path.client.changed (q->path.client.eng);
  if (q->give_back && !was_down && q->path.down_since)
    give_back (q);
  if (back)
    pump_waiting (q);
  if (second) {
    q->path.client.expire (q->path.client.eng, now);
    recovery_tick (&q->eh, now);
    pump_waiting (q);
  }
  if (back || second)
    alua_tick (q, back);
}

static bool
idle (void *opaque)
{
  struct cmdq *q = opaque;

  return q->path.client.idle (q->path.client.eng);
}

/* Stopping, out of time: answer everything while FUSE is still there to
 * hear it. */
static void
cancel_all (void *opaque)
{
  struct cmdq *q = opaque;

  q->path.client.take (q->path.client.eng);
  q->path.client.expire (q->path.client.eng, 0);
  fail_waiting (q);
}

/* The libiscsi context is gone: no callback can come any more. */
static void
closed (void *opaque)
{
  struct cmdq *q = opaque;

  recovery_close (&q->eh);
  if (q->path.client.closed)
    q->path.client.closed (q->path.client.eng);
  free (q->live);
  free (q);
}

/* ---- the path's other calls ---- */

static void
wake (struct path *p)
{
  session_wake (cmdq_of (p)->s);
}

static bool
on_thread (const struct path *p)
{
  return session_on_thread (cmdq_of (p)->s);
}

static const struct path_ops ops = {
  .send = issue, .wake = wake, .on_thread = on_thread,
};

struct path *
command_path_new (struct session *s)
{
  struct cmdq *q = calloc (1, sizeof *q);

  if (q == NULL)
    return NULL;
  q->s = s;
  q->queue_depth = s->queue_depth;
  q->eh.s = s;
  q->eh.sent = &q->sent;
  q->eh.waiting = &q->wait_head;
  q->path.ops = &ops;
  q->path.alloc = s->alloc;
  q->path.timeout = s->timeout;
  q->path.can_lend = !s->iser;
  q->path.splice = s->splice;
  session_set_client (s, &(struct session_client) {
    .take = take, .tick = tick, .idle = idle, .cancel_all = cancel_all,
    .closed = closed, .opaque = q,
  });
  return &q->path;
}
