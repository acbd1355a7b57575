/* The seam below the I/O engine: a path carries SCSI commands to a LUN.
 *
 * The engine (io.c) cuts requests into commands and hands each to a path
 * with send(); the path answers each through the client's done(), exactly
 * once, on the path's thread.  Queue depth, retries of transient
 * conditions, error recovery and the wire are the path's business (the
 * command layer, command.c, over one iSCSI session); the engine sees none
 * of them.  Anything that can send a command and call back -- the command
 * layer, a test's fake (tests/check_io.c), the multipath path above
 * several command layers (mpath.h) -- can sit here.
 *
 * Threads: send() and every client call run on the path's thread (the
 * session thread), except wake() and on_thread(), which any thread may
 * call.  The engine owns a struct scmd (it lives in its request); the path
 * may use the fields marked as its own between send() and done(). */
#ifndef ISERFS_PATH_H
#define ISERFS_PATH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

#include "stats.h"              /* enum cmd_kind */

struct iobuf_allocator;
struct lun;
struct path;
struct scsi_task;
struct splice_sink;
struct tmf;

/* One SCSI command. */
struct scmd {
  /* Set by the engine before send(); the path only reads them. */
  struct lun *lun;
  enum cmd_kind kind;
  uint64_t lba;
  uint32_t nblocks;
  /* The data.  The path reads and writes it only through this iovec, on
   * its thread, so the engine may point it elsewhere while the command is
   * out (io.c, unlend); it must live until done(). */
  struct iovec iov;
  struct splice_sink *sink;     /* READ: its data may go to a pipe; NULL: no */
  bool abandoned;               /* its request was answered (deadline): do
                                 * not send it, retry it or wait for it */
  void *owner;                  /* the engine's (its request) */
  unsigned char query;          /* CMD_QUERY: enum io_query (io.h) */
  unsigned char page;           /* CMD_QUERY of a VPD page: its code */

  /* The path's, from send() to done(). */
  struct path *path;
  struct scsi_task *task;       /* while libiscsi holds it */
  unsigned retries;
  struct scmd *next;            /* wait queue */
  struct scmd *sent_prev, *sent_next;   /* commands libiscsi holds */
  bool path_lost;               /* given back because its path's connection
                                 * is gone (command_path_give_back) */
  bool unfenced;                /* and it changes the medium and was out
                                 * on that connection, whose target may
                                 * still carry it out (mpath.h, Fencing) */
  unsigned char eh;             /* enum eh_state (recovery.h) */
  bool eh_reset_sent;           /* a LOGICAL UNIT RESET covers it */
  struct tmf *eh_tmf;           /* its ABORT TASK, while out */
  size_t datain;                /* CMD_QUERY: bytes of the answer copied to
                                 * iov, set before done() */
};

/* What a path calls in the engine above it (set by the engine). */
struct path_client {
  /* c is back: err is 0 or -errno.  May free c. */
  void (*done) (struct scmd *c, int err);
  /* Work was handed to the path's thread (io_submit, then wake()). */
  void (*take) (void *eng);
  /* Answer requests past their deadline (all of them if now is 0);
   * now is clock_mono_s(). */
  void (*expire) (void *eng, time_t now);
  /* Whether nothing is submitted or in flight: a stopping path may end. */
  bool (*idle) (void *eng);
  /* The path is gone for good (its thread ended, no callback can come):
   * free what the engine keeps for it. */
  void (*closed) (void *eng);
  /* The path went down or came back (down_since changed); NULL: not
   * told.  A multipath path (mpath.h) above several paths listens. */
  void (*changed) (void *eng);
  void *eng;
};

struct path_ops {
  /* Send c, now or when there is room; done() tells its end. */
  void (*send) (struct path *p, struct scmd *c);
  /* Make the path's thread call take() soon (any thread). */
  void (*wake) (struct path *p);
  /* Whether the caller is the path's thread (any thread). */
  bool (*on_thread) (const struct path *p);
};

struct path {
  const struct path_ops *ops;
  struct path_client client;

  /* What the engine reads; set before the path's thread starts, except
   * down_since, which the path keeps on its thread. */
  const struct iobuf_allocator *alloc;  /* data buffers; NULL: the default */
  unsigned timeout;             /* request deadline, seconds; 0: none */
  bool can_lend;                /* may send from and read into the caller's
                                 * memory (TCP; iSER wants registered memory) */
  bool splice;                  /* READ data may be spliced (splice.h) */
  time_t down_since;            /* lost the target at (clock.h); 0 while up */
};

#endif
