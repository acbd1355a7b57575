/* Command-line and -o options, the URL, and the credentials. */
#ifndef ISERFS_OPTIONS_H
#define ISERFS_OPTIONS_H

#include <stdbool.h>

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include "mpath.h"

struct options {
  char *url;
  char *mountpoint;              /* as given; checked before FUSE sees it */
  bool list, help, version;
  bool stats;                   /* --stats MOUNTPOINT (given as url) */
  bool ro, allow_other;
  char *initiator_name;
  char *credentials;
  unsigned queue_depth;
  unsigned timeout;
  unsigned fence_timeout;
  char *header_digest;
  unsigned max_xfer;            /* bytes per command, 0 = what the LUN allows */
  unsigned readahead;           /* bytes, 0 = the kernel's default */
  unsigned write_behind;        /* bytes answered early, 0 = off */
  unsigned poll_us;             /* session threads' polling, 0 = off */
  bool splice;                  /* splice READ data when possible */
  char *splice_s;               /* as typed: on or off */
  enum { RING_AUTO, RING_ON, RING_OFF } fuse_ring;      /* fuse/uring.c */
  char *fuse_ring_s;            /* as typed */
  char *queue_depth_s, *timeout_s, *fence_timeout_s, *max_xfer_s, *readahead_s; /* as typed */
  char *write_behind_s, *poll_us_s;
  char *metrics_dir;            /* -o metrics=DIR, NULL: none */
  unsigned metrics_interval;    /* seconds between writes */
  char *metrics_interval_s;     /* as typed */
  char *portals[15];            /* -o portal=: more paths to the target */
  unsigned nr_portals;
  bool discover_portals;        /* paths from SendTargets (on by default) */
  char *discover_portals_s;     /* as typed: on or off */
  enum path_policy path_policy; /* src/mpath.h */
  char *path_policy_s;          /* as typed */

  /* From the URL. */
  char portal[256];
  char target[256];             /* empty: a portal mount */
  int lun;                      /* -1: every LUN */
  bool iser;
  char user[256];

  /* From credentials= or the environment; never from argv. */
  char *password;
  char *target_user, *target_password;
  char *env_user, *env_password;        /* taken from the environment */
  char *env_target_user, *env_target_password;  /* mutual CHAP, likewise */
  bool has_fsname, has_subtype;         /* given by the user */
};

/* Everything here is work done before the mount, on the main thread: a
 * failure prints its one line (log.h) and returns -errno, and the caller
 * exits with status 1. */

/* Parse argv into opts; what is left in args is for FUSE (mountpoint, -f,
 * -d, -s, -o FUSE options).  Returns 0, or -EINVAL after printing one
 * line. */
int options_parse (struct fuse_args *args, struct options *opts);

/* Parse and check opts->url (src/url.h).  Returns 0, or -EINVAL (-ENOMEM)
 * after printing one line. */
int options_parse_url (struct options *opts);

/* Take LIBISCSI_CHAP_* out of the environment (and wipe them there) before
 * libiscsi's URL parser can copy them into a URL. */
void options_take_env (struct options *opts);

/* Read credentials from credentials= or LIBISCSI_CHAP_*.  Returns 0, or
 * -errno after printing one line. */
int options_read_credentials (struct options *opts);

void options_usage (void);
void options_free (struct options *opts);

#endif
