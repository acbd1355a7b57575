/* A target's LUNs asked again while mounted: REPORT LUNS, and the probe
 * of a LUN that appeared (as discover.c probes them at mount time).
 *
 * Threads: every call sends its commands through the session's engine
 * (io_req_new_query) and waits for the session thread's answer, so it must
 * be called from another thread (the FUSE side's scanner), never from the
 * session thread itself.  Only one thread may use a struct lunscan.
 *
 * Ownership: the struct lun of every LUN a scan probed belongs to the
 * lunscan, whatever became of it, since a command of it may still be out
 * with the target after a timed-out wait; lunscan_free frees them all,
 * once the session is closed (no callback can come any more). */
#ifndef ISERFS_LUNSCAN_H
#define ISERFS_LUNSCAN_H

#include <stdbool.h>
#include <stdint.h>

#include "lun.h"

struct session;

struct lunscan {
  struct session *s;
  unsigned max_xfer;            /* bytes per command asked for; 0: any */
  struct lun **made;            /* every struct lun made here */
  unsigned nr_made, cap_made;
  struct lun *any;              /* LUN 0, for REPORT LUNS */
  struct lun *spare;            /* a probe's, free to reuse */
  bool lost;                    /* a wait of this probe was given up */
};

/* A scanner of s (after stack_start).  NULL when out of memory. */
struct lunscan *lunscan_new (struct session *s, unsigned max_xfer);
/* After the session is closed. */
void lunscan_free (struct lunscan *ls);

/* The LUN numbers the target reports now, in *luns (the caller frees
 * it).  Returns their number, or -errno. */
int lunscan_report (struct lunscan *ls, int **luns);

/* Probe LUN `lun`: 0 with *out set to a new struct lun (the lunscan's)
 * for a disk, 0 with *out NULL for anything else, or -errno. */
int lunscan_probe (struct lunscan *ls, int lun, struct lun **out);

/* Whether l's number still answers with the identity l got at its probe
 * (VPD 0x83 designators and 0x80 serial, byte for byte; only the parts it
 * had are compared): 1 yes, 0 no -- another LUN took its number --, or
 * -errno when a page could not be read now, so nothing can be told. */
int lunscan_same_identity (struct lunscan *ls, struct lun *l);

/* The block size and number of blocks l has now on the target: 0 or
 * -errno. */
int lunscan_geometry (struct lunscan *ls, struct lun *l, uint32_t *block_size,
                      uint64_t *nr_blocks);

#endif
