/* A target answers a refused login with a status code; libiscsi passes on
 * its name, "Target not found(515)", which does not say what to do.  The
 * common refusals get a line naming the way out: --list for a wrong target
 * name, credentials= for a target that wants CHAP, the ACL or
 * initiator_name= for an initiator it does not accept. */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "login_error.h"

enum {
  LOGIN_AUTH_FAILURE = 0x0201,
  LOGIN_FORBIDDEN = 0x0202,
  LOGIN_NOT_FOUND = 0x0203,
  LOGIN_TARGET_REMOVED = 0x0204,
};

int
login_status (const char *e)
{
  const char *status = e ? strstr (e, "Status: ") : NULL;
  const char *open;
  char *end;
  long n;

  if (status == NULL || (open = strrchr (status, '(')) == NULL)
    return -ENOENT;
  n = strtol (open + 1, &end, 10);
  if (end == open + 1 || *end != ')' || n < 0 || n > 0xffff)
    return -ENOENT;
  return (int) n;
}

void
login_error_explain (const struct session_config *cfg, const char *e,
                     char *err, size_t errlen)
{
  const char *scheme = cfg->iser ? "iser" : "iscsi";
  char why[256], where[512];

  first_line (why, sizeof why, e);
  if (cfg->target)
    snprintf (where, sizeof where, "target %s at %s", cfg->target,
              cfg->portal);
  else
    snprintf (where, sizeof where, "portal %s (discovery)", cfg->portal);
  switch (login_status (e)) {
  case LOGIN_AUTH_FAILURE:
    if (cfg->password == NULL)
      snprintf (err, errlen, "%s wants CHAP authentication: give "
                "-o credentials=FILE, a file only root can read with "
                "username= and password= lines", where);
    else
      snprintf (err, errlen, "CHAP authentication as '%s' refused by %s: "
                "wrong username or password, or no such account on the "
                "target; check the credentials file (or LIBISCSI_CHAP_*)",
                cfg->user ? cfg->user : "", where);
    return;
  case LOGIN_FORBIDDEN:
    snprintf (err, errlen, "%s does not accept initiator %s: add it to the "
              "target's access list, or give -o initiator_name=IQN with a "
              "name it accepts", where, cfg->initiator_name);
    return;
  case LOGIN_NOT_FOUND:
  case LOGIN_TARGET_REMOVED:
    /* tgtd, for one, says this too to an initiator its ACL leaves out. */
    snprintf (err, errlen, "%s: no such target, or none for initiator %s; "
              "'iserfs --list %s://%s' shows the targets it offers",
              where, cfg->initiator_name, scheme, cfg->portal);
    return;
  case -ENOENT:
    /* No login status: the connection itself failed.  Over TCP
     * portal_probe() has said so already; an iSER connection is made by
     * the RDMA CM, and libiscsi's words for its failure are internal. */
    if (cfg->iser) {
      snprintf (err, errlen, "cannot connect to %s over iSER: no iSER "
                "target listening there, or no RDMA route to it (-d shows "
                "libiscsi's log)", where);
      return;
    }
    break;
  default:
    break;
  }
  if (cfg->target)
    snprintf (err, errlen, "login to %s failed: %s", where, why);
  else
    snprintf (err, errlen, "discovery login at %s failed: %s", cfg->portal,
              why);
}
