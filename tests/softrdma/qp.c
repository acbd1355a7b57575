/* softrdma: reliable-connected queue pairs.
 *
 * Send queue rules, chosen to match what the peers observe on hardware:
 *  - SEND and RDMA WRITE payloads are copied when posted (libiscsi reuses
 *    its login buffer as soon as ibv_post_send returns);
 *  - RDMA WRITE/READ are pipelined; each is completed by the peer's answer
 *    (ACK / READ_RESP), after the peer checked rkey, bounds and access;
 *  - a SEND is held until every earlier work request completed, then its
 *    completion is queued *before* the message leaves, so the sender always
 *    sees its SEND complete before the peer can react to the message (tgtd
 *    switches to full-feature phase on the login response's completion);
 *  - completions are generated strictly in posting order;
 *  - the first error completion moves the QP to the error state, which
 *    flushes every outstanding work request with exactly one completion.
 * Incoming SENDs wait for a posted RECV (like an infinite RNR retry). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "softrdma.h"

enum sr_wstate { SR_W_QUEUED, SR_W_SENT, SR_W_DONE };

struct sr_swr {
    struct sr_swr *next;
    uint64_t wr_id;
    enum ibv_wr_opcode op;
    int signaled;
    enum sr_wstate state;
    enum ibv_wc_status status;
    uint64_t seq;
    uint32_t rkey;
    uint64_t raddr;
    size_t len;
    unsigned char *data;        /* SEND/WRITE: copied payload */
    struct ibv_sge *sg;         /* READ: where the answer goes */
    int nsg;
};

struct sr_rwr {
    struct sr_rwr *next;
    uint64_t wr_id;
    struct ibv_sge *sg;
    int nsg;
};

struct sr_msg {
    struct sr_msg *next;
    size_t len;
    unsigned char data[];
};

struct sr_qp {
    struct ibv_qp qp;
    struct sr_conn *conn;
    struct sr_swr *sq;
    struct sr_rwr *rq;
    struct sr_msg *in;
    int error;
    uint64_t next_seq;
};

static uint32_t sr_next_qpn = 0x100;

struct ibv_qp *
sr_qp_ibv(struct sr_qp *q)
{
    return &q->qp;
}

struct sr_qp *
sr_qp_create(struct ibv_pd *pd, struct ibv_qp_init_attr *attr)
{
    struct sr_qp *q;

    if (attr->qp_type != IBV_QPT_RC || !attr->send_cq || !attr->recv_cq || attr->srq) {
        errno = EINVAL;
        return NULL;
    }
    q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->qp.context = pd->context;
    q->qp.qp_context = attr->qp_context;
    q->qp.pd = pd;
    q->qp.send_cq = attr->send_cq;
    q->qp.recv_cq = attr->recv_cq;
    q->qp.qp_type = IBV_QPT_RC;
    q->qp.state = IBV_QPS_INIT;
    pthread_mutex_init(&q->qp.mutex, NULL);
    pthread_cond_init(&q->qp.cond, NULL);
    attr->cap.max_inline_data = 0;
    sr_lock();
    q->qp.qp_num = q->qp.handle = sr_next_qpn++;
    sr_unlock();
    return q;
}

static void
sr_wc(struct sr_qp *q, struct ibv_cq *cq, uint64_t wr_id, enum ibv_wc_opcode op,
      enum ibv_wc_status st, uint32_t len)
{
    struct ibv_wc wc;

    memset(&wc, 0, sizeof wc);
    wc.wr_id = wr_id;
    wc.status = st;
    wc.opcode = op;
    wc.vendor_err = st == IBV_WC_SUCCESS ? 0 : 0x5f00 + st;
    wc.byte_len = len;
    wc.qp_num = q->qp.qp_num;
    sr_cq_push(cq, &wc);
}

static enum ibv_wc_opcode
sr_wc_opcode(enum ibv_wr_opcode op)
{
    switch (op) {
    case IBV_WR_RDMA_WRITE: return IBV_WC_RDMA_WRITE;
    case IBV_WR_RDMA_READ:  return IBV_WC_RDMA_READ;
    default:                return IBV_WC_SEND;
    }
}

static void
sr_swr_free(struct sr_swr *w)
{
    free(w->data);
    free(w->sg);
    free(w);
}

