/* See version.h.  The lines are what tests and packaging grep for (e.g.
 * "allocator hook", "DATA-IN sink", "^libiscsi 1.19"): keep their words. */
#include <config.h>

#include <stdio.h>

#include <iscsi/iscsi.h>

#include "version.h"

void
version_print_libiscsi (FILE *fp)
{
#ifdef HAVE_RDMA_ALLOCATOR
  fprintf (fp, "libiscsi %s with the RDMA allocator hook: iSER data goes to "
           "the wire from the pool\n", LIBISCSI_VERSION);
#else
  fprintf (fp, "libiscsi %s: stock iSER transport (pool not on the wire)\n",
           LIBISCSI_VERSION);
#endif
#ifdef LIBISCSI_FEATURE_DATA_IN_SINK
  fprintf (fp, "libiscsi's DATA-IN sink: READ data over TCP can be spliced "
           "(-o splice)\n");
#endif
#ifdef LIBISCSI_FEATURE_RECONNECT_ATTEMPT_FREED
  fprintf (fp, "libiscsi frees what a failed reconnect attempt left queued\n");
#endif
#ifdef LIBISCSI_FEATURE_MONOTONIC_CLOCK
  fprintf (fp, "libiscsi measures its timeouts and reconnect delays on the monotonic clock\n");
#endif
#ifdef LIBISCSI_FEATURE_RECONNECT_SAME_ISID
  fprintf (fp, "libiscsi logs in again with the lost session's ISID: the "
           "target ends what the lost connection held\n");
#endif
}
