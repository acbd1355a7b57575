/* Unit tests of the softrdma emulation, written against the ordinary verbs
 * and rdmacm API (linked with the system libraries, run under softrdma-run
 * so our libraries are the ones loaded).  TAP-like output; exit status is
 * non-zero if any check failed.  Every wait has a deadline. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#define DEADLINE_MS 5000
#define BUF_SIZE (256 * 1024)

static int failures, checks;

static void
ok(int cond, const char *fmt, ...)
{
    va_list ap;

    checks++;
    printf("%s %d - ", cond ? "ok" : "not ok", checks);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    if (!cond)
        failures++;
}

static void
die(const char *what)
{
    printf("Bail out! %s: %s\n", what, strerror(errno));
    exit(1);
}

static long long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* One side of a connection. */
struct end {
    struct rdma_event_channel *ch;
    struct rdma_cm_id *id;
    struct ibv_pd *pd;
    struct ibv_comp_channel *cc;
    struct ibv_cq *cq;
    unsigned char *buf;
    struct ibv_mr *mr;
};

/* Next CM event, or -1 after the deadline. */
static int
get_event(struct rdma_event_channel *ch, enum rdma_cm_event_type *type,
          struct rdma_cm_id **id, struct rdma_cm_event *copy)
{
    struct pollfd p = { .fd = ch->fd, .events = POLLIN };
    struct rdma_cm_event *ev;

    if (poll(&p, 1, DEADLINE_MS) != 1 || rdma_get_cm_event(ch, &ev) < 0)
        return -1;
    *type = ev->event;
    if (id)
        *id = ev->id;
    if (copy)
        *copy = *ev;
    rdma_ack_cm_event(ev);
    return 0;
}

static int
expect_event(struct rdma_event_channel *ch, enum rdma_cm_event_type want,
             struct rdma_cm_id **id, struct rdma_cm_event *copy)
{
    enum rdma_cm_event_type got;

    if (get_event(ch, &got, id, copy) < 0) {
        printf("# no CM event (wanted %s)\n", rdma_event_str(want));
        return -1;
    }
    if (got != want) {
        printf("# got %s, wanted %s\n", rdma_event_str(got), rdma_event_str(want));
        return -1;
    }
    return 0;
}

/* Collect n completions within the deadline; returns how many arrived. */
static int
wait_wc(struct ibv_cq *cq, struct ibv_wc *wc, int n)
{
    long long end = now_ms() + DEADLINE_MS;
    int got = 0;

    while (got < n && now_ms() < end) {
        int r = ibv_poll_cq(cq, n - got, wc + got);
        if (r < 0)
            return got;
        got += r;
        if (!r)
            sched_yield();
    }
    return got;
}

/* No completion shows up for a little while (used after a chain whose
 * other members are unsignalled: the signalled one already arrived, so
 * any extra completion would be there by now). */
static int
cq_empty(struct ibv_cq *cq)
{
    struct ibv_wc wc;

    return ibv_poll_cq(cq, 1, &wc) == 0;
}

static void
end_resources(struct end *e, struct ibv_context *verbs)
{
    e->pd = ibv_alloc_pd(verbs);
    e->cc = ibv_create_comp_channel(verbs);
    e->cq = e->cc ? ibv_create_cq(verbs, 256, e, e->cc, 0) : NULL;
    e->buf = calloc(1, BUF_SIZE);
    if (!e->pd || !e->cq || !e->buf)
        die("verbs resources");
    e->mr = ibv_reg_mr(e->pd, e->buf, BUF_SIZE,
                       IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ |
                       IBV_ACCESS_REMOTE_WRITE);
    if (!e->mr)
        die("ibv_reg_mr");
}

