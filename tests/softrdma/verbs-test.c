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
#include <linux/capability.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#define DEADLINE_MS 5000
#define BUF_SIZE (256 * 1024)

static int failures, checks;
static int cq_size = 256;       /* CQ size end_resources asks for */

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
    e->cq = e->cc ? ibv_create_cq(verbs, cq_size, e, e->cc, 0) : NULL;
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
    p.retry_count = 7;          /* what libiscsi asks for */
    p.rnr_retry_count = 6;
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
    ok(wait_wc(c.cq, wc, 1) == 1 && wc[0].wr_id == 22 && wc[0].opcode == IBV_WC_SEND,
       "the SEND completes; only the signalled one");
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
    ok(post_recv(&s, 32, 0, 64) == 0 && wait_wc(s.cq, wc, 1) == 1 &&
       wc[0].wr_id == 32 && wc[0].status == IBV_WC_WR_FLUSH_ERR,
       "%s: the responder's QP is in error too", what);
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
    ok(wait_wc(c.cq, wc, 1) == 1 && wc[0].status == IBV_WC_REM_INV_REQ_ERR,
       "sender: remote invalid request error");
    teardown(&s, &c);

    if (connect_pair(&s, &c, 2) < 0) {
        ok(0, "connect");
        return;
    }
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

/* ---- rules a real RDMA stack (rdma_rxe) enforces ---- */

static struct ibv_qp_attr
qp_attr(struct ibv_qp *qp)
{
    struct ibv_qp_attr a;
    struct ibv_qp_init_attr init;

    memset(&a, 0, sizeof a);
    ibv_query_qp(qp, &a, IBV_QP_STATE | IBV_QP_CAP | IBV_QP_RNR_RETRY |
                 IBV_QP_RETRY_CNT | IBV_QP_TIMEOUT | IBV_QP_MIN_RNR_TIMER, &init);
    return a;
}

/* The requester retries RNR NAKs for ever (7); the responder asks for
 * 1.28 ms between retries instead of the CM's 655 ms. */
static void
rnr_forever(struct end *s, struct end *c)
{
    struct ibv_qp_attr a;

    memset(&a, 0, sizeof a);
    a.rnr_retry = 7;
    ibv_modify_qp(c->id->qp, &a, IBV_QP_RNR_RETRY);
    a.min_rnr_timer = 14;
    ibv_modify_qp(s->id->qp, &a, IBV_QP_MIN_RNR_TIMER);
}

/* Nothing completes on cq for a while (an absence check: the bound is the
 * time allowed for something that must not happen). */
static int
no_wc_for(struct ibv_cq *cq, int ms)
{
    long long end = now_ms() + ms;
    struct ibv_wc wc;

    while (now_ms() < end) {
        if (ibv_poll_cq(cq, 1, &wc) != 0)
            return 0;
        sched_yield();
    }
    return 1;
}

/* The emulation's rnr_naks counter, read from the SOFTRDMA_STATS file it
 * writes on SIGUSR2 (synchronously, in the handler); -1 without one. */
static long
rnr_naks(void)
{
    const char *pat = getenv("SOFTRDMA_STATS");
    char name[4096], line[256];
    const char *p;
    size_t n = 0;
    long v = -1;
    FILE *f;

    if (!pat || !*pat)
        return -1;
    for (p = pat; *p && n + 32 < sizeof name; p++) {
        if (p[0] == '%' && p[1] == 'p') {
            n += snprintf(name + n, sizeof name - n, "%ld", (long)getpid());
            p++;
        } else {
            name[n++] = *p;
        }
    }
    name[n] = 0;
    raise(SIGUSR2);
    f = fopen(name, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "rnr_naks=%ld", &v) == 1)
            break;
    fclose(f);
    return v;
}

/* Wait (bounded) until the peer sent an RNR NAK since the count was
 * `before`: the SEND then certainly left once and is waiting to be sent
 * again.  Without the counters file, give it 200 ms. */
static int
wait_rnr_nak(struct ibv_cq *cq, long before)
{
    long long end = now_ms() + DEADLINE_MS;

    if (before < 0)
        return no_wc_for(cq, 200);
    while (now_ms() < end) {
        if (rnr_naks() > before)
            return 1;
        sched_yield();
    }
    return 0;
}

static void
test_conn_params(void)
{
    struct end s, c;
    struct ibv_qp_attr sa, ca;

    if (connect_pair(&s, &c, 0) < 0) {
        ok(0, "connect");
        return;
    }
    sa = qp_attr(s.id->qp);
    ca = qp_attr(c.id->qp);
    ok(sa.rnr_retry == 6 && ca.rnr_retry == 0,
       "RNR retry count: the passive QP gets the connect's (6), the active QP the accept's (0)");
    ok(sa.retry_cnt == 7 && ca.retry_cnt == 7, "retry count: the connect's, on both QPs");
    ok(sa.min_rnr_timer == 0 && ca.timeout > 0, "min_rnr_timer 0 (655 ms), an ACK timeout set");
    ok(ca.cap.max_send_wr == 127 && ca.cap.max_recv_wr == 127 &&
       ca.cap.max_inline_data >= 32, "queue sizes rounded as rxe rounds them (64 -> 127)");
    teardown(&s, &c);
}

