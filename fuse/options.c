/* Options, parsed with libfuse's own parser as sshfs does, so that
 * `-o a,b=c`, fstab and mount.fuse3 all work the same way. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "mpath.h"
#include "options.h"
#include "url.h"

enum { KEY_HELP, KEY_VERSION, KEY_LIST, KEY_RO, KEY_ALLOW_OTHER, KEY_RW,
       KEY_STATS, KEY_PORTAL };

#define OPT(t, p) { t, offsetof (struct options, p), 1 }

static const struct fuse_opt option_spec[] = {
  OPT ("initiator_name=%s", initiator_name),
  OPT ("credentials=%s", credentials),
  OPT ("queue_depth=%s", queue_depth_s),
  OPT ("timeout=%s", timeout_s),
  OPT ("header_digest=%s", header_digest),
  OPT ("max_xfer=%s", max_xfer_s),
  OPT ("readahead=%s", readahead_s),
  OPT ("write_behind=%s", write_behind_s),
  OPT ("poll_us=%s", poll_us_s),
  OPT ("splice=%s", splice_s),
  OPT ("fuse_ring=%s", fuse_ring_s),
  OPT ("metrics=%s", metrics_dir),
  OPT ("metrics_interval=%s", metrics_interval_s),
  OPT ("path_policy=%s", path_policy_s),
  OPT ("discover_portals=%s", discover_portals_s),
  OPT ("fence_timeout=%s", fence_timeout_s),
  FUSE_OPT_KEY ("portal=", KEY_PORTAL),
  FUSE_OPT_KEY ("ro", KEY_RO),
  FUSE_OPT_KEY ("rw", KEY_RW),
  FUSE_OPT_KEY ("allow_other", KEY_ALLOW_OTHER),
  FUSE_OPT_KEY ("-h", KEY_HELP),
  FUSE_OPT_KEY ("--help", KEY_HELP),
  FUSE_OPT_KEY ("-V", KEY_VERSION),
  FUSE_OPT_KEY ("--version", KEY_VERSION),
  FUSE_OPT_KEY ("--list", KEY_LIST),
  FUSE_OPT_KEY ("-l", KEY_LIST),
  FUSE_OPT_KEY ("--stats", KEY_STATS),
  FUSE_OPT_END
};

/* Options mount(8) and systemd put in fstab lines that mean nothing to a
 * FUSE filesystem; accepted and dropped. */
static bool
mount_only_option (const char *opt)
{
  static const char *const exact[] = {
    "_netdev", "nofail", "auto", "noauto", "user", "nouser", "users",
    "defaults", "owner", "group", "noatime", "relatime", "nodiratime",
    "atime", "strictatime", "lazytime", "nolazytime", NULL,
  };
  static const char *const prefix[] = {
    "x-systemd.", "x-", "comment=", NULL,
  };

  for (int i = 0; exact[i]; i++)
    if (strcmp (opt, exact[i]) == 0)
      return true;
  for (int i = 0; prefix[i]; i++)
    if (strncmp (opt, prefix[i], strlen (prefix[i])) == 0)
      return true;
  return false;
}

