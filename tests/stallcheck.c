/* stallcheck: writes in flight while the target is stopped, then newer
 * writes over the same blocks, then the target resumes (or not); the LUN
 * must end up as a model allows.
 *
 *   stallcheck [-n ROUNDS] [-t THREADS] [-w MS[,MS...]] [-x] [-q SECONDS]
 *              -p TARGET_PID MNT FILE
 *
 * FILE (a LUN under the mount MNT) is cut into 4 KiB blocks; each write
 * fills the blocks it covers with a pattern naming the write and the
 * block, so a block's content tells which write put it there.  A round:
 * writes of 4 KiB and 1 MiB that the running target answers; SIGSTOP to
 * TARGET_PID; THREADS writes of 4 KiB and 1 MiB (each in a thread of its
 * own, O_DIRECT) that stay in flight past the mount's timeout; once all
 * of them have returned, newer writes over the same blocks; then, after
 * the -w milliseconds of the round (the list is used round after round,
 * so the target comes back at different stages of the error recovery),
 * SIGCONT.  Every write must
 * return, with success or EIO (nothing else), and once the mount has no
 * command in flight each block must hold a write that no acknowledged
 * write replaced: one whose write was answered, or failed with EIO, and
 * that no successful write over the block started after it returned.
 *
 * -x: the target never comes back: every write of the round must return
 * EIO within -q SECONDS (default 60), and the program exits 0 without
 * checking the blocks (the test unmounts and checks the daemon ends).
 *
 * While the target is stopped, no command may end as failed (the stats'
 * failed_cmds) unless the connection was dropped (connection_drops): the
 * initiator alone must not complete a command the target still holds.
 *
 * Exit 0: as the model allows; 1: a block nobody may have written there,
 * a command let go behind the target's back, a write that failed
 * otherwise than with EIO, or a bound passed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "xorshift.h"

#define BLK 4096u
#define BIG (1024u * 1024u)
#define REGION (16u * BIG)
#define NBLK (REGION / BLK)
#define MAXW 4096

struct write {
  unsigned id;
  uint64_t off;
  size_t len;
  uint64_t submitted, returned;   /* event sequence numbers */
  int err;                        /* 0 or errno */
  bool done;
  pthread_t thread;
};

static struct write writes[MAXW];
static unsigned nwrites;
static atomic_uint_fast64_t seq = 1;
static int fd;
static const char *mnt;
static uint64_t rng_state;