static void
test_queue_limits(void)
{
    struct end s, c;
    struct ibv_qp_attr ca;
    struct ibv_sge sge[40];
    struct ibv_send_wr wr, *bad;
    struct ibv_recv_wr rwr, *rbad;
    uint32_t i;
    int r = 0;

    if (connect_pair(&s, &c, 0) < 0) {
        ok(0, "connect");
        return;
    }
    rnr_forever(&s, &c);
    ca = qp_attr(c.id->qp);
    for (i = 0; i < 40; i++) {
        sge[i].addr = (uintptr_t)c.buf + i * 8;
        sge[i].length = 8;
        sge[i].lkey = c.mr->lkey;
    }
    memset(&wr, 0, sizeof wr);
    wr.opcode = IBV_WR_SEND;
    wr.sg_list = sge;
    wr.num_sge = ca.cap.max_send_sge + 1;
    wr.send_flags = IBV_SEND_SIGNALED;
    ok(ibv_post_send(c.id->qp, &wr, &bad) == EINVAL && bad == &wr,
       "more SGEs than max_send_sge: EINVAL");
    wr.num_sge = 1;
    sge[0].length = ca.cap.max_inline_data + 1;
    wr.send_flags = IBV_SEND_SIGNALED | IBV_SEND_INLINE;
    ok(ibv_post_send(c.id->qp, &wr, &bad) == EINVAL, "inline above max_inline_data: EINVAL");
    sge[0].length = 8;
    wr.send_flags = IBV_SEND_SIGNALED;
    /* The peer has no receive posted: the SENDs stay outstanding. */
    for (i = 0; i < ca.cap.max_send_wr && r == 0; i++) {
        wr.wr_id = 100 + i;
        r = ibv_post_send(c.id->qp, &wr, &bad);
    }
    ok(r == 0, "max_send_wr (%u) SENDs accepted", ca.cap.max_send_wr);
    ok(ibv_post_send(c.id->qp, &wr, &bad) == ENOMEM && bad == &wr,
       "one more outstanding SEND: ENOMEM");

    memset(&rwr, 0, sizeof rwr);
    rwr.sg_list = sge;
    rwr.num_sge = ca.cap.max_recv_sge + 1;
    ok(ibv_post_recv(c.id->qp, &rwr, &rbad) == EINVAL, "more SGEs than max_recv_sge: EINVAL");
    rwr.num_sge = 1;
    for (r = 0, i = 0; i < ca.cap.max_recv_wr && r == 0; i++)
        r = ibv_post_recv(c.id->qp, &rwr, &rbad);
    ok(r == 0, "max_recv_wr (%u) RECVs accepted", ca.cap.max_recv_wr);
    ok(ibv_post_recv(c.id->qp, &rwr, &rbad) == ENOMEM && rbad == &rwr,
       "one more RECV: ENOMEM");
    teardown(&s, &c);
}

static void
test_send_completion(void)
{
    struct end s, c;
    struct ibv_wc wc[2];
    long naks;

    if (connect_pair(&s, &c, 0) < 0) {
        ok(0, "connect");
        return;
    }
    rnr_forever(&s, &c);
    strcpy((char *)c.buf, "first");
    naks = rnr_naks();
    ok(post_one(&c, IBV_WR_SEND, 70, 0, 6, 0, 0) == 0, "SEND to a peer with no receive posted");
    ok(wait_rnr_nak(c.cq, naks), "the peer answers with an RNR NAK");
    /* Reused before completion: what leaves is what the buffer holds
     * when the message is (re)transmitted. */
    strcpy((char *)c.buf, "later");
    ok(no_wc_for(c.cq, 100), "the SEND does not complete while the peer has no receive");
    ok(post_recv(&s, 1000, 0, 4096) == 0 && wait_wc(c.cq, wc, 1) == 1 &&
       wc[0].status == IBV_WC_SUCCESS && wc[0].wr_id == 70,
       "it completes once the peer posted a receive (RNR retried)");
    ok(wait_wc(s.cq, wc, 1) == 1 && wc[0].status == IBV_WC_SUCCESS &&
       strcmp((char *)s.buf, "later") == 0,
       "the payload was read when it left, not when posted");
    teardown(&s, &c);
}