/* libfuse's fuse_opt_proc_t: 0 drops arg, 1 keeps it for FUSE's parser. */
static int
option_proc (void *data, const char *arg, int key, struct fuse_args *outargs)
{
  struct options *o = data;

  (void) outargs;
  switch (key) {
  case FUSE_OPT_KEY_NONOPT:
    if (o->url == NULL) {
      o->url = strdup (arg);
      return 0;
    }
    if (o->mountpoint == NULL)
      o->mountpoint = strdup (arg);
    return 1;                   /* also kept for fuse_parse_cmdline */
  case FUSE_OPT_KEY_OPT:
    if (strncmp (arg, "fsname=", 7) == 0)
      o->has_fsname = true;
    if (strncmp (arg, "subtype=", 8) == 0)
      o->has_subtype = true;
    return mount_only_option (arg) ? 0 : 1;
  case KEY_HELP:
    o->help = true;
    return 0;
  case KEY_VERSION:
    o->version = true;
    return 0;
  case KEY_LIST:
    o->list = true;
    return 0;
  case KEY_STATS:
    o->stats = true;
    return 0;
  case KEY_PORTAL:
    /* Repeatable: every one is another path to the target. */
    if (o->nr_portals == sizeof o->portals / sizeof o->portals[0]) {
      log_error ("%s: at most %zu portal= options", arg,
                 sizeof o->portals / sizeof o->portals[0]);
      return -1;
    }
    if (arg[7] == '\0') {
      log_error ("portal=: expected HOST[:PORT]");
      return -1;
    }
    if ((o->portals[o->nr_portals] = strdup (arg + 7)) == NULL)
      return -1;
    o->nr_portals++;
    return 0;
  case KEY_RO:
    o->ro = true;
    return 1;                   /* also makes the kernel mount read-only */
  case KEY_RW:
    o->ro = false;
    return 1;
  case KEY_ALLOW_OTHER:
    o->allow_other = true;
    return 1;
  default:
    return 1;
  }
}

/* A number option: all digits, within [min, max]; else one clear line. */
static int
parse_number (const char *name, const char *s, unsigned min, unsigned max,
              const char *unit, unsigned *out)
{
  char *end;
  unsigned long v;

  if (s == NULL)
    return 0;                   /* not given: keep the default */
  errno = 0;
  v = strtoul (s, &end, 10);
  if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno || v < min || v > max) {
    log_error ("%s=%s: expected a whole number from %u to %u%s", name, s,
               min, max, unit);
    return -EINVAL;
  }
  *out = v;
  return 0;
}

int
options_parse (struct fuse_args *args, struct options *o)
{
  memset (o, 0, sizeof *o);
  o->lun = -1;
  o->timeout = 30;
  o->fence_timeout = 5;
  o->queue_depth = 64;
  o->readahead = 4u << 20;
  o->write_behind = 32u << 20;
  o->poll_us = 50;
  o->splice = true;
  o->discover_portals = true;
  o->metrics_interval = 5;
  if (fuse_opt_parse (args, o, option_spec, option_proc) == -1)
    return -EINVAL;             /* libfuse printed why */
  if (parse_number ("queue_depth", o->queue_depth_s, 1, 1024, "",
                    &o->queue_depth) < 0
      || parse_number ("timeout", o->timeout_s, 0, 86400, " seconds",
                       &o->timeout) < 0
      || parse_number ("fence_timeout", o->fence_timeout_s, 0,
                       3600, " seconds", &o->fence_timeout) < 0
      || parse_number ("max_xfer", o->max_xfer_s, 4096, 64u << 20, " bytes",
                       &o->max_xfer) < 0
      || parse_number ("readahead", o->readahead_s, 0, 64u << 20, " bytes",
                       &o->readahead) < 0
      || parse_number ("write_behind", o->write_behind_s, 0, 1u << 30,
                       " bytes", &o->write_behind) < 0
      || parse_number ("poll_us", o->poll_us_s, 0, 10000, " microseconds",
                       &o->poll_us) < 0
      || parse_number ("metrics_interval", o->metrics_interval_s, 1, 3600,
                       " seconds", &o->metrics_interval) < 0)
    return -EINVAL;
  if (o->header_digest && strcmp (o->header_digest, "none") != 0
      && strcmp (o->header_digest, "crc32c") != 0) {
    log_error ("header_digest=%s: expected 'none' or 'crc32c'",
               o->header_digest);
    return -EINVAL;
  }
  if (o->splice_s) {
    if (strcmp (o->splice_s, "on") != 0 && strcmp (o->splice_s, "off") != 0) {
      log_error ("splice=%s: expected 'on' or 'off'", o->splice_s);
      return -EINVAL;
    }
    o->splice = strcmp (o->splice_s, "on") == 0;
  }
  if (o->discover_portals_s) {
    if (strcmp (o->discover_portals_s, "on") != 0
        && strcmp (o->discover_portals_s, "off") != 0) {
      log_error ("discover_portals=%s: expected 'on' or 'off'",
                 o->discover_portals_s);
      return -EINVAL;
    }
    o->discover_portals = strcmp (o->discover_portals_s, "on") == 0;
  }
  if (o->path_policy_s
      && mpath_parse_policy (o->path_policy_s, &o->path_policy) < 0) {
    log_error ("path_policy=%s: expected 'failover', 'round-robin' or "
               "'queue-length'", o->path_policy_s);
    return -EINVAL;
  }
  if (o->fuse_ring_s) {
    if (strcmp (o->fuse_ring_s, "auto") == 0)
      o->fuse_ring = RING_AUTO;
    else if (strcmp (o->fuse_ring_s, "on") == 0)
      o->fuse_ring = RING_ON;
    else if (strcmp (o->fuse_ring_s, "off") == 0)
      o->fuse_ring = RING_OFF;
    else {
      log_error ("fuse_ring=%s: expected 'auto', 'on' or 'off'",
                 o->fuse_ring_s);
      return -EINVAL;
    }
  }
  return 0;
}

