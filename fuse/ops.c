/* FUSE operations.  Reads and writes are answered asynchronously from the
 * session threads as their commands complete; only flush/fsync/release and
 * fallocate wait, because their result depends on several steps. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "clock.h"
#include "conn.h"
#include "fs.h"
#include "io.h"
#include "log.h"
#include "lunwatch.h"
#include "stats.h"
#include "uring.h"
#include "written.h"

#define STATS_XATTR_SLACK 1024     /* bytes the counters may grow by */
#define ZERO_PIECE (1024 * 1024)
#define ZERO_SAME_PIECE (256ull * 1024 * 1024)

/* An open LUN file.  For a handle opened with O_TRUNC we remember what it
 * wrote; at flush/fsync the rest below its high-water mark is zeroed, which
 * is what cp (skipping holes) and dd (truncating) expect of a file, without
 * ever touching the LUN beyond what they meant to write (fuse/written.h
 * says why a range counts from its write's submission, and why writes
 * wait while the zeros are being written). */
struct handle {
  struct lun *lun;
  bool writable;
  bool trunc;
  bool dirty;                   /* wrote since the last SYNCHRONIZE CACHE */
  pthread_mutex_t lock;
  struct trunc_map written;     /* O_TRUNC: what it owes */
  pthread_mutex_t zero_lock;    /* one zero fill at a time */
  unsigned writes;              /* submitted or held, not yet answered */
  struct behind *behind;        /* the LUN's writes answered early */
  unsigned behind_seen;         /* its failures this handle was told of */
  pthread_cond_t writes_done;   /* signalled when writes drops to 0 */
  struct handle *prev, *next;   /* in open_handles */
};

/* Every open handle, so that a daemon stopped while files are still open
 * (SIGTERM: the kernel then never sends RELEASE) can still settle them:
 * sync what they wrote and free them. */
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static struct handle *open_handles;
/* How many of them have O_TRUNC: while none has, a write claims nothing
 * (admit_write) and takes no lock but its own handle's. */
static atomic_uint trunc_handles;

static void
handle_link (struct handle *h)
{
  pthread_mutex_lock (&open_lock);
  h->prev = NULL;
  h->next = open_handles;
  if (open_handles)
    open_handles->prev = h;
  open_handles = h;
  pthread_mutex_unlock (&open_lock);
}

static void
handle_unlink (struct handle *h)
{
  pthread_mutex_lock (&open_lock);
  if (h->prev)
    h->prev->next = h->next;
  else
    open_handles = h->next;
  if (h->next)
    h->next->prev = h->prev;
  pthread_mutex_unlock (&open_lock);
}

static void
handle_free (struct handle *h)
{
  if (h->trunc)
    atomic_fetch_sub (&trunc_handles, 1);
  trunc_free (&h->written);
  pthread_cond_destroy (&h->writes_done);
  pthread_mutex_destroy (&h->zero_lock);
  pthread_mutex_destroy (&h->lock);
  free (h);
}

static struct fs *
get_fs (fuse_req_t req)
{
  return fuse_req_userdata (req);
}

static struct node *
get_node (struct fs *fs, fuse_ino_t ino)
{
  return ino >= 1 && ino <= fs_nr_nodes (fs) ? &fs->nodes[ino - 1] : NULL;
}

static void
fill_stat (struct fs *fs, fuse_ino_t ino, struct stat *st)
{
  struct node *n = get_node (fs, ino);

  memset (st, 0, sizeof *st);
  st->st_ino = ino;
  st->st_uid = fs->uid;
  st->st_gid = fs->gid;
  st->st_atime = st->st_mtime = st->st_ctime = fs->mount_time;
  if (n->lun == NULL) {
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
    st->st_blksize = 4096;
    return;
  }
  st->st_mode = S_IFREG | ((fs->ro || n->lun->read_only) ? 0444 : 0644);
  st->st_nlink = 1;
  st->st_size = lun_size (n->lun);
  st->st_blksize = n->lun->block_size;
  st->st_blocks = lun_size (n->lun) / 512;
}

/* A resize on the target should be seen within a second or two. */
#define ATTR_TIMEOUT 1.0

/* Ask the target for the capacity again, at most once a second, without
 * making stat(2) wait for the network: the answer updates the LUN and the
 * next stat sees it. */