static void
test_rnr_exceeded(void)
{
    struct end s, c;
    struct ibv_wc wc[2];
    struct ibv_qp_attr a;

    /* The accept's RNR retry count is 0: the first RNR NAK fails it. */
    if (connect_pair(&s, &c, 0) < 0) {
        ok(0, "connect");
        return;
    }
    ok(post_one(&c, IBV_WR_SEND, 80, 0, 8, 0, 0) == 0 &&
       post_one(&c, IBV_WR_SEND, 81, 0, 8, 0, 0) == 0, "two SENDs, no receive at the peer");
    ok(wait_wc(c.cq, wc, 2) == 2 && wc[0].wr_id == 80 &&
       wc[0].status == IBV_WC_RNR_RETRY_EXC_ERR && wc[1].status == IBV_WC_WR_FLUSH_ERR,
       "rnr_retry 0: IBV_WC_RNR_RETRY_EXC_ERR, the next one flushed");
    ok(qp_attr(c.id->qp).qp_state == IBV_QPS_ERR, "the QP is in the error state");
    teardown(&s, &c);

    /* Three retries, 10 us apart, then the error. */
    if (connect_pair(&s, &c, 0) < 0) {
        ok(0, "connect");
        return;
    }
    memset(&a, 0, sizeof a);
    a.rnr_retry = 3;
    ibv_modify_qp(c.id->qp, &a, IBV_QP_RNR_RETRY);
    a.min_rnr_timer = 1;
    ibv_modify_qp(s.id->qp, &a, IBV_QP_MIN_RNR_TIMER);
    ok(post_one(&c, IBV_WR_SEND, 82, 0, 8, 0, 0) == 0 && wait_wc(c.cq, wc, 1) == 1 &&
       wc[0].status == IBV_WC_RNR_RETRY_EXC_ERR, "rnr_retry 3: IBV_WC_RNR_RETRY_EXC_ERR");
    teardown(&s, &c);
}

static void
test_keys_at_transmit(void)
{
    struct end s, c;
    struct ibv_wc wc[2];
    struct ibv_mr *mr2;
    long naks;
    int n;

    /* A SEND's source deregistered while it waits for the peer. */
    if (connect_pair(&s, &c, 0) < 0) {
        ok(0, "connect");
        return;
    }
    rnr_forever(&s, &c);
    mr2 = ibv_reg_mr(c.pd, c.buf + 8192, 4096, IBV_ACCESS_LOCAL_WRITE);
    naks = rnr_naks();
    {
        struct ibv_sge sge = { (uintptr_t)c.buf + 8192, 16, mr2->lkey };
        struct ibv_send_wr wr, *bad;

        memset(&wr, 0, sizeof wr);
        wr.wr_id = 90;
        wr.opcode = IBV_WR_SEND;
        wr.sg_list = &sge;
        wr.num_sge = 1;
        wr.send_flags = IBV_SEND_SIGNALED;
        ok(ibv_post_send(c.id->qp, &wr, &bad) == 0, "SEND from a second MR, peer not ready");
    }
    ok(wait_rnr_nak(c.cq, naks), "the peer answers with an RNR NAK");
    ibv_dereg_mr(mr2);
    post_recv(&s, 1000, 0, 4096);
    n = wait_wc(c.cq, wc, 1);
    ok(n == 1 && wc[0].wr_id == 90 && wc[0].status == IBV_WC_LOC_PROT_ERR,
       "its MR deregistered before it left: IBV_WC_LOC_PROT_ERR (got %d: %s)", n,
       n == 1 ? ibv_wc_status_str(wc[0].status) : "-");
    teardown(&s, &c);

    /* An RDMA READ whose destination is deregistered before it lands. */
    if (connect_pair(&s, &c, 0) < 0) {
        ok(0, "connect");
        return;
    }
    rnr_forever(&s, &c);
    mr2 = ibv_reg_mr(c.pd, c.buf + 8192, 4096, IBV_ACCESS_LOCAL_WRITE);
    fill(s.buf, 4096, 9);
    memset(c.buf + 8192, 0, 4096);
    {
        struct ibv_sge sge = { (uintptr_t)c.buf + 8192, 4096, mr2->lkey };
        struct ibv_send_wr wr, *bad;

        ok(post_one(&c, IBV_WR_SEND, 91, 0, 8, 0, 0) == 0, "a SEND the peer is not ready for");
        memset(&wr, 0, sizeof wr);
        wr.wr_id = 92;
        wr.opcode = IBV_WR_RDMA_READ;
        wr.sg_list = &sge;
        wr.num_sge = 1;
        wr.send_flags = IBV_SEND_SIGNALED;
        wr.wr.rdma.remote_addr = (uintptr_t)s.buf;
        wr.wr.rdma.rkey = s.mr->rkey;
        ok(ibv_post_send(c.id->qp, &wr, &bad) == 0, "an RDMA READ behind it");
    }
    ibv_dereg_mr(mr2);
    post_recv(&s, 1000, 0, 4096);
    ok(wait_wc(c.cq, wc, 2) == 2 && wc[0].wr_id == 91 && wc[0].status == IBV_WC_SUCCESS &&
       wc[1].wr_id == 92 && wc[1].status == IBV_WC_LOC_PROT_ERR,
       "READ destination deregistered before completion: IBV_WC_LOC_PROT_ERR");
    ok(memcmp(c.buf + 8192, s.buf, 16) != 0, "nothing landed in the deregistered memory");
    teardown(&s, &c);
}

