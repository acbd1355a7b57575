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

/* The plain counters, in the order they are printed. */
static const struct {
  const char *name;
  atomic_uint_fast64_t *value;
} counters[] = {
  { "bytes_read", &stats.bytes_read },
  { "bytes_written", &stats.bytes_written },
  { "read_modify_writes", &stats.rmw },
  { "read_waits", &stats.read_waits },
  { "inflight", &stats.inflight },
  { "inflight_max", &stats.inflight_max },
  { "reconnects", &stats.reconnects },
  { "retries", &stats.retries },
  { "transport_registrations", &stats.transport_registrations },
  { "zero_copy_bytes", &stats.zero_copy_bytes },
  { "bounce_bytes", &stats.bounce_bytes },
  { "memlock_limit", &stats.memlock_limit },
  { "memlock_refused", &stats.memlock_refused },
  { "write_in_place_bytes", &stats.write_in_place_bytes },
  { "write_copied_bytes", &stats.write_copied_bytes },
  { "write_behind_bytes", &stats.write_behind_bytes },
  { "write_behind_errors", &stats.write_behind_errors },
  { "poll_hits", &stats.poll_hits },
  { "poll_misses", &stats.poll_misses },
  { "spliced_read_bytes", &stats.spliced_read_bytes },
  { "splice_spilled", &stats.splice_spilled },
  { "splice_resent", &stats.splice_resent },
  { "fuse_ring_requests", &stats.ring_requests },
  { "fuse_ring_errors", &stats.ring_errors },
  { "read_in_place_bytes", &stats.read_in_place_bytes },
};

static void
put (FILE *fp, const char *prefix, const char *name, uint64_t value)
{
  fprintf (fp, "%s%s=%" PRIu64 "\n", prefix, name, value);
}

void
stats_print (FILE *fp)
{
  uint64_t failed = 0;

  for (int k = 0; k < CMD_NR; k++) {
    put (fp, kind_name[k], "_cmds", atomic_load (&stats.sent[k]));
    failed += atomic_load (&stats.failed[k]);
  }
  for (int k = 0; k < CMD_NR; k++)
    put (fp, kind_name[k], "_failed", atomic_load (&stats.failed[k]));
  put (fp, "", "failed_cmds", failed);
  for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
    put (fp, "", counters[i].name, atomic_load (counters[i].value));
  iobuf_stats (fp);
}
