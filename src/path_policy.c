/* The names of the path policies (mpath.h), for the option parser and
 * the log. */
#include <config.h>

#include <errno.h>
#include <string.h>

#include "mpath.h"

static const char *const policy_names[] = {
  [POLICY_QUEUE_LENGTH] = "queue-length",
  [POLICY_FAILOVER] = "failover",
  [POLICY_ROUND_ROBIN] = "round-robin",
};

int
mpath_parse_policy (const char *s, enum path_policy *p)
{
  for (unsigned i = 0; i < sizeof policy_names / sizeof policy_names[0]; i++)
    if (strcmp (s, policy_names[i]) == 0) {
      *p = (enum path_policy) i;
      return 0;
    }
  return -EINVAL;
}

const char *
mpath_policy_name (enum path_policy p)
{
  if ((unsigned) p < sizeof policy_names / sizeof policy_names[0])
    return policy_names[p];
  return "?";
}
