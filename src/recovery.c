/* Error recovery: see recovery.h for the model.
 *
 * Why each step lets go of what it does:
 * - A command the target answered is done (command.c, command_cb).
 * - ABORT TASK answered "function complete": the target has no such task
 *   any more.  A READ, SYNCHRONIZE CACHE and the like are then cancelled in
 *   libiscsi and released.  A WRITE is not: libiscsi may still hold DATA-OUT
 *   PDUs of it that send from its buffer, and cancelling the command does
 *   not take them off its queue.  Only a new connection clears that queue,
 *   so a WRITE waits for the connection to be dropped.
 * - LOGICAL UNIT RESET answered "function complete": no command the target
 *   had for the LUN is left, past its deadline or not; libiscsi would wait
 *   for their answers forever.  READs and the like past their deadline are
 *   released as after an abort; anything else needs the connection dropped.
 * - Dropping the connection: over TCP the socket is shut down, over iSER
 *   the connection and its queue pair are torn down, so the target can no
 *   longer reach the commands' memory or answer on that connection.
 *   libiscsi logs in again and sends the commands it still holds once more
 *   on the new connection; they are released when answered there, or when
 *   the session closes.  Until then a newer write to their blocks waits,
 *   and cannot be overtaken by an older one the target still had.
 *
 * With Debian's libiscsi 1.19, task management over iSER crashes its
 * transport and a dropped iSER connection is never logged in again from
 * the session loop (session.c calls its service only on completions): over
 * iSER there, commands wait for the target's answer, which is safe, with
 * no escalation. */
#include <config.h>

#include <stdlib.h>
#include <sys/socket.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include "log.h"
#include "lun.h"
#include "path.h"
#include "recovery.h"
#include "session.h"
#include "stats.h"

/* One task management request out; freed by its callback, which libiscsi
 * calls for an answer, a cancel on reconnect and a context destroyed. */
struct tmf {
  struct tmf *prev, *next;      /* q->tmfs */
  struct recovery *q;
  struct scmd *c;               /* ABORT TASK: the command, NULL once back */
  struct lun *lun;              /* LOGICAL UNIT RESET: the LUN */
};

static bool
tmf_usable (const struct recovery *q)
{
#ifdef HAVE_LIBISCSI_1_20
  (void) q;
  return true;
#else
  return !q->s->iser;
#endif
}

static bool
drop_usable (const struct recovery *q)
{
  return tmf_usable (q);
}

/* A command past its deadline that libiscsi still holds. */
static bool
expired (const struct scmd *c)
{
  return c->task != NULL && c->abandoned;
}

/* The first command libiscsi holds for which pick() holds, or NULL.
 * Searched afresh each time: releasing a command can free requests and
 * start others. */
static struct scmd *
find (struct recovery *q, bool (*pick) (const struct scmd *c, const void *arg),
      const void *arg)
{
  for (struct scmd *c = *q->sent; c; c = c->sent_next)
    if (c->task && pick (c, arg))
      return c;
  return NULL;
}

/* Every command of q, sent or waiting to be. */
static void
for_each (struct recovery *q, void (*fn) (struct scmd *c, const void *arg),
          const void *arg)
{
  for (struct scmd *c = *q->sent; c; c = c->sent_next)
    fn (c, arg);
  for (struct scmd *c = *q->waiting; c; c = c->next)
    fn (c, arg);
}

static bool
pick_state (const struct scmd *c, const void *arg)
{
  return expired (c) && c->eh == *(const enum eh_state *) arg;
}

static bool
any_in_state (struct recovery *q, enum eh_state st)
{
  return find (q, pick_state, &st) != NULL;
}

/* The target can no longer act on c: hand it back through libiscsi's
 * cancel, which calls command_cb (command.c) with SCSI_STATUS_CANCELLED. */
static void
release (struct recovery *q, struct scmd *c)
{
  c->eh = EH_RELEASING;
  atomic_fetch_add (&stats.eh_released, 1);
  if (iscsi_scsi_cancel_task (q->s->iscsi, c->task) != 0) {
    /* libiscsi does not know it: it cannot answer it either.  Leave it
     * held rather than free memory libiscsi might still use. */
    log_error ("recovery: libiscsi has no record of a command to release");
    c->eh = EH_NEEDS_DROP;
  }
}

/* ---- ABORT TASK ---- */

static void
abort_answered (struct recovery *q, struct scmd *c, int status,
                uint32_t response)
{
  c->eh_tmf = NULL;
  if (status == SCSI_STATUS_GOOD && response == ISCSI_TMR_FUNC_COMPLETE) {
    if (c->kind == CMD_WRITE)
      c->eh = EH_NEEDS_DROP;
    else
      release (q, c);
    return;
  }
  /* "Task does not exist" for a command still waiting for its answer:
   * the target may not have had all of it yet.  Anything else: refused. */
  c->eh = EH_ABORT_FAILED;
}

