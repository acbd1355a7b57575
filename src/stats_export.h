/* The counters in the forms monitoring systems read: JSON (`iserfs --stats`)
 * and the Prometheus text format (-o metrics=DIR).
 *
 * Both take the text of the user.iserfs.stats attribute (stats_print's
 * NAME=VALUE lines) and describe each counter from stats_table, so every
 * counter the attribute shows appears in both.  Pure functions of their
 * arguments: callable from any thread. */
#ifndef ISERFS_STATS_EXPORT_H
#define ISERFS_STATS_EXPORT_H

#include <stdio.h>

/* {"mountpoint": MNT, "counters": {"NAME": VALUE, ...}}, and with several
 * paths to a target "paths": [{"target": T, "portal": P, "state": "up",
 * "inflight": N, "commands": N, "errors": N, "failovers": N}, ...] from
 * the "path ..." lines (mpath.h).  Other lines of text that are not
 * NAME=NUMBER are skipped.  Returns 0 or -EIO (write error). */
int stats_write_json (FILE *fp, const char *mountpoint, const char *text);

/* One sample per counter, named iserfs_NAME (counters: iserfs_NAME_total),
 * with # HELP and # TYPE lines, labelled mountpoint=MNT; and
 * iserfs_mount_info{mountpoint=MNT,url=URL} 1; and per path iserfs_path_up,
 * _inflight, _commands_total, _errors_total, _failovers_total, labelled
 * also target= and portal=.  Returns 0 or -EIO. */
int stats_write_prometheus (FILE *fp, const char *mountpoint,
                            const char *url, const char *text);

#endif