/* Enter the error state: everything outstanding completes as flushed. */
static void
sr_qp_mark_error(struct sr_qp *q)
{
    struct sr_swr *w;
    struct sr_msg *m;

    if (q->error)
        return;
    q->error = 1;
    q->qp.state = IBV_QPS_ERR;
    for (w = q->sq; w; w = w->next) {
        if (w->state != SR_W_DONE) {
            w->state = SR_W_DONE;
            w->status = IBV_WC_WR_FLUSH_ERR;
        }
    }
    while (q->rq) {
        struct sr_rwr *r = q->rq;
        q->rq = r->next;
        sr_wc(q, q->qp.recv_cq, r->wr_id, IBV_WC_RECV, IBV_WC_WR_FLUSH_ERR, 0);
        free(r->sg);
        free(r);
    }
    while ((m = q->in) != NULL) {
        q->in = m->next;
        free(m);
    }
}

/* Complete finished work requests from the head of the send queue. */
static void
sr_qp_retire(struct sr_qp *q)
{
    struct sr_swr *w;

    while ((w = q->sq) && w->state == SR_W_DONE) {
        q->sq = w->next;
        if (w->signaled || w->status != IBV_WC_SUCCESS)
            sr_wc(q, q->qp.send_cq, w->wr_id, sr_wc_opcode(w->op), w->status,
                  w->status == IBV_WC_SUCCESS ? w->len : 0);
        if (w->status != IBV_WC_SUCCESS)
            sr_qp_mark_error(q);
        sr_swr_free(w);
    }
}

static void
sr_qp_transmit(struct sr_qp *q, struct sr_swr *w)
{
    struct sr_frame f;

    memset(&f, 0, sizeof f);
    f.seq = w->seq;
    f.rkey = w->rkey;
    f.raddr = w->raddr;
    f.len = w->len;
    if (w->op == IBV_WR_SEND) {
        f.type = SR_F_SEND;
        sr_conn_send(q->conn, &f, w->data, w->len);
    } else if (w->op == IBV_WR_RDMA_WRITE) {
        f.type = SR_F_WRITE;
        sr_conn_send(q->conn, &f, w->data, w->len);
    } else {
        f.type = SR_F_READ;
        sr_conn_send(q->conn, &f, NULL, 0);
    }
}

void
sr_qp_kick(struct sr_qp *q)
{
    struct sr_swr *w;

again:
    sr_qp_retire(q);
    if (q->error || !q->conn || q->qp.state != IBV_QPS_RTS)
        return;
    for (w = q->sq; w; w = w->next) {
        if (w->state != SR_W_QUEUED)
            continue;
        if (w->op == IBV_WR_SEND) {
            if (w != q->sq)
                return;         /* wait for the earlier ones */
            /* Complete first, then let the message go. */
            q->sq = w->next;
            if (w->signaled)
                sr_wc(q, q->qp.send_cq, w->wr_id, IBV_WC_SEND, IBV_WC_SUCCESS, w->len);
            sr_qp_transmit(q, w);
            sr_swr_free(w);
            goto again;
        }
        sr_qp_transmit(q, w);
        w->state = SR_W_SENT;
    }
}

void
sr_qp_set_error(struct sr_qp *q)
{
    sr_qp_mark_error(q);
    sr_qp_retire(q);
}

void
sr_qp_attach(struct sr_qp *q, struct sr_conn *c)
{
    q->conn = c;
    c->qp = q;
}

void
sr_qp_set_rts(struct sr_qp *q)
{
    if (!q->error) {
        q->qp.state = IBV_QPS_RTS;
        sr_qp_kick(q);
    }
}

void
sr_qp_attach_none(struct sr_qp *q)
{
    q->conn = NULL;
}

void
sr_qp_destroy(struct sr_qp *q)
{
    struct sr_swr *w;
    struct sr_msg *m;

    if (q->conn)
        q->conn->qp = NULL;
    while ((w = q->sq) != NULL) {
        q->sq = w->next;
        sr_swr_free(w);
    }
    while (q->rq) {
        struct sr_rwr *r = q->rq;
        q->rq = r->next;
        free(r->sg);
        free(r);
    }
    while ((m = q->in) != NULL) {
        q->in = m->next;
        free(m);
    }
    free(q);
}

SR_EXPORT int
ibv_destroy_qp(struct ibv_qp *qp)
{
    sr_lock();
    sr_qp_destroy((struct sr_qp *)qp);
    sr_unlock();
    return 0;
}

/* Check the local scatter/gather list; returns the total length or -1. */
static int64_t
sr_sg_check(struct ibv_pd *pd, const struct ibv_sge *sg, int n, int access)
{
    int64_t total = 0;
    int i;

    for (i = 0; i < n; i++) {
        if (sg[i].length &&
            sr_mr_check(pd, sg[i].lkey, 0, sg[i].addr, sg[i].length, access) < 0)
            return -1;
        total += sg[i].length;
    }
    return total;
}

static void
sr_sq_append(struct sr_qp *q, struct sr_swr *w)
{
    struct sr_swr **pp = &q->sq;

    while (*pp)
        pp = &(*pp)->next;
    *pp = w;
}

