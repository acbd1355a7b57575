/* rawio: the "raw libiscsi" column of bench/run.sh.
 *
 * It keeps DEPTH READ(16) or WRITE(16) commands in flight on one LUN
 * through libiscsi's async API, for SECONDS, with no FUSE, no kernel
 * block layer and no copy: data lands in (or leaves from) our own buffers
 * through libiscsi's iovec tasks.  That is the ceiling iserfs is measured
 * against.  iscsi-perf only reads and only reports averages, so we need
 * our own driver for writes and for median latency.
 *
 * Usage: rawio URL read|write BYTES DEPTH seq|rand SECONDS
 * Prints one line of key=value pairs (parsed by bench/run.sh). */
#include <config.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include "rawlogin.h"
#include "xorshift.h"

struct slot {
  struct scsi_iovec iov;        /* must outlive the task */
  uint64_t start_ns;
};

struct run {
  struct iscsi_context *iscsi;
  int lun;
  bool write, random;
  unsigned bytes, block_size;
  uint64_t nr_blocks, next_lba;
  uint64_t deadline_ns;
  unsigned in_flight;
  bool failed;
  uint64_t done, *lat;          /* latencies of completed commands, ns */
  size_t nr_lat, cap_lat;
  uint64_t rng;
};

static uint64_t
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static double
cpu_seconds (void)
{
  struct rusage ru;

  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6
    + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static uint64_t
pick_lba (struct run *r)
{
  uint64_t per_io = r->bytes / r->block_size;
  uint64_t slots = r->nr_blocks / per_io, lba;

  if (r->random)
    return (xorshift64 (&r->rng) % slots) * per_io;
  lba = r->next_lba;
  r->next_lba = lba + per_io >= slots * per_io ? 0 : lba + per_io;
  return lba;
}

static void complete (struct iscsi_context *iscsi, int status,
                      void *command_data, void *private_data);

static int
submit (struct run *r, struct slot *s)
{
  uint64_t lba = pick_lba (r);
  struct scsi_task *t;

  s->start_ns = now_ns ();
  if (r->write)
    t = iscsi_write16_iov_task (r->iscsi, r->lun, lba, NULL, r->bytes,
                                r->block_size, 0, 0, 0, 0, 0, complete, s,
                                &s->iov, 1);
  else
    t = iscsi_read16_iov_task (r->iscsi, r->lun, lba, r->bytes,
                               r->block_size, 0, 0, 0, 0, 0, complete, s,
                               &s->iov, 1);
  if (t == NULL) {
    fprintf (stderr, "rawio: cannot queue a command: %s\n",
             iscsi_get_error (r->iscsi));
    return -1;
  }
  r->in_flight++;
  return 0;
}

static struct run *the_run;     /* libiscsi gives callbacks one pointer */

static void
record (struct run *r, uint64_t ns)
{
  if (r->nr_lat == r->cap_lat) {
    size_t cap = r->cap_lat ? r->cap_lat * 2 : 65536;
    uint64_t *p = realloc (r->lat, cap * sizeof *p);

    if (p == NULL) {
      r->failed = true;
      return;
    }
    r->lat = p;
    r->cap_lat = cap;
  }
  r->lat[r->nr_lat++] = ns;
}

static void
complete (struct iscsi_context *iscsi, int status, void *command_data,
          void *private_data)
{
  struct run *r = the_run;
  struct slot *s = private_data;
  uint64_t t = now_ns ();

  (void) iscsi;
  r->in_flight--;
  if (status != SCSI_STATUS_GOOD) {
    fprintf (stderr, "rawio: command failed: %s\n", iscsi_get_error (r->iscsi));
    r->failed = true;
  }
  else {
    r->done++;
    record (r, t - s->start_ns);
  }
  scsi_free_scsi_task (command_data);
  if (!r->failed && t < r->deadline_ns && submit (r, s) < 0)
    r->failed = true;
}

static int
cmp_u64 (const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

  return x < y ? -1 : x > y;
}

/* Log in and take the LUN's geometry into the run. */
static int
connect_lun (struct run *r, const char *url_text)
{
  struct rawlogin l;

  if (rawlogin (&l, "rawio", "iqn.2026-01.org.iserfs:rawio", url_text) < 0)
    return -1;
  r->iscsi = l.iscsi;
  r->lun = l.lun;
  r->block_size = l.block_size;
  r->nr_blocks = l.nr_blocks;
  return 0;
}

static int
parse_args (struct run *r, int argc, char *argv[], unsigned *depth,
            unsigned *seconds)
{
  if (argc != 7) {
    fprintf (stderr, "usage: rawio URL read|write BYTES DEPTH seq|rand SECONDS\n");
    return -1;
  }
  r->write = strcmp (argv[2], "write") == 0;
  r->random = strcmp (argv[5], "rand") == 0;
  if ((!r->write && strcmp (argv[2], "read") != 0)
      || (!r->random && strcmp (argv[5], "seq") != 0)) {
    fprintf (stderr, "rawio: expected read|write and seq|rand\n");
    return -1;
  }
  if (rawlogin_parse_uint (argv[3], &r->bytes) < 0
      || rawlogin_parse_uint (argv[4], depth) < 0
      || rawlogin_parse_uint (argv[6], seconds) < 0
      || r->bytes == 0 || *depth == 0 || *depth > 1024 || *seconds == 0) {
    fprintf (stderr, "rawio: BYTES, DEPTH (1-1024) and SECONDS must be positive numbers\n");
    return -1;
  }
  return 0;
}

static int
run_loop (struct run *r)
{
  /* Bounded: once the deadline passes no new command starts, and the
   * ones in flight get 30 s to finish before we give up. */
  uint64_t give_up = r->deadline_ns + 30000000000u;

  while (r->in_flight > 0 && !r->failed) {
    if (now_ns () > give_up) {
      fprintf (stderr, "rawio: commands still in flight 30 s after the end\n");
      return -1;
    }
    if (rawlogin_service (r->iscsi, "rawio") < 0)
      return -1;
  }
  return r->failed ? -1 : 0;
}

int
main (int argc, char *argv[])
{
  struct run r = { .rng = 0x9e3779b97f4a7c15u };
  unsigned depth, seconds;
  struct slot *slots;
  uint64_t t0, t1;
  double cpu0, secs;

  if (parse_args (&r, argc, argv, &depth, &seconds) < 0
      || connect_lun (&r, argv[1]) < 0)
    return 1;
  if (r.bytes % r.block_size || r.bytes / r.block_size > r.nr_blocks) {
    fprintf (stderr, "rawio: BYTES must be a multiple of the block size %u "
             "and fit in the LUN\n", r.block_size);
    return 1;
  }
  slots = calloc (depth, sizeof *slots);
  if (slots == NULL)
    return 1;
  for (unsigned i = 0; i < depth; i++) {
    if (posix_memalign (&slots[i].iov.iov_base, 4096, r.bytes) != 0)
      return 1;
    memset (slots[i].iov.iov_base, 0xa5 ^ i, r.bytes);
    slots[i].iov.iov_len = r.bytes;
  }
  the_run = &r;
  cpu0 = cpu_seconds ();
  t0 = now_ns ();
  r.deadline_ns = t0 + (uint64_t) seconds * 1000000000u;
  for (unsigned i = 0; i < depth; i++)
    if (submit (&r, &slots[i]) < 0)
      return 1;
  if (run_loop (&r) < 0)
    return 1;
  t1 = now_ns ();
  secs = (t1 - t0) / 1e9;
  qsort (r.lat, r.nr_lat, sizeof *r.lat, cmp_u64);
  printf ("ios=%" PRIu64 " seconds=%.3f MBps=%.1f IOPS=%.0f "
          "lat_median_us=%.1f cpu_s=%.3f\n",
          r.done, secs, r.done * (double) r.bytes / secs / 1e6,
          r.done / secs, r.nr_lat ? r.lat[r.nr_lat / 2] / 1e3 : 0.0,
          cpu_seconds () - cpu0);
  iscsi_logout_sync (r.iscsi);
  iscsi_destroy_context (r.iscsi);
  for (unsigned i = 0; i < depth; i++)
    free (slots[i].iov.iov_base);
  free (slots);
  free (r.lat);
  return 0;
}
