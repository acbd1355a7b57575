/* softrdma: completion queues and completion channels.
 *
 * A CQ is a ring of ibv_wc sized as rxe sizes it (a power of two minus one
 * slot, at least cqe).  A completion that finds it full is lost, the CQ
 * raises IBV_EVENT_CQ_ERR and the QP that produced it goes to the error
 * state.  Arming it (req_notify_cq) queues one notification on its channel
 * at the next completion added after arming -- not for completions already
 * queued: an application that polls, then arms, and does not poll again
 * can sleep with completions waiting, as on rxe.  A CQ still used by a QP
 * cannot be destroyed (EBUSY).
 * SOFTRDMA_LENIENT: the ring grows instead, and arming a non-empty CQ
 * notifies at once. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "softrdma.h"

struct sr_channel {
    struct ibv_comp_channel ch;
    struct sr_evq q;
};

struct sr_cq {
    struct ibv_cq cq;
    struct ibv_wc *ring;
    int cap, head, count;
    int armed;
    int refs;                   /* QPs using it */
};

struct sr_notify {
    struct sr_node node;
    struct sr_cq *cq;
};

SR_EXPORT struct ibv_comp_channel *
ibv_create_comp_channel(struct ibv_context *ctx)
{
    struct sr_channel *c = calloc(1, sizeof *c);

    if (!c)
        return NULL;
    if (sr_evq_init(&c->q) < 0) {
        free(c);
        return NULL;
    }
    c->ch.context = ctx;
    c->ch.fd = c->q.fd;
    return &c->ch;
}

SR_EXPORT int
ibv_destroy_comp_channel(struct ibv_comp_channel *ch)
{
    struct sr_channel *c = (struct sr_channel *)ch;

    sr_lock();
    if (c->q.head) {            /* a CQ event not yet read */
        sr_unlock();
        return EBUSY;
    }
    sr_unlock();
    sr_evq_destroy(&c->q);
    free(c);
    return 0;
}

SR_EXPORT struct ibv_cq *
ibv_create_cq(struct ibv_context *ctx, int cqe, void *cq_context,
              struct ibv_comp_channel *channel, int comp_vector)
{
    struct sr_cq *c;

    (void)comp_vector;
    if (cqe < 1) {
        errno = EINVAL;
        return NULL;
    }
    if (sr_strict() && cqe > 4194303) {
        errno = EINVAL;
        return NULL;
    }
    c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->cap = 64;
    if (sr_strict()) {
        int slots = 1;

        while (slots < cqe + 1)
            slots <<= 1;
        cqe = slots - 1;
        c->cap = cqe;
    }
    c->ring = calloc(c->cap, sizeof *c->ring);
    if (!c->ring) {
        free(c);
        return NULL;
    }
    c->cq.context = ctx;
    c->cq.channel = channel;
    c->cq.cq_context = cq_context;
    c->cq.cqe = cqe;
    pthread_mutex_init(&c->cq.mutex, NULL);
    pthread_cond_init(&c->cq.cond, NULL);
    return &c->cq;
}

static int
sr_notify_is_for(struct sr_node *n, void *cq)
{
    return ((struct sr_notify *)n)->cq == cq;
}

static void
sr_notify_free(struct sr_node *n)
{
    free(n);
}

SR_EXPORT int
ibv_destroy_cq(struct ibv_cq *cq)
{
    struct sr_cq *c = (struct sr_cq *)cq;

    sr_lock();
    if (c->refs > 0 && sr_strict()) {
        sr_unlock();
        return EBUSY;
    }
    if (cq->channel)
        sr_evq_remove_if(&((struct sr_channel *)cq->channel)->q,
                         sr_notify_is_for, c, sr_notify_free);
    sr_unlock();
    free(c->ring);
    free(c);
    return 0;
}

static void
sr_cq_notify(struct sr_cq *c)
{
    struct sr_notify *n;

    c->armed = 0;
    if (!c->cq.channel)
        return;
    n = calloc(1, sizeof *n);
    if (!n)
        abort();
    n->cq = c;
    sr_evq_push(&((struct sr_channel *)c->cq.channel)->q, &n->node);
}

void
sr_cq_ref(struct ibv_cq *cq, int delta)
{
    ((struct sr_cq *)cq)->refs += delta;
}

int
sr_cq_push(struct ibv_cq *cq, const struct ibv_wc *wc)
{
    struct sr_cq *c = (struct sr_cq *)cq;

    if (c->count == c->cap && sr_strict()) {
        sr_async_event(IBV_EVENT_CQ_ERR, cq, NULL);
        sr_stat_add(SR_CQ_OVERFLOWS, 1);
        return -1;
    }
    if (c->count == c->cap) {
        /* Grow rather than overflow: the peers size CQs generously and a
         * lost completion would be far harder to debug than memory use. */
        struct ibv_wc *r = calloc(c->cap * 2, sizeof *r);
        int i;

        if (!r)
            abort();
        for (i = 0; i < c->count; i++)
            r[i] = c->ring[(c->head + i) % c->cap];
        free(c->ring);
        c->ring = r;
        c->head = 0;
        c->cap *= 2;
    }
    c->ring[(c->head + c->count) % c->cap] = *wc;
    c->count++;
    if (wc->status == IBV_WC_WR_FLUSH_ERR)
        sr_stat_add(SR_FLUSH_COMPLETIONS, 1);
    else if (wc->status != IBV_WC_SUCCESS)
        sr_stat_add(SR_ERROR_COMPLETIONS, 1);
    if (c->armed)
        sr_cq_notify(c);
    return 0;
}

int
sr_poll_cq(struct ibv_cq *cq, int n, struct ibv_wc *wc)
{
    struct sr_cq *c = (struct sr_cq *)cq;
    int got = 0;

    sr_lock();
    while (got < n && c->count > 0) {
        wc[got++] = c->ring[c->head];
        c->head = (c->head + 1) % c->cap;
        c->count--;
    }
    sr_unlock();
    return got;
}

int
sr_req_notify_cq(struct ibv_cq *cq, int solicited_only)
{
    struct sr_cq *c = (struct sr_cq *)cq;

    (void)solicited_only;
    sr_lock();
    if (c->count > 0 && !sr_strict())
        sr_cq_notify(c);
    else
        c->armed = 1;
    sr_unlock();
    return 0;
}

SR_EXPORT int
ibv_get_cq_event(struct ibv_comp_channel *ch, struct ibv_cq **cq, void **cq_context)
{
    struct sr_channel *c = (struct sr_channel *)ch;
    struct sr_notify *n = (struct sr_notify *)sr_evq_pop(&c->q);

    if (!n)
        return -1;
    *cq = &n->cq->cq;
    *cq_context = n->cq->cq.cq_context;
    free(n);
    return 0;
}

SR_EXPORT void
ibv_ack_cq_events(struct ibv_cq *cq, unsigned int nevents)
{
    (void)cq;
    (void)nevents;
}