void
fs_refresh_capacity (struct lun *l)
{
  time_t now = clock_mono_s ();
  time_t last = __atomic_load_n (&l->capacity_checked, __ATOMIC_RELAXED);
  struct io_req *r;

  if (now - last < 1
      || !__atomic_compare_exchange_n (&l->capacity_checked, &last, now, false,
                                       __ATOMIC_RELAXED, __ATOMIC_RELAXED))
    return;
  /* No completion callback: the session thread updates the LUN itself. */
  if (io_req_new (&r, l, IO_CAPACITY, 0, 0, NULL, NULL) == 0)
    io_submit (r);
}

/* A LUN the target deleted disappears from the directory. */
static bool
visible (const struct node *n)
{
  return n->lun == NULL || !lun_gone (n->lun);
}

/* Whether the kernel takes replies spliced from a pipe; libfuse would
 * otherwise copy a pipe's data into memory first, worse than no pipe. */
static atomic_bool splice_replies;

static void
fs_init (void *userdata, struct fuse_conn_info *conn)
{
  struct fs *fs = userdata;

  conn_tune (conn, fs->readahead);
  atomic_store (&splice_replies, (conn->want & FUSE_CAP_SPLICE_WRITE) != 0);
  uring_init_done (conn);
}

static void
fs_lookup (fuse_req_t req, fuse_ino_t parent, const char *name)
{
  struct fs *fs = get_fs (req);
  struct fuse_entry_param e;
  unsigned nr = fs_nr_nodes (fs);

  for (unsigned i = 1; i < nr; i++) {
    if (fs->nodes[i].parent == parent && strcmp (fs->nodes[i].name, name) == 0
        && visible (&fs->nodes[i])) {
      memset (&e, 0, sizeof e);
      e.ino = i + 1;
      e.attr_timeout = ATTR_TIMEOUT;
      e.entry_timeout = 3600;
      fill_stat (fs, e.ino, &e.attr);
      fuse_reply_entry (req, &e);
      return;
    }
  }
  /* Perhaps a LUN added on the target since: look (not waiting). */
  lunwatch_kick ();
  fuse_reply_err (req, ENOENT);
}

static void
fs_getattr (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct fs *fs = get_fs (req);
  struct stat st;

  struct node *n = get_node (fs, ino);

  (void) fi;
  if (n == NULL) {
    fuse_reply_err (req, ENOENT);
    return;
  }
  if (n->lun)
    fs_refresh_capacity (n->lun);
  fill_stat (fs, ino, &st);
  fuse_reply_attr (req, &st, ATTR_TIMEOUT);
}

static void
fs_setattr (fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
            struct fuse_file_info *fi)
{
  struct fs *fs = get_fs (req);
  struct node *n = get_node (fs, ino);
  struct stat st;

  if (n == NULL) {
    fuse_reply_err (req, ENOENT);
    return;
  }
  if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
    fuse_reply_err (req, EPERM);
    return;
  }
  if (to_set & FUSE_SET_ATTR_SIZE) {
    if (n->lun == NULL) {
      fuse_reply_err (req, EISDIR);
      return;
    }
    if (fs->ro || n->lun->read_only) {
      fuse_reply_err (req, EROFS);
      return;
    }
    /* A LUN's size never changes: growing is impossible, shrinking is a
     * no-op, except that it raises an O_TRUNC handle's high-water mark
     * (cp ends a file with a hole by ftruncate). */
    if ((uint64_t) attr->st_size > lun_size (n->lun)) {
      fuse_reply_err (req, EFBIG);
      return;
    }
    if (fi && fi->fh) {
      struct handle *h = (struct handle *) (uintptr_t) fi->fh;
      pthread_mutex_lock (&h->lock);
      if (h->trunc)
        trunc_extend (&h->written, attr->st_size);
      pthread_mutex_unlock (&h->lock);
    }
  }
  /* Times are not stored; accepting them keeps touch(1) and cp -p quiet. */
  fill_stat (fs, ino, &st);
  fuse_reply_attr (req, &st, ATTR_TIMEOUT);
}

static void
fs_readdir (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
            struct fuse_file_info *fi)
{
  struct fs *fs = get_fs (req);
  struct node *dir = get_node (fs, ino);
  char *buf;
  size_t used = 0;
  unsigned nr = fs_nr_nodes (fs);

