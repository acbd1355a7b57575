/* iserfs: mount an iSCSI/iSER target as a directory of LUN files.
 *
 * Order matters here: everything that can fail because of what the user
 * typed or what the target says (options, URL, mountpoint, credentials,
 * login, LUNs) is done before the mount, so a failure leaves nothing
 * mounted; threads start only after daemonizing, because fork keeps only
 * the calling thread. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iscsi/iscsi.h>

#include "daemon.h"
#include "discover.h"
#include "fs.h"
#include "iobuf.h"
#include "log.h"
#include "loop.h"
#include "mountinfo.h"
#include "metrics.h"
#include "readahead.h"
#include "uring.h"
#include "options.h"
#include "session.h"
#include "stack.h"
#include "stats_cmd.h"

static char *
default_initiator_name (void)
{
  char host[256] = "localhost", *name;

  gethostname (host, sizeof host - 1);
  host[strcspn (host, ".")] = '\0';
  return asprintf (&name, "iqn.2026-01.org.iserfs:%s", host) < 0 ? NULL : name;
}

static struct session_config
session_config (const struct options *o, const char *target)
{
  struct session_config c = {
    .portal = o->portal,
    .target = target,
    .iser = o->iser,
    .initiator_name = o->initiator_name,
    .user = o->user[0] ? o->user : NULL,
    .password = o->password,
    .target_user = o->target_user,
    .target_password = o->target_password,
    .header_digest = o->header_digest && strcmp (o->header_digest, "crc32c") == 0,
    .timeout = o->timeout,
    .queue_depth = o->queue_depth,
    .poll_us = o->poll_us,
    .splice = o->splice,
  };
  return c;
}

/* Log in to one target and learn its LUNs. */
static struct session *
open_target (const struct options *o, const char *target)
{
  struct session_config c = session_config (o, target);
  char err[512];
  struct session *s = session_open (&c, err, sizeof err);

  if (s == NULL) {
    log_error ("%s", err);
    return NULL;
  }
  if (session_probe_luns (s, o->lun, o->max_xfer, err, sizeof err) < 0) {
    log_error ("%s", err);
    session_close (s);
    return NULL;
  }
  return s;
}

static int
open_sessions (const struct options *o, struct fs *fs)
{
  struct target_info *t = NULL;
  int n = 1;

  if (o->target[0] == '\0') {
    struct session_config c = session_config (o, NULL);
    char err[512];

    n = discover_targets (&c, &t, err, sizeof err);
    if (n < 0) {
      log_error ("%s", err);
      return -1;
    }
    if (n == 0) {
      log_error ("portal %s offers no targets", o->portal);
      free_targets (t, n);
      return -1;
    }
  }
  fs->sessions = calloc (n, sizeof *fs->sessions);
  if (fs->sessions == NULL) {
    free_targets (t, n);
    return -1;
  }
  for (int i = 0; i < n; i++) {
    struct session *s = open_target (o, t ? t[i].name : o->target);

    if (s == NULL) {
      free_targets (t, n);
      return -1;
    }
    fs->sessions[fs->nr_sessions++] = s;
  }
  free_targets (t, n);
  return 0;
}

static void
close_sessions (struct fs *fs)
{
  for (unsigned i = 0; i < fs->nr_sessions; i++)
    session_close (fs->sessions[i]);
  free (fs->sessions);
  fs->sessions = NULL;
  fs->nr_sessions = 0;
}

