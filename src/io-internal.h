/* The engine's view of a request (io.h is the caller's): its commands, its
 * place in the range locks, its deadline.  Included only by the files of
 * src/ that must see inside a request.
 *
 * Ownership: a request belongs to its caller until io_submit(), then to the
 * engine on the LUN's session thread; every field below the caller's part
 * is touched only there. */
#ifndef ISERFS_IO_INTERNAL_H
#define ISERFS_IO_INTERNAL_H

#include <time.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include "io.h"
#include "stats.h"

struct session;

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
  int err;                      /* first error seen, -errno */

  /* The caller's (io.h). */
  io_done_fn *done;
  void *ctx;
  void *tag;
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

/* Called by the session thread. */
void io_start (struct io_req *r);
/* c is back; err is 0 or -errno. */
void io_cmd_done (struct scmd *c, int err);
/* Reply EIO to every request past its deadline (all of them if now is 0);
 * now is clock_mono_s(). */
void io_expire (struct session *s, time_t now);

#endif
