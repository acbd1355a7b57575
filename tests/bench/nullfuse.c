/* nullfuse: the "FUSE floor" column of bench/run.sh.
 *
 * A FUSE file system with no backend: a root directory holding one regular
 * file, "disk", of SIZE bytes.  Reads are answered from a buffer of zeros,
 * writes are acknowledged and dropped, flush and fsync succeed at once.
 * What the benchmark measures on it is what FUSE alone costs on this
 * machine (the kernel, /dev/fuse, libfuse, the thread wake-ups, the copies
 * into and out of the reader), so a goal that asks more of iserfs than this
 * file system reaches cannot be met by any FUSE design here.
 *
 * To be a fair floor it asks the kernel for what iserfs asks for
 * (fuse/ops.c's fs_init and fs_open, fuse/readahead.c): 1 MiB writes,
 * 4 MiB read-ahead, 64 background requests, ASYNC_DIO, no SPLICE_READ, and
 * direct_io on O_DIRECT opens.  It serves with libfuse's multi-threaded
 * loop (10 workers at most, iserfs's default; -s: one thread).
 *
 * Usage: nullfuse [-s] [-d] [-o OPT] SIZE MOUNTPOINT   (stays in the
 * foreground; SIGTERM, SIGINT or fusermount3 -u ends it, unmounted). */
#include <config.h>

#define FUSE_USE_VERSION 312    /* as fuse/options.h */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "conn.h"
#include "readahead.h"

#define DISK_INO 2
#define MAX_IO CONN_MAX_WRITE           /* max_write, and so max_pages */
#define READAHEAD (4u * 1024 * 1024)    /* iserfs's default readahead= */

static off_t disk_size;
static const char *size_arg;
/* Every read is answered from here.  Real pages, not the shared zero page
 * of an untouched mapping: a 1 MiB reply then copies from 1 MiB of memory,
 * as iserfs's does from its pool buffers, not from one cache-hot page. */
static char *zeros;

static void
fill_stat (fuse_ino_t ino, struct stat *st)
{
  memset (st, 0, sizeof *st);
  st->st_ino = ino;
  st->st_uid = getuid ();
  st->st_gid = getgid ();
  if (ino == FUSE_ROOT_ID) {
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
  }
  else {
    st->st_mode = S_IFREG | 0644;
    st->st_nlink = 1;
    st->st_size = disk_size;
    st->st_blocks = disk_size / 512;
  }
  st->st_blksize = 4096;
}

/* The conn settings of fuse/ops.c's fs_init. */
static void
null_init (void *userdata, struct fuse_conn_info *conn)
{
  (void) userdata;
  conn_tune (conn, READAHEAD);
}

static void
null_lookup (fuse_req_t req, fuse_ino_t parent, const char *name)
{
  struct fuse_entry_param e = { .ino = DISK_INO, .attr_timeout = 1.0,
                                .entry_timeout = 3600 };

  if (parent != FUSE_ROOT_ID || strcmp (name, "disk") != 0) {
    fuse_reply_err (req, ENOENT);
    return;
  }
  fill_stat (DISK_INO, &e.attr);
  fuse_reply_entry (req, &e);
}

static void
null_getattr (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct stat st;

  (void) fi;
  fill_stat (ino, &st);
  fuse_reply_attr (req, &st, 1.0);
}

static void
null_readdir (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
              struct fuse_file_info *fi)
{
  static const char *const names[] = { ".", "..", "disk" };
  char buf[512];
  size_t used = 0;
  struct stat st;

  (void) fi;
  if (ino != FUSE_ROOT_ID) {
    fuse_reply_err (req, ENOTDIR);
    return;
  }
  for (off_t i = off; i < 3; i++) {
    size_t need;

    fill_stat (i == 2 ? DISK_INO : FUSE_ROOT_ID, &st);
    need = fuse_add_direntry (req, buf + used, sizeof buf - used, names[i],
                              &st, i + 1);
    if (used + need > size || used + need > sizeof buf)
      break;
    used += need;
  }
  fuse_reply_buf (req, buf, used);
}

/* As fuse/ops.c's fs_open: nothing cached or kept, direct_io only for
 * O_DIRECT (the kernel's asynchronous direct-I/O path). */
static void
null_open (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  if (ino != DISK_INO) {
    fuse_reply_err (req, EISDIR);
    return;
  }
  if (fi->flags & O_DIRECT)
    fi->direct_io = 1;
  fuse_reply_open (req, fi);
}