/* --list: what a person needs to write a URL or an fstab line. */
static int
list_targets (const struct options *o)
{
  struct session_config c = session_config (o, NULL);
  struct target_info *t = NULL;
  char err[512];
  int n = discover_targets (&c, &t, err, sizeof err), shown = 0, rc = 0;

  if (n < 0) {
    log_error ("%s", err);
    return 1;
  }
  for (int i = 0; i < n; i++) {
    struct session *s;

    if (o->target[0] && strcmp (o->target, t[i].name) != 0)
      continue;
    shown++;
    printf ("target %s\n", t[i].name);
    for (unsigned j = 0; j < t[i].nr_portals; j++)
      printf ("  portal %s\n", t[i].portals[j]);
    s = open_target (o, t[i].name);
    if (s == NULL) {
      rc = 1;
      continue;
    }
    for (unsigned j = 0; j < s->nr_luns; j++) {
      struct lun *l = &s->luns[j];
      printf ("  lun%d size=%" PRIu64 " block=%u %s\n", l->lun, l->size,
              l->block_size, l->read_only ? "ro" : "rw");
    }
    session_close (s);
  }
  if (o->target[0] && shown == 0) {
    log_error ("target %s not found at portal %s: 'iserfs --list %s://%s' "
               "shows the targets it offers", o->target, o->portal,
               o->iser ? "iser" : "iscsi", o->portal);
    rc = 1;
  }
  free_targets (t, n);
  return rc;
}

static int
check_mountpoint (const char *mnt)
{
  struct stat st;

  if (mnt == NULL) {
    log_error ("no mountpoint given (try --help)");
    return -1;
  }
  if (stat (mnt, &st) < 0 && errno == ENOTCONN) {
    /* A FUSE mount whose daemon died: stat says only "Transport endpoint
     * is not connected". */
    log_error ("mountpoint %s is a FUSE mount whose daemon is gone: "
               "umount %s (or fusermount3 -uz %s) first", mnt, mnt, mnt);
    return -1;
  }
  if (stat (mnt, &st) < 0) {
    log_error ("mountpoint %s: %m", mnt);
    return -1;
  }
  if (!S_ISDIR (st.st_mode)) {
    log_error ("mountpoint %s is not a directory", mnt);
    return -1;
  }
  return 0;
}

/* A URL reduced to what names a mount: no user, the default port
 * written out, no trailing '/'.  "iscsi://h/t" and "iscsi://h:3260/t/"
 * are one mount. */
static void
url_key (const char *u, char *key, size_t len)
{
  const char *sep = strstr (u, "://"), *host, *slash, *at, *close, *colon;
  size_t hlen, rlen;

  if (sep == NULL) {
    snprintf (key, len, "%s", u);
    return;
  }
  host = sep + 3;
  slash = strchr (host, '/');
  hlen = slash ? (size_t) (slash - host) : strlen (host);
  at = memchr (host, '@', hlen);
  if (at) {
    hlen -= (size_t) (at + 1 - host);
    host = at + 1;
  }
  close = host[0] == '[' ? memchr (host, ']', hlen) : NULL;
  colon = close ? memchr (close, ':', hlen - (size_t) (close - host))
    : memchr (host, ':', hlen);
  rlen = slash ? strlen (slash) : 0;
  while (rlen > 0 && slash[rlen - 1] == '/')
    rlen--;
  snprintf (key, len, "%.*s://%.*s%s%.*s", (int) (sep - u), u, (int) hlen,
            host, colon ? "" : ":3260", (int) rlen, slash ? slash : "");
}

struct same_mount {
  const char *mountpoint;
  char key[2048];
};

static int
is_same_mount (const struct mountinfo_entry *e, void *opaque)
{
  struct same_mount *m = opaque;
  char key[sizeof m->key];

  if (strncmp (e->fstype, "fuse", 4) != 0 || strcmp (e->mountpoint, m->mountpoint) != 0)
    return 0;
  url_key (e->source, key, sizeof key);
  return strcmp (key, m->key) == 0;
}

/* Mounting the same URL again on its own mount point would hide the first
 * mount under a second one, with two sessions writing the same LUNs; mount(8)
 * refuses a block device mounted twice on one directory, and so do we. */
