/* Counters shown by the mount root's user.iserfs.stats attribute, by
 * `iserfs --stats` and by -o metrics= (stats_export.h).  Updated lock-free
 * from any thread. */
#ifndef ISERFS_STATS_H
#define ISERFS_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* The mount root's extended attribute holding stats_print's text. */
#define STATS_XATTR "user.iserfs.stats"

enum cmd_kind {
  CMD_READ, CMD_WRITE, CMD_SYNC, CMD_UNMAP, CMD_WRITESAME, CMD_CAPACITY,
  CMD_QUERY,                    /* INQUIRY, REPORT LUNS, ...: data comes back */
  CMD_NR
};

struct stats {
  atomic_uint_fast64_t sent[CMD_NR];
  atomic_uint_fast64_t failed[CMD_NR];
  /* Optional commands the target refused, which iserfs then did without
   * (stats_command_failed()): not failures. */
  atomic_uint_fast64_t unsupported[CMD_NR];
  atomic_uint_fast64_t bytes_read;
  atomic_uint_fast64_t bytes_written;
  atomic_uint_fast64_t rmw;           /* partial-block writes merged */
  atomic_uint_fast64_t read_waits;    /* reads queued behind a write */
  atomic_uint_fast64_t inflight;
  atomic_uint_fast64_t inflight_max;
  atomic_uint_fast64_t reconnects;
  atomic_uint_fast64_t retries;       /* commands sent again (UNIT ATTENTION, BUSY...) */
  /* iSER with the allocator hook (rdma_pool.c). */
  atomic_uint_fast64_t transport_registrations;
  atomic_uint_fast64_t zero_copy_bytes;
  atomic_uint_fast64_t bounce_bytes;
  /* RLIMIT_MEMLOCK after iserfs raised it as far as it may (0: none), and
   * pool regions left unregistered because it was reached. */
  atomic_uint_fast64_t memlock_limit;
  atomic_uint_fast64_t memlock_refused;
  /* FUSE write data sent from the ring entry it came in, or copied into
   * a pool buffer first (fuse/ops.c, request_for). */
  atomic_uint_fast64_t write_in_place_bytes;
  atomic_uint_fast64_t write_copied_bytes;
  /* Buffered writes answered before the target had them, and those of
   * them that then failed (fuse/behind.c). */
  atomic_uint_fast64_t write_behind_bytes;
  atomic_uint_fast64_t write_behind_errors;
  /* Writes of an O_TRUNC descriptor held while its zero fill ran. */
  atomic_uint_fast64_t trunc_writes_held;
  /* Turns of the session loop that found an event while polling without
   * sleeping (poll_us=), and those that polled the whole time in vain. */
  atomic_uint_fast64_t poll_hits;
  atomic_uint_fast64_t poll_misses;
  /* READ data spliced from the socket into a pipe for the reply
   * (splice.c); READs that began so but ended in their buffer: the pipe
   * filled up (spilled), or the command was sent again (resent). */
  atomic_uint_fast64_t spliced_read_bytes;
  atomic_uint_fast64_t ring_requests;   /* FUSE requests taken from the io_uring */
  atomic_uint_fast64_t ring_errors;     /* ring commands the kernel failed */
  atomic_uint_fast64_t read_in_place_bytes; /* READ data straight into a ring entry */
  /* Error recovery (recovery.c): ABORT TASKs sent and answered "function
   * complete", LOGICAL UNIT RESETs likewise, connections dropped, and
   * commands let go of after the target let go of them. */
  atomic_uint_fast64_t eh_aborts;
  atomic_uint_fast64_t eh_aborts_done;
  atomic_uint_fast64_t eh_lun_resets;
  atomic_uint_fast64_t eh_lun_resets_done;
  atomic_uint_fast64_t eh_drops;
  atomic_uint_fast64_t eh_released;
  atomic_uint_fast64_t failovers;     /* commands moved to another path */
  atomic_uint_fast64_t fence_waits;   /* writes of a lost path held for its
                                       * fence (mpath.h, Fencing) */
  atomic_uint_fast64_t fence_expired; /* of those, sent elsewhere unfenced
                                       * after fence_timeout */
  atomic_uint_fast64_t splice_spilled;
  atomic_uint_fast64_t splice_resent;
};

extern struct stats stats;

/* A command ended in an error (after any retries); unsupported: the
 * target refused it as not supported (ILLEGAL REQUEST, invalid opcode or
 * CDB field).  Counted as failed, or as unsupported where that is
 * expected and handled; any thread. */
void stats_command_failed (enum cmd_kind kind, bool unsupported);
/* One counter as every output shows it (see stats_table in stats.c). */
enum stat_type { STAT_COUNTER, STAT_GAUGE };

struct stat_desc {
  const char *name;             /* key in the stats attribute */
  enum stat_type type;          /* counter: only grows; gauge: goes up and down */
  const char *help;             /* one line for monitoring */
  atomic_uint_fast64_t *value;  /* the counter, or NULL: */
  uint64_t (*get) (void);       /* computed, or (both NULL) printed by the
                                   buffer allocator's stats hook */
};

extern const struct stat_desc stats_table[];
extern const size_t stats_table_len;

/* The description of the counter whose name is the len bytes at name, or
 * NULL (a line the allocator prints that the table does not describe). */
const struct stat_desc *stats_find (const char *name, size_t len);

void stats_inflight_inc (void);
void stats_inflight_dec (void);
/* Print every counter as key=value lines, the allocator's included: the
 * text of the user.iserfs.stats attribute. */
void stats_print (FILE *fp);
/* Let fn print more lines after the counters (lines that are not
 * NAME=NUMBER, which the JSON and Prometheus writers skip); any thread. */
void stats_print_also (void (*fn) (FILE *fp));

#endif