static void
make_qp(struct end *e)
{
    struct ibv_qp_init_attr a;

    memset(&a, 0, sizeof a);
    a.send_cq = a.recv_cq = e->cq;
    a.qp_type = IBV_QPT_RC;
    a.cap.max_send_wr = a.cap.max_recv_wr = 64;
    a.cap.max_send_sge = a.cap.max_recv_sge = 2;
    if (rdma_create_qp(e->id, e->pd, &a) < 0)
        die("rdma_create_qp");
}

static int
post_recv(struct end *e, uint64_t wr_id, size_t off, size_t len)
{
    struct ibv_sge sge = { (uintptr_t)e->buf + off, len, e->mr->lkey };
    struct ibv_recv_wr wr = { .wr_id = wr_id, .sg_list = &sge, .num_sge = 1 }, *bad;

    return ibv_post_recv(e->id->qp, &wr, &bad);
}

static int
post_one(struct end *e, enum ibv_wr_opcode op, uint64_t wr_id, size_t off,
         size_t len, uint64_t raddr, uint32_t rkey)
{
    struct ibv_sge sge = { (uintptr_t)e->buf + off, len, e->mr->lkey };
    struct ibv_send_wr wr, *bad;

    memset(&wr, 0, sizeof wr);
    wr.wr_id = wr_id;
    wr.opcode = op;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    wr.send_flags = IBV_SEND_SIGNALED;
    wr.wr.rdma.remote_addr = raddr;
    wr.wr.rdma.rkey = rkey;
    return ibv_post_send(e->id->qp, &wr, &bad);
}

static void
fill(unsigned char *p, size_t n, unsigned seed)
{
    size_t i;

    for (i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = seed >> 16;
    }
}

/* ---- connection set-up ---- */

static struct rdma_event_channel *lch;
static struct rdma_cm_id *listener;
static int listen_port;

static void
start_listener(void)
{
    struct sockaddr_in sin;

    lch = rdma_create_event_channel();
    if (!lch || rdma_create_id(lch, &listener, NULL, RDMA_PS_TCP) < 0)
        die("listener id");
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (rdma_bind_addr(listener, (struct sockaddr *)&sin) < 0 ||
        rdma_listen(listener, 8) < 0)
        die("bind/listen");
    listen_port = ntohs(((struct sockaddr_in *)&listener->route.addr.src_addr)->sin_port);
}

/* Active side up to rdma_connect. */
static int
client_connect(struct end *c, int port)
{
    struct sockaddr_in sin;
    struct rdma_conn_param p;

    memset(c, 0, sizeof *c);
    c->ch = rdma_create_event_channel();
    if (!c->ch || rdma_create_id(c->ch, &c->id, c, RDMA_PS_TCP) < 0)
        return -1;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons(port);
    if (rdma_resolve_addr(c->id, NULL, (struct sockaddr *)&sin, 2000) < 0 ||
        expect_event(c->ch, RDMA_CM_EVENT_ADDR_RESOLVED, NULL, NULL) < 0 ||
        rdma_resolve_route(c->id, 2000) < 0 ||
        expect_event(c->ch, RDMA_CM_EVENT_ROUTE_RESOLVED, NULL, NULL) < 0)
        return -1;
    end_resources(c, c->id->verbs);
    make_qp(c);
    memset(&p, 0, sizeof p);
    p.responder_resources = 4;
    p.initiator_depth = 0;
    p.private_data = "\xc0\0\0\0";
    p.private_data_len = 4;
    return rdma_connect(c->id, &p);
}

/* Passive side: take the request, post receives, accept. */
static int
server_accept(struct end *s, int nrecv)
{
    struct rdma_cm_event ev;
    struct rdma_conn_param p;
    int i;

    memset(s, 0, sizeof *s);
    if (expect_event(lch, RDMA_CM_EVENT_CONNECT_REQUEST, &s->id, &ev) < 0)
        return -1;
    s->ch = lch;
    end_resources(s, s->id->verbs);
    make_qp(s);
    for (i = 0; i < nrecv; i++)
        if (post_recv(s, 1000 + i, i * 4096, 4096) != 0)
            return -1;
    memset(&p, 0, sizeof p);
    p.initiator_depth = ev.param.conn.initiator_depth;
    return rdma_accept(s->id, &p);
}

