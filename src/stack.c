/* One session's layers put together; see stack.h.  The only file that
 * knows all three, so that none of them has to know the one above. */
#include <config.h>

#include <errno.h>

#include "command.h"
#include "io-internal.h"
#include "mpath.h"
#include "session.h"
#include "stack.h"

int
stack_start (struct session *s, enum path_policy policy)
{
  /* One portal: the engine right on the command layer, as ever. */
  struct path *p = s->next_path ? mpath_new (s, policy)
                                : command_path_new (s);
  struct engine *e;

  if (p == NULL)
    return -ENOMEM;
  e = io_engine_new (p);
  if (e == NULL)
    return -ENOMEM;             /* p goes with the session */
  s->engine = e;
  for (unsigned i = 0; i < s->nr_luns; i++)
    s->luns[i].engine = e;
  return session_start (s);
}
