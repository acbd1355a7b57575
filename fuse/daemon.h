/* Going to the background the way a mount command should: the parent stays
 * until the child has mounted (exit 0) or failed (exit 1), so a shell, fstab
 * or systemd sees the real outcome, and the child makes every connection
 * itself (RDMA resources do not survive fork). */
#ifndef ISERFS_DAEMON_H
#define ISERFS_DAEMON_H

/* Fork; only the child returns.  The parent exits with the child's verdict. */
void daemon_fork (void);
/* In the child once the mount is up: detach and tell the parent. */
void daemon_ready (void);

#endif