static void
null_read (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
           struct fuse_file_info *fi)
{
  (void) ino, (void) fi;
  if (off < 0 || off >= disk_size) {
    fuse_reply_buf (req, NULL, 0);
    return;
  }
  if (size > (size_t) (disk_size - off))
    size = disk_size - off;
  if (size > MAX_IO)            /* the kernel asks for max_pages at most */
    size = MAX_IO;
  fuse_reply_buf (req, zeros, size);
}

static void
null_write (fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
            off_t off, struct fuse_file_info *fi)
{
  (void) ino, (void) buf, (void) fi;
  if (off < 0 || off >= disk_size) {
    fuse_reply_err (req, ENOSPC);
    return;
  }
  if (size > (size_t) (disk_size - off))
    size = disk_size - off;
  fuse_reply_write (req, size);
}

static void
null_flush (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  (void) ino, (void) fi;
  fuse_reply_err (req, 0);
}

static void
null_fsync (fuse_req_t req, fuse_ino_t ino, int datasync,
            struct fuse_file_info *fi)
{
  (void) ino, (void) datasync, (void) fi;
  fuse_reply_err (req, 0);
}

static const struct fuse_lowlevel_ops null_ops = {
  .init = null_init,
  .lookup = null_lookup,
  .getattr = null_getattr,
  .readdir = null_readdir,
  .open = null_open,
  .read = null_read,
  .write = null_write,
  .flush = null_flush,
  .fsync = null_fsync,
};

/* The first argument that is not an option is SIZE; the rest is left to
 * fuse_parse_cmdline (MOUNTPOINT, -s, -d, -o ...). */
static int
take_size (void *data, const char *arg, int key, struct fuse_args *args)
{
  (void) data, (void) args;
  if (key != FUSE_OPT_KEY_NONOPT || size_arg != NULL)
    return 1;
  size_arg = arg;
  return 0;
}

int
main (int argc, char *argv[])
{
  struct fuse_args args = FUSE_ARGS_INIT (argc, argv);
  struct fuse_cmdline_opts opts = { 0 };
  struct fuse_session *se = NULL;
  char *end;
  int rc = 1;

  if (fuse_opt_parse (&args, NULL, NULL, take_size) != 0
      || fuse_parse_cmdline (&args, &opts) != 0)
    goto out;
  if (opts.show_help || size_arg == NULL || opts.mountpoint == NULL) {
    fprintf (stderr, "usage: %s [-s] [-d] [-o OPT] SIZE MOUNTPOINT\n", argv[0]);
    rc = !opts.show_help;
    goto out;
  }
  errno = 0;
  disk_size = strtoll (size_arg, &end, 10);
  if (errno || end == size_arg || *end || disk_size <= 0) {
    fprintf (stderr, "nullfuse: bad SIZE %s (bytes)\n", size_arg);
    goto out;
  }
  zeros = mmap (NULL, MAX_IO, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (zeros == MAP_FAILED) {
    perror ("nullfuse: mmap");
    goto out;
  }
  se = fuse_session_new (&args, &null_ops, sizeof null_ops, NULL);
  if (se == NULL)
    goto out;
  /* SIGTERM, SIGINT and SIGHUP end the loop; we then unmount. */
  if (fuse_set_signal_handlers (se) != 0)
    goto out_destroy;
  if (fuse_session_mount (se, opts.mountpoint) != 0)
    goto out_signals;
  /* The kernel keeps the smaller of the bdi's read-ahead (128 KiB) and
   * max_readahead: raise the bdi's, as iserfs does (fuse/readahead.c). */
  readahead_set (opts.mountpoint, READAHEAD, true);
  if (opts.singlethread)
    rc = fuse_session_loop (se) < 0;
  else {
    struct fuse_loop_config *cfg = fuse_loop_cfg_create ();

    /* libfuse's (and iserfs's) default of 10 workers unless -o max_threads
     * said otherwise; idle workers are kept, as iserfs keeps them. */
    fuse_loop_cfg_set_max_threads (cfg, opts.max_threads != UINT_MAX
                                   ? opts.max_threads : 10);
    rc = fuse_session_loop_mt (se, cfg) < 0;
    fuse_loop_cfg_destroy (cfg);
  }
  fuse_session_unmount (se);
 out_signals:
  fuse_remove_signal_handlers (se);
 out_destroy:
  fuse_session_destroy (se);
 out:
  free (opts.mountpoint);
  fuse_opt_free_args (&args);
  return rc;
}