/* Build one send work request; NULL only when out of memory. */
static struct sr_swr *
sr_swr_new(struct sr_qp *q, const struct ibv_send_wr *wr)
{
    struct sr_swr *w = calloc(1, sizeof *w);
    int access = wr->opcode == IBV_WR_RDMA_READ ? IBV_ACCESS_LOCAL_WRITE : 0;
    int64_t len;
    int i;

    if (!w)
        return NULL;
    w->wr_id = wr->wr_id;
    w->op = wr->opcode;
    w->signaled = !!(wr->send_flags & IBV_SEND_SIGNALED);
    w->state = SR_W_QUEUED;
    w->seq = ++q->next_seq;
    if (wr->opcode != IBV_WR_SEND) {
        w->rkey = wr->wr.rdma.rkey;
        w->raddr = wr->wr.rdma.remote_addr;
    }
    if (q->error) {
        w->state = SR_W_DONE;
        w->status = IBV_WC_WR_FLUSH_ERR;
        return w;
    }
    len = sr_sg_check(q->qp.pd, wr->sg_list, wr->num_sge, access);
    if (len < 0) {
        w->state = SR_W_DONE;
        w->status = IBV_WC_LOC_PROT_ERR;
        return w;
    }
    w->len = len;
    if (wr->opcode == IBV_WR_RDMA_READ) {
        w->nsg = wr->num_sge;
        w->sg = calloc(w->nsg ? w->nsg : 1, sizeof *w->sg);
        if (!w->sg)
            goto oom;
        memcpy(w->sg, wr->sg_list, w->nsg * sizeof *w->sg);
        sr_stat_add(SR_RDMA_READ, 1);
        sr_stat_add(SR_RDMA_READ_BYTES, len);
        return w;
    }
    w->data = malloc(len ? len : 1);
    if (!w->data)
        goto oom;
    for (len = 0, i = 0; i < wr->num_sge; i++) {
        memcpy(w->data + len, (void *)(uintptr_t)wr->sg_list[i].addr, wr->sg_list[i].length);
        len += wr->sg_list[i].length;
    }
    if (wr->opcode == IBV_WR_SEND) {
        sr_stat_add(SR_SEND, 1);
    } else {
        sr_stat_add(SR_RDMA_WRITE, 1);
        sr_stat_add(SR_RDMA_WRITE_BYTES, len);
    }
    return w;
oom:
    sr_swr_free(w);
    return NULL;
}

int
sr_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad)
{
    struct sr_qp *q = (struct sr_qp *)qp;
    int err = 0;

    sr_lock();
    for (; wr; wr = wr->next) {
        struct sr_swr *w;

        if ((wr->opcode != IBV_WR_SEND && wr->opcode != IBV_WR_RDMA_WRITE &&
             wr->opcode != IBV_WR_RDMA_READ) || wr->num_sge < 0 ||
            (wr->num_sge > 0 && !wr->sg_list)) {
            err = EINVAL;
            break;
        }
        if (!q->error && q->qp.state != IBV_QPS_RTS) {
            err = EINVAL;       /* not connected yet: QP not in RTS */
            break;
        }
        w = sr_swr_new(q, wr);
        if (!w) {
            err = ENOMEM;
            break;
        }
        sr_sq_append(q, w);
    }
    if (err)
        *bad = wr;
    sr_qp_kick(q);
    sr_unlock();
    return err;
}

/* Hand queued incoming messages to posted receives. */
static void
sr_qp_deliver(struct sr_qp *q)
{
    while (!q->error && q->in && q->rq) {
        struct sr_msg *m = q->in;
        struct sr_rwr *r = q->rq;
        int64_t room = sr_sg_check(q->qp.pd, r->sg, r->nsg, IBV_ACCESS_LOCAL_WRITE);
        enum ibv_wc_status st = IBV_WC_SUCCESS;

        q->in = m->next;
        q->rq = r->next;
        if (room < 0) {
            st = IBV_WC_LOC_PROT_ERR;
        } else if ((int64_t)m->len > room) {
            st = IBV_WC_LOC_LEN_ERR;
        } else {
            size_t off = 0;
            int i;

            for (i = 0; i < r->nsg && off < m->len; i++) {
                size_t n = m->len - off < r->sg[i].length ? m->len - off : r->sg[i].length;
                memcpy((void *)(uintptr_t)r->sg[i].addr, m->data + off, n);
                off += n;
            }
        }
        sr_wc(q, q->qp.recv_cq, r->wr_id, IBV_WC_RECV, st,
              st == IBV_WC_SUCCESS ? m->len : 0);
        free(r->sg);
        free(r);
        free(m);
        if (st != IBV_WC_SUCCESS)
            sr_qp_set_error(q);
    }
}