static int
connect_pair(struct end *s, struct end *c, int nrecv)
{
    if (client_connect(c, listen_port) < 0 || server_accept(s, nrecv) < 0 ||
        expect_event(lch, RDMA_CM_EVENT_ESTABLISHED, NULL, NULL) < 0 ||
        expect_event(c->ch, RDMA_CM_EVENT_ESTABLISHED, NULL, NULL) < 0)
        return -1;
    return 0;
}

static void
end_free(struct end *e, int own_channel)
{
    if (e->id->qp)
        rdma_destroy_qp(e->id);
    rdma_destroy_id(e->id);
    ibv_dereg_mr(e->mr);
    ibv_destroy_cq(e->cq);
    ibv_destroy_comp_channel(e->cc);
    ibv_dealloc_pd(e->pd);
    free(e->buf);
    if (own_channel)
        rdma_destroy_event_channel(e->ch);
}

/* Drain the CM events a disconnect leaves on a channel. */
static void
drain_events(struct rdma_event_channel *ch)
{
    struct pollfd p = { .fd = ch->fd, .events = POLLIN };
    struct rdma_cm_event *ev;

    while (poll(&p, 1, 0) == 1 && rdma_get_cm_event(ch, &ev) == 0)
        rdma_ack_cm_event(ev);
}

static void
teardown(struct end *s, struct end *c)
{
    rdma_disconnect(c->id);
    end_free(c, 1);
    end_free(s, 0);
    drain_events(lch);
}

/* ---- tests ---- */

static void
test_device(void)
{
    struct ibv_device_attr a;
    struct ibv_device **l = ibv_get_device_list(NULL);
    struct ibv_context *ctx = l && l[0] ? ibv_open_device(l[0]) : NULL;

    ok(ctx && strcmp(ctx->device->name, "softrdma0") == 0,
       "the emulated device is the one loaded");
    ok(ctx && ctx->num_comp_vectors >= 1, "num_comp_vectors >= 1");
    ok(ctx && fcntl(ctx->async_fd, F_GETFD) >= 0, "async_fd is an open fd");
    ok(ctx && ibv_query_device(ctx, &a) == 0 && a.max_cqe > 0 &&
       a.max_qp_init_rd_atom > 0, "query_device reports limits");
    if (ctx)
        ibv_close_device(ctx);
    ibv_free_device_list(l);
}

static void
test_fds(void)
{
    struct ibv_comp_channel *cc = ibv_create_comp_channel(ibv_open_device(ibv_get_device_list(NULL)[0]));
    struct ibv_cq *cq, *got_cq;
    void *got_ctx;
    struct pollfd p;
    int fl, d;

    if (!cc)
        die("comp channel");
    ok(fcntl(cc->fd, F_GETFD) & FD_CLOEXEC, "completion channel fd is CLOEXEC");
    ok(fcntl(lch->fd, F_GETFD) & FD_CLOEXEC, "CM channel fd is CLOEXEC");
    fl = fcntl(cc->fd, F_GETFL);
    fcntl(cc->fd, F_SETFL, fl | O_NONBLOCK);
    errno = 0;
    cq = ibv_create_cq(cc->context, 16, NULL, cc, 0);
    ok(ibv_get_cq_event(cc, &got_cq, &got_ctx) == -1 && errno == EAGAIN,
       "get_cq_event on an empty non-blocking channel: EAGAIN");
    p.fd = cc->fd;
    p.events = POLLIN | POLLOUT;
    p.revents = 0;
    ok(poll(&p, 1, 0) >= 0 && !(p.revents & (POLLHUP | POLLIN)),
       "idle channel: no POLLIN, no POLLHUP");
    fcntl(cc->fd, F_SETFL, fl);
    d = dup(cc->fd);
    ok(d >= 0 && dup2(d, 100) == 100, "channel fd can be dup2'd");
    close(d);
    ibv_destroy_cq(cq);
    ibv_destroy_comp_channel(cc);
    p.fd = 100;
    p.events = POLLIN;
    ok(poll(&p, 1, 0) == 0 || !(p.revents & POLLHUP), "a dup never reports POLLHUP");
    close(100);
}

