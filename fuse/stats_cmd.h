/* iserfs --stats MOUNTPOINT: a mount's counters as JSON on stdout. */
#ifndef ISERFS_STATS_CMD_H
#define ISERFS_STATS_CMD_H

/* Reads the mount root's user.iserfs.stats attribute (any user who can
 * see the mount point can).  Main thread, nothing mounted.  Returns 0, or
 * -errno after printing one line. */
int stats_command (const char *mountpoint);

#endif
