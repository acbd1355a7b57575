/* The I/O engine: byte ranges of a LUN become SCSI commands.
 *
 * A request covers bytes [off, off+len) of one LUN.  The engine maps it to the
 * blocks that hold those bytes, splits it into commands no larger than the LUN
 * and the transport accept, reads and merges partial first/last blocks before
 * writing (read-modify-write), and serialises writes whose block ranges
 * overlap so that no merge ever works on stale data; a read overlapping a
 * write submitted before it waits for that write, so that it sees the data
 * even when the write was answered early (write-behind).  All of that runs on the
 * LUN's session thread; the request's completion callback is called there
 * when every command finished.
 *
 * A request is opaque: the caller makes it with a constructor (which takes
 * the completion callback and one context pointer), reads what it needs
 * through the accessors below, and hands it over with io_submit().  The
 * engine's own view of it is src/io-internal.h.  Errors are 0 / -errno.
 */
#ifndef ISERFS_IO_H
#define ISERFS_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iobuf.h"
#include "lun.h"

enum io_op {
  IO_READ, IO_WRITE, IO_SYNC, IO_UNMAP,
  IO_WRITESAME,                 /* zero whole blocks with WRITE SAME(16) */
  IO_CAPACITY,                  /* refresh the LUN's capacity */
  IO_QUERY,                     /* a query whose answer comes back */
};

/* What an IO_QUERY asks (io_req_new_query). */
enum io_query {
  QUERY_REPORT_LUNS,            /* of the LUN's target */
  QUERY_INQUIRY,                /* standard INQUIRY data */
  QUERY_VPD,                    /* a VPD page */
  QUERY_CAPACITY,               /* READ CAPACITY(16) */
  QUERY_MODE_SENSE,             /* MODE SENSE(6), all pages */
  QUERY_RTPG,                   /* REPORT TARGET PORT GROUPS (alua.h) */
};

struct io_req;

/* Called exactly once per submitted request, on the session thread, with
 * the context given to the constructor (or io_req_set_done).  It must not
 * free the request and must not wait. */
typedef void io_done_fn (struct io_req *r, void *ctx);

/* Ownership: after io_submit() the engine owns the request.  It calls done()
 * exactly once -- when every command finished, or earlier with -EIO when the
 * deadline (the session timeout) passes -- and frees the request itself once
 * no command of it is left with the transport.  Before io_submit() the
 * caller owns it and may free it with io_req_free(). */

/* Create a request into *rp.  For IO_READ/IO_WRITE a pool buffer covering
 * the blocks is attached; io_req_data() is where the caller's bytes go/come
 * from.  done may be NULL (nothing to tell).  Returns 0 or -errno. */
int io_req_new (struct io_req **rp, struct lun *lun, enum io_op op,
                uint64_t off, size_t len, io_done_fn *done, void *ctx);
/* Create a READ or WRITE whose data goes to or comes from data, memory the
 * caller lends until done() is called (a FUSE io_uring entry's payload):
 * nothing is allocated or copied.  Should the deadline answer it while
 * its commands are still out, its data moves to a buffer of its own
 * first, so the lender may reuse the memory as soon as done() returns.
 * Only whole blocks over TCP can be lent (an iSER transport wants
 * registered memory): otherwise 0 with *rp NULL, and the caller makes
 * the request the usual way. */
int io_req_new_lent (struct io_req **rp, struct lun *lun, enum io_op op,
                     uint64_t off, size_t len, void *data,
                     io_done_fn *done, void *ctx);
/* Create a query of l (its number; for REPORT LUNS any LUN of the
 * target will do) with room for `alloc` bytes of answer, at most 65535.
 * In done(), io_req_data() holds the answer's bytes as the target sent
 * them and io_req_len() their number.  Returns 0 or -errno. */
int io_req_new_query (struct io_req **rp, struct lun *l, enum io_query q,
                      unsigned page, size_t alloc, io_done_fn *done,
                      void *ctx);
/* Free a request that was never submitted. */
void io_req_free (struct io_req *r);

/* Before io_submit (caller's thread): */
/* Another completion callback and context. */
void io_req_set_done (struct io_req *r, io_done_fn *done, void *ctx);
/* A second pointer the caller keeps with the request (the FUSE front end:
 * the file handle of a write); the engine never looks at it. */
void io_req_set_tag (struct io_req *r, void *tag);
/* A READ whose caller can answer from a pipe (io_req_pipe_fd): the data
 * may be spliced instead of copied (src/splice.h). */
void io_req_allow_pipe (struct io_req *r);

/* Accessors, for the owner of the request (the caller before io_submit,
 * done() after). */
void *io_req_tag (const struct io_req *r);
/* The context the completion callback gets. */
void *io_req_ctx (const struct io_req *r);
/* Where the caller's bytes are: off % block_size into the data. */
void *io_req_data (const struct io_req *r);
uint64_t io_req_off (const struct io_req *r);
size_t io_req_len (const struct io_req *r);
/* 0, or the request's -errno. */
int io_req_err (const struct io_req *r);
/* The pipe that holds all of a READ's data, or -1: it is at
 * io_req_data(). */
int io_req_pipe_fd (const struct io_req *r);

/* Submit from any thread. */
void io_submit (struct io_req *r);

/* Submit a request and wait for its completion (from a thread other than
 * the session's).  Returns 0 or -errno; the request is gone after. */
int io_run_sync (struct io_req *r);

#endif
