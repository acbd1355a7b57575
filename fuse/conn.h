/* What iserfs asks of the kernel's FUSE connection at INIT. */
#ifndef ISERFS_CONN_H
#define ISERFS_CONN_H

#include "options.h"            /* FUSE_USE_VERSION */

#include <fuse_lowlevel.h>

/* The largest write the kernel sends us, and so its max_pages. */
#define CONN_MAX_WRITE (1024 * 1024)

/* Fill in conn's wants and limits; readahead 0 keeps the kernel's.  The
 * benchmark's null file system (tests/bench/nullfuse.c) calls this too,
 * so the FUSE floor it measures is taken with iserfs's settings. */
void conn_tune (struct fuse_conn_info *conn, unsigned readahead);

#endif
