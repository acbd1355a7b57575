/* softrdma: the process-wide lock.
 *
 * One mutex guards all emulated objects.  After fork() the child owns a
 * copy of the objects but not the progress thread, and the lock may have
 * been held by a thread that does not exist in the child: re-initialise it
 * so a daemonizing program (a FUSE daemon) can go on using the library. */
#include "config.h"

#include <pthread.h>

#include "softrdma.h"

static pthread_mutex_t big_lock = PTHREAD_MUTEX_INITIALIZER;

void
sr_lock(void)
{
    pthread_mutex_lock(&big_lock);
}

void
sr_unlock(void)
{
    pthread_mutex_unlock(&big_lock);
}

static void
sr_atfork_child(void)
{
    pthread_mutex_init(&big_lock, NULL);
    sr_progress_forget();
    sr_mr_forget_pins();
}

__attribute__((constructor)) static void
sr_lock_init(void)
{
    pthread_atfork(NULL, NULL, sr_atfork_child);
}
