/* What iserfs asks of the kernel's FUSE connection at INIT (see conn.h). */
#include <config.h>

#include "conn.h"

void
conn_tune (struct fuse_conn_info *conn, unsigned readahead)
{
  /* See O_TRUNC at open() instead of a setattr(size=0) we could not honour
   * on a LUN; the handle then gets file-like truncate semantics. */
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
    conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  /* Asynchronous O_DIRECT: the kernel sends a program's concurrent AIO
   * requests at once instead of one by one. */
  if (conn->capable & FUSE_CAP_ASYNC_DIO)
    conn->want |= FUSE_CAP_ASYNC_DIO;
  /* Requests are read from /dev/fuse into memory, not spliced into a
   * pipe: a WRITE's data is copied into a pool buffer either way (fuse/ops.c,
   * request_for), and libfuse would copy it out of the pipe first. */
  conn->want &= ~FUSE_CAP_SPLICE_READ;
  /* READ replies whose data waits in a pipe (src/splice.h) are spliced
   * into /dev/fuse; every other reply is written from memory as before. */
  if (conn->capable & FUSE_CAP_SPLICE_WRITE)
    conn->want |= FUSE_CAP_SPLICE_WRITE;
  conn->max_write = CONN_MAX_WRITE;
  /* The kernel keeps the smaller of this and the mount's read-ahead,
   * which main() raised to the same (see readahead.c). */
  if (readahead)
    conn->max_readahead = readahead;
  /* Enough background requests (read-ahead, async I/O) to keep the
   * target busy. */
  if (conn->max_background < 64)
    conn->max_background = 64;
  if (conn->congestion_threshold < 48)
    conn->congestion_threshold = 48;
}
