/* The URL of a mount, "iscsi://[USER@]HOST[:PORT][/TARGET[/LUN]]" or
 * "iser://...", checked and taken apart with libiscsi's own parser, so that
 * iserfs reads a URL exactly as libiscsi's tools do.  The front end reads
 * the parts from here and needs none of libiscsi's headers.
 *
 * Work done before the mount: any thread, owns nothing after it returns.
 * libiscsi's parser also fills in LIBISCSI_CHAP_* from the environment;
 * take those out first if they must not end up in a URL. */
#ifndef ISERFS_URL_H
#define ISERFS_URL_H

#include <stdbool.h>
#include <stddef.h>

struct url {
  char portal[256];             /* host[:port] or [v6][:port] */
  char target[256];             /* target IQN; empty: a portal's every target */
  char user[256];               /* CHAP user; empty: none given */
  int lun;                      /* -1: every LUN of the target */
  bool iser;                    /* iser:// rather than iscsi:// */
};

/* Parse and check u.  A target URL without a LUN means every LUN; a URL
 * carrying a password is refused (it would show in ps).  Returns 0, or
 * -EINVAL (-ENOMEM) with one line for the user in err, which names u and
 * what is wrong with it. */
int url_parse (const char *u, struct url *out, char *err, size_t errlen);

#endif