static void
test_pingpong(void)
{
    struct end s, c;
    struct ibv_wc wc[2];
    struct ibv_cq *ecq;
    void *ectx;
    struct pollfd p;

    if (connect_pair(&s, &c, 4) < 0) {
        ok(0, "connect");
        return;
    }
    ok(s.id->verbs == c.id->verbs, "every cm_id shares one context");
    ok(((struct sockaddr *)&s.id->route.addr.dst_addr)->sa_family == AF_INET,
       "passive side sees an AF_INET peer address");

    ok(ibv_req_notify_cq(s.cq, 0) == 0, "arm the server CQ");
    strcpy((char *)c.buf, "ping");
    ok(post_one(&c, IBV_WR_SEND, 1, 0, 5, 0, 0) == 0, "post SEND ping");
    ok(wait_wc(c.cq, wc, 1) == 1 && wc[0].status == IBV_WC_SUCCESS &&
       wc[0].opcode == IBV_WC_SEND && wc[0].wr_id == 1, "SEND completes");
    p.fd = s.cc->fd;
    p.events = POLLIN;
    ok(poll(&p, 1, DEADLINE_MS) == 1 && p.revents == POLLIN,
       "armed CQ: channel fd becomes readable with exactly POLLIN");
    ok(ibv_get_cq_event(s.cc, &ecq, &ectx) == 0 && ecq == s.cq && ectx == &s,
       "get_cq_event returns the CQ and its context");
    ibv_ack_cq_events(ecq, 1);
    ok(wait_wc(s.cq, wc, 1) == 1 && wc[0].status == IBV_WC_SUCCESS &&
       wc[0].opcode == IBV_WC_RECV && wc[0].wr_id == 1000 && wc[0].byte_len == 5 &&
       strcmp((char *)s.buf, "ping") == 0, "server received ping");
    strcpy((char *)s.buf + 8192, "pong");
    post_recv(&c, 2000, 4096, 4096);
    ok(post_one(&s, IBV_WR_SEND, 2, 8192, 5, 0, 0) == 0, "post SEND pong");
    ok(wait_wc(s.cq, wc, 1) == 1 && wc[0].status == IBV_WC_SUCCESS, "pong SEND completes");
    ok(wait_wc(c.cq, wc, 1) == 1 && wc[0].opcode == IBV_WC_RECV &&
       strcmp((char *)c.buf + 4096, "pong") == 0, "client received pong");
    teardown(&s, &c);
}

