/* The LUN scanner; see lunwatch.h. */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "fs.h"
#include "log.h"
#include "lunscan.h"
#include "lunwatch.h"

/* A listing asks the target at most this often (seconds). */
#define SCAN_EVERY 2

static struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool kicked, stopping, running;
  pthread_t thread;
  struct fs *fs;
  time_t *last;                 /* per session: its last scan, scanner's */
} W = {
  .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER,
};

static int
find (const int *luns, int n, int lun)
{
  for (int i = 0; i < n; i++)
    if (luns[i] == lun)
      return i;
  return -1;
}

/* From now on nothing reaches the target through l (io.c, start). */
static void
retire (struct lun *l, const char *why)
{
  log_info ("lun%d of %s %s", l->lun, l->session->target, why);
  __atomic_store_n (&l->removed, true, __ATOMIC_RELEASE);
}

/* Whether l, still reported, is the LUN we know: the same identity (VPD
 * 0x83 and 0x80, where it had one at its probe), the same block size and
 * no smaller (a LUN may grow; one that shrank lost data under us).  A LUN
 * deleted and another made under its number between two scans differs in
 * one of these, and must never be served through the old one's
 * descriptors.  When it cannot be asked, it stays.  One that grew, or
 * answers again after LOGICAL UNIT NOT SUPPORTED, gets its capacity read
 * by the session thread (command.c updates it there; tell_kernel sends
 * the command). */
static bool
same_lun (struct lunscan *ls, struct lun *l)
{
  uint32_t bs;
  uint64_t blocks;

  if (lunscan_same_identity (ls, l) == 0)
    return false;
  if (lunscan_geometry (ls, l, &bs, &blocks) < 0)
    return true;
  if (bs != l->block_size || blocks * bs < lun_size (l))
    return false;
  if (blocks * bs != lun_size (l)
      || __atomic_load_n (&l->gone, __ATOMIC_RELAXED))
    __atomic_store_n (&l->capacity_stale, true, __ATOMIC_RELAXED);
  return true;
}

/* Compare what session i's target reports with the tree. */
static void
scan (struct fs *fs, unsigned i)
{
  struct session *s = fs->sessions[i];
  struct lunscan *ls = fs->scans[i];
  unsigned nr = fs_nr_nodes (fs);
  int *luns, n;
  bool *known;

  if (ls == NULL)
    return;
  n = lunscan_report (ls, &luns);
  if (n < 0) {
    log_debug ("REPORT LUNS on %s failed: %s", s->target, strerror (-n));
    return;
  }
  known = calloc (n ? n : 1, sizeof *known);
  if (known == NULL) {
    free (luns);
    return;
  }
  for (unsigned k = 0; k < nr; k++) {
    struct lun *l = fs->nodes[k].lun;
    int at;

    if (l == NULL || l->session != s || lun_removed (l))
      continue;
    at = find (luns, n, l->lun);
    if (at < 0)
      retire (l, "is no longer reported by the target");
    else if (!same_lun (ls, l))
      retire (l, "changed (identity, block size or capacity): taken as a "
              "new LUN");
    else
      known[at] = true;
  }
  for (int j = 0; j < n; j++) {
    struct lun *l;
    int ino;

    if (known[j] || (fs->only_lun >= 0 && luns[j] != fs->only_lun))
      continue;
    if (lunscan_probe (ls, luns[j], &l) < 0 || l == NULL)
      continue;
    ino = fs_add_lun (fs, fs->dirs[i], l);
    if (ino < 0)
      log_error ("cannot add lun%d of %s: %s", l->lun, s->target,
                 strerror (-ino));
    else
      log_info ("lun%d of %s appeared", l->lun, s->target);
  }
  free (known);
  free (luns);
}

