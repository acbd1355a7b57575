/* Counters: lock-free, updated from every session thread, read by getxattr. */
#include <config.h>

#include <inttypes.h>

#include "iobuf.h"
#include "stats.h"

struct stats stats;

static const char *const kind_name[CMD_NR] = {
  [CMD_READ] = "read", [CMD_WRITE] = "write", [CMD_SYNC] = "sync",
  [CMD_UNMAP] = "unmap", [CMD_WRITESAME] = "writesame",
  [CMD_CAPACITY] = "capacity",
};

void
stats_inflight_inc (void)
{
  uint_fast64_t now = atomic_fetch_add (&stats.inflight, 1) + 1;
  uint_fast64_t max = atomic_load (&stats.inflight_max);

  while (now > max
         && !atomic_compare_exchange_weak (&stats.inflight_max, &max, now))
    ;
}

void
stats_inflight_dec (void)
{
  atomic_fetch_sub (&stats.inflight, 1);
}

void
stats_print (FILE *fp)
{
  uint64_t failed = 0;

  for (int k = 0; k < CMD_NR; k++) {
    fprintf (fp, "%s_cmds=%" PRIu64 "\n", kind_name[k],
             (uint64_t) atomic_load (&stats.sent[k]));
    failed += atomic_load (&stats.failed[k]);
  }
  for (int k = 0; k < CMD_NR; k++)
    fprintf (fp, "%s_failed=%" PRIu64 "\n", kind_name[k],
             (uint64_t) atomic_load (&stats.failed[k]));
  fprintf (fp, "failed_cmds=%" PRIu64 "\n", failed);
  fprintf (fp, "bytes_read=%" PRIu64 "\n",
           (uint64_t) atomic_load (&stats.bytes_read));
  fprintf (fp, "bytes_written=%" PRIu64 "\n",
           (uint64_t) atomic_load (&stats.bytes_written));
  fprintf (fp, "read_modify_writes=%" PRIu64 "\n",
           (uint64_t) atomic_load (&stats.rmw));
  fprintf (fp, "inflight=%" PRIu64 "\n",
           (uint64_t) atomic_load (&stats.inflight));
  fprintf (fp, "inflight_max=%" PRIu64 "\n",
           (uint64_t) atomic_load (&stats.inflight_max));
  fprintf (fp, "reconnects=%" PRIu64 "\n",
           (uint64_t) atomic_load (&stats.reconnects));
  iobuf_stats (fp);
}