static void
test_keys(void)
{
    struct ibv_context *ctx = ibv_open_device(ibv_get_device_list(NULL)[0]);
    struct ibv_pd *pd = ibv_alloc_pd(ctx);
    void *buf = calloc(1, 8192);
    struct ibv_mr *l = ibv_reg_mr(pd, buf, 4096, IBV_ACCESS_LOCAL_WRITE);
    struct ibv_mr *r = ibv_reg_mr(pd, (char *)buf + 4096, 4096,
                                  IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ);

    ok(l && r && l->rkey == 0 && r->rkey == r->lkey && l->lkey != r->lkey,
       "rkey: 0 without remote access, equal to the lkey with it (rxe)");
    ibv_dereg_mr(l);
    ibv_dereg_mr(r);
    ibv_dealloc_pd(pd);
    free(buf);
}

static void
test_busy(void)
{
    struct ibv_context *ctx = ibv_open_device(ibv_get_device_list(NULL)[0]);
    struct ibv_pd *pd = ibv_alloc_pd(ctx);
    struct ibv_cq *cq = ibv_create_cq(ctx, 16, NULL, NULL, 0);
    void *buf = calloc(1, 4096);
    struct ibv_mr *mr = ibv_reg_mr(pd, buf, 4096, IBV_ACCESS_LOCAL_WRITE);
    struct ibv_qp_init_attr a;
    struct ibv_qp *qp;
    int rc;

    rc = ibv_dealloc_pd(pd);
    ok(rc == EBUSY, "ibv_dealloc_pd with an MR on it: EBUSY");
    ibv_dereg_mr(mr);
    if (rc != EBUSY) {
        free(buf);
        return;                 /* the PD is gone */
    }
    memset(&a, 0, sizeof a);
    a.send_cq = a.recv_cq = cq;
    a.qp_type = IBV_QPT_RC;
    a.cap.max_send_wr = a.cap.max_recv_wr = 4;
    a.cap.max_send_sge = a.cap.max_recv_sge = 1;
    qp = ibv_create_qp(pd, &a);
    ok(qp && ibv_destroy_cq(cq) == EBUSY, "ibv_destroy_cq with a QP on it: EBUSY");
    ok(ibv_dealloc_pd(pd) == EBUSY, "ibv_dealloc_pd with a QP on it: EBUSY");
    ok(qp && ibv_destroy_qp(qp) == 0 && ibv_destroy_cq(cq) == 0 && ibv_dealloc_pd(pd) == 0,
       "unused, they go");
    free(buf);
}

/* Drop CAP_IPC_LOCK from the effective set (a no-op without it). */
static int
drop_ipc_lock(void)
{
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2];

    if (syscall(SYS_capget, &h, d) != 0)
        return -1;
    d[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
    return (int)syscall(SYS_capset, &h, d);
}

static void
test_memlock(void)
{
    pid_t pid = fork();
    int status;

    if (pid < 0)
        die("fork");
    if (pid == 0) {
        /* Exit status: bit per failed expectation. */
        struct rlimit rl = { 1 << 20, 1 << 20 };
        struct ibv_context *ctx = ibv_open_device(ibv_get_device_list(NULL)[0]);
        struct ibv_pd *pd = ibv_alloc_pd(ctx);
        char *buf = aligned_alloc(4096, 2 << 20);
        struct ibv_mr *a, *b;
        int bits = 0;

        if (drop_ipc_lock() != 0 || setrlimit(RLIMIT_MEMLOCK, &rl) != 0 || !buf)
            _exit(64);
        a = ibv_reg_mr(pd, buf, 512 << 10, IBV_ACCESS_LOCAL_WRITE);
        if (!a)
            bits |= 1;
        errno = 0;
        b = ibv_reg_mr(pd, buf + (1 << 20), 1 << 20, IBV_ACCESS_LOCAL_WRITE);
        if (b || errno != ENOMEM)
            bits |= 2;
        if (a)
            ibv_dereg_mr(a);
        if (b)
            ibv_dereg_mr(b);
        b = ibv_reg_mr(pd, buf + (1 << 20), 1 << 20, IBV_ACCESS_LOCAL_WRITE);
        if (!b)
            bits |= 4;
        _exit(bits);
    }
    ok(waitpid(pid, &status, 0) == pid && WIFEXITED(status), "memlock: child ran");
    ok(WIFEXITED(status) && !(WEXITSTATUS(status) & 65),
       "memlock: 512 KiB registered under a 1 MiB limit without CAP_IPC_LOCK");
    ok(WIFEXITED(status) && !(WEXITSTATUS(status) & 66),
       "memlock: 1 MiB more fails with ENOMEM");
    ok(WIFEXITED(status) && !(WEXITSTATUS(status) & 68),
       "memlock: deregistering gives the pages back");
}