/* The URL's parts into opts (src/url.c parses it with libiscsi's parser). */
int
options_parse_url (struct options *o)
{
  struct url url;
  char err[1024];
  int r = url_parse (o->url, &url, err, sizeof err);

  if (r < 0) {
    log_error ("%s", err);
    return r;
  }
  snprintf (o->portal, sizeof o->portal, "%s", url.portal);
  snprintf (o->target, sizeof o->target, "%s", url.target);
  snprintf (o->user, sizeof o->user, "%s", url.user);
  o->lun = url.lun;
  o->iser = url.iser;
  return 0;
}

/* Wipe a secret from the process's environment block as well, so that it
 * is not left readable in /proc/PID/environ. */
static char *
take_env_secret (const char *name)
{
  char *v = getenv (name), *copy;

  if (v == NULL)
    return NULL;
  copy = strdup (v);
  memset (v, 0, strlen (v));
  unsetenv (name);
  return copy;
}

static void
strip_newline (char *s)
{
  s[strcspn (s, "\r\n")] = '\0';
}

static int
read_credentials_file (struct options *o)
{
  FILE *fp;
  struct stat st;
  char *line = NULL;
  size_t cap = 0;
  int fd = open (o->credentials, O_RDONLY | O_CLOEXEC), r;

  if (fd < 0) {
    r = -errno;
    log_error ("cannot read credentials file %s: %s", o->credentials,
               strerror (-r));
    return r;
  }
  if (fstat (fd, &st) < 0 || !S_ISREG (st.st_mode)) {
    log_error ("credentials file %s is not a regular file", o->credentials);
    close (fd);
    return -EINVAL;
  }
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    log_error ("credentials file %s is accessible by other users (mode %04o): "
               "chmod 600 it", o->credentials, (unsigned) (st.st_mode & 07777));
    close (fd);
    return -EACCES;
  }
  fp = fdopen (fd, "r");
  if (fp == NULL) {
    r = -errno;
    log_error ("cannot read credentials file %s: %s", o->credentials,
               strerror (-r));
    close (fd);
    return r;
  }
  while (getline (&line, &cap, fp) != -1) {
    char *eq = strchr (line, '=');
    char **dst = NULL;

    strip_newline (line);
    if (line[0] == '#' || line[0] == '\0' || eq == NULL)
      continue;
    *eq = '\0';
    if (!strcmp (line, "username") || !strcmp (line, "user"))
      snprintf (o->user, sizeof o->user, "%s", eq + 1);
    else if (!strcmp (line, "password") || !strcmp (line, "pass"))
      dst = &o->password;
    else if (!strcmp (line, "target_username"))
      dst = &o->target_user;
    else if (!strcmp (line, "target_password"))
      dst = &o->target_password;
    else {
      log_error ("credentials file %s: unknown key '%s'", o->credentials, line);
      free (line);
      fclose (fp);
      return -EINVAL;
    }
    if (dst) {
      free (*dst);
      *dst = strdup (eq + 1);
    }
  }
  if (line)
    memset (line, 0, cap);
  free (line);
  fclose (fp);
  if (o->user[0] == '\0' || o->password == NULL) {
    log_error ("credentials file %s must give username= and password=",
               o->credentials);
    return -EINVAL;
  }
  return 0;
}

