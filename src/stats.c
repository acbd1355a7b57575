/* Counters: lock-free, updated from every session thread, read by getxattr
 * and the metrics writer. */
#include <config.h>

#include <inttypes.h>
#include <string.h>

#include "alua.h"
#include "iobuf.h"
#include "stats.h"

struct stats stats;

/* Lines that are not counters (mpath.c: one per path), or NULL. */
static void (*_Atomic more) (FILE *fp);

/* What a refusal means depends on the command.  WRITE SAME only zeroes
 * blocks faster: after any error (tgtd's file store answers it with a
 * MEDIUM ERROR) iserfs zeroes with plain WRITEs, which count on their own.
 * SYNCHRONIZE CACHE(16) refused is followed by (10); UNMAP refused makes
 * the hole punch report EOPNOTSUPP, as it should on such a LUN.  Anything
 * else, READ CAPACITY included, is a real failure. */
void
stats_command_failed (enum cmd_kind kind, bool unsupported)
{
  bool expected = kind == CMD_WRITESAME
    || (unsupported && (kind == CMD_SYNC || kind == CMD_UNMAP));

  atomic_fetch_add (expected ? &stats.unsupported[kind] : &stats.failed[kind],
                    1);
}

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

/* Every counter, in the order the stats attribute prints them: its name
 * (the attribute's key; iserfs_NAME[_total] in Prometheus), its type and
 * the help text monitoring shows.  This table is the one description the
 * attribute, `iserfs --stats` (JSON) and -o metrics= (Prometheus) are all
 * built from: a counter added here appears in all three. */
static uint64_t
failed_total (void)
{
  uint64_t n = 0;

  for (int k = 0; k < CMD_NR; k++)
    n += atomic_load (&stats.failed[k]);
  return n;
}

#define C(n, v, h) { n, STAT_COUNTER, h, v, NULL }
#define G(n, v, h) { n, STAT_GAUGE, h, v, NULL }
/* Printed by the buffer allocator (iobuf_stats), described here. */
#define AC(n, h) { n, STAT_COUNTER, h, NULL, NULL }
#define AG(n, h) { n, STAT_GAUGE, h, NULL, NULL }

