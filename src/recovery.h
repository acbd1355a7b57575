/* Error recovery for commands the target does not answer in time, after
 * the Linux SCSI error handler and open-iscsi: ABORT TASK; if that fails or
 * is not answered, LOGICAL UNIT RESET; if that fails too, drop the
 * connection and log in again.
 *
 * The engine answers a request EIO at its deadline (io.c, expire), but
 * a command of it that went to the target stays the engine's -- buffer,
 * range lock and all -- until the target can no longer act on it: it
 * answered the command, or an ABORT TASK or LOGICAL UNIT RESET covering it
 * completed, or the connection it went out on is gone (over iSER, its queue
 * pair destroyed, so the target cannot reach its memory any more).  Until
 * then a newer write to the same blocks waits behind it and cannot be
 * overtaken by it.  libiscsi's own command timeout is off in full-feature
 * phase (session.c): it would drop a command without telling the target.
 * Part of the command layer (command.h); the engine marks a command
 * abandoned when it answers its request at the deadline.
 *
 * Ownership: the state lives in struct recovery, inside the command
 * layer's struct cmdq (command.h), and in each
 * struct scmd (path.h); all of it, and every function here, belongs to the
 * session thread. */
#ifndef ISERFS_RECOVERY_H
#define ISERFS_RECOVERY_H

#include <stdbool.h>
#include <time.h>

struct scmd;
struct session;
struct tmf;

/* Where a command past its deadline is in the escalation (scmd.eh). */
enum eh_state {
  EH_NONE,              /* no step taken for it yet */
  EH_ABORTING,          /* ABORT TASK sent, no answer yet */
  EH_ABORT_FAILED,      /* the target refused or did not know the task */
  EH_NEEDS_DROP,        /* the target let it go, libiscsi still waits */
  EH_RELEASING,         /* recovery is cancelling it in libiscsi now */
};

/* The escalation's state for one session, and where it finds the
 * commands (the command layer's lists, set up by it). */
struct recovery {
  struct session *s;
  struct scmd **sent;           /* libiscsi holds them, through sent_next */
  struct scmd **waiting;        /* not sent yet, through next */

  enum { EH_IDLE, EH_STEP_ABORT, EH_STEP_RESET, EH_STEP_DROPPED } step;
  time_t step_deadline;         /* escalate past this (clock.h seconds) */
  unsigned resets_out;          /* LOGICAL UNIT RESETs not answered yet */
  bool want_drop;               /* drop the connection at the next turn */
  struct tmf *tmfs;             /* task management requests out */
};

/* Look at the commands past their deadline and take the next step for
 * them; called about once a second.  now is clock_mono_s(). */
void recovery_tick (struct recovery *e, time_t now);

/* Whether a CANCELLED completion of c is recovery's own release of it
 * (the target can no longer act on it), as opposed to libiscsi giving up
 * on a command the target may still hold. */
bool recovery_releasing (const struct scmd *c);

/* c is back from libiscsi (answered or cancelled): forget it. */
void recovery_forget (struct recovery *e, struct scmd *c);

/* Free what is left of the recovery, once the libiscsi context is gone
 * (no callback can come any more): libiscsi's iSER transport can drop a
 * task management PDU of a torn-down connection without calling back. */
void recovery_close (struct recovery *e);

#endif