static void reset_answered (struct recovery *q, struct lun *l, int status,
                            uint32_t response);

static struct tmf *
tmf_new (struct recovery *q)
{
  struct tmf *t = calloc (1, sizeof *t);

  if (t) {
    t->q = q;
    t->next = q->tmfs;
    if (t->next)
      t->next->prev = t;
    q->tmfs = t;
  }
  return t;
}

static void
tmf_free (struct tmf *t)
{
  if (t == NULL)
    return;
  if (t->prev)
    t->prev->next = t->next;
  else
    t->q->tmfs = t->next;
  if (t->next)
    t->next->prev = t->prev;
  if (t->c)
    t->c->eh_tmf = NULL;
  free (t);
}

static void
tmf_cb (struct iscsi_context *iscsi, int status, void *command_data,
        void *private_data)
{
  struct tmf *t = private_data;
  uint32_t response = command_data ? *(uint32_t *) command_data
                                   : ISCSI_TMR_FUNC_REJECTED;

  (void) iscsi;
  /* Counted even when the command's own answer came first (tgtd answers
   * an abort of a command it is carrying out once that is done). */
  if (!t->lun && status == SCSI_STATUS_GOOD
      && response == ISCSI_TMR_FUNC_COMPLETE)
    atomic_fetch_add (&stats.eh_aborts_done, 1);
  if (t->lun)
    reset_answered (t->q, t->lun, status, response);
  else if (t->c) {
    struct scmd *c = t->c;

    t->c = NULL;
    abort_answered (t->q, c, status, response);
  }
  tmf_free (t);
}

static void
send_abort (struct recovery *q, struct scmd *c)
{
  struct tmf *t = tmf_new (q);

  if (t == NULL
      || iscsi_task_mgmt_abort_task_async (q->s->iscsi, c->task, tmf_cb, t) != 0) {
    tmf_free (t);
    c->eh = EH_ABORT_FAILED;
    return;
  }
  t->c = c;
  c->eh_tmf = t;
  c->eh = EH_ABORTING;
  atomic_fetch_add (&stats.eh_aborts, 1);
}

/* ---- LOGICAL UNIT RESET ---- */

static bool
pick_lun (const struct scmd *c, const void *arg)
{
  return c->lun == arg && c->eh != EH_RELEASING;
}

static bool
pick_lun_releasable (const struct scmd *c, const void *arg)
{
  return pick_lun (c, arg) && expired (c) && c->kind != CMD_WRITE;
}

static void
reset_answered (struct recovery *q, struct lun *l, int status,
                uint32_t response)
{
  struct scmd *c;

  q->resets_out--;
  if (status == SCSI_STATUS_CANCELLED)
    return;                     /* the connection was dropped meanwhile */
  if (status != SCSI_STATUS_GOOD || response != ISCSI_TMR_FUNC_COMPLETE) {
    log_error ("recovery: LOGICAL UNIT RESET of lun%d of %s failed "
               "(status 0x%x, response %u)", l->lun, q->s->target, status,
               (unsigned) response);
    q->want_drop = true;
    return;
  }
  atomic_fetch_add (&stats.eh_lun_resets_done, 1);
  while ((c = find (q, pick_lun_releasable, l)) != NULL)
    release (q, c);
  /* What is left of the LUN the target has forgotten too. */
  if (find (q, pick_lun, l))
    q->want_drop = true;
}

static bool
pick_stuck (const struct scmd *c, const void *arg)
{
  (void) arg;
  return expired (c) && (c->eh == EH_ABORTING || c->eh == EH_ABORT_FAILED)
    && !c->eh_reset_sent;
}

static void
mark_reset_sent (struct scmd *c, const void *arg)
{
  if (c->lun == arg)
    c->eh_reset_sent = true;
}

/* One LOGICAL UNIT RESET for each LUN with a command the abort did not
 * settle. */
static bool
send_resets (struct recovery *q)
{
  struct scmd *c;

  while ((c = find (q, pick_stuck, NULL)) != NULL) {
    struct lun *l = c->lun;
    struct tmf *t = tmf_new (q);

    for_each (q, mark_reset_sent, l);
    if (t == NULL
        || iscsi_task_mgmt_async (q->s->iscsi, l->lun, ISCSI_TM_LUN_RESET,
                                  0xffffffff, 0, tmf_cb, t) != 0) {
      tmf_free (t);
      return false;
    }
    t->lun = l;
    q->resets_out++;
    atomic_fetch_add (&stats.eh_lun_resets, 1);
    log_error ("recovery: ABORT TASK did not settle the commands of lun%d "
               "of %s; LOGICAL UNIT RESET", l->lun, q->s->target);
  }
  return true;
}