  (void) fi;
  if (dir == NULL || dir->lun) {
    fuse_reply_err (req, dir ? ENOTDIR : ENOENT);
    return;
  }
  buf = malloc (size);
  if (buf == NULL) {
    fuse_reply_err (req, ENOMEM);
    return;
  }
  /* A listing is when LUNs added or removed on the target show. */
  if (off == 0)
    lunwatch_kick ();
  /* ".", "..", then the children; entry i has offset i+1, and node k
   * (inode k+1) is entry k+1: offsets stay put while LUNs come and go. */
  for (unsigned i = 0; i <= nr; i++) {
    const char *name;
    struct stat st = { 0 };
    size_t need;
    off_t pos = (off_t) i + 1;

    if (pos <= off)
      continue;
    if (i == 0)
      name = ".", st.st_ino = ino;
    else if (i == 1)
      name = "..", st.st_ino = dir->parent;
    else if (fs->nodes[i - 1].parent == ino && visible (&fs->nodes[i - 1]))
      name = fs->nodes[i - 1].name, st.st_ino = i;
    else
      continue;
    st.st_mode = get_node (fs, st.st_ino)->lun ? S_IFREG : S_IFDIR;
    need = fuse_add_direntry (req, buf + used, size - used, name, &st, pos);
    if (need > size - used)
      break;
    used += need;
  }
  fuse_reply_buf (req, buf, used);
  free (buf);
}

/* Answer an OPEN; 0, or the -errno of a reply the kernel did not take
 * (the opener was interrupted, the mount is going away).  An O_DIRECT
 * open also gets FOPEN_PARALLEL_DIRECT_WRITES: without it the kernel
 * holds the inode's lock across each synchronous O_DIRECT write until
 * iserfs answers it, so threads writing one LUN (a database, a VM's I/O
 * threads) get one write at a time between them (measured: 4 KiB psync
 * writes, 8 threads, no faster than 1).  Two
 * overlapping writes are still ordered, by the LUN's range lock (src/io.c).
 * libfuse 3.14 has no field for the flag, so the reply is built here; it
 * is the struct fuse_reply_open would send. */
static int
reply_open (fuse_req_t req, struct fuse_file_info *fi)
{
#if defined HAVE_STRUCT_FUSE_FILE_INFO_PARALLEL_DIRECT_WRITES
  fi->parallel_direct_writes = fi->direct_io;
#elif defined FOPEN_PARALLEL_DIRECT_WRITES
  if (fi->direct_io) {
    struct fuse_open_out out = {
      .fh = fi->fh,
      .open_flags = FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES,
    };

    return fuse_reply_buf (req, (const char *) &out, sizeof out);
  }
#endif
  return fuse_reply_open (req, fi);
}

static void
fs_open (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct fs *fs = get_fs (req);
  struct node *n = get_node (fs, ino);
  bool writing = (fi->flags & O_ACCMODE) != O_RDONLY;
  struct handle *h;

  if (n == NULL || n->lun == NULL) {
    fuse_reply_err (req, n ? EISDIR : ENOENT);
    return;
  }
  if (lun_removed (n->lun)) {
    fuse_reply_err (req, ENOENT);
    return;
  }
  if (writing && (fs->ro || n->lun->read_only)) {
    fuse_reply_err (req, EROFS);
    return;
  }
  h = calloc (1, sizeof *h);
  if (h == NULL) {
    fuse_reply_err (req, ENOMEM);
    return;
  }
  h->lun = n->lun;
  h->behind = &n->behind;
  h->behind_seen = behind_seen (&n->behind);
  h->writable = writing;
  h->trunc = writing && (fi->flags & O_TRUNC);
  pthread_mutex_init (&h->lock, NULL);
  pthread_mutex_init (&h->zero_lock, NULL);
  pthread_cond_init (&h->writes_done, NULL);
  if (h->trunc)
    atomic_fetch_add (&trunc_handles, 1);
  handle_link (h);
  fi->fh = (uintptr_t) h;
  /* O_DIRECT bypasses the page cache either way; through FUSE's direct-I/O
   * path the kernel submits asynchronous writes without waiting for each
   * other, instead of one at a time under the inode lock (measured: 4 KiB
   * random writes, 32 in flight, no faster than 1 in flight without it). */
  if (fi->flags & O_DIRECT)
    fi->direct_io = 1;
  /* A handle the kernel never got is never released: free it here. */
  if (reply_open (req, fi) != 0) {
    handle_unlink (h);
    handle_free (h);
  }
}