void
options_take_env (struct options *o)
{
  o->env_user = take_env_secret ("LIBISCSI_CHAP_USERNAME");
  o->env_password = take_env_secret ("LIBISCSI_CHAP_PASSWORD");
  /* The mutual pair too: left in the environment it would stay readable in
   * /proc/PID/environ, and libiscsi's URL parser would pick it up. */
  o->env_target_user = take_env_secret ("LIBISCSI_CHAP_TARGET_USERNAME");
  o->env_target_password = take_env_secret ("LIBISCSI_CHAP_TARGET_PASSWORD");
}

int
options_read_credentials (struct options *o)
{
  if (o->credentials)
    return read_credentials_file (o);
  if (o->env_user && o->user[0] == '\0')
    snprintf (o->user, sizeof o->user, "%s", o->env_user);
  if (o->env_password) {
    o->password = o->env_password;
    o->env_password = NULL;
  }
  if (o->env_target_user && o->env_target_password) {
    o->target_user = o->env_target_user;
    o->target_password = o->env_target_password;
    o->env_target_user = o->env_target_password = NULL;
  }
  return 0;
}

static void
free_secret (char *s)
{
  if (s)
    memset (s, 0, strlen (s));
  free (s);
}

void
options_free (struct options *o)
{
  free (o->url);
  free (o->mountpoint);
  free (o->initiator_name);
  free (o->credentials);
  free (o->header_digest);
  free (o->queue_depth_s);
  free (o->timeout_s);
  free (o->fence_timeout_s);
  free (o->max_xfer_s);
  free (o->readahead_s);
  free (o->write_behind_s);
  free (o->poll_us_s);
  free (o->splice_s);
  free (o->fuse_ring_s);
  free (o->metrics_dir);
  free (o->metrics_interval_s);
  free (o->path_policy_s);
  free (o->discover_portals_s);
  for (unsigned i = 0; i < o->nr_portals; i++)
    free (o->portals[i]);
  free_secret (o->password);
  free_secret (o->env_password);
  free (o->env_user);
  free_secret (o->env_target_password);
  free (o->env_target_user);
  free (o->target_user);
  free_secret (o->target_password);
}

