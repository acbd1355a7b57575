/* What a session is opened with (session_open); filled in by the front
 * end on the main thread, read before the session thread starts.  Apart
 * from session.h so that what explains a failed login (login_error.h)
 * needs nothing else of the session. */
#ifndef ISERFS_SESSION_CONFIG_H
#define ISERFS_SESSION_CONFIG_H

#include <stdbool.h>

struct session_config {
  const char *portal;           /* host[:port] */
  const char *target;           /* target IQN; NULL for a discovery session */
  bool iser;                    /* transport: iSER instead of TCP */
  const char *initiator_name;
  const char *user, *password;                  /* CHAP, may be NULL */
  const char *target_user, *target_password;    /* mutual CHAP, may be NULL */
  bool header_digest;           /* CRC32C header digest */
  unsigned timeout;             /* seconds; 0 = none */
  unsigned fence_timeout; /* seconds a lost path's writes wait for
                                 * its fence (mpath.h, Fencing) */
  unsigned queue_depth;         /* commands in flight at most */
  unsigned poll_us;             /* poll this long before sleeping; 0 = never */
  bool splice;                  /* splice READ data when it can (TCP) */
};

#endif
