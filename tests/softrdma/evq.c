/* softrdma: a queue of items behind a pollable file descriptor.
 *
 * Completion channels, CM event channels and the async event fd are all an
 * eventfd in semaphore mode whose counter equals the number of queued items.
 * A real fd keeps the application's poll/epoll, dup2 and O_NONBLOCK working,
 * and an eventfd never reports POLLHUP.  Waiting happens in poll() without
 * the lock so that pthread_cancel (libiscsi 1.19's CM thread) is safe. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "softrdma.h"

int
sr_evq_init(struct sr_evq *q)
{
    q->head = q->tail = NULL;
    q->fd = eventfd(0, EFD_CLOEXEC | EFD_SEMAPHORE);
    return q->fd < 0 ? -1 : 0;
}

void
sr_evq_destroy(struct sr_evq *q)
{
    if (q->fd >= 0)
        close(q->fd);
    q->fd = -1;
}

void
sr_evq_push(struct sr_evq *q, struct sr_node *n)
{
    uint64_t one = 1;

    n->next = NULL;
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
    if (write(q->fd, &one, sizeof one) != sizeof one)
        abort();
}

/* Take one unit off the counter; it is known to be positive. */
static void
sr_evq_take(struct sr_evq *q)
{
    uint64_t v;

    if (read(q->fd, &v, sizeof v) != sizeof v)
        abort();
}

static struct sr_node *
sr_evq_unlink_head(struct sr_evq *q)
{
    struct sr_node *n = q->head;

    q->head = n->next;
    if (!q->head)
        q->tail = NULL;
    sr_evq_take(q);
    return n;
}

struct sr_node *
sr_evq_pop(struct sr_evq *q)
{
    for (;;) {
        struct pollfd p = { .fd = q->fd, .events = POLLIN };
        int fl, cs;

        /* Never be cancelled while holding the lock: only in poll(). */
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cs);
        sr_lock();
        if (q->head) {
            struct sr_node *n = sr_evq_unlink_head(q);
            sr_unlock();
            pthread_setcancelstate(cs, NULL);
            return n;
        }
        fl = fcntl(q->fd, F_GETFL);
        sr_unlock();
        pthread_setcancelstate(cs, NULL);
        if (fl < 0)
            return NULL;
        if (fl & O_NONBLOCK) {
            errno = EAGAIN;
            return NULL;
        }
        if (poll(&p, 1, -1) < 0 && errno != EINTR)
            return NULL;
    }
}

void
sr_evq_remove_if(struct sr_evq *q, int (*match)(struct sr_node *, void *),
                 void *arg, void (*drop)(struct sr_node *))
{
    struct sr_node **pp = &q->head, *n;

    q->tail = NULL;
    while ((n = *pp) != NULL) {
        if (match(n, arg)) {
            *pp = n->next;
            sr_evq_take(q);
            drop(n);
        } else {
            q->tail = n;
            pp = &n->next;
        }
    }
}