static void
test_cq_arm(void)
{
    struct end s, c;
    struct ibv_cq *ecq;
    void *ectx;
    struct ibv_wc wc[2];
    struct pollfd p;

    if (connect_pair(&s, &c, 0) < 0) {
        ok(0, "connect");
        return;
    }
    p.fd = c.cc->fd;
    p.events = POLLIN;
    ibv_req_notify_cq(c.cq, 0);
    post_one(&c, IBV_WR_RDMA_WRITE, 95, 0, 64, (uintptr_t)s.buf, s.mr->rkey);
    ok(poll(&p, 1, DEADLINE_MS) == 1 && ibv_get_cq_event(c.cc, &ecq, &ectx) == 0,
       "armed CQ: a completion notifies");
    ibv_ack_cq_events(ecq, 1);
    ibv_req_notify_cq(c.cq, 0);
    ok(poll(&p, 1, 100) == 0,
       "re-arming a CQ that still holds a completion does not notify for it");
    post_one(&c, IBV_WR_RDMA_WRITE, 96, 0, 64, (uintptr_t)s.buf, s.mr->rkey);
    ok(poll(&p, 1, DEADLINE_MS) == 1 && ibv_get_cq_event(c.cc, &ecq, &ectx) == 0,
       "the next completion does");
    ibv_ack_cq_events(ecq, 1);
    ok(wait_wc(c.cq, wc, 2) == 2, "both completions were there");
    teardown(&s, &c);
}

static void
test_cq_overflow(void)
{
    struct end s, c;
    struct ibv_async_event ev;
    struct ibv_context *ctx;
    struct pollfd p;
    int got = 0;

    cq_size = 1;
    if (connect_pair(&s, &c, 0) < 0) {
        cq_size = 256;
        ok(0, "connect");
        return;
    }
    cq_size = 256;
    ctx = c.id->verbs;
    ok(c.cq->cqe == 1, "a CQ of 1 holds 1 (rxe rounding)");
    post_one(&c, IBV_WR_RDMA_WRITE, 97, 0, 64, (uintptr_t)s.buf, s.mr->rkey);
    post_one(&c, IBV_WR_RDMA_WRITE, 98, 0, 64, (uintptr_t)s.buf, s.mr->rkey);
    p.fd = ctx->async_fd;
    p.events = POLLIN;
    if (poll(&p, 1, DEADLINE_MS) == 1 && ibv_get_async_event(ctx, &ev) == 0) {
        got = ev.event_type == IBV_EVENT_CQ_ERR && ev.element.cq == c.cq;
        ibv_ack_async_event(&ev);
    }
    ok(got, "CQ overflow: IBV_EVENT_CQ_ERR on the async fd");
    ok(qp_attr(c.id->qp).qp_state == IBV_QPS_ERR, "CQ overflow: the QP is in the error state");
    teardown(&s, &c);
    /* Flushes into the full CQ raised more events: drop them. */
    while (poll(&p, 1, 0) == 1 && ibv_get_async_event(ctx, &ev) == 0)
        ibv_ack_async_event(&ev);
}

/* A peer that stops answering (SIGSTOP): the request fails after the
 * QP's timeout and retry count, and the connection is declared gone. */
static void
test_stalled_peer(void)
{
    int pfd[2], status, port = 0;
    char ready;
    pid_t pid;
    struct end c;
    struct ibv_wc wc[2];
    struct ibv_qp_attr a;
    struct pollfd p;
    long long t0;

    if (pipe(pfd) < 0)
        die("pipe");
    pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        struct end s;

        close(pfd[0]);
        rdma_destroy_id(listener);
        start_listener();
        if (write(pfd[1], &listen_port, sizeof listen_port) != sizeof listen_port)
            _exit(2);
        if (server_accept(&s, 4) < 0 ||
            expect_event(lch, RDMA_CM_EVENT_ESTABLISHED, NULL, NULL) < 0)
            _exit(3);
        if (write(pfd[1], "r", 1) != 1)
            _exit(2);
        for (;;)
            pause();            /* SIGSTOPped, then SIGKILLed */
    }
    close(pfd[1]);
    p.fd = pfd[0];
    p.events = POLLIN;
    ok(poll(&p, 1, DEADLINE_MS) == 1 && read(pfd[0], &port, sizeof port) == sizeof port &&
       client_connect(&c, port) == 0 &&
       expect_event(c.ch, RDMA_CM_EVENT_ESTABLISHED, NULL, NULL) == 0 &&
       poll(&p, 1, DEADLINE_MS) == 1 && read(pfd[0], &ready, 1) == 1,
       "stall: connected to a child");
    close(pfd[0]);
    memset(&a, 0, sizeof a);
    a.timeout = 12;             /* 16.8 ms */
    a.retry_cnt = 2;
    ibv_modify_qp(c.id->qp, &a, IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT);
    kill(pid, SIGSTOP);
    waitpid(pid, &status, WUNTRACED);
    t0 = now_ms();
    ok(post_one(&c, IBV_WR_SEND, 99, 0, 8, 0, 0) == 0 && wait_wc(c.cq, wc, 1) == 1 &&
       wc[0].status == IBV_WC_RETRY_EXC_ERR,
       "stall: IBV_WC_RETRY_EXC_ERR");
    ok(now_ms() - t0 >= 3 * 16, "stall: not before (retry_cnt + 1) timeouts");
    ok(expect_event(c.ch, RDMA_CM_EVENT_DISCONNECTED, NULL, NULL) == 0,
       "stall: DISCONNECTED");
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    end_free(&c, 1);
}

