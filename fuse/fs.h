/* The filesystem: a small, fixed tree (root, optional target directories,
 * LUN files) and the FUSE operations on it. */
#ifndef ISERFS_FS_H
#define ISERFS_FS_H

#include <stdbool.h>
#include <time.h>

#include "behind.h"
#include "options.h"
#include "session.h"

struct node {
  fuse_ino_t parent;
  char *name;
  struct lun *lun;              /* NULL for a directory */
  struct behind behind;         /* its writes answered early */
};

struct fs {
  struct node *nodes;           /* inode i is nodes[i - 1]; 1 is the root */
  unsigned nr_nodes;
  struct session **sessions;
  unsigned nr_sessions;
  bool ro;
  enum path_policy path_policy; /* over a target's paths (src/mpath.h) */
  unsigned readahead;           /* bytes asked for at INIT; 0 = leave it */
  bool readahead_explicit;      /* given by the user: say if it fails */
  bool ring;                    /* serve FUSE over io_uring (fuse/uring.h) */
  bool ring_required;           /* fuse_ring=on: a failure is fatal */
  unsigned ring_depth;          /* its entries per CPU, at most */
  uid_t uid;
  gid_t gid;
  time_t mount_time;
};

/* Build the tree from the sessions' LUNs.  With one session and no portal
 * mount the LUNs sit in the root; otherwise one directory per target. */
int fs_build_tree (struct fs *fs, bool per_target_dirs);
void fs_free_tree (struct fs *fs);

extern const struct fuse_lowlevel_ops fs_ops;

/* After the FUSE loop has ended: settle (sync) and free the handles the
 * kernel never released, e.g. when stopped by a signal with files open.
 * Needs the session threads still running. */
void fs_close_handles (void);

#endif
