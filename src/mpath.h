/* Multipath: one path (path.h) for the engine above several command
 * layers, one per portal of a target, each over its own session.
 *
 * Shape, and why: the engine, every command layer and every libiscsi
 * context of a target run on ONE thread, the first session's, which
 * polls every session's socket (session_add_path).  libiscsi contexts are
 * not thread safe and the engine has no locks; with one thread, sending a
 * command on another path, or sending it again after its path was lost,
 * is a plain function call with the engine's range lock still held, so
 * the order of writes to the same blocks is kept without any hand-off
 * between threads.  A thread per session would need a queue and a wake-up
 * each way for every command, and the engine's state would have to move
 * to locks.  A mount with one portal has no multipath path at all: the
 * engine sits on the command layer as before.
 *
 * LUNs: the first session's LUNs are the files.  A LUN of another path
 * with the same LUN number and the same identity (identity_same, VPD
 * 0x83/0x80) is that LUN seen through another path; one whose identity
 * differs, or that has none, is never merged: it is used only through
 * the first path, and said so once in the log.  A LUN the scanner finds
 * while mounted is probed through every path and paired the same way
 * (mpath_add_lun); a removed one is refused by the engine, whatever the
 * path.
 *
 * Ranks: a path's rank for a LUN is the ALUA rank of that (LUN, path)
 * pair, i.e. of the struct lun that path's session probed (alua.h): taken
 * at mpath_new, then from each re-read (its `changed` callback, set here;
 * alua_refused too).  Without ALUA every path has rank 0.
 *
 * Choosing a path, per command: among the paths whose session is logged
 * in and whose rank for the LUN is best (0 before 1; 2 is never used),
 * by the policy: failover (the first in order, kept until it fails),
 * round-robin (the next one each command) or queue-length (the fewest
 * commands outstanding; ties go round).  With none usable, commands wait
 * here until a path comes back or their request's deadline passes, in
 * order per LUN; other LUNs' commands go on meanwhile.
 *
 * Failover: when a path's session is lost, its command layer hands back
 * every command it held (command_path_give_back_on_loss) and each is sent
 * on another usable path, in the order it was first sent.
 *
 * Fencing: a write (WRITE, UNMAP, WRITE SAME) that was out on the lost
 * connection may still sit at the target -- in its socket buffer, its
 * queue, a network that cut the initiator off but not the target -- and
 * be carried out later.  Sent at once on another path, it could land
 * after its own copy and after a newer write to the same blocks, which
 * the range lock let through once the copy was done: acknowledged data
 * overwritten with older data.  So such writes are held until the path
 * logs in again -- libiscsi (with LIBISCSI_FEATURE_RECONNECT_SAME_ISID)
 * does that with the lost session's ISID, a session reinstatement, and
 * the target ends the old session's tasks before it answers the login --
 * or until fence_timeout passes (at most half the request
 * timeout), when they go elsewhere unfenced, as dm-multipath's commands
 * do after open-iscsi's replacement_timeout.  READs and whatever never
 * left (a command still waiting for a slot) go elsewhere at once.  The
 * range lock stays held meanwhile: newer writes to those blocks, and
 * reads of them, wait.
 *
 * Threads: everything runs on the first session's thread, except
 * mpath_new (main thread, before the start) and mpath_stats_print (any
 * thread; it reads counters and states only, under the registry lock). */
#ifndef ISERFS_MPATH_H
#define ISERFS_MPATH_H

#include <stdio.h>

struct lun;
struct path;

#define MPATH_MAX 16            /* paths per mount, as session.c serves
                                 * on one thread */
struct session;

enum path_policy {
  POLICY_QUEUE_LENGTH,          /* default */
  POLICY_FAILOVER,
  POLICY_ROUND_ROBIN,
};

/* A path's rank for one LUN: its ALUA rank (alua.h, enum alua_rank). */
enum {
  MPATH_RANK_PREFERRED = 0,     /* active/optimized, or no ALUA (default) */
  MPATH_RANK_NONPREFERRED = 1,  /* active/non-optimized: only without a 0 */
  MPATH_RANK_NOIO = 2,          /* standby, unavailable, offline,
                                 * transitioning: connected, never chosen */
};

/* "failover", "round-robin", "queue-length" into *p: 0 or -EINVAL.
 * Both in path_policy.c, apart from the rest, so that the option parser
 * (and its fuzz harness) need none of the multipath machinery.  Any
 * thread. */
int mpath_parse_policy (const char *s, enum path_policy *p);
const char *mpath_policy_name (enum path_policy p);

/* The multipath path over s and every session added to it
 * (session_add_path), with one command layer made here for each: it
 * becomes their client, and the engine made on it (io_engine_new) is
 * freed when the last of them closes.  Main thread, before
 * session_start(s).  NULL when out of memory. */
struct path *mpath_new (struct session *s, enum path_policy policy);

/* Per-path lines of the stats attribute, one per path of every multipath
 * mount: "path TARGET PORTAL state=up inflight=N commands=N errors=N
 * failovers=N", and " alua=lunN:STATE,..." for the LUNs whose state
 * through the path is known.  They are not NAME=NUMBER lines: the JSON
 * and Prometheus writers read them apart (stats_export.c). */
void mpath_stats_print (FILE *fp);

/* LUN l, found on a multipath mount's first session while mounted
 * (lunscan.c), and o[i] (i < n; o[0] unused), its struct lun as path i's
 * session probed it, NULL where it was not seen: handed to the multipath
 * thread, which pairs it up as at mount (same identity: used through
 * that path; else not, said once in the log).  Waits until that is done,
 * at most 10 s (-ETIMEDOUT; it is still done later).  0 also when l's
 * session is no multipath mount's.  l and the o[i] must outlive the
 * mount (the scanner's).  Any thread but the multipath thread. */
int mpath_add_lun (struct lun *l, struct lun *const *o, unsigned n);

#endif
