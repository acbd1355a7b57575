/* Discovery: which targets a portal offers (SendTargets) and which LUNs a
 * target has, with their geometry and capabilities. */
#ifndef ISERFS_DISCOVER_H
#define ISERFS_DISCOVER_H

#include <stddef.h>

#include "session_config.h"

struct target_info {
  char *name;
  char **portals;               /* "host:port,tpgt" as the target says */
  unsigned nr_portals;
};

/* SendTargets discovery through `cfg` (whose target must be NULL), before
 * the mount, on the calling thread.  Returns the number of targets (>= 0)
 * in *out (the caller frees it with free_targets), or -errno (-EIO: login
 * or discovery failed; -ENOMEM) with a one-line reason in err. */
int discover_targets (const struct session_config *cfg,
                      struct target_info **out, char *err, size_t errlen);
void free_targets (struct target_info *t, int n);

#endif
