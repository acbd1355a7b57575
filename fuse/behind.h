/* Write-behind: a buffered write(2) is answered once its commands are
 * queued for the target, not once the target has them, as the kernel's page
 * cache does for a block device.  dd, cp and databases writing through the
 * page cache then keep many writes in flight instead of one.  What this
 * changes is when a failure is seen: at the next fsync(2) or close(2) of
 * a descriptor of the LUN opened before it, or after it while nobody had
 * been told (errseq, as in the kernel; see behind_wait).
 * O_DIRECT, O_SYNC and O_DSYNC writes are always answered by the target.
 * The bytes behind are bounded (-o write_behind=BYTES); over that, a write
 * waits for the target as if write-behind were off. */
#ifndef ISERFS_BEHIND_H
#define ISERFS_BEHIND_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* A write answered early, until the target answers it. */
struct behind_write {
  uint64_t ticket;              /* order of behind_start */
  uint64_t off;
  size_t len;
  struct behind_write *prev, *next;
};

/* One LUN's writes behind. */
struct behind {
  pthread_mutex_t lock;
  pthread_cond_t progress;      /* signalled when the oldest write is back */
  struct behind_write *oldest, *newest;   /* in ticket order */
  uint64_t next_ticket;
  unsigned err_seq;             /* failures so far */
  int err;                      /* errno of the latest (positive) */
  bool reported;                /* the latest was returned to someone */
  bool logged;                  /* said so in the log since last reported */
};

/* The bound on bytes behind, over every LUN; 0 turns write-behind off. */
void behind_set_limit (size_t bytes);

void behind_init (struct behind *b);
void behind_destroy (struct behind *b);

/* A write of len bytes at off, with these open flags, is about to be
 * submitted: if it may be answered before the target answers it, returns
 * the record to give behind_done then; else NULL (not allowed for these
 * flags, no room under the bound, or no memory). */
struct behind_write *behind_start (struct behind *b, int open_flags,
                                   uint64_t off, size_t len);
/* The target answered w (err is 0 or a positive errno: the engine's
 * io_req err); frees w. */
void behind_done (struct behind *b, struct behind_write *w, int lun, int err);

/* What a descriptor opened now has seen: failures before it are not its,
 * unless nobody has been told of the latest yet (as errseq_sample). */
unsigned behind_seen (struct behind *b);
/* Wait until every write of b started before this call is back (later ones
 * cannot hold it up), or until deadline (CLOCK_MONOTONIC; NULL: no limit);
 * then 0, -errno of a failure since *seen, or -ETIMEDOUT at the
 * deadline.  With consume (fsync), *seen moves on, so that the failure is
 * reported once per descriptor; close(2) reports it without using it up,
 * because FUSE flushes at the close of every copy of a descriptor (a
 * child's inherited one too) and the fsync after it must still see it. */
int behind_wait (struct behind *b, unsigned *seen, bool consume,
                 const struct timespec *deadline);

#endif
