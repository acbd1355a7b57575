/* One session's layers put together: the command layer (command.h) on the
 * session, the engine (io.h) on that path, and the session's LUNs pointed
 * at the engine.  Main thread, after the LUNs were probed. */
#ifndef ISERFS_STACK_H
#define ISERFS_STACK_H

#include "mpath.h"

struct session;

/* Build the layers above s and start its thread.  With other paths added
 * to s (session_add_path), the engine sits on a multipath path over a
 * command layer for each (mpath.h), choosing by policy; with none, right
 * on s's command layer.  Returns 0 or -errno.  Whatever it made is freed
 * by session_close(). */
int stack_start (struct session *s, enum path_policy policy);

#endif
