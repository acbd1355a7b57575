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
#include <netdb.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "discover.h"
#include "fs.h"
#include "identity.h"
#include "iobuf.h"
#include "log.h"
#include "lunwatch.h"
#include "mountinfo.h"
#include "metrics.h"
#include "readahead.h"
#include "uring.h"
#include "options.h"
#include "portal.h"
#include "session.h"
#include "stack.h"
#include "stats_cmd.h"
#include "version.h"

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
    .fence_timeout = o->fence_timeout,
    .queue_depth = o->queue_depth,
    .poll_us = o->poll_us,
    .splice = o->splice,
  };
  return c;
}

/* What can fail below returns 0, or -errno after printing one line (or
 * after libfuse printed it); main() exits with status 1 then. */

/* Log in to one target and learn its LUNs into *out. */
static int
open_target (const struct options *o, const char *target,
             struct session **out)
{
  struct session_config c = session_config (o, target);
  char err[512];
  struct session *s = session_open (&c, err, sizeof err);
  int r;

  if (s == NULL) {
    log_error ("%s", err);
    return -EIO;                /* session_open says why only in words */
  }
  r = session_probe_luns (s, o->lun, o->max_xfer, err, sizeof err);
  if (r < 0) {
    log_error ("%s", err);
    session_close (s);
    return r;
  }
  *out = s;
  return 0;
}

/* HOST[:PORT][,TPGT] (as SendTargets answers, or as typed) into a host
 * and a port, for comparing. */
static void
split_portal (const char *p, char *host, size_t hlen, char *port, size_t plen)
{
  size_t n = strcspn (p, ",");
  const char *colon, *close = NULL;

  if (p[0] == '[' && (close = memchr (p, ']', n)) != NULL) {
    snprintf (host, hlen, "%.*s", (int) (close - p - 1), p + 1);
    colon = close[1] == ':' ? close + 1 : NULL;
  }
  else {
    colon = memchr (p, ':', n);
    snprintf (host, hlen, "%.*s", (int) (colon ? colon - p : (ptrdiff_t) n), p);
  }
  if (colon)
    snprintf (port, plen, "%.*s", (int) (p + n - colon - 1), colon + 1);
  else
    snprintf (port, plen, "3260");
}

/* Whether two portals are one: the same port, and host names that are
 * equal or resolve to the same first address.  Two sessions through one
 * portal are no second path. */
static bool
same_portal (const char *a, const char *b)
{
  char ha[256], pa[16], hb[256], pb[16];
  struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                            .ai_flags = AI_NUMERICSERV };
  struct addrinfo *ra = NULL, *rb = NULL;
  bool same;

  split_portal (a, ha, sizeof ha, pa, sizeof pa);
  split_portal (b, hb, sizeof hb, pb, sizeof pb);
  if (strcmp (pa, pb) != 0)
    return false;
  if (strcmp (ha, hb) == 0)
    return true;
  same = getaddrinfo (ha, pa, &hints, &ra) == 0
    && getaddrinfo (hb, pb, &hints, &rb) == 0
    && ra->ai_addrlen == rb->ai_addrlen
    && memcmp (ra->ai_addr, rb->ai_addr, ra->ai_addrlen) == 0;
  if (ra)
    freeaddrinfo (ra);
  if (rb)
    freeaddrinfo (rb);
  return same;
}

/* Another path to s's target through portal p ("HOST[:PORT][,TPGT]"), if
 * it is not one s already has.  A portal that cannot be logged in to now
 * is left out, with a line saying so: the mount goes on with the others. */
static void
add_path (const struct options *o, struct session *s, const char *p)
{
  struct session_config c = session_config (o, s->target);
  char portal[300], err[512];
  unsigned n = 0;
  struct session *other;

  snprintf (portal, sizeof portal, "%.*s", (int) strcspn (p, ","), p);
  for (struct session *m = s; m; m = m->next_path, n++)
    if (same_portal (m->portal, portal))
      return;
  if (n >= 16) {
    log_error ("%s: at most 16 paths; portal %s left out", s->target, portal);
    return;
  }
  c.portal = portal;
  other = session_open (&c, err, sizeof err);
  if (other == NULL) {
    log_error ("path to %s through %s left out: %s", s->target, portal, err);
    return;
  }
  if (session_probe_luns (other, o->lun, o->max_xfer, err, sizeof err) < 0) {
    log_error ("path to %s through %s left out: %s", s->target, portal, err);
    session_close (other);
    return;
  }
  session_add_path (s, other);
}

/* A path through a portal SendTargets listed, unless it names no address
 * to connect to (0.0.0.0 would reach this host, not the target's). */
