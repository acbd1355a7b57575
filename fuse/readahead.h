/* The kernel's read-ahead for the mount (its bdi's read_ahead_kb). */
#ifndef ISERFS_READAHEAD_H
#define ISERFS_READAHEAD_H

#include <stdbool.h>

/* After the mount at abs_mountpoint (an absolute path without symlinks),
 * before FUSE's INIT is answered: set the mount's read-ahead to bytes
 * (rounded down to KiB).  Failing is not fatal: it is
 * logged (as an error if asked for explicitly, else at debug level). */
void readahead_set (const char *abs_mountpoint, unsigned bytes, bool explicit);

#endif
