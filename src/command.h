/* The command layer: a path (path.h) over one iSCSI session.  It sends the
 * engine's commands with libiscsi, at most queue_depth at a time (the rest
 * wait in a FIFO), retries transient conditions, maps SCSI status to
 * errno, notes what answers say about the LUN (a new capacity, a LUN gone
 * or back), and recovers commands past their deadline (recovery.h).
 *
 * It sits between the engine above (which it calls only through the
 * path's client) and the session below (login, thread, hand-off), whose
 * client it is: the session thread calls it through struct
 * session_client.
 *
 * Ownership: struct cmdq is made before the session thread starts and
 * freed when the session closes (its closed() call); everything in it
 * after the start belongs to the session thread. */
#ifndef ISERFS_COMMAND_H
#define ISERFS_COMMAND_H

#include "path.h"
#include "recovery.h"

struct session;

struct cmdq {
  struct path path;             /* what the engine sees */
  struct session *s;
  unsigned queue_depth;         /* commands with libiscsi at most */
  unsigned inflight;            /* commands with libiscsi now */
  struct scmd *wait_head, *wait_tail;   /* waiting for a slot or a login */
  struct scmd *sent;            /* with libiscsi, newest first */
  struct recovery eh;           /* commands past their deadline */
  bool give_back;               /* one path of several: when the session
                                 * goes down, hand every command back */
  /* libiscsi 1.19 only (command.c, relogin): a lost connection whose
   * commands libiscsi gave back, and since when. */
  enum { RELOGIN_NONE, RELOGIN_LOST, RELOGIN_ASKED } relogin;
  time_t lost_since;
  /* Pairs of LUNs found while mounted, whose ALUA states this path reads
   * again (command_path_watch). */
  struct { struct lun *pair; const struct lun *first; } *live;
  unsigned nr_live, cap_live;
};

/* The path over s (before session_start): it becomes s's client.  NULL
 * when out of memory. */
struct path *command_path_new (struct session *s);

/* One path of several to the same LUNs (mpath.h; before the start): once
 * its session is lost, every command it holds is handed back through
 * done() with -ENOTCONN and path_lost set (path.h), oldest first, so that
 * the path above can send it on another path.  Those libiscsi held are
 * cancelled there first: the connection they went out on is gone, so the
 * target can no longer answer them on it, and libiscsi would otherwise
 * send them again only once this portal is back. */
void command_path_give_back_on_loss (struct path *p);

/* pair, a LUN found while mounted as this path's session probed it
 * (first: the same LUN through the first path): its ALUA states are read
 * again here as the mount-time LUNs' are (after a reconnect, when asked),
 * until first is removed.  Session thread.  0 or -ENOMEM. */
int command_path_watch (struct path *p, struct lun *pair,
                        const struct lun *first);

#endif