/* Where a READ's or WRITE's data lives, decided here and nowhere else.
 * wdata: a WRITE's data as the request brought it; answer_late: a WRITE
 * answered only once the target has it (O_DIRECT, O_DSYNC).
 * - A request that came by the FUSE io_uring (fuse/uring.h) lends its
 *   entry's payload: a READ's data is read straight into it, a WRITE's
 *   goes out from it (read_in_place_bytes, write_in_place_bytes).  Not a
 *   write answered early (its entry goes back to the kernel at the answer),
 *   nor what the engine cannot lend (partial blocks, iSER).
 * - Otherwise the data is in a pool buffer of the request's own: a WRITE's
 *   is copied there from libfuse's receive buffer (write_copied_bytes), a
 *   READ's is read into it, or into a pipe that is spliced into /dev/fuse
 *   when the kernel takes spliced replies (src/splice.h; a ring reply is
 *   written into its entry, never spliced). */
static int
request_for (struct io_req **rp, struct lun *l, enum io_op op, uint64_t off,
             size_t size, const char *wdata, bool answer_late,
             io_done_fn *done, void *ctx)
{
  void *entry = uring_payload (size);
  int err;

  *rp = NULL;
  if (entry && (op == IO_READ || (answer_late && wdata == entry))) {
    err = io_req_new_lent (rp, l, op, off, size, entry, done, ctx);
    if (err < 0)
      return err;
    if (*rp) {
      atomic_fetch_add (op == IO_READ ? &stats.read_in_place_bytes
                        : &stats.write_in_place_bytes, size);
      return 0;
    }
  }
  err = io_req_new (rp, l, op, off, size, done, ctx);
  if (err < 0)
    return err;
  if (op == IO_WRITE) {
    memcpy (io_req_data (*rp), wdata, size);
    atomic_fetch_add (&stats.write_copied_bytes, size);
  }
  else if (!uring_serving ()
           && atomic_load_explicit (&splice_replies, memory_order_relaxed))
    io_req_allow_pipe (*rp);
  return 0;
}

static void
read_done (struct io_req *r, void *ctx)
{
  fuse_req_t req = ctx;
  int fd = io_req_pipe_fd (r);

  if (io_req_err (r))
    fuse_reply_err (req, -io_req_err (r));
  else if (fd >= 0) {
    /* The data is in a pipe (src/splice.h): libfuse splices it on. */
    struct fuse_bufvec data = FUSE_BUFVEC_INIT (io_req_len (r));

    data.buf[0].flags = FUSE_BUF_IS_FD;
    data.buf[0].fd = fd;
    fuse_reply_data (req, &data, 0);
  }
  else
    fuse_reply_buf (req, io_req_data (r), io_req_len (r));
}

static void
fs_read (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
         struct fuse_file_info *fi)
{
  struct handle *h = (struct handle *) (uintptr_t) fi->fh;
  struct io_req *r;
  int err;

  uint64_t end = lun_size (h->lun);

  (void) ino;
  /* As on a block device: a read across the end gets what exists. */
  if (off < 0 || (uint64_t) off >= end || size == 0) {
    fuse_reply_buf (req, NULL, 0);
    return;
  }
  if (size > end - off)
    size = end - off;
  err = request_for (&r, h->lun, IO_READ, off, size, NULL, false, read_done,
                     req);
  if (err < 0) {
    fuse_reply_err (req, -err);
    return;
  }
  io_submit (r);
}

/* h wrote [off, off + len) by other means than a write (zeros): it is to
 * be synced, and an O_TRUNC handle need not zero it.  Should that record
 * fail for want of memory, the range is only zeroed once more later. */
static void
note_written (struct handle *h, uint64_t off, size_t len)
{
  pthread_mutex_lock (&h->lock);
  h->dirty = true;
  if (h->trunc)
    (void) trunc_record (&h->written, off, off + len);
  pthread_mutex_unlock (&h->lock);
}

/* A write of this handle was answered.  The last touch of h: once writes
 * is 0 and the lock dropped, fs_close_handles() may free it.  (An O_TRUNC
 * handle claimed the range when the write was submitted.) */
static void
write_finished (struct handle *h, bool ok)
{
  pthread_mutex_lock (&h->lock);
  if (ok)
    h->dirty = true;
  if (--h->writes == 0)
    pthread_cond_broadcast (&h->writes_done);
  pthread_mutex_unlock (&h->lock);
}

