/* FUSE over io_uring (see uring.c): READ and WRITE requests taken on the
 * first session's thread from a ring instead of read() on /dev/fuse. */
#ifndef ISERFS_URING_H
#define ISERFS_URING_H

#include <stdbool.h>
#include <stdint.h>

#include "options.h"            /* FUSE_USE_VERSION */
#include <fuse_lowlevel.h>

#include "session.h"

/* Whether this kernel would take the ring: the fuse module's enable_uring
 * is Y (and iserfs was built with liburing). */
bool uring_supported (void);

/* Why uring_supported() said no, in a few words. */
const char *uring_why_not (void);

/* After mounting, before the sessions start: take libfuse's replies
 * through our hooks and serve the ring on owner's thread, with up to depth
 * entries for each CPU's queue; requests other than READ and WRITE run on
 * up to max_threads threads.  Returns 0 or -errno. */
int uring_setup (struct fuse_session *se, struct session *owner,
                 unsigned depth, unsigned max_threads);

/* From the init operation: the entries are sized for conn's max_write and
 * given to the kernel once INIT's reply is written. */
void uring_init_done (const struct fuse_conn_info *conn);

/* Whether this thread is serving a ring request right now (its READ reply
 * must be written from memory, not spliced from a pipe). */
bool uring_serving (void);

/* The payload buffer of the ring request this thread serves, if it holds
 * len bytes: a WRITE's data is there, and a READ's reply can be put there
 * directly, with no copy.  It stays the request's until it is answered.
 * NULL when not serving a ring request. */
void *uring_payload (size_t len);

/* When the request loop has ended, before the open files are closed:
 * stop running requests (new ones are answered EIO) and wait for those
 * running on job threads (jobs.c). */
void uring_quiesce (void);

/* After the unmount: close the ring and free the entries. */
void uring_stop (void);

#endif