const struct stat_desc stats_table[] = {
  C ("read_cmds", &stats.sent[CMD_READ], "READ commands sent"),
  C ("write_cmds", &stats.sent[CMD_WRITE], "WRITE commands sent"),
  C ("sync_cmds", &stats.sent[CMD_SYNC], "SYNCHRONIZE CACHE commands sent"),
  C ("unmap_cmds", &stats.sent[CMD_UNMAP], "UNMAP commands sent"),
  C ("writesame_cmds", &stats.sent[CMD_WRITESAME], "WRITE SAME commands sent"),
  C ("capacity_cmds", &stats.sent[CMD_CAPACITY],
     "READ CAPACITY commands sent"),
  C ("read_failed", &stats.failed[CMD_READ], "READ commands that failed"),
  C ("write_failed", &stats.failed[CMD_WRITE], "WRITE commands that failed"),
  C ("sync_failed", &stats.failed[CMD_SYNC],
     "SYNCHRONIZE CACHE commands that failed"),
  C ("unmap_failed", &stats.failed[CMD_UNMAP], "UNMAP commands that failed"),
  C ("capacity_failed", &stats.failed[CMD_CAPACITY],
     "READ CAPACITY commands that failed"),
  { "failed_cmds", STAT_COUNTER, "SCSI commands that failed, all kinds",
    NULL, failed_total },
  C ("sync_unsupported", &stats.unsupported[CMD_SYNC],
     "SYNCHRONIZE CACHE(16) refused as unsupported (then (10) is used)"),
  C ("unmap_unsupported", &stats.unsupported[CMD_UNMAP],
     "UNMAP refused as unsupported (hole punching then fails)"),
  C ("writesame_unsupported", &stats.unsupported[CMD_WRITESAME],
     "WRITE SAME refused (zeroing falls back to plain WRITEs)"),
  C ("bytes_read", &stats.bytes_read, "Bytes read from the target"),
  C ("bytes_written", &stats.bytes_written, "Bytes written to the target"),
  C ("read_modify_writes", &stats.rmw,
     "Partial-block writes merged with the blocks read around them"),
  C ("read_waits", &stats.read_waits, "Reads queued behind a write"),
  G ("inflight", &stats.inflight, "SCSI commands in flight now"),
  G ("inflight_max", &stats.inflight_max,
     "Most SCSI commands in flight at once since the mount"),
  C ("reconnects", &stats.reconnects, "Sessions reconnected"),
  C ("retries", &stats.retries,
     "Commands sent again (UNIT ATTENTION, BUSY, reconnect)"),
  C ("abort_tasks", &stats.eh_aborts,
     "ABORT TASK requests sent for commands past their deadline"),
  C ("abort_tasks_done", &stats.eh_aborts_done,
     "ABORT TASK requests the target answered"),
  C ("lun_resets", &stats.eh_lun_resets,
     "LOGICAL UNIT RESET requests sent when an abort did not settle"),
  C ("lun_resets_done", &stats.eh_lun_resets_done,
     "LOGICAL UNIT RESET requests the target answered"),
  C ("connection_drops", &stats.eh_drops,
     "Connections dropped to recover commands a reset did not settle"),
  C ("recovered_cmds", &stats.eh_released,
     "Commands let go of after the target aborted them"),
  C ("failovers", &stats.failovers,
     "Commands sent on another path after their path was lost"),
  C ("fence_waits", &stats.fence_waits,
     "Writes of a lost path held until it logged in again or "
     "fence_timeout passed"),
  C ("fence_expired", &stats.fence_expired,
     "Writes of a lost path sent elsewhere after fence_timeout, "
     "without the path logging in again"),
  C ("transport_registrations", &stats.transport_registrations,
     "Buffer pool chunks registered with the iSER transport"),
  C ("zero_copy_bytes", &stats.zero_copy_bytes,
     "iSER data moved straight from or to pool buffers"),
  C ("bounce_bytes", &stats.bounce_bytes,
     "iSER data copied through the transport's own buffers"),
  G ("memlock_limit", &stats.memlock_limit,
     "Memory lock limit in force for RDMA registrations, bytes (0: none)"),
  C ("memlock_refused", &stats.memlock_refused,
     "Buffer regions not registered to stay within the memory lock limit"),
  C ("write_in_place_bytes", &stats.write_in_place_bytes,
     "Write data sent from the buffer it was received into"),
  C ("write_copied_bytes", &stats.write_copied_bytes,
     "Write data copied into a smaller buffer first"),
  C ("write_behind_bytes", &stats.write_behind_bytes,
     "Buffered write bytes answered before the target had them"),
  C ("write_behind_errors", &stats.write_behind_errors,
     "Writes answered early that then failed"),
  C ("trunc_writes_held", &stats.trunc_writes_held,
     "Writes held while an O_TRUNC descriptor's zeros were written"),
  C ("poll_hits", &stats.poll_hits,
     "Session loop turns that found an event while polling"),
  C ("poll_misses", &stats.poll_misses,
     "Session loop turns that polled in vain"),
  C ("spliced_read_bytes", &stats.spliced_read_bytes,
     "READ data spliced from the socket into the reply"),
  C ("splice_spilled", &stats.splice_spilled,
     "Spliced READs finished in a buffer: the pipe was full"),
  C ("splice_resent", &stats.splice_resent,
     "Spliced READs finished in a buffer: the command was sent again"),
  C ("fuse_ring_requests", &stats.ring_requests,
     "FUSE requests taken from the io_uring"),
  C ("fuse_ring_errors", &stats.ring_errors,
     "FUSE io_uring commands the kernel failed"),
  C ("read_in_place_bytes", &stats.read_in_place_bytes,
     "READ data received straight into a FUSE ring entry"),
  { "alua_paths", STAT_GAUGE, "LUN paths whose target reports ALUA states",
    NULL, alua_stat_paths },
  { "alua_state", STAT_GAUGE, "Least usable ALUA state of those (SPC-4 code: "
    "0 active/optimized, 1 non-optimized, 2 standby, 3 unavailable)",
    NULL, alua_stat_state },
  { "alua_changes", STAT_COUNTER, "ALUA state changes seen", NULL,
    alua_stat_changes },
  { "alua_reports", STAT_COUNTER, "REPORT TARGET PORT GROUPS commands sent",
    NULL, alua_stat_rereads },
  AG ("pool_chunks", "Buffer pool chunks held"),
  AC ("pool_registrations", "Buffer pool regions registered"),
  AC ("pool_deregistrations", "Buffer pool regions deregistered"),
  AG ("pool_bytes_in_use", "Bytes of live buffer pool segments"),
  AG ("pool_high_water", "Most bytes of buffer pool segments live at once"),
  AC ("pool_direct_allocs", "Buffers larger than a pool chunk allocated"),
  AC ("pool_failures", "Buffer allocations refused or failed"),
};
const size_t stats_table_len = sizeof stats_table / sizeof stats_table[0];

const struct stat_desc *
stats_find (const char *name, size_t len)
{
  for (size_t i = 0; i < stats_table_len; i++)
    if (strncmp (stats_table[i].name, name, len) == 0
        && stats_table[i].name[len] == '\0')
      return &stats_table[i];
  return NULL;
}

static void
put (FILE *fp, const char *name, uint64_t value)
{
  fprintf (fp, "%s=%" PRIu64 "\n", name, value);
}

void
stats_print (FILE *fp)
{
  for (size_t i = 0; i < stats_table_len; i++) {
    const struct stat_desc *d = &stats_table[i];

    if (d->value)
      put (fp, d->name, atomic_load (d->value));
    else if (d->get)
      put (fp, d->name, d->get ());
  }
  iobuf_stats (fp);
  if (more)
    more (fp);
}

void
stats_print_also (void (*fn) (FILE *fp))
{
  more = fn;
}