/* r's tag is its handle (fs_write). */
static void
write_done (struct io_req *r, void *ctx)
{
  fuse_req_t req = ctx;

  write_finished (io_req_tag (r), io_req_err (r) == 0);
  if (io_req_err (r))
    fuse_reply_err (req, -io_req_err (r));
  else
    fuse_reply_write (req, io_req_len (r));
}

/* The target answered a write that fs_write answered already: what went
 * wrong is for the next fsync or close (fuse/behind.h). */
static void
write_behind_done (struct io_req *r, void *ctx)
{
  struct handle *h = io_req_tag (r);
  struct behind *b = h->behind;
  int lun = h->lun->lun;

  /* h may be freed once write_finished let go of it; b and lun live on. */
  write_finished (h, io_req_err (r) == 0);
  behind_done (b, ctx, lun, -io_req_err (r));
}

/* Let a write r of h, [off, off + len), be submitted: every O_TRUNC
 * handle of the LUN claims the range (fuse/written.h: neither a write in
 * flight nor one of another descriptor after the open is a gap), and if
 * one of them is writing its zeros, it holds r until they are written.
 * skip: a handle giving back the writes it held, whose zero fill is over.
 * 0: submit r; 1: held; -ENOMEM: refuse it. */
static int
admit_write (struct handle *h, struct io_req *r, uint64_t off, size_t len,
             const struct handle *skip)
{
  int held = 0, err = 0;

  if (atomic_load (&trunc_handles) == 0)
    return 0;
  pthread_mutex_lock (&open_lock);
  for (struct handle *t = open_handles; t && err == 0; t = t->next) {
    if (!t->trunc || t->lun != h->lun)
      continue;
    pthread_mutex_lock (&t->lock);
    err = trunc_claim (&t->written, off, len, t == h);
    if (err == 0 && held == 0 && t != skip)
      held = err = trunc_hold (&t->written, r);
    pthread_mutex_unlock (&t->lock);
  }
  pthread_mutex_unlock (&open_lock);
  if (err < 0)
    log_error ("lun%d: out of memory recording a write for O_TRUNC",
               h->lun->lun);
  return err < 0 ? err : held;
}

/* Fail a write that admit_write refused, never submitted (its context is
 * its FUSE request: a write that may be held is not answered early). */
static void
refuse_write (struct io_req *r, fuse_req_t req, int err)
{
  write_finished (io_req_tag (r), false);
  io_req_free (r);
  fuse_reply_err (req, err);
}

static void
fs_write (fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
          off_t off, struct fuse_file_info *fi)
{
  struct handle *h = (struct handle *) (uintptr_t) fi->fh;
  uint64_t end = lun_size (h->lun);
  struct behind_write *w;
  struct io_req *r;
  int err, held;

  (void) ino;
  if (get_fs (req)->ro || h->lun->read_only) {
    fuse_reply_err (req, EROFS);
    return;
  }
  /* As on a block device: nothing is written beyond the end; a write across
   * it is short, one at or past it fails. */
  if (off < 0 || (uint64_t) off >= end) {
    fuse_reply_err (req, ENOSPC);
    return;
  }
  if (size == 0) {
    fuse_reply_write (req, 0);
    return;
  }
  if (size > end - off)
    size = end - off;
  /* behind_start() answers these only when the target did. */
  err = request_for (&r, h->lun, IO_WRITE, off, size, buf,
                     (fi->flags & (O_DIRECT | O_DSYNC)) != 0, write_done, req);
  if (err < 0) {
    fuse_reply_err (req, -err);
    return;
  }
  io_req_set_tag (r, h);
  pthread_mutex_lock (&h->lock);
  h->writes++;
  pthread_mutex_unlock (&h->lock);
  held = admit_write (h, r, off, size, NULL);
  if (held < 0) {
    /* Unrecorded, its range would be zeroed at close. */
    refuse_write (r, req, -held);
    return;
  }
  if (held) {
    /* The zero fill submits it, and the target answers it; r is no
     * longer ours. */
    atomic_fetch_add (&stats.trunc_writes_held, 1);
    return;
  }
  w = behind_start (h->behind, fi->flags, off, size);
  if (w)
    io_req_set_done (r, write_behind_done, w);
  /* Answer only once it is queued: whatever the caller sends after the
   * answer is queued behind it, and the engine orders overlapping requests
   * by that queue (src/io.h). */
  io_submit (r);
  if (w)
    fuse_reply_write (req, size);
}

