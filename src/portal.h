#ifndef ISERFS_PORTAL_H
#define ISERFS_PORTAL_H

#include <stddef.h>

/* Work done before the mount, on any thread; both say what is wrong in one
 * line in err (errlen bytes). */

/* Check that a TCP connection to the portal can be made within timeout
 * seconds.  Returns 0, or -errno (the connection's, e.g. -ECONNREFUSED or
 * -ETIMEDOUT; -EHOSTUNREACH: the name does not resolve; -EINVAL) with a
 * one-line reason in err. */
int portal_probe (const char *portal, unsigned timeout, char *err, size_t errlen);

/* Check the form of "host[:port]" / "[v6][:port]": 0, or -EINVAL and a
 * reason. */
int portal_check (const char *portal, char *err, size_t errlen);

/* Check a portal as a SendTargets answer lists it, "host[:port][,tag]":
 * 0 if a path can be made through it; -EADDRNOTAVAIL for an unspecified
 * address (0.0.0.0, [::]: where a target listens, which a connection
 * would take for this host), -EINVAL for a malformed one; with a reason. */
int portal_check_listed (const char *portal, char *err, size_t errlen);

#endif
