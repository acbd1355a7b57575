/* The filesystem: a small tree (root, optional target directories, LUN
 * files) and the FUSE operations on it.
 *
 * The tree only grows, and only at its end: the main thread builds it
 * before the mount, then the LUN scanner (fuse/lunwatch.h) is the one
 * thread that appends a node, publishing it with fs_nr_nodes' release
 * store once it is filled in.  A node never moves or changes after that
 * (inode i is always nodes[i - 1]); a LUN that leaves is marked in its
 * struct lun (lun_gone), and its node stays, hidden.  So FUSE threads read
 * the tree without a lock: they look at nodes below fs_nr_nodes() only. */
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
  /* The LUN scanner's: what the kernel was last told. */
  uint64_t told_size;
  bool told_gone;
};

struct fs {
  struct node *nodes;           /* inode i is nodes[i - 1]; 1 is the root */
  unsigned nr_nodes;            /* read with fs_nr_nodes() */
  unsigned cap_nodes;           /* room in nodes[] */
  fuse_ino_t *dirs;             /* per session: the directory of its LUNs */
  struct lunscan **scans;       /* per session, made by lunwatch_start */
  unsigned nr_dirs;             /* entries of dirs and scans */
  int only_lun;                 /* the one LUN mounted, or -1: all */
  unsigned max_xfer;            /* max_xfer=, for LUNs probed later */
  struct fuse_session *se;      /* for the kernel's cache (lunwatch.c) */
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
/* After the sessions are closed. */
void fs_free_tree (struct fs *fs);
/* Append a file for lun in directory dir (the LUN scanner only): its
 * inode number, or -errno (-ENOSPC: no room left). */
int fs_add_lun (struct fs *fs, fuse_ino_t dir, struct lun *lun);

/* How many nodes readers may look at. */
static inline unsigned
fs_nr_nodes (const struct fs *fs)
{
  return __atomic_load_n (&fs->nr_nodes, __ATOMIC_ACQUIRE);
}

/* Ask the target for l's capacity again, at most once a second, without
 * waiting for the answer (any thread but the session's). */
void fs_refresh_capacity (struct lun *l);

extern const struct fuse_lowlevel_ops fs_ops;

/* After the FUSE loop has ended: settle (sync) and free the handles the
 * kernel never released, e.g. when stopped by a signal with files open.
 * Needs the session threads still running. */
void fs_close_handles (void);

#endif