static void
test_rdma(void)
{
    struct end s, c;
    struct ibv_wc wc[4];
    struct ibv_sge sge[3];
    struct ibv_send_wr wr[3], *bad;
    uint64_t sbase;
    int i;

    if (connect_pair(&s, &c, 1) < 0) {
        ok(0, "connect");
        return;
    }
    sbase = (uintptr_t)s.buf;
    fill(c.buf, 65536, 1);
    ok(post_one(&c, IBV_WR_RDMA_WRITE, 10, 0, 65536, sbase + 65536, s.mr->rkey) == 0,
       "post RDMA WRITE 64 KiB");
    ok(wait_wc(c.cq, wc, 1) == 1 && wc[0].status == IBV_WC_SUCCESS &&
       wc[0].opcode == IBV_WC_RDMA_WRITE && wc[0].wr_id == 10, "WRITE completes");
    ok(memcmp(s.buf + 65536, c.buf, 65536) == 0, "WRITE data landed in the peer");

    fill(s.buf + 131072, 100000, 2);
    ok(post_one(&c, IBV_WR_RDMA_READ, 11, 100000, 100000, sbase + 131072, s.mr->rkey) == 0,
       "post RDMA READ 100000 bytes");
    ok(wait_wc(c.cq, wc, 1) == 1 && wc[0].status == IBV_WC_SUCCESS &&
       wc[0].opcode == IBV_WC_RDMA_READ, "READ completes");
    ok(memcmp(c.buf + 100000, s.buf + 131072, 100000) == 0, "READ data arrived");

    /* Chain: two unsignalled WRITEs then a signalled SEND, like tgtd's
     * data-in followed by the response. */
    memset(wr, 0, sizeof wr);
    fill(c.buf, 3 * 4096, 3);
    for (i = 0; i < 3; i++) {
        sge[i].addr = (uintptr_t)c.buf + i * 4096;
        sge[i].length = i < 2 ? 4096 : 16;
        sge[i].lkey = c.mr->lkey;
        wr[i].wr_id = 20 + i;
        wr[i].sg_list = &sge[i];
        wr[i].num_sge = 1;
        wr[i].next = i < 2 ? &wr[i + 1] : NULL;
        wr[i].opcode = i < 2 ? IBV_WR_RDMA_WRITE : IBV_WR_SEND;
        wr[i].send_flags = i < 2 ? 0 : IBV_SEND_SIGNALED;
        wr[i].wr.rdma.remote_addr = sbase + 200000 + i * 4096;
        wr[i].wr.rdma.rkey = s.mr->rkey;
    }
    memset(s.buf + 200000, 0, 8192);
    ok(ibv_post_send(c.id->qp, wr, &bad) == 0, "post a chain WRITE, WRITE, SEND");
    ok(wait_wc(s.cq, wc, 1) == 1 && wc[0].opcode == IBV_WC_RECV && wc[0].byte_len == 16,
       "peer received the SEND");
    /* No waiting here: the sender's completion must already be queued by
     * the time the peer can see the message. */
    ok(ibv_poll_cq(c.cq, 1, wc) == 1 && wc[0].wr_id == 22 && wc[0].opcode == IBV_WC_SEND,
       "the SEND completed before the peer saw it; only the signalled one");
    ok(memcmp(s.buf + 200000, c.buf, 8192) == 0, "both WRITEs landed before the SEND");
    ok(cq_empty(c.cq), "no completions for unsignalled work requests");
    teardown(&s, &c);
}

/* Post a bad request, then one more: the bad one fails with want, the QP
 * is in error so the next one is flushed. */
static void
violation(const char *what, enum ibv_wr_opcode op, int bad_key, uint64_t off,
          size_t len, int read_only_mr)
{
    struct end s, c;
    struct ibv_wc wc[2];
    struct ibv_mr *ro = NULL;
    uint32_t rkey;

    if (connect_pair(&s, &c, 0) < 0) {
        ok(0, "connect");
        return;
    }
    rkey = s.mr->rkey;
    if (read_only_mr) {
        ro = ibv_reg_mr(s.pd, s.buf, 4096, IBV_ACCESS_REMOTE_READ);
        rkey = ro->rkey;
    }
    if (bad_key)
        rkey += 0x777;
    ok(post_one(&c, op, 30, 0, len, (uintptr_t)s.buf + off, rkey) == 0 &&
       post_one(&c, IBV_WR_SEND, 31, 0, 8, 0, 0) == 0, "%s: posted", what);
    ok(wait_wc(c.cq, wc, 2) == 2 && wc[0].wr_id == 30 &&
       wc[0].status == IBV_WC_REM_ACCESS_ERR, "%s: remote access error", what);
    ok(wc[1].wr_id == 31 && wc[1].status == IBV_WC_WR_FLUSH_ERR,
       "%s: QP in error, next request flushed", what);
    ok(c.id->qp->state == IBV_QPS_ERR, "%s: QP state is ERR", what);
    if (ro)
        ibv_dereg_mr(ro);
    teardown(&s, &c);
}

