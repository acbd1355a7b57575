/* The engine's view of a request (io.h is the caller's): its commands, its
 * place in the range locks, its deadline; and the engine of one path.
 * Included only by io.c, by what puts the layers together (stack.c) and by
 * the engine's unit test.
 *
 * Ownership: a request belongs to its caller until io_submit(), then to the
 * engine on its path's thread (the session thread); every field below the
 * caller's part is touched only there, except next while the request is
 * on the submit queue (under the engine's lock). */
#ifndef ISERFS_IO_INTERNAL_H
#define ISERFS_IO_INTERNAL_H

#include <pthread.h>
#include <time.h>

#include "io.h"
#include "path.h"
#include "splice.h"

struct io_req {
  struct lun *lun;
  struct engine *eng;
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

  struct splice_sink sink;      /* a READ's data spliced into a pipe */

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

/* The engine above one path: the requests handed to it, and those it
 * carries.  Made before the path's thread starts; freed by the path's
 * closed() call. */
struct engine {
  struct path *path;

  /* Hand-off from any thread. */
  pthread_mutex_t lock;
  struct io_req *submit_head, *submit_tail;

  /* The path's thread only. */
  struct io_req *active;        /* submitted, not yet freed */
  struct spipe *pipes;          /* free pipes for spliced READs */
};

/* An engine above p; it sets p->client.  NULL when out of memory.  The
 * LUNs it serves point to it (lun->engine). */
struct engine *io_engine_new (struct path *p);

#endif
