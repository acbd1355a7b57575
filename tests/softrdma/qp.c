/* softrdma: reliable-connected queue pairs.
 *
 * The rules follow the kernel's rdma_rxe (see README.md for the table):
 *  - a QP takes at most max_send_wr / max_recv_wr outstanding work requests
 *    (ENOMEM beyond), max_send_sge / max_recv_sge SGEs (EINVAL beyond) and
 *    IBV_SEND_INLINE up to max_inline_data (EINVAL beyond); the granted
 *    sizes are rounded as rxe rounds them and written back to the caller;
 *  - every request carries a sequence number; the responder answers each
 *    one (ACK, READ_RESP, RNR NAK or an error NAK) and the requester
 *    completes a work request only when its answer arrived -- a SEND
 *    completes once the peer placed it in a posted receive;
 *  - a SEND that finds no receive posted draws an RNR NAK carrying the
 *    responder's min_rnr_timer; the requester waits that long and goes
 *    back to the NAKed request (the responder drops everything after it
 *    until then), rnr_retry times (7 = for ever), then fails the request
 *    with IBV_WC_RNR_RETRY_EXC_ERR;
 *  - SEND and RDMA WRITE payloads are read from the application's memory
 *    each time they are transmitted (the first time inside ibv_post_send
 *    when nothing is queued ahead, again on every go-back), lkeys checked
 *    then; an RDMA READ's destination is checked when the answer lands;
 *  - no answer for (retry_cnt + 1) * 4.096 us * 2^timeout (a stopped peer)
 *    fails the oldest request with IBV_WC_RETRY_EXC_ERR and disconnects;
 *  - a responder-side error NAKs the request and moves the responder's QP
 *    to the error state too;
 *  - completions are generated strictly in posting order; the first error
 *    moves the QP to the error state, which flushes every outstanding work
 *    request with exactly one completion.
 * SOFTRDMA_LENIENT=1 relaxes the limits, RNR (an incoming SEND waits for a
 * receive for ever), the stall timer and the responder error, for debugging
 * a peer only; make check never sets it. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "softrdma.h"

/* rxe's device limits (RXE_MAX_QP_WR, RXE_MAX_SGE, RXE_MAX_INLINE_DATA). */
#define SR_MAX_QP_WR 16384
#define SR_MAX_SGE 32
#define SR_MAX_INLINE 400

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
    int rnr_left;               /* RNR retries left for this request */
    unsigned char *data;        /* inline SEND/WRITE: copied at post */
    struct ibv_sge *sg;         /* where the payload is read or lands */
    int nsg;
};

struct sr_rwr {
    struct sr_rwr *next;
    uint64_t wr_id;
    struct ibv_sge *sg;
    int nsg;
};

struct sr_msg {                 /* lenient mode: a SEND waiting for a RECV */
    struct sr_msg *next;
    uint64_t seq;
    size_t len;
    unsigned char data[];
};

struct sr_qp {
    struct ibv_qp qp;
    struct sr_qp *next_all;     /* every QP of the process, for the timers */
    struct sr_conn *conn;
    struct sr_swr *sq;
    int sq_count;
    struct sr_rwr *rq;
    int rq_count;
    struct sr_msg *in;
    int error;
    int qp_sig_all;
    uint64_t next_seq;
    struct ibv_qp_cap cap;      /* as granted */
    uint8_t min_rnr_timer, rnr_retry, retry_cnt, timeout;
    uint64_t nak_seq;           /* responder: dropping until this one again */
    int64_t rnr_until_us;       /* requester: no transmission before */
    uint64_t late_ack[64];      /* responder: SEND ACKs held back */
    int nlate;
    int64_t late_until_us;      /* ... sent by then at the latest */
    int64_t last_answer_us;     /* requester: the peer last answered */
    struct sr_alua *alua;       /* SOFTRDMA_ALUA only (alua.c) */
};

static uint32_t sr_next_qpn = 0x100;
static struct sr_qp *sr_qps;

int
sr_strict(void)
{
    static int strict = -1;

    if (strict < 0) {
        const char *e = getenv("SOFTRDMA_LENIENT");
        strict = !(e && *e && strcmp(e, "0") != 0);
    }
    return strict;
}