/* ---- the ALUA stand-in of an iSER initiator (alua.c) ----
 * The client plays libiscsi (iSER header, SCSI Command PDU, Data-In
 * expected at a read STag/VA of its buffer), the server plays tgtd (RDMA
 * WRITE of the data, then the SCSI Response).  Without SOFTRDMA_ALUA the
 * client must get exactly what the server sent; with it, the answers of
 * tests/alua_answers.c.  verbs-test.test runs "alua" both ways. */

#define ISER_HDR 28
#define A_RX 4096               /* client: where the response lands */
#define A_DATA 65536            /* client: the command's Data-In buffer */

static uint32_t
be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void
put_be32(unsigned char *p, uint32_t v)
{
    p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

static void
put_be64(unsigned char *p, uint64_t v)
{
    put_be32(p, v >> 32);
    put_be32(p + 4, (uint32_t)v);
}

/* One command: the client sends cdb (expecting edtl bytes in); the server
 * writes tdata (tlen bytes) and answers status (with sense key/asc/ascq
 * when CHECK CONDITION).  The response the client got is at c->buf + A_RX,
 * the data at c->buf + A_DATA.  0, or -1 if a step failed. */
static int
alua_cmd(struct end *s, struct end *c, uint32_t itt, const unsigned char *cdb,
         uint32_t edtl, const unsigned char *tdata, uint32_t tlen, uint8_t status,
         uint8_t key, uint8_t asc)
{
    unsigned char *m = c->buf, *r, *rsp = s->buf + 16384;
    struct ibv_wc wc[2];
    uint32_t rstag, dlen = status ? 20 : 0;
    uint64_t rva;
    int i, got_recv = 0;

    memset(c->buf, 0, A_RX + 4096);
    memset(c->buf + A_DATA, 0xee, 4096);
    m[0] = 0x10 | (edtl ? 0x04 : 0);            /* iSCSI PDU, read STag valid */
    if (edtl) {
        put_be32(m + 16, c->mr->rkey);
        put_be64(m + 20, (uintptr_t)c->buf + A_DATA);
    }
    m[ISER_HDR] = 0x01;                         /* SCSI Command */
    m[ISER_HDR + 1] = 0x80 | (edtl ? 0x40 : 0); /* F, R */
    put_be32(m + ISER_HDR + 16, itt);
    put_be32(m + ISER_HDR + 20, edtl);
    memcpy(m + ISER_HDR + 32, cdb, 16);
    if (post_recv(c, 3000 + itt, A_RX, 4096) != 0 ||
        post_one(c, IBV_WR_SEND, itt, 0, ISER_HDR + 48, 0, 0) != 0 ||
        wait_wc(s->cq, wc, 1) != 1 || wc[0].status != IBV_WC_SUCCESS)
        return -1;
    r = s->buf + (wc[0].wr_id - 1000) * 4096;
    rstag = be32(r + 16);
    rva = (uint64_t)be32(r + 20) << 32 | be32(r + 24);
    if (be32(r + ISER_HDR + 16) != itt || post_recv(s, wc[0].wr_id, (wc[0].wr_id - 1000) * 4096, 4096) != 0)
        return -1;
    if (tlen) {
        memcpy(s->buf + 32768, tdata, tlen);
        if (post_one(s, IBV_WR_RDMA_WRITE, 1, 32768, tlen, rva, rstag) != 0 ||
            wait_wc(s->cq, wc, 1) != 1 || wc[0].status != IBV_WC_SUCCESS)
            return -1;
    }
    memset(rsp, 0, ISER_HDR + 48 + 20);
    rsp[0] = 0x10;
    rsp[ISER_HDR] = 0x21;                       /* SCSI Response */
    rsp[ISER_HDR + 1] = 0x80 | (tlen < edtl ? 0x02 : 0);
    rsp[ISER_HDR + 3] = status;
    rsp[ISER_HDR + 7] = dlen;
    put_be32(rsp + ISER_HDR + 16, itt);
    put_be32(rsp + ISER_HDR + 24, 77);          /* StatSN */
    put_be32(rsp + ISER_HDR + 44, edtl - tlen);
    if (status) {
        rsp[ISER_HDR + 48 + 1] = 18;
        rsp[ISER_HDR + 48 + 2] = 0x70;
        rsp[ISER_HDR + 48 + 4] = key;
        rsp[ISER_HDR + 48 + 14] = asc;
    }
    if (post_one(s, IBV_WR_SEND, 2, 16384, ISER_HDR + 48 + dlen, 0, 0) != 0 ||
        wait_wc(s->cq, wc, 1) != 1 || wc[0].status != IBV_WC_SUCCESS ||
        wait_wc(c->cq, wc, 2) != 2)
        return -1;
    for (i = 0; i < 2; i++) {
        if (wc[i].status != IBV_WC_SUCCESS)
            return -1;
        got_recv |= wc[i].opcode == IBV_WC_RECV;
    }
    return got_recv ? 0 : -1;
}

/* The response's status, residual and sense key/ASC/ASCQ (0 if none). */
static void
alua_rsp(const struct end *c, int *status, uint32_t *resid, int *sense)
{
    const unsigned char *r = c->buf + A_RX + ISER_HDR, *d = r + 48;

    *status = r[3];
    *resid = (r[1] & 0x02) ? be32(r + 44) : 0;
    *sense = (r[5] << 16 | r[6] << 8 | r[7]) >= 18 ?
             (d[4] & 0x0f) << 16 | d[14] << 8 | d[15] : 0;
}

static void
test_alua(void)
{
    static const unsigned char inq[16] = { 0x12, 0, 0, 0, 96 },
        vpd[16] = { 0x12, 1, 0x83, 0, 255 },
        rtpg[16] = { 0xa3, 0x2a, 0, 0, 0, 0, 0, 0, 1, 0 },
        tur[16] = { 0 }, rd[16] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 1 };
    unsigned char tinq[36] = { 0, 0, 6, 2, 31 }, tvpd[12] = {
        0, 0x83, 0, 8, 0x02, 0x01, 0, 4, 'a', 'b', 'c', 'd' };
    const char *file = getenv("SOFTRDMA_ALUA");
    int on = file && *file, status, sense;
    const unsigned char *d;
    char group[64], tmp[4200];
    struct end s, c;
    uint32_t resid;
    FILE *fp;

    /* This port's group by the port connected to, a bare default beside. */
    snprintf(group, sizeof group, "3,%d:7", listen_port);
    setenv("SOFTRDMA_ALUA_GROUP", group, 1);
    if (connect_pair(&s, &c, 8) < 0) {
        ok(0, "alua: connect");
        return;
    }
    d = c.buf + A_DATA;
    ok(alua_cmd(&s, &c, 1, inq, 96, tinq, sizeof tinq, 0, 0, 0) == 0,
       "alua: INQUIRY answered");
    alua_rsp(&c, &status, &resid, &sense);
    ok(status == 0 && resid == 96 - sizeof tinq && d[2] == 6,
       "alua: INQUIRY GOOD, residual %u, the target's data", resid);
    ok((d[5] & 0x30) == (on ? 0x10 : 0), "alua: TPGS %s (byte 5 = 0x%02x)",
       on ? "set to 01b" : "left alone", d[5]);

    ok(alua_cmd(&s, &c, 2, vpd, 255, tvpd, sizeof tvpd, 0, 0, 0) == 0,
       "alua: VPD 0x83 answered");
    alua_rsp(&c, &status, &resid, &sense);
    if (on)
        ok(status == 0 && d[3] == 24 && resid == 255 - 28 && d[4] == 0x01 &&
           d[5] == 0x94 && d[11] == 7 && d[13] == 0x95 && d[19] == 7 &&
           memcmp(d + 20, tvpd + 4, 8) == 0,
           "alua: VPD 0x83: port and group 7 first, page length 24, residual %u", resid);
    else
        ok(status == 0 && resid == 255 - sizeof tvpd && memcmp(d, tvpd, sizeof tvpd) == 0 &&
           d[sizeof tvpd] == 0xee, "alua: VPD 0x83 as the target sent it");

    ok(alua_cmd(&s, &c, 3, rtpg, 256, NULL, 0, 2, 5, 0x20) == 0,
       "alua: REPORT TARGET PORT GROUPS answered");
    alua_rsp(&c, &status, &resid, &sense);
    if (on)
        ok(status == 0 && resid == 256 - 32 && be32(d) == 28 && d[4] == 0x10 &&
           d[8] == 0 && d[11] == 1 && d[20] == 2 && d[23] == 7 &&
           (c.buf[A_RX + ISER_HDR + 5] | c.buf[A_RX + ISER_HDR + 6] |
            c.buf[A_RX + ISER_HDR + 7]) == 0,
           "alua: REPORT TARGET PORT GROUPS: GOOD, extended, groups 1 ao and 7 "
           "standby, residual %u, no sense", resid);
    else
        ok(status == 2 && sense == 0x052000, "alua: REPORT TARGET PORT GROUPS: "
           "the target's CHECK CONDITION 05/20/00");

    ok(alua_cmd(&s, &c, 4, tur, 0, NULL, 0, 0, 0, 0) == 0, "alua: TEST UNIT READY answered");
    alua_rsp(&c, &status, &resid, &sense);
    ok(status == 0, "alua: states unchanged: no unit attention");
    if (on) {
        /* A new states file, renamed into place: the next command without
         * data-out gets the unit attention, once. */
        snprintf(tmp, sizeof tmp, "%s.new", file);
        fp = fopen(tmp, "w");
        ok(fp && fputs("1 standby\n7 ao\n", fp) >= 0 && fclose(fp) == 0 &&
           rename(tmp, file) == 0, "alua: states changed");
        ok(alua_cmd(&s, &c, 5, tur, 0, NULL, 0, 0, 0, 0) == 0 &&
           (alua_rsp(&c, &status, &resid, &sense), status == 2 && sense == 0x062a06),
           "alua: the next command: UNIT ATTENTION 2A/06");
        ok(alua_cmd(&s, &c, 6, tur, 0, NULL, 0, 0, 0, 0) == 0 &&
           (alua_rsp(&c, &status, &resid, &sense), status == 0),
           "alua: the one after: GOOD");
        ok(alua_cmd(&s, &c, 7, rtpg, 256, NULL, 0, 2, 5, 0x20) == 0 &&
           d[8] == 2 && d[20] == 0, "alua: the new states reported");
        /* FILE.notready naming another group: nothing; ours: one READ. */
        snprintf(tmp, sizeof tmp, "%s.notready", file);
        fp = fopen(tmp, "w");
        ok(fp && fputs("1\n", fp) >= 0 && fclose(fp) == 0, "alua: NOT READY for group 1");
        ok(alua_cmd(&s, &c, 8, rd, 512, tinq, sizeof tinq, 0, 0, 0) == 0 &&
           (alua_rsp(&c, &status, &resid, &sense), status == 0) && access(tmp, F_OK) < 0,
           "alua: a READ through group 7: GOOD, the request consumed");
        fp = fopen(tmp, "w");
        ok(fp && fputs("7\n", fp) >= 0 && fclose(fp) == 0, "alua: NOT READY for group 7");
        ok(alua_cmd(&s, &c, 9, tur, 0, NULL, 0, 0, 0, 0) == 0 &&
           (alua_rsp(&c, &status, &resid, &sense), status == 0),
           "alua: not a READ: GOOD");
        ok(alua_cmd(&s, &c, 10, rd, 512, tinq, sizeof tinq, 0, 0, 0) == 0 &&
           (alua_rsp(&c, &status, &resid, &sense), status == 2 && sense == 0x02040b),
           "alua: the READ: NOT READY 04/0B");
    }
    teardown(&s, &c);
}