static void
add_listed_path (const struct options *o, struct session *s, const char *p)
{
  char err[512];

  if (portal_check_listed (p, err, sizeof err) < 0)
    log_error ("path to %s through a listed portal left out: %s", s->target,
               err);
  else
    add_path (o, s, p);
}

/* Whether a SendTargets answer can be followed.  It names portals as the
 * target sees its own addresses; when none of them is the portal it was
 * asked through, that portal is a proxy or a NAT address, and a path to
 * the addresses listed would go around it (or nowhere). */
static bool
lists_own_portal (const struct target_info *t, const char *asked)
{
  for (unsigned j = 0; j < t->nr_portals; j++)
    if (same_portal (t->portals[j], asked))
      return true;
  return false;
}

/* Every path to s's target: the portals SendTargets named for it, t (NULL:
 * none; see lists_own_portal), and those of -o portal=. */
static void
add_paths (const struct options *o, struct session *s,
           const struct target_info *t)
{
  if (t && o->discover_portals && t->nr_portals > 0) {
    if (lists_own_portal (t, o->portal))
      for (unsigned j = 0; j < t->nr_portals; j++)
        add_listed_path (o, s, t->portals[j]);
    else
      log_error ("SendTargets through %s names %s for %s, not %s itself "
                 "(a proxy or NAT?): only portal= adds paths", o->portal,
                 t->portals[0], s->target, o->portal);
  }
  for (unsigned j = 0; j < o->nr_portals; j++)
    add_path (o, s, o->portals[j]);
}

/* The portals SendTargets lists for the URL's target, to add as paths.  A
 * discovery that fails is no failure of the mount (some targets refuse
 * it): said once, and the mount goes on with the URL's portal. */
static void
add_discovered_paths (const struct options *o, struct session *s)
{
  struct session_config c = session_config (o, NULL);
  struct target_info *t = NULL;
  char err[512];
  int n;

  if (!o->discover_portals) {
    add_paths (o, s, NULL);
    return;
  }
  n = discover_targets (&c, &t, err, sizeof err);
  if (n < 0)
    log_error ("no portal list from %s (%s): paths through it and portal= "
               "only", o->portal, err);
  for (int i = 0; i < n; i++)
    if (strcmp (t[i].name, s->target) == 0) {
      add_paths (o, s, &t[i]);
      free_targets (t, n);
      return;
    }
  free_targets (t, n);
  add_paths (o, s, NULL);
}