/* Tell the kernel what changed since it was last told: a removed LUN's
 * name and cached pages go, a resized LUN's attributes are read again.
 * Also ask for the capacity of a LUN the target said changed (CAPACITY
 * DATA HAS CHANGED, or a scan: capacity_stale) without waiting for a
 * stat.  Nothing else: this runs every second, and a command nobody asked
 * for must not go to a target that may not be answering -- over iSER a
 * stalled target then fails the connection, which Debian's libiscsi 1.19
 * never logs in again, and the mount's next write gets EIO. */
static void
tell_kernel (struct fs *fs)
{
  unsigned nr = fs_nr_nodes (fs);

  for (unsigned k = 0; k < nr; k++) {
    struct node *n = &fs->nodes[k];
    fuse_ino_t ino = k + 1;
    uint64_t size;

    if (n->lun == NULL || n->told_gone)
      continue;
    if (lun_removed (n->lun)) {
      n->told_gone = true;
      fuse_lowlevel_notify_inval_entry (fs->se, n->parent, n->name,
                                        strlen (n->name));
      fuse_lowlevel_notify_inval_inode (fs->se, ino, 0, 0);
      continue;
    }
    if (__atomic_exchange_n (&n->lun->capacity_stale, false,
                             __ATOMIC_RELAXED)) {
      __atomic_store_n (&n->lun->capacity_checked, 0, __ATOMIC_RELAXED);
      fs_refresh_capacity (n->lun);
    }
    size = lun_size (n->lun);
    if (size != n->told_size) {
      n->told_size = size;
      fuse_lowlevel_notify_inval_inode (fs->se, ino, -1, 0);
    }
  }
}

static void *
watch (void *arg)
{
  struct fs *fs = arg;
  bool pending = false;

  pthread_mutex_lock (&W.lock);
  while (!W.stopping) {
    struct timespec deadline = clock_deadline_ms (1000);
    bool kicked;

    if (!W.kicked)
      clock_cond_wait (&W.cond, &W.lock, &deadline);
    if (W.stopping)
      break;
    kicked = W.kicked || pending;
    W.kicked = false;
    pthread_mutex_unlock (&W.lock);

    pending = false;
    for (unsigned i = 0; i < fs->nr_sessions; i++) {
      struct session *s = fs->sessions[i];
      time_t now = clock_mono_s ();
      bool changed = atomic_exchange (&s->luns_changed, false);

      if (!changed && !kicked)
        continue;
      /* A scan only spares a remount: it must not add to what a session
       * being logged in again has to carry.  Later, then. */
      if (__atomic_load_n (&s->down_since, __ATOMIC_RELAXED)) {
        if (changed)
          atomic_store (&s->luns_changed, true);
        pending = true;
        continue;
      }
      if (!changed && W.last[i] && now - W.last[i] < SCAN_EVERY) {
        pending = true;
        continue;
      }
      W.last[i] = now;
      scan (fs, i);
    }
    tell_kernel (fs);
    pthread_mutex_lock (&W.lock);
  }
  pthread_mutex_unlock (&W.lock);
  return NULL;
}

int
lunwatch_start (struct fs *fs)
{
  int e;

  W.last = calloc (fs->nr_sessions + 1, sizeof *W.last);
  if (W.last == NULL)
    return -ENOMEM;
  for (unsigned i = 0; i < fs->nr_sessions; i++)
    if ((fs->scans[i] = lunscan_new (fs->sessions[i], fs->max_xfer)) == NULL)
      return -ENOMEM;
  W.fs = fs;
  W.stopping = false;
  e = pthread_create (&W.thread, NULL, watch, fs);
  if (e != 0)
    return -e;
  W.running = true;
  return 0;
}

void
lunwatch_kick (void)
{
  pthread_mutex_lock (&W.lock);
  W.kicked = true;
  pthread_cond_signal (&W.cond);
  pthread_mutex_unlock (&W.lock);
}

void
lunwatch_stop (void)
{
  if (W.running) {
    pthread_mutex_lock (&W.lock);
    W.stopping = true;
    pthread_cond_signal (&W.cond);
    pthread_mutex_unlock (&W.lock);
    pthread_join (W.thread, NULL);
    W.running = false;
  }
  free (W.last);
  W.last = NULL;
}