static void
test_violations(void)
{
    violation("bad rkey WRITE", IBV_WR_RDMA_WRITE, 1, 0, 512, 0);
    violation("out of bounds READ", IBV_WR_RDMA_READ, 0, BUF_SIZE - 100, 512, 0);
    violation("WRITE to a read-only region", IBV_WR_RDMA_WRITE, 0, 0, 512, 1);
}

static void
test_local_errors(void)
{
    struct end s, c;
    struct ibv_wc wc[4];
    struct ibv_sge sge = { 0, 8, 0 };
    struct ibv_send_wr wr, *bad;
    int n;

    if (connect_pair(&s, &c, 2) < 0) {
        ok(0, "connect");
        return;
    }
    /* SEND of 8000 bytes into 4096-byte receive buffers. */
    ok(post_one(&c, IBV_WR_SEND, 40, 0, 8000, 0, 0) == 0, "post oversized SEND");
    n = wait_wc(s.cq, wc, 2);
    ok(n == 2 && wc[0].status == IBV_WC_LOC_LEN_ERR && wc[0].opcode == IBV_WC_RECV,
       "receiver: local length error");
    ok(n == 2 && wc[1].status == IBV_WC_WR_FLUSH_ERR && wc[1].wr_id == 1001,
       "receiver: the other RECV is flushed");
    wait_wc(c.cq, wc, 1);

    /* Bad lkey on the sender side. */
    memset(&wr, 0, sizeof wr);
    sge.addr = (uintptr_t)c.buf;
    sge.lkey = c.mr->lkey + 0x999;
    wr.wr_id = 41;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    wr.opcode = IBV_WR_SEND;
    wr.send_flags = IBV_SEND_SIGNALED;
    ok(ibv_post_send(c.id->qp, &wr, &bad) == 0 && wait_wc(c.cq, wc, 1) == 1 &&
       wc[0].status == IBV_WC_LOC_PROT_ERR, "bad lkey: local protection error");
    wr.opcode = IBV_WR_ATOMIC_FETCH_AND_ADD;
    ok(ibv_post_send(c.id->qp, &wr, &bad) != 0 && bad == &wr,
       "unsupported opcode: post fails and bad_wr points at it");
    teardown(&s, &c);
}

static void
test_disconnect_flush(void)
{
    struct end s, c;
    struct ibv_wc wc[8];
    int n, i, flushed = 0;

    if (connect_pair(&s, &c, 5) < 0) {
        ok(0, "connect");
        return;
    }
    for (i = 0; i < 3; i++)
        post_recv(&c, 500 + i, i * 4096, 4096);
    ok(rdma_disconnect(c.id) == 0, "client disconnects");
    ok(expect_event(c.ch, RDMA_CM_EVENT_DISCONNECTED, NULL, NULL) == 0,
       "client: DISCONNECTED");
    ok(expect_event(lch, RDMA_CM_EVENT_DISCONNECTED, NULL, NULL) == 0,
       "server: DISCONNECTED");
    ok(expect_event(lch, RDMA_CM_EVENT_TIMEWAIT_EXIT, NULL, NULL) == 0,
       "server: TIMEWAIT_EXIT");
    n = wait_wc(s.cq, wc, 5);
    for (i = 0; i < n; i++)
        flushed += wc[i].status == IBV_WC_WR_FLUSH_ERR && wc[i].wr_id == 1000u + i;
    ok(n == 5 && flushed == 5, "server: exactly one flush per posted RECV, in order");
    ok(cq_empty(s.cq), "server: no extra completions");
    n = wait_wc(c.cq, wc, 3);
    ok(n == 3 && cq_empty(c.cq), "client: its 3 RECVs flushed once each");
    ok(rdma_disconnect(s.id) == 0, "second disconnect is harmless");
    end_free(&c, 1);
    end_free(&s, 0);
    drain_events(lch);
}