static int
check_not_mounted (const struct options *o, const char *abs_mountpoint)
{
  struct same_mount m = { .mountpoint = abs_mountpoint };

  url_key (o->url, m.key, sizeof m.key);
  if (mountinfo_each (is_same_mount, &m) > 0) {
    log_error ("%s is already mounted on %s: umount %s first, or mount it "
               "somewhere else", o->url, abs_mountpoint, abs_mountpoint);
    return -1;
  }
  return 0;
}

/* readahead= writes /sys/class/bdi/.../read_ahead_kb, which only root may.
 * Asked for explicitly, it is refused before anything is mounted rather
 * than quietly left out of a user's mount. */
static int
check_readahead (const struct options *o)
{
  if (o->readahead_s == NULL || o->readahead == 0 || geteuid () == 0)
    return 0;
  log_error ("readahead=%s needs root (it raises the kernel's read-ahead in "
             "/sys/class/bdi): mount as root, or leave readahead= out to keep "
             "the kernel's 128 KiB", o->readahead_s);
  return -1;
}

/* fsname shows in mount(8) and df(1): the URL says what is mounted.  A comma
 * would end the option, so it is escaped as libfuse's parser expects. */
static void
add_names (struct fuse_args *args, const struct options *o)
{
  char *opt = malloc (strlen (o->url) * 2 + 16), *p;

  if (!o->has_subtype)
    fuse_opt_add_arg (args, "-osubtype=iserfs");
  if (o->has_fsname || opt == NULL) {
    free (opt);
    return;
  }
  p = opt + sprintf (opt, "-ofsname=");
  for (const char *u = o->url; *u; u++) {
    if (*u == ',' || *u == '\\')
      *p++ = '\\';
    *p++ = *u;
  }
  *p = '\0';
  fuse_opt_add_arg (args, opt);
  free (opt);
}

/* Over iSER, fuse/loop.c receives WRITE data into registered pool memory
 * and READ replies go out from it; a ring entry's payload is neither, so
 * fuse_ring=auto leaves iSER mounts to /dev/fuse. */
static bool
any_iser (const struct fs *fs)
{
  for (unsigned i = 0; i < fs->nr_sessions; i++)
    if (fs->sessions[i]->iser)
      return true;
  return false;
}

/* libfuse's default, which its loop_mt applies when none was given. */
static unsigned
loop_max_threads (const struct fuse_cmdline_opts *cmd)
{
  return cmd->max_threads == UINT_MAX ? 10 : cmd->max_threads;
}

/* Session threads never take the stop signals: the thread that waits for
 * them is the main one (see loop.c). */
static int
start_sessions (struct fs *fs)
{
  sigset_t old;
  int rc = 0;

  loop_block_stop_signals (&old);
  for (unsigned i = 0; i < fs->nr_sessions && rc == 0; i++)
    if (stack_start (fs->sessions[i]) < 0) {
      log_error ("cannot start a session thread");
      rc = -1;
    }
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  return rc;
}