int64_t
sr_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* IBA encoding of the RNR NAK timer (min_rnr_timer), in microseconds. */
static int64_t
sr_rnr_us(unsigned t)
{
    static const int64_t us[32] = {
        655360, 10, 20, 30, 40, 60, 80, 120, 160, 240, 320, 480, 640, 960,
        1280, 1920, 2560, 3840, 5120, 7680, 10240, 15360, 20480, 30720,
        40960, 61440, 81920, 122880, 163840, 245760, 327680, 491520,
    };
    return us[t & 31];
}

/* Local ACK timeout: 4.096 us * 2^timeout (0 = no timeout). */
static int64_t
sr_ack_timeout_us(unsigned t)
{
    if (t == 0)
        return 0;
    if (t > 31)
        t = 31;
    return (4096LL << t) / 1000;
}

/* SOFTRDMA_FAIL_RDMA_EVERY=N: every Nth RDMA READ/WRITE this process
 * transmits breaks its connection right after it left (a link failure in
 * the middle of RDMA traffic), for fault tests. */
static int
sr_inject_fault(void)
{
    static long every = -1, count;

    if (every < 0) {
        const char *e = getenv("SOFTRDMA_FAIL_RDMA_EVERY");
        every = e ? strtol(e, NULL, 10) : 0;
        if (every < 0)
            every = 0;
    }
    if (!every || ++count % every)
        return 0;
    sr_stat_add(SR_INJECTED_FAULTS, 1);
    return 1;
}

struct ibv_qp *
sr_qp_ibv(struct sr_qp *q)
{
    return &q->qp;
}

/* rxe sizes queues as a power of two minus one slot. */
static uint32_t
sr_round_queue(uint32_t n)
{
    uint32_t slots = 1;

    while (slots < n + 1)
        slots <<= 1;
    return slots - 1;
}

/* Check and round the requested capabilities as rxe does. */
static int
sr_qp_caps(struct ibv_qp_cap *cap)
{
    uint32_t inline_min;

    if (!sr_strict()) {
        cap->max_inline_data = 0;
        return 0;
    }
    if (cap->max_send_wr > SR_MAX_QP_WR || cap->max_recv_wr > SR_MAX_QP_WR ||
        cap->max_send_sge > SR_MAX_SGE || cap->max_recv_sge > SR_MAX_SGE ||
        cap->max_inline_data > SR_MAX_INLINE)
        return -1;
    cap->max_send_wr = sr_round_queue(cap->max_send_wr ? cap->max_send_wr : 1);
    cap->max_recv_wr = sr_round_queue(cap->max_recv_wr ? cap->max_recv_wr : 1);
    /* A send WQE holds either the SGEs or the inline data. */
    inline_min = cap->max_send_sge * sizeof(struct ibv_sge);
    if (cap->max_inline_data < inline_min)
        cap->max_inline_data = inline_min;
    if (cap->max_send_sge < (cap->max_inline_data + sizeof(struct ibv_sge) - 1) /
                            sizeof(struct ibv_sge))
        cap->max_send_sge = (cap->max_inline_data + sizeof(struct ibv_sge) - 1) /
                            sizeof(struct ibv_sge);
    return 0;
}

struct sr_qp *
sr_qp_create(struct ibv_pd *pd, struct ibv_qp_init_attr *attr)
{
    struct sr_qp *q;

    if (attr->qp_type != IBV_QPT_RC || !attr->send_cq || !attr->recv_cq || attr->srq ||
        sr_qp_caps(&attr->cap) < 0) {
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
    q->cap = attr->cap;
    q->qp_sig_all = attr->sq_sig_all;
    q->timeout = 17;            /* rdmacm over RoCE: packet life time 16, + 1 */
    q->retry_cnt = 7;
    pthread_mutex_init(&q->qp.mutex, NULL);
    pthread_cond_init(&q->qp.cond, NULL);
    sr_lock();
    q->qp.qp_num = q->qp.handle = sr_next_qpn++;
    q->next_all = sr_qps;
    sr_qps = q;
    sr_pd_ref(pd, 1);
    sr_cq_ref(attr->send_cq, 1);
    sr_cq_ref(attr->recv_cq, 1);
    sr_unlock();
    return q;
}

static void
sr_wc(struct sr_qp *q, struct ibv_cq *cq, uint64_t wr_id, enum ibv_wc_opcode op,
      enum ibv_wc_status st, uint32_t len);
static void sr_qp_flush_late_acks(struct sr_qp *q);

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
        q->rq_count--;
        sr_wc(q, q->qp.recv_cq, r->wr_id, IBV_WC_RECV, IBV_WC_WR_FLUSH_ERR, 0);
        free(r->sg);
        free(r);
    }
    while ((m = q->in) != NULL) {
        q->in = m->next;
        free(m);
    }
}

