/* The I/O engine: byte ranges of a LUN become SCSI commands.
 *
 * A request covers bytes [off, off+len) of one LUN.  The engine maps it to the
 * blocks that hold those bytes, splits it into commands no larger than the LUN
 * and the transport accept, reads and merges partial first/last blocks before
 * writing (read-modify-write), and serialises writes whose block ranges
 * overlap so that no merge ever works on stale data; a read overlapping a
 * write submitted before it waits for that write, so that it sees the data
 * even when the write was answered early (write-behind).  All of that runs on the
 * LUN's session thread; `done` is called there when every command finished.
 */
#ifndef ISERFS_IO_H
#define ISERFS_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include "iobuf.h"
#include "lun.h"
#include "stats.h"

enum io_op {
  IO_READ, IO_WRITE, IO_SYNC, IO_UNMAP,
  IO_WRITESAME,                 /* zero whole blocks with WRITE SAME(16) */
  IO_CAPACITY,                  /* refresh the LUN's capacity */
};

/* One SCSI command of a request. */
struct tmf;

struct scmd {
  struct io_req *req;
  enum cmd_kind kind;
  uint64_t lba;
  uint32_t nblocks;
  struct scsi_iovec iov;        /* must live until completion: libiscsi keeps it */
  struct unmap_list unmap;
  struct scsi_task *task;       /* while sent */
  unsigned retries;
  struct scmd *next;            /* session's wait queue */
  /* Past its deadline (recovery.h), on the session thread. */
  unsigned char eh;             /* enum eh_state */
  bool eh_reset_sent;           /* a LOGICAL UNIT RESET covers it */
  struct tmf *eh_tmf;           /* its ABORT TASK, while out */
};

struct io_req {
  struct lun *lun;
  enum io_op op;
  uint64_t off;                 /* bytes */
  size_t len;
  uint64_t lba;                 /* blocks covering [off, off+len) */
  uint64_t nblocks;
  size_t head;                  /* off - lba * block_size */
  struct iobuf buf;             /* owns the data (READ/WRITE) */
  char *data;                   /* block-aligned start of the data in buf */
  struct iobuf edge;            /* partial first/last block scratch */
  int err;                      /* first errno seen, positive */
  void (*done) (struct io_req *r);
  void *opaque;
  void *opaque2;
  bool want_pipe;               /* READ: done() can answer from a pipe */

  /* A READ's data spliced into a pipe (splice.h). */
  struct spipe *pipe;
  size_t piped;                 /* bytes of the data in it, from the start */
  unsigned char pipe_state;

  /* Engine state. */
  unsigned pending;
  bool rmw_done;
  bool locked;                  /* holds its block range */
  bool lock_waiting;            /* queued for its block range */
  bool replied;                 /* done() has been called */
  bool lent;                    /* data is the caller's memory (io_req_new_lent) */
  time_t deadline;              /* reply EIO after this (clock.h); 0 = never */
  struct io_req *next;          /* submit queue, lock lists */
  struct io_req *granted_next;  /* lock_release's list to start: a granted
                                 * write is on the held list through next */
  struct io_req *active_prev, *active_next;
  unsigned nr_scmd, max_scmd;
  struct scmd scmd[];
};

/* Ownership: after io_submit() the engine owns the request.  It calls done()
 * exactly once -- when every command finished, or earlier with EIO when the
 * deadline (the session timeout) passes -- and frees the request itself once
 * no command of it is left with the transport.  done() must not free it. */

/* Create a request.  For IO_READ/IO_WRITE a pool buffer covering the blocks
 * is attached; io_req_data() is where the caller's bytes go/come from.
 * Returns NULL with *err set to a positive errno. */
struct io_req *io_req_new (struct lun *lun, enum io_op op, uint64_t off,
                           size_t len, int *err);
/* Create a WRITE of whole blocks whose data already lies at data, inside
 * buf (from the LUN session's allocator): the request takes buf over and
 * sends from it, with no copy.  On failure buf is freed too. */
struct io_req *io_req_new_in (struct lun *lun, uint64_t off, size_t len,
                              struct iobuf *buf, void *data, int *err);
/* Create a READ or WRITE whose data goes to or comes from data, memory the
 * caller lends until done() is called (a FUSE io_uring entry's payload):
 * nothing is allocated or copied.  Should the deadline answer it while
 * its commands are still out, its data moves to a buffer of its own
 * first, so the lender may reuse the memory as soon as done() returns.
 * Only whole blocks over TCP can be lent (an iSER transport wants
 * registered memory): otherwise NULL with *err 0, and the caller makes
 * the request the usual way. */
struct io_req *io_req_new_lent (struct lun *lun, enum io_op op, uint64_t off,
                                size_t len, void *data, int *err);
/* Whether [off, off+len) is whole blocks of lun, as io_req_new_in needs. */
bool io_whole_blocks (const struct lun *lun, uint64_t off, size_t len);
/* Free a request that was never submitted. */
void io_req_free (struct io_req *r);

static inline void *
io_req_data (struct io_req *r)
{
  return r->data + r->head;
}

/* Submit from any thread. */
void io_submit (struct io_req *r);

/* Submit a request and wait for its done() (from a thread other than the
 * session's).  Returns 0 or a positive errno; the request is gone after. */
int io_run_sync (struct io_req *r);

/* Called by the session thread. */
void io_start (struct io_req *r);
void io_cmd_done (struct scmd *c, int err);
/* Reply EIO to every request past its deadline (all of them if now is 0);
 * now is clock_mono_s(). */
void io_expire (struct session *s, time_t now);

#endif