static int
serve (struct fuse_session *se, struct fuse_cmdline_opts *cmd, struct fs *fs,
       const struct options *o)
{
  int rc = 1;

  if (fuse_set_signal_handlers (se) != 0)
    goto out_destroy;
  if (fuse_session_mount (se, cmd->mountpoint) != 0)
    goto out_signals;
  /* fuse_parse_cmdline() made the mountpoint absolute (realpath). */
  if (fs->readahead)
    readahead_set (cmd->mountpoint, fs->readahead, fs->readahead_explicit);
  if (fs->ring && fs->nr_sessions) {
    int e = uring_setup (se, fs->sessions[0], fs->ring_depth,
                         cmd->singlethread ? 1 : loop_max_threads (cmd));

    if (e < 0 && fs->ring_required) {
      log_error ("fuse_ring=on: cannot set up an io_uring: %s", strerror (-e));
      goto out_stop;
    }
    if (e < 0)
      log_info ("fuse_ring: no io_uring (%s); requests come through "
                "/dev/fuse", strerror (-e));
  }
  if (start_sessions (fs) < 0)
    goto out_stop;
  if (o->metrics_dir) {
    int e = metrics_start (o->metrics_dir, cmd->mountpoint, o->url,
                           o->metrics_interval);

    if (e < 0) {
      log_error ("metrics=%s: cannot start writing: %s", o->metrics_dir,
                 strerror (-e));
      goto out_stop;
    }
  }
  daemon_ready ();
  /* The loops return 0, -errno, or (libfuse's) the number of the signal
   * (SIGTERM, SIGINT, SIGHUP) that asked us to stop: that is a clean exit
   * too, as systemd and a shell script expect of a daemon told to stop.
   * Ours reads requests into pool buffers; libfuse's is kept for clone_fd
   * and for a libfuse whose buffer size we do not know. */
  if (!cmd->clone_fd && loop_supported ())
    rc = loop_run (se, cmd->singlethread ? 1 : loop_max_threads (cmd),
                   cmd->max_idle_threads == UINT_MAX
                   ? -1 : (int) cmd->max_idle_threads,
                   fs->nr_sessions ? fs->sessions[0]->alloc : NULL) < 0;
  else if (cmd->singlethread)
    rc = fuse_session_loop (se) < 0;
  else {
    struct fuse_loop_config *cfg = fuse_loop_cfg_create ();
    fuse_loop_cfg_set_clone_fd (cfg, cmd->clone_fd);
    /* Unset values come back as UINT_MAX; keep libfuse's defaults then. */
    if (cmd->max_threads != UINT_MAX)
      fuse_loop_cfg_set_max_threads (cfg, cmd->max_threads);
    if (cmd->max_idle_threads != UINT_MAX)
      fuse_loop_cfg_set_idle_threads (cfg, cmd->max_idle_threads);
    rc = fuse_session_loop_mt (se, cfg) < 0;
    fuse_loop_cfg_destroy (cfg);
  }
 out_stop:
  metrics_stop ();
  uring_quiesce ();
  /* Files still open (stopped by a signal): sync what they wrote while
   * the sessions still run. */
  fs_close_handles ();
  /* Let commands in flight finish before their replies' session goes;
   * the first session last, since it sends the other sessions' answers
   * to requests that came by the FUSE io_uring. */
  for (unsigned i = fs->nr_sessions; i-- > 0;)
    session_stop (fs->sessions[i]);
  fuse_session_unmount (se);
  uring_stop ();
 out_signals:
  fuse_remove_signal_handlers (se);
 out_destroy:
  return rc;
}

static void
print_version (void)
{
  printf ("iserfs %s\n", PACKAGE_VERSION);
  printf ("libfuse %s, FUSE %d.%d\n", fuse_pkgversion (), FUSE_MAJOR_VERSION,
          FUSE_MINOR_VERSION);
#ifdef HAVE_RDMA_ALLOCATOR
  printf ("libiscsi %s with the RDMA allocator hook: iSER data goes to the "
          "wire from the pool\n", LIBISCSI_VERSION);
#else
  printf ("libiscsi %s: stock iSER transport (pool not on the wire)\n",
          LIBISCSI_VERSION);
#endif
#ifdef HAVE_LIBURING
  printf ("FUSE over io_uring: built in (-o fuse_ring; now %s)\n",
          uring_supported () ? "available" : uring_why_not ());
#endif
#ifdef LIBISCSI_FEATURE_DATA_IN_SINK
  printf ("libiscsi's DATA-IN sink: READ data over TCP can be spliced "
          "(-o splice)\n");
#endif
#ifdef LIBISCSI_FEATURE_RECONNECT_ATTEMPT_FREED
  printf ("libiscsi frees what a failed reconnect attempt left queued\n");
#endif
}