int
sr_post_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad)
{
    struct sr_qp *q = (struct sr_qp *)qp;
    int err = 0;

    sr_lock();
    for (; wr; wr = wr->next) {
        struct sr_rwr *r, **pp;

        if (wr->num_sge < 0 || (wr->num_sge > 0 && !wr->sg_list)) {
            err = EINVAL;
            break;
        }
        if (q->error) {
            sr_wc(q, q->qp.recv_cq, wr->wr_id, IBV_WC_RECV, IBV_WC_WR_FLUSH_ERR, 0);
            continue;
        }
        r = calloc(1, sizeof *r);
        if (r)
            r->sg = calloc(wr->num_sge ? wr->num_sge : 1, sizeof *r->sg);
        if (!r || !r->sg) {
            free(r);
            err = ENOMEM;
            break;
        }
        r->wr_id = wr->wr_id;
        r->nsg = wr->num_sge;
        memcpy(r->sg, wr->sg_list, r->nsg * sizeof *r->sg);
        for (pp = &q->rq; *pp; pp = &(*pp)->next)
            ;
        *pp = r;
    }
    if (err)
        *bad = wr;
    sr_qp_deliver(q);
    sr_unlock();
    return err;
}

static struct sr_swr *
sr_sq_find(struct sr_qp *q, uint64_t seq)
{
    struct sr_swr *w;

    for (w = q->sq; w; w = w->next)
        if (w->seq == seq && w->state == SR_W_SENT)
            return w;
    return NULL;
}

/* Responder side of RDMA WRITE/READ: check, then serve from our memory. */
static void
sr_qp_serve(struct sr_qp *q, const struct sr_frame *f, const unsigned char *payload)
{
    struct sr_frame r;
    int write = f->type == SR_F_WRITE;
    uint64_t len = write ? f->plen : f->len;
    const void *data = NULL;

    memset(&r, 0, sizeof r);
    r.type = write ? SR_F_ACK : SR_F_READ_RESP;
    r.seq = f->seq;
    if (q->error) {
        r.status = IBV_WC_RETRY_EXC_ERR;    /* a dead responder never answers */
    } else if (len && sr_mr_check(q->qp.pd, f->rkey, 1, f->raddr, len,
                                  write ? IBV_ACCESS_REMOTE_WRITE
                                        : IBV_ACCESS_REMOTE_READ) < 0) {
        r.status = IBV_WC_REM_ACCESS_ERR;
    } else if (write) {
        if (len)
            memcpy((void *)(uintptr_t)f->raddr, payload, len);
    } else {
        data = (const void *)(uintptr_t)f->raddr;
    }
    sr_conn_send(q->conn, &r, r.status == IBV_WC_SUCCESS ? data : NULL,
                 r.status == IBV_WC_SUCCESS && !write ? len : 0);
}

/* Requester side: the peer answered an RDMA WRITE or READ. */
static void
sr_qp_answered(struct sr_qp *q, const struct sr_frame *f, const unsigned char *payload)
{
    struct sr_swr *w = sr_sq_find(q, f->seq);

    if (!w)
        return;                 /* flushed meanwhile */
    w->state = SR_W_DONE;
    w->status = f->status;
    if (f->type == SR_F_READ_RESP && f->status == IBV_WC_SUCCESS) {
        size_t off = 0;
        int i;

        for (i = 0; i < w->nsg && off < f->plen; i++) {
            size_t n = f->plen - off < w->sg[i].length ? f->plen - off : w->sg[i].length;
            memcpy((void *)(uintptr_t)w->sg[i].addr, payload + off, n);
            off += n;
        }
    }
    sr_qp_kick(q);
}

void
sr_qp_on_frame(struct sr_qp *q, const struct sr_frame *f, const unsigned char *payload)
{
    switch (f->type) {
    case SR_F_SEND: {
        struct sr_msg *m, **pp;

        if (q->error)
            return;
        m = malloc(sizeof *m + f->plen);
        if (!m)
            abort();
        m->next = NULL;
        m->len = f->plen;
        memcpy(m->data, payload, f->plen);
        for (pp = &q->in; *pp; pp = &(*pp)->next)
            ;
        *pp = m;
        sr_qp_deliver(q);
        break;
    }
    case SR_F_WRITE:
    case SR_F_READ:
        sr_qp_serve(q, f, payload);
        break;
    case SR_F_ACK:
    case SR_F_READ_RESP:
        sr_qp_answered(q, f, payload);
        break;
    default:
        break;
    }
}