/* ---- dropping the connection ---- */

static void
drop (struct recovery *q, const char *why)
{
  struct session *s = q->s;

  atomic_fetch_add (&stats.eh_drops, 1);
  log_error ("recovery: %s; dropping the connection to %s at %s and "
             "logging in again", why, s->target, s->portal);
  if (s->iser) {
    /* Tears down the queue pair: the target cannot reach our memory. */
    iscsi_disconnect (s->iscsi);
    if (iscsi_reconnect (s->iscsi) != 0)
      log_error ("recovery: cannot start a new login: %s",
                 iscsi_get_error (s->iscsi));
  }
  else {
    /* libiscsi sees the hangup at its next turn and logs in again by
     * itself, keeping the commands it holds for the new connection. */
    int fd = iscsi_get_fd (s->iscsi);

    if (fd >= 0)
      shutdown (fd, SHUT_RDWR);
  }
  q->want_drop = false;
  q->step = EH_STEP_DROPPED;
}

static bool
pick_any_expired (const struct scmd *c, const void *arg)
{
  (void) arg;
  return expired (c);
}

static bool
pick_unaborted (const struct scmd *c, const void *arg)
{
  (void) arg;
  return expired (c) && c->eh == EH_NONE;
}

static void
start_over (struct scmd *c, const void *arg)
{
  (void) arg;
  c->eh = EH_NONE;
  c->eh_reset_sent = false;
}

void
recovery_tick (struct recovery *q, time_t now)
{
  struct recovery *e = q;
  unsigned step_time = q->s->timeout ? q->s->timeout : 30;   /* (no deadlines at 0) */
  struct scmd *c;

  if (!iscsi_is_logged_in (q->s->iscsi)) {
    /* The connection is gone already: libiscsi is logging in again and
     * will send what it holds once more. */
    e->want_drop = false;
    if (e->step != EH_STEP_DROPPED && find (q, pick_any_expired, NULL))
      e->step = EH_STEP_DROPPED;
    return;
  }
  if (e->step == EH_STEP_DROPPED) {
    /* Logged in again: whatever is left starts over. */
    e->step = EH_IDLE;
    for_each (q, start_over, NULL);
  }
  if (!find (q, pick_any_expired, NULL) && !e->want_drop) {
    e->step = EH_IDLE;
    return;
  }
  if (!tmf_usable (q))
    return;
  if (e->want_drop || (any_in_state (q, EH_NEEDS_DROP)
                       && !any_in_state (q, EH_ABORTING)
                       && e->resets_out == 0)) {
    if (drop_usable (q))
      drop (q, "commands the target has let go are still queued");
    return;
  }
  /* Every command newly past its deadline gets its ABORT TASK. */
  while ((c = find (q, pick_unaborted, NULL)) != NULL)
    send_abort (q, c);
  switch (e->step) {
  case EH_IDLE:
    if (any_in_state (q, EH_ABORTING) || any_in_state (q, EH_ABORT_FAILED)) {
      log_error ("recovery: commands to %s at %s past the deadline; "
                 "ABORT TASK", q->s->target, q->s->portal);
      e->step = EH_STEP_ABORT;
      e->step_deadline = now + step_time;
    }
    break;
  case EH_STEP_ABORT:
    if (any_in_state (q, EH_ABORT_FAILED)
        || (now >= e->step_deadline && any_in_state (q, EH_ABORTING))) {
      e->step = EH_STEP_RESET;
      e->step_deadline = now + step_time;
      if (!send_resets (q))
        drop (q, "cannot send LOGICAL UNIT RESET");
    }
    break;
  case EH_STEP_RESET:
    if (e->resets_out && now >= e->step_deadline)
      drop (q, "LOGICAL UNIT RESET not answered");
    else if (e->resets_out == 0 && find (q, pick_stuck, NULL)) {
      /* Commands that expired after the reset went out. */
      e->step = EH_STEP_ABORT;
      e->step_deadline = now + step_time;
    }
    break;
  case EH_STEP_DROPPED:
    break;
  }
}

bool
recovery_releasing (const struct scmd *c)
{
  return c->eh == EH_RELEASING;
}

void
recovery_forget (struct recovery *q, struct scmd *c)
{
  (void) q;
  if (c->eh_tmf)
    c->eh_tmf->c = NULL;
  c->eh_tmf = NULL;
  c->eh = EH_NONE;
  c->eh_reset_sent = false;
}

void
recovery_close (struct recovery *q)
{
  while (q->tmfs)
    tmf_free (q->tmfs);
}