void
options_usage (void)
{
  printf (
"Usage: iserfs [OPTIONS] URL MOUNTPOINT\n"
"       iserfs --list URL\n"
"       iserfs --stats MOUNTPOINT\n"
"       iserfs --help | --version\n"
"\n"
"Mount an iSCSI or iSER target as a directory holding one file per LUN.\n"
"\n"
"URL:\n"
"  iscsi://[USER@]HOST[:PORT]/TARGET-IQN[/LUN]   one target over TCP\n"
"  iser://[USER@]HOST[:PORT]/TARGET-IQN[/LUN]    one target over iSER (RDMA)\n"
"  iscsi://[USER@]HOST[:PORT]                    every target of a portal\n"
"\n"
"Options:\n"
"  -h, --help               print this help and exit\n"
"  -V, --version            print the version and exit\n"
"  -l, --list               list targets, portals and LUNs; do not mount\n"
"  --stats                  print a mount's counters as JSON and exit\n"
"  -f                       stay in the foreground\n"
"  -d                       debug output (implies -f)\n"
"  -s                       single-threaded FUSE loop\n"
"  -o ro                    mount read-only; no WRITE is ever sent\n"
"  -o rw                    mount read-write (the default)\n"
"  -o allow_other           let other users access the mount\n"
"                           (turns on default_permissions)\n"
"  -o default_permissions   let the kernel check file modes\n"
"  -o initiator_name=IQN    initiator name (default: iqn.2026-01.org.iserfs:HOSTNAME)\n"
"  -o credentials=FILE      CHAP credentials: username=, password=,\n"
"                           target_username=, target_password= lines;\n"
"                           the file must not be accessible by others\n"
"  -o queue_depth=N         SCSI commands in flight per session (default 64)\n"
"  -o timeout=SECONDS       fail a command after this long (default 30, 0 = never)\n"
"  -o header_digest=none|crc32c   iSCSI header digest (default none)\n"
"  -o max_xfer=BYTES        largest data transfer of one command\n"
"                           (default: what the LUN and transport allow)\n"
"  -o readahead=BYTES       kernel read-ahead of the mount (default 4194304;\n"
"                           0 = the kernel's 128 KiB; needs root)\n"
"  -o write_behind=BYTES    answer buffered writes before the target has them,\n"
"                           up to this many bytes; errors show at fsync/close\n"
"                           (default 33554432; 0 = off)\n"
"  -o poll_us=MICROSECONDS  while at most one command is in flight, poll for\n"
"                           this long before sleeping (default 50; 0 = never)\n"
"  -o splice=on|off         over TCP, move READ data from the socket to the\n"
"                           reader with splice(2), copied once instead of\n"
"                           twice (default on, where libiscsi allows it)\n"
"  -o fuse_ring=auto|on|off take FUSE requests from an io_uring (Linux 6.14+)\n"
"                           instead of reading /dev/fuse: auto over TCP where\n"
"                           the fuse module's enable_uring is Y (default);\n"
"                           on = also over iSER, and refuse to mount without\n"
"                           it\n"
"  -o metrics=DIR           write the counters for Prometheus (node_exporter's\n"
"                           textfile collector) to DIR/iserfs-MOUNT.prom,\n"
"                           replaced atomically, removed at unmount\n"
"  -o metrics_interval=SECONDS   how often (default 5)\n"
"  -o portal=HOST[:PORT]    another portal of the target: one more path to\n"
"                           its LUNs (repeatable; see MULTIPATH in iserfs(8))\n"
"  -o path_policy=failover|round-robin|queue-length   how commands are spread\n"
"                           over a target's paths (default queue-length)\n"
"  -o discover_portals=on|off   on (default): also a path through every\n"
"                           portal SendTargets lists for the target\n"
"  -o fence_timeout=SECONDS   writes that were out on a lost path wait\n"
"                           this long for it to log in again before they go\n"
"                           on another path (default 5, 0 = at once;\n"
"                           at most timeout/2)\n"
"  -o _netdev,nofail,auto,noauto,user,users,defaults,x-systemd.*\n"
"                           mount(8) options, accepted and ignored\n"
"\n"
"Environment:\n"
"  LIBISCSI_CHAP_USERNAME, LIBISCSI_CHAP_PASSWORD   CHAP credentials\n"
"  LIBISCSI_CHAP_TARGET_USERNAME, LIBISCSI_CHAP_TARGET_PASSWORD   mutual CHAP\n"
"  ISERFS_TEST_RING_DEPTH, ISERFS_TEST_PIPE_BYTES   for the test suite only\n"
"\n"
"FUSE options (-o): dev, nodev, suid, nosuid, exec, noexec, max_read=N,\n"
"  fsname=NAME (default: the URL), subtype=NAME (default: iserfs), ...\n"
"\n"
"The mount root answers\n"
"`getfattr --absolute-names -n user.iserfs.stats MOUNTPOINT`;\n"
"`iserfs --stats MOUNTPOINT` prints the same counters as JSON.\n"
"See iserfs(8).\n");
}