int
main (int argc, char *argv[])
{
  struct fuse_args args = FUSE_ARGS_INIT (argc, argv);
  struct fuse_cmdline_opts cmd = { 0 };
  struct options o;
  struct fs fs = { 0 };
  struct fuse_session *se = NULL;
  int rc = 1;

  if (options_parse (&args, &o) < 0)
    goto out;
  if (o.help) {
    options_usage ();
    rc = 0;
    goto out;
  }
  if (o.version) {
    print_version ();
    rc = 0;
    goto out;
  }
  if (o.stats) {
    rc = stats_command (o.url);
    goto out;
  }
  if (o.url == NULL) {
    log_error ("no URL given (try --help)");
    goto out;
  }
  options_take_env (&o);
  if (options_parse_url (&o) < 0)
    goto out;
  if (o.initiator_name == NULL && (o.initiator_name = default_initiator_name ()) == NULL)
    goto out;
  if (!o.list && check_mountpoint (o.mountpoint) < 0)
    goto out;
  if (!o.list && o.metrics_dir && metrics_check_dir (o.metrics_dir) < 0)
    goto out;
  if (fuse_parse_cmdline (&args, &cmd) != 0)
    goto out;
  /* fuse_parse_cmdline() made the mountpoint absolute (realpath). */
  if (!o.list && (check_readahead (&o) < 0
                  || check_not_mounted (&o, cmd.mountpoint) < 0))
    goto out;
  if (options_read_credentials (&o) < 0)
    goto out;
  if (o.fuse_ring == RING_ON && !o.list && !uring_supported ()) {
    log_error ("fuse_ring=on: %s", uring_why_not ());
    goto out;
  }
  log_set_debug (cmd.debug);
  if (o.list) {
    rc = list_targets (&o);
    goto out;
  }
  if (o.allow_other)
    fuse_opt_add_arg (&args, "-odefault_permissions");
  add_names (&args, &o);
  /* Creating the FUSE session checks the FUSE options, so a typo is
   * reported before anything connects; nothing is mounted yet. */
  se = fuse_session_new (&args, &fs_ops, sizeof fs_ops, &fs);
  if (se == NULL)
    goto out;                   /* libfuse said why */
  /* From here on the work happens in the process that will serve the
   * mount; connections are made there, after the fork. */
  if (!cmd.foreground)
    daemon_fork ();
  if (iobuf_use_mempool () < 0) {
    log_error ("cannot create the buffer pool: %m");
    goto out;
  }
  if (open_sessions (&o, &fs) < 0)
    goto out;
  fs.ro = o.ro;
  fs.readahead = o.readahead;
  fs.readahead_explicit = o.readahead_s != NULL;
  fs.ring = (o.fuse_ring == RING_ON
             || (o.fuse_ring == RING_AUTO && !any_iser (&fs)))
    && uring_supported ();
  fs.ring_required = o.fuse_ring == RING_ON;
  fs.ring_depth = o.queue_depth;
  /* Tests only (fuse-ring.test): one entry per queue makes the kernel
   * reuse an entry deterministically.  It may only lower the depth. */
  if (getenv ("ISERFS_TEST_RING_DEPTH")) {
    unsigned long d = strtoul (getenv ("ISERFS_TEST_RING_DEPTH"), NULL, 10);

    if (d >= 1 && d < fs.ring_depth)
      fs.ring_depth = (unsigned) d;
  }
  behind_set_limit (o.write_behind);
  fs.uid = getuid ();
  fs.gid = getgid ();
  fs.mount_time = time (NULL);
  if (fs_build_tree (&fs, o.target[0] == '\0') < 0) {
    log_error ("out of memory");
    goto out;
  }
  rc = serve (se, &cmd, &fs, &o);

 out:
  if (se)
    fuse_session_destroy (se);
  /* Sessions first: a write still in flight at exit is answered by them,
   * and its answer touches the tree (write-behind accounting). */
  close_sessions (&fs);
  fs_free_tree (&fs);
  iobuf_shutdown ();
  free (cmd.mountpoint);
  fuse_opt_free_args (&args);
  options_free (&o);
  return rc;
}