/* ---- zeroing, syncing ---- */

struct zero_batch {
  struct lun *lun;
  int err;
};

/* Zero [start, end) with plain writes of at most ZERO_PIECE bytes (these
 * also handle partial blocks, by read-modify-write). */
static int
zero_by_writes (struct lun *l, uint64_t start, uint64_t end)
{
  while (start < end) {
    size_t n = end - start < ZERO_PIECE ? end - start : ZERO_PIECE;
    struct io_req *r;
    int err = io_req_new (&r, l, IO_WRITE, start, n, NULL, NULL);

    if (err < 0)
      return -err;
    memset (io_req_data (r), 0, n);
    err = io_run_sync (r);
    if (err < 0)
      return -err;
    start += n;
  }
  return 0;
}

/* Whole blocks by WRITE SAME: one block on the wire instead of all of them.
 * A target where it fails is remembered and gets plain writes. */
static int
zero_by_write_same (struct lun *l, uint64_t start, uint64_t end)
{
  while (start < end) {
    uint64_t n = end - start < ZERO_SAME_PIECE ? end - start : ZERO_SAME_PIECE;
    struct io_req *r;
    int err = io_req_new (&r, l, IO_WRITESAME, start, n, NULL, NULL);

    if (err < 0)
      return -err;
    err = -io_run_sync (r);
    if (err) {
      /* Plain writes are the reference: if they fail too, that is real. */
      if (__atomic_exchange_n (&l->write_same, false, __ATOMIC_RELAXED))
        log_info ("lun%d: the target does not take WRITE SAME (%s); zeroing "
                  "with plain writes from now on", l->lun, strerror (err));
      return zero_by_writes (l, start, end);
    }
    start += n;
  }
  return 0;
}

static int
zero_range (void *opaque, uint64_t start, uint64_t end)
{
  struct zero_batch *z = opaque;
  struct lun *l = z->lun;
  uint64_t bs = l->block_size;
  uint64_t first = (start + bs - 1) / bs * bs, last = end / bs * bs;
  int err;

  if (!__atomic_load_n (&l->write_same, __ATOMIC_RELAXED) || first >= last)
    return zero_by_writes (l, start, end);
  if ((err = zero_by_writes (l, start, first)) != 0
      || (err = zero_by_writes (l, last, end)) != 0)
    return err;
  return zero_by_write_same (l, first, last);
}

/* The zero fill of h is over: let the writes it held go, oldest first,
 * until none is left (fuse/written.h) -- unless another O_TRUNC handle of
 * the LUN is writing zeros now, which then holds them in turn. */
static void
release_held (struct handle *h)
{
  for (;;) {
    size_t n;
    void **held;

    pthread_mutex_lock (&h->lock);
    held = trunc_take_held (&h->written, &n);
    pthread_mutex_unlock (&h->lock);
    if (n == 0)
      return;
    for (size_t i = 0; i < n; i++) {
      struct io_req *r = held[i];
      int err = admit_write (io_req_tag (r), r, io_req_off (r),
                             io_req_len (r), h);

      if (err == 0)
        io_submit (r);
      else if (err < 0)
        refuse_write (r, io_req_ctx (r), -err);
    }
    free (held);
  }
}

/* Zero what an O_TRUNC handle left unwritten below its high-water mark, and
 * remember that it is done. */
static int
zero_unwritten (struct handle *h)
{
  struct zero_batch z = { .lun = h->lun };
  struct rangeset gaps = { 0 };
  int err;

  if (!h->trunc)
    return 0;
  pthread_mutex_lock (&h->zero_lock);
  pthread_mutex_lock (&h->lock);
  err = trunc_zero_begin (&h->written, &gaps);
  pthread_mutex_unlock (&h->lock);
  if (err == 0) {
    for (size_t i = 0; i < gaps.n && !err; i++) {
      err = zero_range (&z, gaps.r[i].start, gaps.r[i].end);
      if (!err)
        note_written (h, gaps.r[i].start, gaps.r[i].end - gaps.r[i].start);
    }
    release_held (h);
  }
  pthread_mutex_unlock (&h->zero_lock);
  rangeset_free (&gaps);
  return err < 0 ? -err : err;
}

