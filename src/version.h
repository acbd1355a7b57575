/* What the core was built with, for `iserfs --version`: the front end
 * includes none of libiscsi's headers, so the core says it.  Any thread. */
#ifndef ISERFS_VERSION_H
#define ISERFS_VERSION_H

#include <stdio.h>

/* libiscsi's version, whether its RDMA allocator hook is there, and the
 * features of contrib/libiscsi's patches that this build uses, one line
 * each. */
void version_print_libiscsi (FILE *fp);

#endif