static void
test_reject_and_unreachable(void)
{
    struct end c;
    struct rdma_cm_id *req;

    ok(client_connect(&c, listen_port) == 0, "connect for reject");
    ok(expect_event(lch, RDMA_CM_EVENT_CONNECT_REQUEST, &req, NULL) == 0 &&
       rdma_reject(req, NULL, 0) == 0, "server rejects");
    ok(expect_event(c.ch, RDMA_CM_EVENT_REJECTED, NULL, NULL) == 0, "client: REJECTED");
    rdma_destroy_id(req);
    end_free(&c, 1);
    ok(client_connect(&c, 1) == 0 &&
       expect_event(c.ch, RDMA_CM_EVENT_REJECTED, NULL, NULL) == 0,
       "nobody listening: REJECTED");
    end_free(&c, 1);
}

/* A server in a child process; the parent is the client. */
static void
test_fork(void)
{
    int pfd[2], status, port = 0;
    pid_t pid;
    struct end c;
    struct ibv_wc wc[4];
    struct pollfd p;

    if (pipe(pfd) < 0)
        die("pipe");
    pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        /* Child: a fresh listener, serve one connection until the parent
         * disconnects; exit status tells what it saw. */
        struct end s;
        struct ibv_wc w;

        close(pfd[0]);
        rdma_destroy_id(listener);
        start_listener();
        if (write(pfd[1], &listen_port, sizeof listen_port) != sizeof listen_port)
            _exit(2);
        if (server_accept(&s, 1) < 0 ||
            expect_event(lch, RDMA_CM_EVENT_ESTABLISHED, NULL, NULL) < 0)
            _exit(3);
        if (wait_wc(s.cq, &w, 1) != 1 || w.status != IBV_WC_SUCCESS ||
            strcmp((char *)s.buf, "hello child") != 0)
            _exit(4);
        /* Exit with a RECV outstanding: the parent must see the hang-up. */
        _exit(0);
    }
    close(pfd[1]);
    p.fd = pfd[0];
    p.events = POLLIN;
    ok(poll(&p, 1, DEADLINE_MS) == 1 && read(pfd[0], &port, sizeof port) == sizeof port,
       "fork: child listens");
    close(pfd[0]);
    ok(client_connect(&c, port) == 0 &&
       expect_event(c.ch, RDMA_CM_EVENT_ESTABLISHED, NULL, NULL) == 0,
       "fork: parent connected to the child");
    strcpy((char *)c.buf, "hello child");
    post_recv(&c, 60, 4096, 4096);
    ok(post_one(&c, IBV_WR_SEND, 51, 0, 12, 0, 0) == 0 &&
       wait_wc(c.cq, wc, 1) >= 1, "fork: SEND to the child");
    ok(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
       "fork: child received the message and exited");
    ok(expect_event(c.ch, RDMA_CM_EVENT_DISCONNECTED, NULL, NULL) == 0,
       "fork: parent sees DISCONNECTED after the child exit");
    ok(wait_wc(c.cq, wc, 1) == 1 && wc[0].wr_id == 60 &&
       wc[0].status == IBV_WC_WR_FLUSH_ERR && cq_empty(c.cq),
       "fork: the outstanding RECV flushed exactly once");
    end_free(&c, 1);
}

int
main(void)
{
    if (!getenv("SOFTRDMA_DIR")) {
        fprintf(stderr, "verbs-test: run me under softrdma-run with SOFTRDMA_DIR set\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    start_listener();
    test_device();
    test_fds();
    test_pingpong();
    test_rdma();
    test_violations();
    test_local_errors();
    test_disconnect_flush();
    test_reject_and_unreachable();
    test_fork();
    rdma_destroy_id(listener);
    rdma_destroy_event_channel(lch);
    printf("1..%d\n", checks);
    if (failures)
        printf("# %d of %d checks failed\n", failures, checks);
    return failures ? 1 : 0;
}