static double
now_s (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The content write id puts in block b: a header naming both, then bytes
 * from a generator seeded by them. */
static void
fill (unsigned char *p, unsigned id, uint64_t b)
{
  uint64_t s = ((uint64_t) id << 32) ^ (b * 0x9e3779b97f4a7c15ULL) ^ 0x5bd1e995;

  memcpy (p, "STALL\0\0\0", 8);
  memcpy (p + 8, &id, sizeof id);
  memcpy (p + 12, &b, sizeof b);
  for (unsigned i = 20; i < BLK; i++) {
    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
    p[i] = (unsigned char) s;
  }
}

static void *
run_write (void *arg)
{
  struct write *w = arg;
  unsigned char *buf;
  ssize_t r;

  if (posix_memalign ((void **) &buf, BLK, w->len) != 0)
    abort ();
  for (size_t i = 0; i < w->len; i += BLK)
    fill (buf + i, w->id, (w->off + i) / BLK);
  w->submitted = atomic_fetch_add (&seq, 1);
  r = pwrite (fd, buf, w->len, (off_t) w->off);
  w->err = r < 0 ? errno : (size_t) r == w->len ? 0 : EIO;
  w->returned = atomic_fetch_add (&seq, 1);
  __atomic_store_n (&w->done, true, __ATOMIC_RELEASE);
  free (buf);
  return NULL;
}

static struct write *
start_write (uint64_t off, size_t len)
{
  struct write *w;

  if (nwrites >= MAXW) {
    fprintf (stderr, "stallcheck: too many writes\n");
    exit (1);
  }
  w = &writes[nwrites];
  w->id = ++nwrites;            /* 0: the content before the first round */
  w->off = off;
  w->len = len;
  if (pthread_create (&w->thread, NULL, run_write, w) != 0) {
    perror ("pthread_create");
    exit (1);
  }
  return w;
}

/* Wait for writes [from, to); false if one is not back by deadline. */
static bool
join (unsigned from, unsigned to, double deadline)
{
  for (unsigned i = from; i < to; i++) {
    while (!__atomic_load_n (&writes[i].done, __ATOMIC_ACQUIRE)) {
      if (now_s () > deadline)
        return false;
      usleep (10000);           /* poll interval */
    }
    pthread_join (writes[i].thread, NULL);
  }
  return true;
}

static uint64_t
random_off (size_t len)
{
  return (xorshift64 (&rng_state) % ((REGION - len) / BLK + 1)) * BLK;
}

/* THREADS writes, alternately 4 KiB and 1 MiB, at random offsets or over
 * the blocks of an earlier batch. */
static unsigned
batch (unsigned threads, const struct write *over)
{
  unsigned first = nwrites;

  for (unsigned i = 0; i < threads; i++) {
    size_t len = i % 2 ? BIG : BLK;
    uint64_t off = over ? over[i].off : random_off (len);

    start_write (off, len);
  }
  return first;
}

/* A counter of the mount's user.iserfs.stats; -1 if unreadable, 0 if
 * the stats do not have it. */
static long
counter (const char *name)
{
  char buf[8192], key[64], *p;
  ssize_t n = getxattr (mnt, "user.iserfs.stats", buf + 1, sizeof buf - 2);

  if (n < 0)
    return -1;
  buf[0] = '\n';
  buf[n + 1] = 0;
  snprintf (key, sizeof key, "\n%s=", name);
  p = strstr (buf, key);
  return p ? strtol (p + strlen (key), NULL, 10) : 0;
}

static long
inflight (void)
{
  return counter ("inflight");
}

/* While the target is stopped it answers nothing, so a command that ends
 * as failed then was completed by the initiator alone, while the target
 * held it -- unless the connection it was on is gone. */
static bool
let_go_behind_targets_back (unsigned r, long failed0, long drops0)
{
  long failed = counter ("failed_cmds"), drops = counter ("connection_drops");

  if (failed > failed0 && drops <= drops0) {
    fprintf (stderr, "round %u: %ld commands ended while the stopped target "
             "held them on a live connection\n", r, failed - failed0);
    return true;
  }
  return false;
}

static bool
allowed (uint64_t b, unsigned id)
{
  const struct write *w = id ? &writes[id - 1] : NULL;
  uint64_t ret = w ? w->returned : 0;

  if (w && (b < w->off / BLK || b >= (w->off + w->len) / BLK))
    return false;
  if (w && w->err && w->err != EIO)
    return false;
  /* No acknowledged write over b started after this one returned. */
  for (unsigned i = 0; i < nwrites; i++) {
    const struct write *o = &writes[i];

    if (o->err == 0 && b >= o->off / BLK && b < (o->off + o->len) / BLK
        && o->submitted > ret)
      return false;
  }
  return true;
}

/* For a block that is no single write's: which write (or 0, zeros) each
 * 512-byte sector of it matches, '?' for none. */
static void
explain (const unsigned char *p, uint64_t b)
{
  unsigned char *want;

  if (posix_memalign ((void **) &want, BLK, BLK) != 0)
    return;
  fprintf (stderr, "  sectors of block %" PRIu64 ":", b);
  for (unsigned s = 0; s < BLK / 512; s++) {
    int who = -1;

    for (unsigned id = 0; id <= nwrites && who < 0; id++) {
      if (id == 0)
        memset (want, 0, BLK);
      else if (b < writes[id - 1].off / BLK
               || b >= (writes[id - 1].off + writes[id - 1].len) / BLK)
        continue;
      else
        fill (want, id, b);
      if (memcmp (p + s * 512 + (s ? 0 : 20), want + s * 512 + (s ? 0 : 20),
                  512 - (s ? 0 : 20)) == 0)
        who = (int) id;
    }
    if (who < 0)
      fprintf (stderr, " ?");
    else
      fprintf (stderr, " %d", who);
  }
  fprintf (stderr, "\n");
  free (want);
}

static int
check (void)
{
  unsigned char *buf, *want;
  int bad = 0;

  if (posix_memalign ((void **) &buf, BLK, REGION) != 0
      || posix_memalign ((void **) &want, BLK, BLK) != 0)
    abort ();
  if (pread (fd, buf, REGION, 0) != (ssize_t) REGION) {
    perror ("stallcheck: reading back");
    return 1;
  }
  for (uint64_t b = 0; b < NBLK; b++) {
    unsigned char *p = buf + b * BLK;
    unsigned id = 0;
    uint64_t blk = 0;

    if (memcmp (p, "STALL", 5) == 0) {
      memcpy (&id, p + 8, sizeof id);
      memcpy (&blk, p + 12, sizeof blk);
    }
    else {
      /* Zeros from before the first write. */
      memset (want, 0, BLK);
      if (memcmp (p, want, BLK) != 0) {
        if (bad++ < 10)
          fprintf (stderr, "block %" PRIu64 ": bytes no write put there\n", b);
        continue;
      }
      blk = b;
    }
    if (id > nwrites || blk != b) {
      if (bad++ < 10)
        fprintf (stderr, "block %" PRIu64 ": names write %u, block %" PRIu64
                 "\n", b, id, blk);
      continue;
    }
    if (id) {
      fill (want, id, b);
      if (memcmp (p, want, BLK) != 0) {
        if (bad++ < 10) {
          fprintf (stderr, "block %" PRIu64 ": torn content of write %u\n",
                   b, id);
          explain (p, b);
        }
        continue;
      }
    }
    if (!allowed (b, id) && bad++ < 10) {
      const struct write *w = id ? &writes[id - 1] : NULL;

      fprintf (stderr, "block %" PRIu64 ": holds write %u (%s, returned at "
               "%" PRIu64 "), which a later acknowledged write replaced\n",
               b, id, w ? (w->err ? strerror (w->err) : "ok") : "initial",
               w ? w->returned : 0);
    }
  }
  free (buf);
  free (want);
  return bad ? 1 : 0;
}

int
main (int argc, char **argv)
{
  unsigned rounds = 3, threads = 8, quit_s = 60;
  unsigned waits[16] = { 0 }, nwaits = 1;
  bool never = false;
  pid_t target = 0;
  int opt, failed = 0;

  while ((opt = getopt (argc, argv, "n:t:w:xq:p:")) != -1)
    switch (opt) {
    case 'n': rounds = atoi (optarg); break;
    case 't': threads = atoi (optarg); break;
    case 'w':
      nwaits = 0;
      for (char *p = optarg; *p && nwaits < 16; p += *p == ',')
        waits[nwaits++] = strtoul (p, &p, 10);
      if (nwaits == 0)
        goto usage;
      break;
    case 'x': never = true; break;
    case 'q': quit_s = atoi (optarg); break;
    case 'p': target = atoi (optarg); break;
    default: goto usage;
    }
  if (optind + 2 != argc || target <= 0 || threads < 2 || threads > 64) {
  usage:
    fprintf (stderr, "usage: stallcheck [-n ROUNDS] [-t THREADS] [-w MS,...] "
             "[-x] [-q SECONDS] -p TARGET_PID MNT FILE\n");
    return 2;
  }
  mnt = argv[optind];
  fd = open (argv[optind + 1], O_RDWR | O_DIRECT);
  if (fd < 0) {
    perror (argv[optind + 1]);
    return 1;
  }
  rng_state = (uint64_t) getpid () * 2654435761u + 1;
  for (unsigned r = 0; r < rounds && !failed; r++) {
    unsigned a, b, c, end;
    double t0, deadline;
    long failed0, drops0;

    a = batch (threads, NULL);
    if (!join (a, nwrites, now_s () + quit_s)) {
      fprintf (stderr, "round %u: writes to the running target hang\n", r);
      return 1;
    }
    for (unsigned i = a; i < nwrites; i++)
      if (writes[i].err) {
        fprintf (stderr, "round %u: a write to the running target failed: "
                 "%s\n", r, strerror (writes[i].err));
        return 1;
      }
    failed0 = counter ("failed_cmds");
    drops0 = counter ("connection_drops");
    if (kill (target, SIGSTOP) != 0) {
      perror ("stallcheck: SIGSTOP");
      return 1;
    }
    t0 = now_s ();
    b = batch (threads, NULL);
    if (!join (b, nwrites, t0 + quit_s)) {
      fprintf (stderr, "round %u: writes in flight did not return within "
               "%us of the stall\n", r, quit_s);
      kill (target, SIGCONT);
      return 1;
    }
    c = batch (threads, &writes[b]);
    end = nwrites;
    if (!never) {
      /* The outage's length, not synchronisation: the target comes back
       * at a later stage of the recovery each round. */
      usleep (waits[r % nwaits] * 1000u);
      if (let_go_behind_targets_back (r, failed0, drops0))
        failed = 1;
      kill (target, SIGCONT);
    }
    deadline = now_s () + quit_s;
    if (!join (c, end, deadline)) {
      fprintf (stderr, "round %u: newer writes did not return within %us\n",
               r, quit_s);
      kill (target, SIGCONT);
      return 1;
    }
    for (unsigned i = b; i < end; i++)
      if (writes[i].err && writes[i].err != EIO) {
        fprintf (stderr, "round %u: a write failed with %s, not EIO\n", r,
                 strerror (writes[i].err));
        failed = 1;
      }
    {
      unsigned eio = 0;

      for (unsigned i = b; i < end; i++)
        eio += writes[i].err == EIO;
      printf ("round %u: %u of %u writes during the stall failed with EIO, "
              "returned after %.1fs\n", r, eio, end - b, now_s () - t0);
    }
    if (never) {
      if (let_go_behind_targets_back (r, failed0, drops0))
        failed = 1;
      for (unsigned i = b; i < end; i++)
        if (writes[i].err == 0) {
          fprintf (stderr, "round %u: a write succeeded with the target "
                   "stopped\n", r);
          failed = 1;
        }
      break;
    }
    /* Commands held past their deadline settle once the target answers
     * them (or the recovery lets them go). */
    while (inflight () != 0) {
      if (now_s () > deadline) {
        fprintf (stderr, "round %u: commands still in flight %us after the "
                 "target resumed\n", r, quit_s);
        return 1;
      }
      usleep (50000);           /* poll interval */
    }
    if (check () != 0) {
      fprintf (stderr, "round %u: the LUN holds what no model allows\n", r);
      failed = 1;
    }
    else
      printf ("round %u: every block as the model allows\n", r);
  }
  close (fd);
  return failed;
}
