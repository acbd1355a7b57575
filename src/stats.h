/* Counters shown by the mount root's user.iserfs.stats attribute. */
#ifndef ISERFS_STATS_H
#define ISERFS_STATS_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

enum cmd_kind {
  CMD_READ, CMD_WRITE, CMD_SYNC, CMD_UNMAP, CMD_WRITESAME, CMD_CAPACITY, CMD_NR
};

struct stats {
  atomic_uint_fast64_t sent[CMD_NR];
  atomic_uint_fast64_t failed[CMD_NR];
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
  /* FUSE write data sent from the buffer it was received into, or copied
   * into a smaller one first (fuse/loop.c). */
  atomic_uint_fast64_t write_in_place_bytes;
  atomic_uint_fast64_t write_copied_bytes;
  /* Buffered writes answered before the target had them, and those of
   * them that then failed (fuse/behind.c). */
  atomic_uint_fast64_t write_behind_bytes;
  atomic_uint_fast64_t write_behind_errors;
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
  atomic_uint_fast64_t splice_spilled;
  atomic_uint_fast64_t splice_resent;
};

extern struct stats stats;

void stats_inflight_inc (void);
void stats_inflight_dec (void);
/* Print every counter as key=value lines, the allocator's included. */
void stats_print (FILE *fp);

#endif