static int
open_sessions (const struct options *o, struct fs *fs)
{
  struct target_info *t = NULL;
  int n = 1, r = 0;

  if (o->target[0] == '\0') {
    struct session_config c = session_config (o, NULL);
    char err[512];

    n = discover_targets (&c, &t, err, sizeof err);
    if (n < 0) {
      log_error ("%s", err);
      return n;
    }
    if (n == 0) {
      log_error ("portal %s offers no targets", o->portal);
      free_targets (t, n);
      return -ENOENT;
    }
  }
  fs->sessions = calloc (n, sizeof *fs->sessions);
  if (fs->sessions == NULL) {
    log_error ("out of memory");
    free_targets (t, n);
    return -ENOMEM;
  }
  for (int i = 0; i < n && r == 0; i++) {
    struct session *s;

    r = open_target (o, t ? t[i].name : o->target, &s);
    if (r == 0) {
      if (t)
        add_paths (o, s, &t[i]);
      else
        add_discovered_paths (o, s);
      fs->sessions[fs->nr_sessions++] = s;
    }
  }
  free_targets (t, n);
  return r;
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

/* --list: what a person needs to write a URL or an fstab line.  A target
 * that cannot be opened is said so and the others are still listed; the
 * result is then the last such failure. */
static int
list_targets (const struct options *o)
{
  struct session_config c = session_config (o, NULL);
  struct target_info *t = NULL;
  char err[512];
  int n = discover_targets (&c, &t, err, sizeof err), shown = 0, rc = 0;

  if (n < 0) {
    log_error ("%s", err);
    return n;
  }
  for (int i = 0; i < n; i++) {
    struct session *s;
    int r;

    if (o->target[0] && strcmp (o->target, t[i].name) != 0)
      continue;
    shown++;
    printf ("target %s\n", t[i].name);
    for (unsigned j = 0; j < t[i].nr_portals; j++) {
      int bad = portal_check_listed (t[i].portals[j], err, sizeof err);

      printf ("  portal %s%s\n", t[i].portals[j],
              bad == -EADDRNOTAVAIL ? " (no address; a mount leaves it out)"
              : bad < 0 ? " (malformed; a mount leaves it out)" : "");
    }
    /* Behind a proxy or NAT: the portal a mount would use instead. */
    if (t[i].nr_portals > 0 && !lists_own_portal (&t[i], o->portal))
      printf ("  portal %s (the URL's; a mount uses none listed above)\n",
              o->portal);
    for (unsigned j = 0; j < o->nr_portals; j++)
      printf ("  portal %s (portal=)\n", o->portals[j]);
    r = open_target (o, t[i].name, &s);
    if (r < 0) {
      rc = r;
      continue;
    }
    for (unsigned j = 0; j < s->nr_luns; j++) {
      struct lun *l = &s->luns[j];
      char id[IDENTITY_NAME_MAX];
      /* Under ALUA, its state through the portal logged in to. */
      bool alua = l->alua.tpgs && l->alua.state >= 0;

      printf ("  lun%d size=%" PRIu64 " block=%u %s%s%s id=%s\n", l->lun,
              l->size, l->block_size, l->read_only ? "ro" : "rw",
              alua ? " alua=" : "",
              alua ? alua_state_name (l->alua.state) : "",
              identity_name (&l->id, id, sizeof id));
    }
    session_close (s);
  }
  if (o->target[0] && shown == 0) {
    log_error ("target %s not found at portal %s: 'iserfs --list %s://%s' "
               "shows the targets it offers", o->target, o->portal,
               o->iser ? "iser" : "iscsi", o->portal);
    rc = -ENOENT;
  }
  free_targets (t, n);
  return rc;
}

static int
check_mountpoint (const char *mnt)
{
  struct stat st;
  int r;

  if (mnt == NULL) {
    log_error ("no mountpoint given (try --help)");
    return -EINVAL;
  }
  if (stat (mnt, &st) < 0 && errno == ENOTCONN) {
    /* A FUSE mount whose daemon died: stat says only "Transport endpoint
     * is not connected". */
    log_error ("mountpoint %s is a FUSE mount whose daemon is gone: "
               "umount %s (or fusermount3 -uz %s) first", mnt, mnt, mnt);
    return -ENOTCONN;
  }
  if (stat (mnt, &st) < 0) {
    r = -errno;
    log_error ("mountpoint %s: %s", mnt, strerror (-r));
    return r;
  }
  if (!S_ISDIR (st.st_mode)) {
    log_error ("mountpoint %s is not a directory", mnt);
    return -ENOTDIR;
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
    return -EBUSY;
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
  return -EPERM;
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

/* Over iSER a READ's data arrives by RDMA in registered pool memory and
 * is written to /dev/fuse from there; a ring entry's payload is not
 * registered, so it would cost a copy more: fuse_ring=auto leaves iSER
 * mounts to /dev/fuse. */
static bool
any_iser (const struct fs *fs)
{
  for (unsigned i = 0; i < fs->nr_sessions; i++)
    if (fs->sessions[i]->iser)
      return true;
  return false;
}

/* How many threads read /dev/fuse: one with -s, else max_threads, whose
 * unset value (UINT_MAX) means libfuse's default. */
static unsigned
loop_max_threads (const struct fuse_cmdline_opts *cmd)
{
  if (cmd->singlethread)
    return 1;
  return cmd->max_threads == UINT_MAX ? 10 : cmd->max_threads;
}

/* Block the stop signals (SIGTERM, SIGINT, SIGHUP) in the calling thread,
 * the old mask in *old: only the main thread, which waits in libfuse's
 * loop, takes them (libfuse's own workers block them too), so that the
 * signal wakes the loop. */
static void
block_stop_signals (sigset_t *old)
{
  sigset_t stop;

  sigemptyset (&stop);
  sigaddset (&stop, SIGTERM);
  sigaddset (&stop, SIGINT);
  sigaddset (&stop, SIGHUP);
  pthread_sigmask (SIG_BLOCK, &stop, old);
}

/* Session threads never take the stop signals (nor the threads they
 * create, which inherit the mask). */
static int
start_sessions (struct fs *fs)
{
  sigset_t old;
  int rc = 0;

  block_stop_signals (&old);
  for (unsigned i = 0; i < fs->nr_sessions && rc == 0; i++)
    if ((rc = stack_start (fs->sessions[i], fs->path_policy)) < 0)
      log_error ("cannot start a session thread");
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  return rc;
}

/* Requests that do not come by the ring are read from /dev/fuse by
 * libfuse's multi-threaded loop (with one thread for -s): a thread is
 * added when none is idle, so that an fsync waiting for the target does
 * not hold up the others.  Each thread reads into a buffer of its own, and
 * a WRITE's data is copied from there into a pool buffer (fuse/ops.c,
 * request_for).  Reading requests straight into pool buffers instead, so
 * that a WRITE went out from where the kernel put it, was measured with
 * bench/ab.sh: no difference in throughput or latency beyond the spread,
 * less CPU for 1 MiB writes and more for 4 KiB ones, and it had to know
 * libfuse's private read size.  Returns 0, -errno, or the number of the
 * signal that stopped it. */
static int
run_loop (struct fuse_session *se, const struct fuse_cmdline_opts *cmd)
{
  struct fuse_loop_config *cfg = fuse_loop_cfg_create ();
  int e;

  if (cfg == NULL)
    return -ENOMEM;
  fuse_loop_cfg_set_clone_fd (cfg, cmd->clone_fd);
  fuse_loop_cfg_set_max_threads (cfg, loop_max_threads (cmd));
  /* Unset, it comes back as UINT_MAX: keep libfuse's default then. */
  if (cmd->max_idle_threads != UINT_MAX)
    fuse_loop_cfg_set_idle_threads (cfg, cmd->max_idle_threads);
  e = fuse_session_loop_mt (se, cfg);
  fuse_loop_cfg_destroy (cfg);
  /* The kernel shut the connection down while a thread was taking a
   * request (an unmount, lazy or not, racing with the read, or an abort in
   * /sys/fs/fuse/connections): the end, as ENODEV is, not a failure.
   * libfuse has printed "reading device" for it already. */
  if (e == -ECONNABORTED)
    e = 0;
  return e;
}

static int
serve (struct fuse_session *se, struct fuse_cmdline_opts *cmd, struct fs *fs,
       const struct options *o)
{
  int rc = -EIO;                /* libfuse's setup says why only in words */

  if (fuse_set_signal_handlers (se) != 0)
    goto out_destroy;
  if (fuse_session_mount (se, cmd->mountpoint) != 0)
    goto out_signals;
  /* fuse_parse_cmdline() made the mountpoint absolute (realpath). */
  if (fs->readahead)
    readahead_set (cmd->mountpoint, fs->readahead, fs->readahead_explicit);
  if (fs->ring && fs->nr_sessions) {
    int e = uring_setup (se, fs->sessions[0], fs->ring_depth,
                         loop_max_threads (cmd));

    if (e < 0 && fs->ring_required) {
      log_error ("fuse_ring=on: cannot set up an io_uring: %s", strerror (-e));
      rc = e;
      goto out_stop;
    }
    if (e < 0)
      log_info ("fuse_ring: no io_uring (%s); requests come through "
                "/dev/fuse", strerror (-e));
  }
  if ((rc = start_sessions (fs)) < 0)
    goto out_stop;
  {
    sigset_t old;

    fs->se = se;
    block_stop_signals (&old);
    rc = lunwatch_start (fs);
    pthread_sigmask (SIG_SETMASK, &old, NULL);
    if (rc < 0) {
      log_error ("cannot start the LUN scanner: %s", strerror (-rc));
      goto out_stop;
    }
  }
  if (o->metrics_dir) {
    sigset_t old;

    /* Its writer thread must not take a stop signal either: the loop's
     * main thread would go on waiting until the next request. */
    block_stop_signals (&old);
    rc = metrics_start (o->metrics_dir, cmd->mountpoint, o->url,
                        o->metrics_interval);
    pthread_sigmask (SIG_SETMASK, &old, NULL);
    if (rc < 0) {
      log_error ("metrics=%s: cannot start writing: %s", o->metrics_dir,
                 strerror (-rc));
      goto out_stop;
    }
  }
  daemon_ready ();
  /* The loop returns 0, -errno, or the number of the signal (SIGTERM,
   * SIGINT, SIGHUP) that asked us to stop: that is a clean exit too, as
   * systemd and a shell script expect of a daemon told to stop. */
  rc = run_loop (se, cmd);
  if (rc > 0)
    rc = 0;
 out_stop:
  /* Before the sessions stop: it may be waiting for one of them. */
  lunwatch_stop ();
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
  version_print_libiscsi (stdout);
#ifdef HAVE_LIBURING
  printf ("FUSE over io_uring: built in (-o fuse_ring; now %s)\n",
          uring_supported () ? "available" : uring_why_not ());
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
  int rc = 1, e;

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
    rc = stats_command (o.url) < 0;
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
    rc = list_targets (&o) < 0;
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
  if ((e = iobuf_use_mempool ()) < 0) {
    log_error ("cannot create the buffer pool: %s", strerror (-e));
    goto out;
  }
  if (open_sessions (&o, &fs) < 0)
    goto out;
  fs.ro = o.ro;
  fs.only_lun = o.lun;
  fs.max_xfer = o.max_xfer;
  fs.path_policy = o.path_policy;
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
  rc = serve (se, &cmd, &fs, &o) < 0;

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
