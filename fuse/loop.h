/* The FUSE request loop: requests are read straight into I/O buffers, so a
 * WRITE's data can go to the target from the buffer it was received into. */
#ifndef ISERFS_LOOP_H
#define ISERFS_LOOP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "options.h"            /* FUSE_USE_VERSION */

#include "iobuf.h"

/* Whether this libfuse reads requests in a way we can size buffers for
 * (checked at run time: the library may be newer than the headers). */
bool loop_supported (void);

/* Serve se until it exits.  max_threads: at most this many workers (1 is
 * single-threaded); max_idle: idle workers above this many exit, -1 never;
 * alloc: where request buffers come from at first (the I/O engine's).
 * Returns 0, or -errno when reading /dev/fuse failed. */
int loop_run (struct fuse_session *se, unsigned max_threads, int max_idle,
              const struct iobuf_allocator *alloc);

/* Block the stop signals (SIGTERM, SIGINT, SIGHUP) in the calling thread,
 * the old mask in *old (may be NULL): every thread but the main one, which
 * waits for them in loop_run(), blocks them (and so do the threads they
 * create, which inherit the mask). */
void loop_block_stop_signals (sigset_t *old);

/* Called by an operation on a worker: take over the buffer the current
 * request was received into, if [data, data+len) lies in it and it came
 * from alloc.  On success *buf owns it (free with iobuf_free(alloc, buf))
 * and the worker receives its next request into a new buffer.  Otherwise
 * the next buffer of this worker comes from alloc, so that the following
 * write of the same LUN can take it. */
bool loop_take_request_buffer (const void *data, size_t len,
                               const struct iobuf_allocator *alloc,
                               struct iobuf *buf);

#endif