static const struct {
    const char *name;
    void (*fn)(void);
} tests[] = {
    { "device", test_device }, { "fds", test_fds }, { "pingpong", test_pingpong },
    { "rdma", test_rdma }, { "violations", test_violations },
    { "local_errors", test_local_errors }, { "disconnect_flush", test_disconnect_flush },
    { "reject", test_reject_and_unreachable }, { "fork", test_fork },
    { "conn_params", test_conn_params }, { "queue_limits", test_queue_limits },
    { "send_completion", test_send_completion }, { "rnr_exceeded", test_rnr_exceeded },
    { "keys_at_transmit", test_keys_at_transmit }, { "keys", test_keys },
    { "busy", test_busy }, { "memlock", test_memlock }, { "cq_arm", test_cq_arm },
    { "cq_overflow", test_cq_overflow }, { "stalled_peer", test_stalled_peer },
    { "alua", test_alua },
};

/* verbs-test [NAME...]: every test, or only the named ones. */
int
main(int argc, char **argv)
{
    size_t i;
    int j, ran = 0;

    if (!getenv("SOFTRDMA_DIR")) {
        fprintf(stderr, "verbs-test: run me under softrdma-run with SOFTRDMA_DIR set\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    start_listener();
    for (i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        int want = argc < 2;

        for (j = 1; j < argc; j++)
            want |= strcmp(argv[j], tests[i].name) == 0;
        if (want) {
            printf("# %s\n", tests[i].name);
            tests[i].fn();
            ran++;
        }
    }
    rdma_destroy_id(listener);
    rdma_destroy_event_channel(lch);
    if (!ran) {
        fprintf(stderr, "verbs-test: no test by that name\n");
        return 2;
    }
    printf("1..%d\n", checks);
    if (failures)
        printf("# %d of %d checks failed\n", failures, checks);
    return failures ? 1 : 0;
}