static int
sync_lun (struct lun *l)
{
  struct io_req *r;
  int err = io_req_new (&r, l, IO_SYNC, 0, 0, NULL, NULL);

  if (err < 0)
    return -err;
  return -io_run_sync (r);
}

/* Zero what an O_TRUNC handle owes and sync what it wrote. */
static int
settle_written (struct handle *h, bool force_sync)
{
  int err = zero_unwritten (h);
  bool dirty;

  if (err)
    return err;
  pthread_mutex_lock (&h->lock);
  dirty = h->dirty;
  h->dirty = false;
  pthread_mutex_unlock (&h->lock);
  if (dirty || force_sync) {
    err = sync_lun (h->lun);
    if (err) {
      pthread_mutex_lock (&h->lock);
      h->dirty = true;
      pthread_mutex_unlock (&h->lock);
    }
  }
  return err;
}

/* What close(2) and fsync(2) promise: everything this handle wrote (and the
 * zeros it owes) is on stable storage of the target -- or an error, also
 * for a write of the LUN answered early (write-behind) that failed since
 * the handle last heard (only fsync uses it up: see behind_wait).  Writes
 * behind go first: their data must be in before the sync (the zero fill
 * leaves their ranges alone in any case: they were claimed when
 * submitted).  Closing a descriptor that cannot write waits for nothing,
 * as in the kernel; an fsync(2) always waits.  deadline (NULL: none)
 * bounds that wait at exit. */
static int
settle (struct handle *h, bool is_fsync, const struct timespec *deadline)
{
  int behind_err = 0, err;

  if (h->writable || is_fsync)
    behind_err = -behind_wait (h->behind, &h->behind_seen, is_fsync, deadline);
  /* fsync always reaches the target's cache, even on a descriptor that
   * wrote nothing or cannot write: another may have, and fsync of a block
   * device opened read-only flushes it too. */
  err = settle_written (h, is_fsync);
  return behind_err ? behind_err : err;
}

static void
fs_flush (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  (void) ino;
  fuse_reply_err (req, settle ((struct handle *) (uintptr_t) fi->fh, false,
                               NULL));
}

static void
fs_fsync (fuse_req_t req, fuse_ino_t ino, int datasync,
          struct fuse_file_info *fi)
{
  struct handle *h = (struct handle *) (uintptr_t) fi->fh;

  (void) ino;
  (void) datasync;
  fuse_reply_err (req, settle (h, true, NULL));
}

static void
fs_release (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct handle *h = (struct handle *) (uintptr_t) fi->fh;
  int err = settle (h, false, NULL);

  (void) ino;
  if (err)
    log_error ("lun%d: data may not be on stable storage at close: %s",
               h->lun->lun, strerror (err));
  handle_unlink (h);
  handle_free (h);
  fuse_reply_err (req, 0);
}

/* Wait until no write of h is in flight; false if some still are at the
 * deadline (their commands have deadlines of their own, but timeout=0
 * means none). */
static bool
wait_writes (struct handle *h, const struct timespec *deadline)
{
  bool idle;

  pthread_mutex_lock (&h->lock);
  while (h->writes > 0
         && clock_cond_wait (&h->writes_done, &h->lock, deadline) == 0)
    ;
  idle = h->writes == 0;
  pthread_mutex_unlock (&h->lock);
  return idle;
}

void
fs_close_handles (void)
{
  struct handle *h;
  struct timespec deadline = clock_deadline_ms (60 * 1000);

  while ((h = open_handles) != NULL) {
    int err;

    handle_unlink (h);
    if (!wait_writes (h, &deadline)) {
      /* A late answer would still touch it: leave it allocated. */
      log_error ("lun%d: writes still in flight at exit", h->lun->lun);
      continue;
    }
    err = settle (h, false, &deadline);
    if (err)
      log_error ("lun%d: data may not be on stable storage at exit: %s",
                 h->lun->lun, strerror (err));
    handle_free (h);
  }
}

static int
unmap_range (struct lun *l, uint64_t off, uint64_t len)
{
  struct zero_batch z = { .lun = l };
  uint64_t bs = l->block_size;
  uint64_t first = (off + bs - 1) / bs * bs, last = (off + len) / bs * bs;
  int err;

  if (first >= last)                    /* inside one block: just zero it */
    return zero_range (&z, off, off + len);
  if ((err = zero_range (&z, off, first)) || (err = zero_range (&z, last, off + len)))
    return err;
  struct io_req *r;
  err = io_req_new (&r, l, IO_UNMAP, first, last - first, NULL, NULL);
  if (err < 0)
    return -err;
  return -io_run_sync (r);
}