/* Queue a completion.  A full CQ loses it, raises IBV_EVENT_CQ_ERR and
 * moves the QP to the error state, as rxe does. */
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
    if (sr_cq_push(cq, &wc) < 0)
        sr_qp_mark_error(q);
}

/* Complete finished work requests from the head of the send queue. */
static void
sr_qp_retire(struct sr_qp *q)
{
    struct sr_swr *w;

    while ((w = q->sq) && w->state == SR_W_DONE) {
        q->sq = w->next;
        q->sq_count--;
        if (w->signaled || w->status != IBV_WC_SUCCESS)
            sr_wc(q, q->qp.send_cq, w->wr_id, sr_wc_opcode(w->op), w->status,
                  w->status == IBV_WC_SUCCESS ? w->len : 0);
        if (w->status != IBV_WC_SUCCESS)
            sr_qp_mark_error(q);
        sr_swr_free(w);
    }
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

/* Read a SEND/WRITE payload now, from the registered memory it names.
 * NULL with *st set if a key no longer holds. */
static unsigned char *
sr_swr_gather(struct sr_qp *q, struct sr_swr *w, enum ibv_wc_status *st)
{
    unsigned char *buf;
    size_t off = 0;
    int i;

    if (w->data)
        return w->data;
    if (sr_sg_check(q->qp.pd, w->sg, w->nsg, 0) < 0) {
        *st = IBV_WC_LOC_PROT_ERR;
        return NULL;
    }
    buf = malloc(w->len ? w->len : 1);
    if (!buf)
        abort();
    for (i = 0; i < w->nsg; i++) {
        memcpy(buf + off, (void *)(uintptr_t)w->sg[i].addr, w->sg[i].length);
        off += w->sg[i].length;
    }
    return buf;
}

/* Put one request on the wire; 0, or -1 if it failed locally (done). */
static int
sr_qp_transmit(struct sr_qp *q, struct sr_swr *w)
{
    struct sr_frame f;
    enum ibv_wc_status st = IBV_WC_SUCCESS;
    unsigned char *buf = NULL;

    memset(&f, 0, sizeof f);
    f.seq = w->seq;
    f.rkey = w->rkey;
    f.raddr = w->raddr;
    f.len = w->len;
    if (w->op == IBV_WR_RDMA_READ) {
        f.type = SR_F_READ;
        sr_conn_send(q->conn, &f, NULL, 0);
        return 0;
    }
    buf = sr_swr_gather(q, w, &st);
    if (!buf) {
        w->state = SR_W_DONE;
        w->status = st;
        return -1;
    }
    f.type = w->op == IBV_WR_SEND ? SR_F_SEND : SR_F_WRITE;
    sr_conn_send(q->conn, &f, buf, w->len);
    if (buf != w->data)
        free(buf);
    return 0;
}

static int
sr_qp_outstanding(struct sr_qp *q)
{
    struct sr_swr *w;

    for (w = q->sq; w; w = w->next)
        if (w->state == SR_W_SENT)
            return 1;
    return 0;
}

void
sr_qp_kick(struct sr_qp *q)
{
    struct sr_swr *w;
    int idle;

    sr_qp_retire(q);
    if (q->error || !q->conn || q->qp.state != IBV_QPS_RTS)
        return;
    if (q->rnr_until_us && sr_now_us() < q->rnr_until_us)
        return;                 /* waiting out an RNR NAK */
    q->rnr_until_us = 0;
    idle = !sr_qp_outstanding(q);
    for (w = q->sq; w; w = w->next) {
        if (w->state != SR_W_QUEUED)
            continue;
        if (idle) {
            /* The ACK timer starts now: let the progress thread know. */
            q->last_answer_us = sr_now_us();
            if (sr_strict())
                sr_progress_wake();
            idle = 0;
        }
        if (sr_qp_transmit(q, w) < 0)
            break;              /* a local error ends the stream here */
        w->state = SR_W_SENT;
        if (q->nlate)
            sr_qp_flush_late_acks(q);   /* behind our own request */
        if (w->op != IBV_WR_SEND && sr_inject_fault()) {
            sr_conn_break(q->conn);
            break;
        }
    }
    sr_qp_retire(q);
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
sr_qp_set_conn_attrs(struct sr_qp *q, int retry_cnt, int rnr_retry, int timeout)
{
    q->retry_cnt = retry_cnt & 7;
    q->rnr_retry = rnr_retry & 7;
    if (timeout >= 0)
        q->timeout = timeout;
    q->min_rnr_timer = 0;       /* what the IB CM programs: 655.36 ms */
}

void
sr_qp_set_rts(struct sr_qp *q)
{
    if (!q->error) {
        q->qp.state = IBV_QPS_RTS;
        sr_qp_kick(q);
    }
}

/* The connecting side of an iSER test with ALUA: the hook of alua.c. */
void
sr_qp_alua(struct sr_qp *q, const struct sockaddr *dst)
{
    if (!q->alua)
        q->alua = sr_alua_new(dst);
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
    struct sr_qp **pp;

    for (pp = &sr_qps; *pp; pp = &(*pp)->next_all) {
        if (*pp == q) {
            *pp = q->next_all;
            break;
        }
    }
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
    if (q->alua)
        sr_alua_free(q->alua);
    sr_pd_ref(q->qp.pd, -1);
    sr_cq_ref(q->qp.send_cq, -1);
    sr_cq_ref(q->qp.recv_cq, -1);
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

SR_EXPORT struct ibv_qp *
ibv_create_qp(struct ibv_pd *pd, struct ibv_qp_init_attr *attr)
{
    struct sr_qp *q = sr_qp_create(pd, attr);

    return q ? &q->qp : NULL;
}

SR_EXPORT int
ibv_query_qp(struct ibv_qp *qp, struct ibv_qp_attr *a, int mask,
             struct ibv_qp_init_attr *init)
{
    struct sr_qp *q = (struct sr_qp *)qp;

    (void)mask;
    sr_lock();
    memset(a, 0, sizeof *a);
    a->qp_state = a->cur_qp_state = qp->state;
    a->cap = q->cap;
    a->min_rnr_timer = q->min_rnr_timer;
    a->rnr_retry = q->rnr_retry;
    a->retry_cnt = q->retry_cnt;
    a->timeout = q->timeout;
    if (init) {
        memset(init, 0, sizeof *init);
        init->qp_context = qp->qp_context;
        init->send_cq = qp->send_cq;
        init->recv_cq = qp->recv_cq;
        init->cap = q->cap;
        init->qp_type = IBV_QPT_RC;
    }
    sr_unlock();
    return 0;
}

/* Only what an application may change on a connected RC QP: the retry
 * attributes, and moving it to the error state. */
SR_EXPORT int
ibv_modify_qp(struct ibv_qp *qp, struct ibv_qp_attr *a, int mask)
{
    struct sr_qp *q = (struct sr_qp *)qp;

    sr_lock();
    if (mask & IBV_QP_MIN_RNR_TIMER)
        q->min_rnr_timer = a->min_rnr_timer & 31;
    if (mask & IBV_QP_RNR_RETRY)
        q->rnr_retry = a->rnr_retry & 7;
    if (mask & IBV_QP_RETRY_CNT)
        q->retry_cnt = a->retry_cnt & 7;
    if (mask & IBV_QP_TIMEOUT)
        q->timeout = a->timeout & 31;
    if ((mask & IBV_QP_STATE) && a->qp_state == IBV_QPS_ERR)
        sr_qp_set_error(q);
    sr_unlock();
    return 0;
}

static void
sr_sq_append(struct sr_qp *q, struct sr_swr *w)
{
    struct sr_swr **pp = &q->sq;

    while (*pp)
        pp = &(*pp)->next;
    *pp = w;
    q->sq_count++;
}

/* Build one send work request; NULL only when out of memory. */
static struct sr_swr *
sr_swr_new(struct sr_qp *q, const struct ibv_send_wr *wr)
{
    struct sr_swr *w = calloc(1, sizeof *w);
    int access = wr->opcode == IBV_WR_RDMA_READ ? IBV_ACCESS_LOCAL_WRITE : 0;
    int inl = wr->opcode != IBV_WR_RDMA_READ && (wr->send_flags & IBV_SEND_INLINE);
    int64_t len;
    int i;

    if (!w)
        return NULL;
    w->wr_id = wr->wr_id;
    w->op = wr->opcode;
    w->signaled = !!(wr->send_flags & IBV_SEND_SIGNALED) || q->qp_sig_all;
    w->state = SR_W_QUEUED;
    w->seq = ++q->next_seq;
    w->rnr_left = q->rnr_retry;
    if (wr->opcode != IBV_WR_SEND) {
        w->rkey = wr->wr.rdma.rkey;
        w->raddr = wr->wr.rdma.remote_addr;
    }
    if (q->error) {
        w->state = SR_W_DONE;
        w->status = IBV_WC_WR_FLUSH_ERR;
        return w;
    }
    /* Inline data is copied now and needs no key. */
    len = inl ? 0 : sr_sg_check(q->qp.pd, wr->sg_list, wr->num_sge, access);
    for (i = 0; inl && i < wr->num_sge; i++)
        len += wr->sg_list[i].length;
    if (len < 0) {
        w->state = SR_W_DONE;
        w->status = IBV_WC_LOC_PROT_ERR;
        return w;
    }
    w->len = len;
    w->nsg = wr->num_sge;
    w->sg = calloc(w->nsg ? w->nsg : 1, sizeof *w->sg);
    if (!w->sg)
        goto oom;
    memcpy(w->sg, wr->sg_list, w->nsg * sizeof *w->sg);
    if (inl || !sr_strict()) {
        /* Inline (and lenient mode): the payload is taken at post. */
        w->data = malloc(len ? len : 1);
        if (!w->data)
            goto oom;
        for (len = 0, i = 0; i < wr->num_sge; i++) {
            memcpy(w->data + len, (void *)(uintptr_t)wr->sg_list[i].addr,
                   wr->sg_list[i].length);
            len += wr->sg_list[i].length;
        }
    }
    switch (wr->opcode) {
    case IBV_WR_SEND:
        sr_stat_add(SR_SEND, 1);
        if (q->alua)
            sr_alua_sent(q->alua, wr->sg_list, wr->num_sge);
        break;
    case IBV_WR_RDMA_WRITE:
        sr_stat_add(SR_RDMA_WRITE, 1);
        sr_stat_add(SR_RDMA_WRITE_BYTES, len);
        break;
    default:
        sr_stat_add(SR_RDMA_READ, 1);
        sr_stat_add(SR_RDMA_READ_BYTES, len);
        break;
    }
    return w;
oom:
    sr_swr_free(w);
    return NULL;
}

/* The verbs checks ibv_post_send makes before queueing anything: an errno
 * value, or 0. */
static int
sr_send_wr_check(struct sr_qp *q, const struct ibv_send_wr *wr)
{
    size_t len = 0;
    int i;

    if ((wr->opcode != IBV_WR_SEND && wr->opcode != IBV_WR_RDMA_WRITE &&
         wr->opcode != IBV_WR_RDMA_READ) || wr->num_sge < 0 ||
        (wr->num_sge > 0 && !wr->sg_list))
        return EINVAL;
    if (!q->error && q->qp.state != IBV_QPS_RTS)
        return EINVAL;          /* not connected yet: QP not in RTS */
    if (!sr_strict())
        return 0;
    if ((uint32_t)wr->num_sge > q->cap.max_send_sge)
        return EINVAL;
    if (wr->send_flags & IBV_SEND_INLINE) {
        if (wr->opcode == IBV_WR_RDMA_READ)
            return EINVAL;
        for (i = 0; i < wr->num_sge; i++)
            len += wr->sg_list[i].length;
        if (len > q->cap.max_inline_data)
            return EINVAL;
    }
    if ((uint32_t)q->sq_count >= q->cap.max_send_wr)
        return ENOMEM;
    return 0;
}

int
sr_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad)
{
    struct sr_qp *q = (struct sr_qp *)qp;
    int err = 0;

    sr_lock();
    for (; wr; wr = wr->next) {
        struct sr_swr *w;

        err = sr_send_wr_check(q, wr);
        if (err)
            break;
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

/* Place one incoming message into the first posted receive; the status the
 * receive completed with. */
static enum ibv_wc_status
sr_qp_place(struct sr_qp *q, const unsigned char *data, size_t len)
{
    unsigned char *alt = q->alua ? sr_alua_received(q->alua, q->qp.pd, data, &len) : NULL;
    struct sr_rwr *r = q->rq;
    int64_t room = sr_sg_check(q->qp.pd, r->sg, r->nsg, IBV_ACCESS_LOCAL_WRITE);
    enum ibv_wc_status st = IBV_WC_SUCCESS;

    if (alt)
        data = alt;             /* the ALUA stand-in's answer instead */
    q->rq = r->next;
    q->rq_count--;
    if (room < 0) {
        st = IBV_WC_LOC_PROT_ERR;
    } else if ((int64_t)len > room) {
        st = IBV_WC_LOC_LEN_ERR;
    } else {
        size_t off = 0;
        int i;

        for (i = 0; i < r->nsg && off < len; i++) {
            size_t n = len - off < r->sg[i].length ? len - off : r->sg[i].length;
            memcpy((void *)(uintptr_t)r->sg[i].addr, data + off, n);
            off += n;
        }
    }
    sr_wc(q, q->qp.recv_cq, r->wr_id, IBV_WC_RECV, st,
          st == IBV_WC_SUCCESS ? len : 0);
    free(r->sg);
    free(r);
    free(alt);
    return st;
}

/* The status the requester sees when the responder failed its SEND. */
static enum ibv_wc_status
sr_remote_status(enum ibv_wc_status local)
{
    switch (local) {
    case IBV_WC_SUCCESS:     return IBV_WC_SUCCESS;
    case IBV_WC_LOC_LEN_ERR: return IBV_WC_REM_INV_REQ_ERR;
    default:                 return IBV_WC_REM_OP_ERR;
    }
}

static void
sr_qp_answer(struct sr_qp *q, uint32_t type, uint64_t seq, uint32_t status,
             uint32_t rnr_us, const void *data, size_t len)
{
    struct sr_frame r;

    memset(&r, 0, sizeof r);
    r.type = type;
    r.seq = seq;
    r.status = status;
    r.rkey = rnr_us;
    sr_conn_send(q->conn, &r, data, len);
}

/* SOFTRDMA_ACK_LATE=1: the responder holds a SEND's ACK back until its
 * own next request has gone out (or 2 ms passed), as a NIC that coalesces
 * ACKs may: the peer can then receive our next message before it sees its
 * SEND complete.  For probing peers; off by default. */
static int
sr_ack_late(void)
{
    static int late = -1;

    if (late < 0) {
        const char *e = getenv("SOFTRDMA_ACK_LATE");
        late = e && *e && strcmp(e, "0") != 0;
    }
    return late;
}

static void
sr_qp_flush_late_acks(struct sr_qp *q)
{
    int i;

    for (i = 0; i < q->nlate; i++)
        sr_qp_answer(q, SR_F_ACK, q->late_ack[i], IBV_WC_SUCCESS, 0, NULL, 0);
    q->nlate = 0;
    q->late_until_us = 0;
}

/* Lenient mode: hand queued incoming messages to posted receives. */
static void
sr_qp_deliver(struct sr_qp *q)
{
    while (!q->error && q->in && q->rq) {
        struct sr_msg *m = q->in;
        enum ibv_wc_status st;

        q->in = m->next;
        st = sr_qp_place(q, m->data, m->len);
        sr_qp_answer(q, SR_F_ACK, m->seq, sr_remote_status(st), 0, NULL, 0);
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

        if (wr->num_sge < 0 || (wr->num_sge > 0 && !wr->sg_list) ||
            (sr_strict() && (uint32_t)wr->num_sge > q->cap.max_recv_sge)) {
            err = EINVAL;
            break;
        }
        if (sr_strict() && (uint32_t)q->rq_count >= q->cap.max_recv_wr) {
            err = ENOMEM;
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
        q->rq_count++;
    }
    if (err)
        *bad = wr;
    sr_qp_deliver(q);
    sr_qp_retire(q);
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

/* Responder: an incoming SEND goes into a posted receive, or draws an RNR
 * NAK (strict) or waits for one (lenient). */
static void
sr_qp_on_send(struct sr_qp *q, const struct sr_frame *f, const unsigned char *payload)
{
    enum ibv_wc_status st;

    if (!sr_strict()) {
        struct sr_msg *m = malloc(sizeof *m + f->plen), **pp;

        if (!m)
            abort();
        m->next = NULL;
        m->seq = f->seq;
        m->len = f->plen;
        memcpy(m->data, payload, f->plen);
        for (pp = &q->in; *pp; pp = &(*pp)->next)
            ;
        *pp = m;
        sr_qp_deliver(q);
        return;
    }
    if (!q->rq) {
        q->nak_seq = f->seq;    /* drop what follows until it comes again */
        sr_stat_add(SR_RNR_NAKS, 1);
        sr_qp_answer(q, SR_F_RNR, f->seq, 0, sr_rnr_us(q->min_rnr_timer), NULL, 0);
        return;
    }
    st = sr_qp_place(q, payload, f->plen);
    if (st == IBV_WC_SUCCESS && sr_ack_late() &&
        q->nlate < (int)(sizeof q->late_ack / sizeof q->late_ack[0])) {
        q->late_ack[q->nlate++] = f->seq;
        if (!q->late_until_us) {
            q->late_until_us = sr_now_us() + 2000;
            sr_progress_wake();
        }
        return;
    }
    sr_qp_flush_late_acks(q);
    sr_qp_answer(q, SR_F_ACK, f->seq, sr_remote_status(st), 0, NULL, 0);
    if (st != IBV_WC_SUCCESS)
        sr_qp_set_error(q);
}

/* Responder side of RDMA WRITE/READ: check, then serve from our memory. */
static void
sr_qp_serve(struct sr_qp *q, const struct sr_frame *f, const unsigned char *payload)
{
    int write = f->type == SR_F_WRITE;
    uint64_t len = write ? f->plen : f->len;
    uint32_t status = IBV_WC_SUCCESS;

    if (len && sr_mr_check(q->qp.pd, f->rkey, 1, f->raddr, len,
                           write ? IBV_ACCESS_REMOTE_WRITE
                                 : IBV_ACCESS_REMOTE_READ) < 0)
        status = IBV_WC_REM_ACCESS_ERR;
    else if (write && len)
        memcpy((void *)(uintptr_t)f->raddr, payload, len);
    sr_qp_answer(q, write ? SR_F_ACK : SR_F_READ_RESP, f->seq, status, 0,
                 status == IBV_WC_SUCCESS && !write ? (void *)(uintptr_t)f->raddr : NULL,
                 status == IBV_WC_SUCCESS && !write ? len : 0);
    if (status != IBV_WC_SUCCESS && sr_strict())
        sr_qp_set_error(q);     /* the responder's QP goes to error too */
}

/* Requester: an RNR NAK for seq.  Go back to it after the timer, or give
 * up when the retries are spent. */
static void
sr_qp_on_rnr(struct sr_qp *q, const struct sr_frame *f)
{
    struct sr_swr *w = sr_sq_find(q, f->seq), *x;

    if (!w)
        return;
    if (q->rnr_retry != 7 && w->rnr_left-- <= 0) {
        w->state = SR_W_DONE;
        w->status = IBV_WC_RNR_RETRY_EXC_ERR;
        return;
    }
    for (x = w; x; x = x->next)
        if (x->state == SR_W_SENT)
            x->state = SR_W_QUEUED;
    q->rnr_until_us = sr_now_us() + f->rkey;
    sr_progress_wake();         /* recompute the timer */
}

/* Requester side: the peer answered a request. */
static void
sr_qp_answered(struct sr_qp *q, const struct sr_frame *f, const unsigned char *payload)
{
    struct sr_swr *w;

    q->last_answer_us = sr_now_us();
    if (f->type == SR_F_RNR) {
        sr_qp_on_rnr(q, f);
        return;
    }
    w = sr_sq_find(q, f->seq);
    if (!w)
        return;                 /* flushed meanwhile */
    w->state = SR_W_DONE;
    w->status = f->status;
    if (f->type == SR_F_READ_RESP && f->status == IBV_WC_SUCCESS) {
        size_t off = 0;
        int i;

        /* The destination must still be registered now. */
        if (sr_sg_check(q->qp.pd, w->sg, w->nsg, IBV_ACCESS_LOCAL_WRITE) < 0) {
            w->status = IBV_WC_LOC_PROT_ERR;
            return;
        }
        for (i = 0; i < w->nsg && off < f->plen; i++) {
            size_t n = f->plen - off < w->sg[i].length ? f->plen - off : w->sg[i].length;
            memcpy((void *)(uintptr_t)w->sg[i].addr, payload + off, n);
            off += n;
        }
    }
}

void
sr_qp_on_frame(struct sr_qp *q, const struct sr_frame *f, const unsigned char *payload)
{
    switch (f->type) {
    case SR_F_SEND:
    case SR_F_WRITE:
    case SR_F_READ:
        if (q->nak_seq) {
            if (f->seq != q->nak_seq)
                break;          /* go-back-N: the requester will resend */
            q->nak_seq = 0;
        }
        if (q->error) {
            /* A responder in the error state drops requests: the
             * requester retries until its retry count runs out, unless
             * the disconnection flushes it first. */
            if (!sr_strict())
                sr_qp_answer(q, f->type == SR_F_READ ? SR_F_READ_RESP : SR_F_ACK,
                             f->seq, IBV_WC_RETRY_EXC_ERR, 0, NULL, 0);
            break;
        }
        if (f->type == SR_F_SEND)
            sr_qp_on_send(q, f, payload);
        else
            sr_qp_serve(q, f, payload);
        break;
    case SR_F_ACK:
    case SR_F_READ_RESP:
    case SR_F_RNR:
        sr_qp_answered(q, f, payload);
        break;
    default:
        break;
    }
    sr_qp_kick(q);
}

/* ---- timers, run by the progress thread ---- */

/* The requester's deadline for an answer, 0 if none is due. */
static int64_t
sr_qp_ack_deadline(struct sr_qp *q)
{
    int64_t t = sr_ack_timeout_us(q->timeout);

    if (!sr_strict() || q->error || !t || !q->conn || !sr_qp_outstanding(q))
        return 0;
    return q->last_answer_us + t * (q->retry_cnt + 1);
}

int64_t
sr_qp_next_timer(void)
{
    struct sr_qp *q;
    int64_t next = 0;

    for (q = sr_qps; q; q = q->next_all) {
        int64_t d = sr_qp_ack_deadline(q);

        if (q->rnr_until_us && !q->error && (!next || q->rnr_until_us < next))
            next = q->rnr_until_us;
        if (q->late_until_us && (!next || q->late_until_us < next))
            next = q->late_until_us;
        if (d && (!next || d < next))
            next = d;
    }
    return next;
}

void
sr_qp_run_timers(void)
{
    int64_t now = sr_now_us();
    struct sr_qp *q, *next;

    for (q = sr_qps; q; q = next) {
        int64_t d = sr_qp_ack_deadline(q);

        next = q->next_all;
        if (q->late_until_us && now >= q->late_until_us)
            sr_qp_flush_late_acks(q);
        if (q->rnr_until_us && now >= q->rnr_until_us)
            sr_qp_kick(q);
        if (d && now >= d) {
            struct sr_swr *w;

            /* Retries exhausted: the oldest unanswered request fails. */
            for (w = q->sq; w && w->state != SR_W_SENT; w = w->next)
                ;
            if (w) {
                w->state = SR_W_DONE;
                w->status = IBV_WC_RETRY_EXC_ERR;
            }
            sr_stat_add(SR_ACK_TIMEOUTS, 1);
            sr_qp_kick(q);
            if (q->conn)
                sr_cm_on_retry_exceeded(q->conn);
        }
    }
}
