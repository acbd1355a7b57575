/* The memory lock limit (RLIMIT_MEMLOCK) and the iSER transport.
 * Registering memory for RDMA pins it, and the kernel charges every
 * registration's pages to the limit unless the process has CAP_IPC_LOCK.
 * libiscsi's iSER transport registers its own buffers at login and does not
 * survive one of those registrations failing, so an iSER session is only
 * opened when the limit can hold them.  Any thread; the state is
 * process-wide and atomic. */
#ifndef ISERFS_MEMLOCK_H
#define ISERFS_MEMLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Without CAP_IPC_LOCK, raise the soft limit as far as allowed (unlimited
 * with CAP_SYS_RESOURCE, else the hard limit) and record the limit in
 * force in stats.memlock_limit (0: no limit applies).  Once per process. */
void memlock_raise (void);

/* Bytes libiscsi's iSER transport registers for one session whose commands
 * in flight are at most queue_depth (this build's libiscsi). */
uint64_t memlock_iser_need (unsigned queue_depth);

/* Before an iSER login: reserve memlock_iser_need(queue_depth) bytes of
 * the limit for the session, on top of what the open iSER sessions
 * reserved.  Returns the bytes reserved (0 when no limit applies), or
 * -ENOMEM with a one-line explanation in err when the limit cannot hold
 * them. */
int64_t memlock_reserve_iser (unsigned queue_depth, char *err, size_t errlen);

/* After the session's context is destroyed: give back what
 * memlock_reserve_iser returned. */
void memlock_release_iser (int64_t reserved);

#endif