static void
fs_fallocate (fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
              off_t len, struct fuse_file_info *fi)
{
  struct handle *h = (struct handle *) (uintptr_t) fi->fh;
  struct lun *l = h->lun;
  struct zero_batch z = { .lun = l };
  uint64_t end = lun_size (l);
  int err = 0;

  (void) ino;
  if (get_fs (req)->ro || l->read_only) {
    fuse_reply_err (req, EROFS);
    return;
  }
  if (off < 0 || len <= 0) {
    fuse_reply_err (req, EINVAL);
    return;
  }
  if ((uint64_t) off >= end) {
    fuse_reply_err (req, (mode & FALLOC_FL_KEEP_SIZE) ? 0 : EFBIG);
    return;
  }
  if ((uint64_t) len > end - off) {
    if (!(mode & FALLOC_FL_KEEP_SIZE)) {
      fuse_reply_err (req, EFBIG);
      return;
    }
    len = end - off;
  }
  switch (mode & ~FALLOC_FL_KEEP_SIZE) {
  case 0:                               /* every block already exists */
    break;
  case FALLOC_FL_PUNCH_HOLE:
    err = l->unmap ? unmap_range (l, off, len) : EOPNOTSUPP;
    break;
  case FALLOC_FL_ZERO_RANGE:
    err = zero_range (&z, off, off + len);
    break;
  default:
    err = EOPNOTSUPP;
  }
  if (!err && mode != 0)
    note_written (h, off, len);
  fuse_reply_err (req, err);
}

static void
fs_statfs (fuse_req_t req, fuse_ino_t ino)
{
  struct fs *fs = get_fs (req);
  struct statvfs sv;
  uint64_t bytes = 0;
  unsigned nr = fs_nr_nodes (fs);

  (void) ino;
  for (unsigned i = 0; i < nr; i++)
    if (fs->nodes[i].lun && !lun_removed (fs->nodes[i].lun))
      bytes += lun_size (fs->nodes[i].lun);
  memset (&sv, 0, sizeof sv);
  sv.f_bsize = 4096;
  sv.f_frsize = 512;
  sv.f_blocks = bytes / sv.f_frsize;
  sv.f_files = nr;
  sv.f_namemax = 255;
  fuse_reply_statfs (req, &sv);
}

static char *
stats_text (size_t *len)
{
  char *text = NULL;
  FILE *fp = open_memstream (&text, len);

  if (fp == NULL)
    return NULL;
  stats_print (fp);
  fclose (fp);
  return text;
}

static void
fs_getxattr (fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
  size_t len;
  char *text;

  if (ino != FUSE_ROOT_ID || strcmp (name, STATS_XATTR) != 0) {
    fuse_reply_err (req, ENODATA);
    return;
  }
  text = stats_text (&len);
  if (text == NULL)
    fuse_reply_err (req, ENOMEM);
  else if (size == 0)
    /* Room to spare: getfattr asks for the size, then reads, and counters
     * that gained digits in between made the read fail with ERANGE. */
    fuse_reply_xattr (req, len + STATS_XATTR_SLACK);
  else if (size < len)
    fuse_reply_err (req, ERANGE);
  else
    fuse_reply_buf (req, text, len);
  free (text);
}

static void
fs_listxattr (fuse_req_t req, fuse_ino_t ino, size_t size)
{
  static const char names[] = STATS_XATTR;     /* with its NUL */
  size_t len = ino == FUSE_ROOT_ID ? sizeof names : 0;

  if (size == 0)
    fuse_reply_xattr (req, len);
  else if (size < len)
    fuse_reply_err (req, ERANGE);
  else
    fuse_reply_buf (req, names, len);
}

const struct fuse_lowlevel_ops fs_ops = {
  .init = fs_init,
  .lookup = fs_lookup,
  .getattr = fs_getattr,
  .setattr = fs_setattr,
  .readdir = fs_readdir,
  .open = fs_open,
  .read = fs_read,
  .write = fs_write,
  .flush = fs_flush,
  .fsync = fs_fsync,
  .release = fs_release,
  .fallocate = fs_fallocate,
  .statfs = fs_statfs,
  .getxattr = fs_getxattr,
  .listxattr = fs_listxattr,
};
