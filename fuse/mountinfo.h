/* Reading /proc/self/mountinfo: which mounts exist, as the kernel says (not
 * stat(), which would ask a FUSE daemon, perhaps ourselves).  Any thread;
 * owns nothing between calls. */
#ifndef ISERFS_MOUNTINFO_H
#define ISERFS_MOUNTINFO_H

#include <stddef.h>

struct mountinfo_entry {
  const char *majmin;           /* "MAJ:MIN" of the mount's device */
  const char *mountpoint;       /* unescaped */
  const char *fstype;           /* "fuse.iserfs", ... */
  const char *source;           /* unescaped; the fsname of a FUSE mount */
};

/* Call fn for each mount, in mountinfo's order (oldest first); stop early
 * when it returns non-zero and return that.  0 at the end, -errno if the
 * file cannot be read. */
int mountinfo_each (int (*fn) (const struct mountinfo_entry *e, void *opaque),
                    void *opaque);

#endif
