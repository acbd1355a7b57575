/* What a failed login means, in words that say what to do about it.
 * Called by session_open() (any thread, before a session thread exists);
 * owns nothing. */
#ifndef ISERFS_LOGIN_ERROR_H
#define ISERFS_LOGIN_ERROR_H

#include <stddef.h>

#include "session_config.h"

/* The iSCSI login status (RFC 7143, 11.13.5: class << 8 | detail) that
 * libiscsi put at the end of its error text, "...Status: WORDS(N)";
 * -ENOENT if there is none (the connection failed, not the login). */
int login_status (const char *libiscsi_error);

/* One line for err: the failed login of cfg (a discovery login when
 * cfg->target is NULL), from libiscsi's error text. */
void login_error_explain (const struct session_config *cfg,
                          const char *libiscsi_error, char *err,
                          size_t errlen);

#endif
