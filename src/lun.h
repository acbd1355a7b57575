/* A logical unit as the engine sees it: geometry and capabilities learned at
 * discovery, the session it was found on, and the engine that carries its
 * requests (io.h). */
#ifndef ISERFS_LUN_H
#define ISERFS_LUN_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "alua.h"
#include "identity.h"

struct engine;
struct session;

struct lun {
  struct session *session;      /* found on (discover.c) */
  struct engine *engine;        /* carries its requests (stack.c) */
  int lun;                      /* LUN number */
  uint32_t block_size;          /* logical block size in bytes */
  uint64_t nr_blocks;           /* session thread only after the mount */
  uint64_t size;                /* bytes; read with lun_size(), may change */
  bool read_only;               /* write protected by the target */
  bool gone;                    /* the target no longer has this LUN */
  bool removed;                 /* nor will again: REPORT LUNS left it out,
                                 * or another LUN took its number (set
                                 * once, by the FUSE side's scan) */
  time_t capacity_checked;      /* last READ CAPACITY sent (FUSE side),
                                 * clock_mono_s(); 0: send the next at once */
  bool capacity_stale;          /* the target said the capacity changed:
                                 * the FUSE side's scanner reads it again
                                 * and clears this (set by the session
                                 * thread or the scanner) */
  bool unmap;                   /* UNMAP supported (LBPU) and reads zero after */
  bool write_same;              /* WRITE SAME(16) worth trying */
  uint32_t max_xfer_blocks;     /* per READ/WRITE command */
  uint32_t max_unmap_blocks;    /* per UNMAP descriptor */
  uint32_t max_ws_blocks;       /* per WRITE SAME */
  bool sync16;                  /* SYNCHRONIZE CACHE(16) works */
  struct lun_identity id;       /* VPD 0x83/0x80, set at discovery */
  char who[512];                /* "lunN of TARGET", "... via PORTAL"
                                 * with several paths (an IQN is at most
                                 * 223 bytes), for ALUA's logs */
  struct alua_path alua;        /* the ALUA state of this (LUN, path)
                                 * pair (alua.h): each path's session has
                                 * its own struct lun of a LUN (mpath.h) */
  bool live;                    /* found while mounted (lunscan.c): its
                                 * other paths' struct luns are never
                                 * looked up by number, only here: */
  bool paired;                  /* pair_next is set (multipath thread,
                                 * mpath.c); until then its ALUA state is
                                 * the scanner's, and no other path's */
  struct lun *pair_next;        /* the same LUN through the next path that
                                 * uses it, NULL after the last */

  /* Engine state, touched only by the session's thread. */
  struct io_req *locked;        /* writes holding their block range */
  struct io_req *lock_waiters;  /* requests waiting for a range, FIFO */
};

/* A LUN's capacity can change under us (resize); FUSE threads read it while
 * the session thread updates it. */
static inline uint64_t
lun_size (const struct lun *l)
{
  return __atomic_load_n (&l->size, __ATOMIC_RELAXED);
}

static inline bool
lun_removed (const struct lun *l)
{
  return __atomic_load_n (&l->removed, __ATOMIC_ACQUIRE);
}

static inline bool
lun_gone (const struct lun *l)
{
  return __atomic_load_n (&l->gone, __ATOMIC_RELAXED) || lun_removed (l);
}

#endif
