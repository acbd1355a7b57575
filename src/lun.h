/* A logical unit as the engine sees it: geometry and capabilities learned at
 * discovery, and the session whose event loop carries its commands. */
#ifndef ISERFS_LUN_H
#define ISERFS_LUN_H

#include <stdbool.h>
#include <stdint.h>

struct session;
struct lockrange;

struct lun {
  struct session *session;
  int lun;                      /* LUN number */
  uint32_t block_size;          /* logical block size in bytes */
  uint64_t nr_blocks;
  uint64_t size;                /* bytes: nr_blocks * block_size */
  bool read_only;               /* write protected by the target */
  bool unmap;                   /* UNMAP supported (LBPU) and reads zero after */
  bool write_same;              /* WRITE SAME(16) worth trying */
  uint32_t max_xfer_blocks;     /* per READ/WRITE command */
  uint32_t max_unmap_blocks;    /* per UNMAP descriptor */
  uint32_t max_ws_blocks;       /* per WRITE SAME */
  bool sync16;                  /* SYNCHRONIZE CACHE(16) works */

  /* Engine state, touched only by the session's thread. */
  struct io_req *locked;        /* writes holding their block range */
  struct io_req *lock_waiters;  /* writes waiting for a range, FIFO */
};

#endif
