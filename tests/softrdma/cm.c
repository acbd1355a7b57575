/* softrdma: the connection manager (the machinery behind librdmacm.so.1).
 *
 * An RDMA "port" is an AF_UNIX socket named <addr>-<port> in $SOFTRDMA_DIR,
 * so nothing touches the network and separate test runs (separate dirs)
 * never collide.  A connection to 127.0.0.1:P finds 127.0.0.1-P, then the
 * IPv4 wildcard 0.0.0.0-P, then the IPv6 wildcard ::-P.
 *
 * Event sequences follow rdmacm over IB: the active side sees
 * ADDR_RESOLVED, ROUTE_RESOLVED, then ESTABLISHED or REJECTED; the passive
 * side CONNECT_REQUEST on a new id, then ESTABLISHED once it accepted.
 * Either side's rdma_disconnect, or the peer's exit, gives DISCONNECTED
 * followed by TIMEWAIT_EXIT on each side exactly once (tgtd frees a
 * connection on TIMEWAIT_EXIT). */
#define _GNU_SOURCE 1   /* accept4 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "softrdma.h"

#define SR_REJ_INVALID_SERVICE_ID 28   /* status of a REJECTED with no listener */
#define SR_REJ_CONSUMER_DEFINED 28     /* what rdma_reject gives the requester */

struct sr_cm_channel {
    struct rdma_event_channel ch;
    struct sr_evq q;
};

struct sr_cm_event {
    struct sr_node node;
    struct rdma_cm_event ev;
    uint8_t pdata[256];
};

static uint16_t sr_next_port;

/* ---- events ---- */

static struct sr_cm_event *
sr_cm_queue(struct sr_cmid *id, enum rdma_cm_event_type type, int status,
            const struct sr_connect *p)
{
    struct sr_cm_event *e;

    if (!id->id.channel)
        return NULL;
    e = calloc(1, sizeof *e);
    if (!e)
        abort();
    e->ev.id = &id->id;
    e->ev.event = type;
    e->ev.status = status;
    if (p) {
        e->ev.param.conn.responder_resources = p->responder_resources;
        e->ev.param.conn.initiator_depth = p->initiator_depth;
        e->ev.param.conn.private_data_len = p->pdata_len;
        memcpy(e->pdata, p->pdata, p->pdata_len);
        e->ev.param.conn.private_data = e->pdata;
    }
    sr_evq_push(&((struct sr_cm_channel *)id->id.channel)->q, &e->node);
    return e;
}

static int
sr_event_is_for(struct sr_node *n, void *id)
{
    struct sr_cm_event *e = (struct sr_cm_event *)n;

    return e->ev.id == id || e->ev.listen_id == id;
}

static void
sr_event_drop(struct sr_node *n)
{
    free(n);
}

struct rdma_event_channel *
softrdma_cm_create_event_channel(void)
{
    struct sr_cm_channel *c = calloc(1, sizeof *c);

    if (!c)
        return NULL;
    if (sr_evq_init(&c->q) < 0) {
        free(c);
        return NULL;
    }
    c->ch.fd = c->q.fd;
    return &c->ch;
}

void
softrdma_cm_destroy_event_channel(struct rdma_event_channel *ch)
{
    struct sr_cm_channel *c = (struct sr_cm_channel *)ch;
    struct sr_node *n;

    sr_lock();
    while ((n = c->q.head) != NULL) {
        c->q.head = n->next;
        free(n);
    }
    sr_unlock();
    sr_evq_destroy(&c->q);
    free(c);
}

int
softrdma_cm_get_event(struct rdma_event_channel *ch, struct rdma_cm_event **ev)
{
    struct sr_cm_event *e =
        (struct sr_cm_event *)sr_evq_pop(&((struct sr_cm_channel *)ch)->q);

    if (!e)
        return -1;
    *ev = &e->ev;
    return 0;
}

int
softrdma_cm_ack_event(struct rdma_cm_event *ev)
{
    free((char *)ev - offsetof(struct sr_cm_event, ev));
    return 0;
}

/* ---- ids ---- */

int
softrdma_cm_create_id(struct rdma_event_channel *ch, struct rdma_cm_id **out,
                      void *context, enum rdma_port_space ps)
{
    struct sr_cmid *id = calloc(1, sizeof *id);

    if (!id)
        return -1;
    id->id.channel = ch;
    id->id.context = context;
    id->id.ps = ps;
    id->id.qp_type = IBV_QPT_RC;
    id->id.port_num = 1;
    id->listen_fd = -1;
    id->ack_timeout = -1;
    *out = &id->id;
    return 0;
}

int
softrdma_cm_destroy_id(struct rdma_cm_id *cmid)
{
    struct sr_cmid *id = (struct sr_cmid *)cmid;
    struct sr_conn *c;

    sr_lock();
    if (cmid->channel)
        sr_evq_remove_if(&((struct sr_cm_channel *)cmid->channel)->q,
                         sr_event_is_for, cmid, sr_event_drop);
    if (id->conn) {
        id->conn->id = NULL;
        sr_conn_free(id->conn);     /* the peer sees the hang-up */
    }
    if (id->listen_conn) {
        /* Drop half-open connections that came in on this listener. */
        struct sr_conn *next;

        for (c = sr_conn_first(); c; c = next) {
            next = c->next;
            if (c->state == SR_C_INCOMING && c->listen_id == id && !c->listener)
                sr_conn_free(c);
        }
        sr_conn_free(id->listen_conn);  /* closes listen_fd */
        id->listen_fd = -1;
    }
    if (id->listen_fd >= 0)
        close(id->listen_fd);
    if (id->path[0] && id->owner == getpid())
        unlink(id->path);       /* not in a fork child: the name is the parent's */
    sr_unlock();
    free(id);
    return 0;
}

int
softrdma_cm_set_option(struct rdma_cm_id *cmid, int level, int name, void *val,
                       size_t len)
{
    struct sr_cmid *id = (struct sr_cmid *)cmid;

    if (level != RDMA_OPTION_ID) {
        errno = ENOSYS;
        return -1;
    }
    if (name == RDMA_OPTION_ID_AFONLY && len == sizeof(int))
        id->afonly = *(int *)val;
    else if (name == RDMA_OPTION_ID_ACK_TIMEOUT && len >= 1)
        id->ack_timeout = *(uint8_t *)val;
    else if (name != RDMA_OPTION_ID_TOS && name != RDMA_OPTION_ID_REUSEADDR &&
             name != RDMA_OPTION_ID_ACK_TIMEOUT) {
        errno = ENOSYS;
        return -1;
    }
    return 0;
}

/* ---- addresses → socket names ---- */

static int
sr_addr_port(const struct sockaddr *sa, char *host, size_t hlen, unsigned *port)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, hlen);
        *port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, hlen);
        *port = ntohs(in6->sin6_port);
    } else {
        errno = EAFNOSUPPORT;
        return -1;
    }
    return 0;
}

static void
sr_set_port(struct sockaddr *sa, unsigned port)
{
    if (sa->sa_family == AF_INET)
        ((struct sockaddr_in *)sa)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
}

static size_t
sr_addr_len(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                    : sizeof(struct sockaddr_in6);
}

/* Fill un with $SOFTRDMA_DIR/<host>-<port>. */
static int
sr_sock_name(struct sockaddr_un *un, const char *host, unsigned port)
{
    const char *dir = getenv("SOFTRDMA_DIR");
    int n;

    if (!dir || !*dir) {
        static int warned;
        if (!warned++)
            fprintf(stderr, "softrdma: SOFTRDMA_DIR is not set; no RDMA ports available\n");
        errno = EADDRNOTAVAIL;
        return -1;
    }
    memset(un, 0, sizeof *un);
    un->sun_family = AF_UNIX;
    n = snprintf(un->sun_path, sizeof un->sun_path, "%s/%s-%u", dir, host, port);
    if (n < 0 || (size_t)n >= sizeof un->sun_path) {
        fprintf(stderr, "softrdma: SOFTRDMA_DIR %s is too long for a socket name\n", dir);
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* Bind a listening socket to un, replacing a stale name left by a dead
 * process (nobody accepts on it any more). */
static int
sr_bind_unix(const struct sockaddr_un *un)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    if (fd < 0)
        return -1;
    if (bind(fd, (const struct sockaddr *)un, sizeof *un) == 0)
        return fd;
    if (errno == EADDRINUSE) {
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int live = probe >= 0 &&
                   connect(probe, (const struct sockaddr *)un, sizeof *un) == 0;

        if (probe >= 0)
            close(probe);
        if (!live && unlink(un->sun_path) == 0 &&
            bind(fd, (const struct sockaddr *)un, sizeof *un) == 0)
            return fd;
        errno = EADDRINUSE;
    }
    close(fd);
    return -1;
}

int
softrdma_cm_bind_addr(struct rdma_cm_id *cmid, struct sockaddr *addr)
{
    struct sr_cmid *id = (struct sr_cmid *)cmid;
    struct sockaddr_un un;
    char host[INET6_ADDRSTRLEN];
    unsigned port;
    int tries;

    if (sr_addr_port(addr, host, sizeof host, &port) < 0)
        return -1;
    memcpy(&cmid->route.addr.src_addr, addr, sr_addr_len(addr));
    for (tries = 0; tries < 1000; tries++) {
        unsigned p = port;
        int fd;

        if (!p) {               /* ephemeral: pick one from a pid-based range */
            sr_lock();
            if (!sr_next_port)
                sr_next_port = 20000 + (getpid() % 2000) * 16;
            p = sr_next_port++;
            sr_unlock();
        }
        if (sr_sock_name(&un, host, p) < 0)
            return -1;
        fd = sr_bind_unix(&un);
        if (fd >= 0) {
            sr_set_port(&cmid->route.addr.src_addr, p);
            id->listen_fd = fd;
            strcpy(id->path, un.sun_path);
            id->owner = getpid();
            id->bound = 1;
            cmid->verbs = sr_context();
            return 0;
        }
        if (port || errno != EADDRINUSE)
            return -1;
    }
    return -1;
}

int
softrdma_cm_listen(struct rdma_cm_id *cmid, int backlog)
{
    struct sr_cmid *id = (struct sr_cmid *)cmid;
    struct sr_conn *c;

    if (!id->bound) {
        errno = EINVAL;
        return -1;
    }
    if (listen(id->listen_fd, backlog > 0 ? backlog : 128) < 0)
        return -1;
    sr_lock();
    c = sr_conn_new(id->listen_fd, 1);
    if (!c) {
        sr_unlock();
        return -1;
    }
    c->listen_id = id;
    id->listen_conn = c;
    sr_progress_start();
    sr_unlock();
    return 0;
}

void
sr_cm_on_incoming(struct sr_conn *l)
{
    int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    struct sr_conn *c;

    if (fd < 0)
        return;
    c = sr_conn_new(fd, 0);
    if (!c) {
        close(fd);
        return;
    }
    c->state = SR_C_INCOMING;
    c->listen_id = l->listen_id;
}

/* ---- active side ---- */

int
softrdma_cm_resolve_addr(struct rdma_cm_id *cmid, struct sockaddr *src,
                         struct sockaddr *dst, int timeout_ms)
{
    struct sr_cmid *id = (struct sr_cmid *)cmid;
    struct sockaddr_storage me;
    static unsigned next_src_port = 33000;

    (void)timeout_ms;
    if (!dst || (dst->sa_family != AF_INET && dst->sa_family != AF_INET6)) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    memset(&me, 0, sizeof me);
    if (src) {
        memcpy(&me, src, sr_addr_len(src));
    } else if (dst->sa_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&me;
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&me;
        in6->sin6_family = AF_INET6;
        in6->sin6_addr = in6addr_loopback;
    }
    sr_lock();
    if (((struct sockaddr_in *)&me)->sin_port == 0)
        sr_set_port((struct sockaddr *)&me, next_src_port++);
    memcpy(&cmid->route.addr.src_addr, &me, sizeof me < sizeof cmid->route.addr.src_storage ? sizeof me : sizeof cmid->route.addr.src_storage);
    memcpy(&cmid->route.addr.dst_addr, dst, sr_addr_len(dst));
    cmid->verbs = sr_context();
    sr_cm_queue(id, RDMA_CM_EVENT_ADDR_RESOLVED, 0, NULL);
    sr_unlock();
    return 0;
}

int
softrdma_cm_resolve_route(struct rdma_cm_id *cmid, int timeout_ms)
{
    (void)timeout_ms;
    if (!cmid->verbs) {
        errno = EINVAL;
        return -1;
    }
    sr_lock();
    sr_cm_queue((struct sr_cmid *)cmid, RDMA_CM_EVENT_ROUTE_RESOLVED, 0, NULL);
    sr_unlock();
    return 0;
}

/* Connect a stream to the listener serving dst, trying the exact address
 * and then the wildcards.  -1 if nobody listens. */
static int
sr_dial(const struct sockaddr *dst)
{
    char host[INET6_ADDRSTRLEN];
    const char *cands[3];
    unsigned port;
    int i, n = 0;

    if (sr_addr_port(dst, host, sizeof host, &port) < 0)
        return -1;
    cands[n++] = host;
    cands[n++] = dst->sa_family == AF_INET ? "0.0.0.0" : "::";
    if (dst->sa_family == AF_INET)
        cands[n++] = "::";
    for (i = 0; i < n; i++) {
        struct sockaddr_un un;
        int fd;

        if (sr_sock_name(&un, cands[i], port) < 0)
            return -1;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        if (connect(fd, (struct sockaddr *)&un, sizeof un) == 0) {
            if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
                close(fd);
                return -1;
            }
            return fd;
        }
        close(fd);
    }
    return -1;
}

static void
sr_conn_params(struct sr_connect *m, const struct rdma_conn_param *p)
{
    memset(m, 0, sizeof *m);
    if (!p)
        return;
    m->responder_resources = p->responder_resources;
    m->initiator_depth = p->initiator_depth;
    m->retry_count = p->retry_count & 7;
    m->rnr_retry_count = p->rnr_retry_count & 7;
    m->pdata_len = p->private_data ? p->private_data_len : 0;
    if (m->pdata_len)
        memcpy(m->pdata, p->private_data, m->pdata_len);
}

int
softrdma_cm_connect(struct rdma_cm_id *cmid, struct rdma_conn_param *p)
{
    struct sr_cmid *id = (struct sr_cmid *)cmid;
    struct sr_connect m;
    struct sr_frame f;
    struct sr_conn *c;
    int fd;

    if (!cmid->verbs || id->conn) {
        errno = EINVAL;
        return -1;
    }
    fd = sr_dial(&cmid->route.addr.dst_addr);
    sr_lock();
    if (fd < 0) {
        /* What rdmacm reports when no one listens on the service. */
        sr_cm_queue(id, RDMA_CM_EVENT_REJECTED, SR_REJ_INVALID_SERVICE_ID, NULL);
        sr_unlock();
        return 0;
    }
    c = sr_conn_new(fd, 0);
    if (!c) {
        close(fd);
        sr_unlock();
        return -1;
    }
    c->state = SR_C_CONNECTING;
    c->id = id;
    id->conn = c;
    if (cmid->qp) {
        sr_qp_attach((struct sr_qp *)cmid->qp, c);
        sr_qp_alua((struct sr_qp *)cmid->qp, &cmid->route.addr.dst_addr);
    }
    sr_conn_params(&m, p);
    /* IB CM: the REQ's retry count is both sides'; the active side's RNR
     * retry count comes with the REP (the passive side's accept). */
    id->retry_count = m.retry_count;
    memcpy(&m.src, &cmid->route.addr.src_storage, sizeof m.src);
    memcpy(&m.dst, &cmid->route.addr.dst_storage, sizeof m.dst);
    memset(&f, 0, sizeof f);
    f.type = SR_F_CONNECT;
    sr_conn_send(c, &f, &m, sizeof m);
    sr_progress_start();
    sr_unlock();
    return 0;
}

/* ---- passive side ---- */

static void
sr_cm_on_connect(struct sr_conn *c, const struct sr_connect *m)
{
    struct sr_cmid *l = c->listen_id, *id;
    struct sr_cm_event *e;
    struct sr_connect mirror;

    if (!l)
        return;
    id = calloc(1, sizeof *id);
    if (!id)
        abort();
    id->id.channel = l->id.channel;
    id->id.context = l->id.context;
    id->id.ps = l->id.ps;
    id->id.qp_type = IBV_QPT_RC;
    id->id.port_num = 1;
    id->id.verbs = sr_context();
    id->listen_fd = -1;
    id->ack_timeout = l->ack_timeout;
    id->retry_count = m->retry_count;
    id->rnr_retry_count = m->rnr_retry_count;
    memcpy(&id->id.route.addr.src_storage, &m->dst, sizeof m->dst);
    memcpy(&id->id.route.addr.dst_storage, &m->src, sizeof m->src);
    id->conn = c;
    c->id = id;
    c->state = SR_C_REQUESTED;
    /* The request's view is the mirror of the requester's parameters:
     * tgtd caps its initiator_depth by the event's initiator_depth. */
    mirror = *m;
    mirror.responder_resources = m->initiator_depth;
    mirror.initiator_depth = m->responder_resources;
    e = sr_cm_queue(id, RDMA_CM_EVENT_CONNECT_REQUEST, 0, &mirror);
    if (e)
        e->ev.listen_id = &l->id;
}

int
softrdma_cm_accept(struct rdma_cm_id *cmid, struct rdma_conn_param *p)
{
    struct sr_cmid *id = (struct sr_cmid *)cmid;
    struct sr_connect m;
    struct sr_frame f;
    struct sr_conn *c;

    sr_lock();
    c = id->conn;
    if (!c || c->state != SR_C_REQUESTED) {
        sr_unlock();
        errno = EINVAL;
        return -1;
    }
    if (c->fd < 0) {            /* the requester already went away */
        c->state = SR_C_CLOSED;
        sr_unlock();
        errno = ECONNRESET;
        return -1;
    }
    sr_conn_params(&m, p);
    memset(&f, 0, sizeof f);
    f.type = SR_F_ACCEPT;
    sr_conn_send(c, &f, &m, sizeof m);
    c->state = SR_C_ESTABLISHED;
    if (cmid->qp) {
        sr_qp_set_conn_attrs((struct sr_qp *)cmid->qp, id->retry_count,
                             id->rnr_retry_count, id->ack_timeout);
        sr_qp_set_rts((struct sr_qp *)cmid->qp);
    }
    sr_cm_queue(id, RDMA_CM_EVENT_ESTABLISHED, 0, &m);
    sr_unlock();
    return 0;
}

int
softrdma_cm_reject(struct rdma_cm_id *cmid, const void *pdata, uint8_t len)
{
    struct sr_cmid *id = (struct sr_cmid *)cmid;
    struct sr_frame f;

    sr_lock();
    if (!id->conn || id->conn->state != SR_C_REQUESTED) {
        sr_unlock();
        errno = EINVAL;
        return -1;
    }
    memset(&f, 0, sizeof f);
    f.type = SR_F_REJECT;
    sr_conn_send(id->conn, &f, pdata, pdata ? len : 0);
    id->conn->state = SR_C_CLOSED;
    sr_unlock();
    return 0;
}

/* ---- teardown ---- */

/* The connection is over: flush the QP, tell the application once. */
static void
sr_cm_disconnected(struct sr_cmid *id)
{
    struct sr_conn *c = id->conn;

    if (c->state == SR_C_CLOSED)
        return;
    c->state = SR_C_CLOSED;
    if (c->qp)
        sr_qp_set_error(c->qp);
    sr_cm_queue(id, RDMA_CM_EVENT_DISCONNECTED, 0, NULL);
    sr_cm_queue(id, RDMA_CM_EVENT_TIMEWAIT_EXIT, 0, NULL);
    sr_stats_write();
}

int
softrdma_cm_disconnect(struct rdma_cm_id *cmid)
{
    struct sr_cmid *id = (struct sr_cmid *)cmid;
    struct sr_frame f;
    struct sr_conn *c;

    sr_lock();
    c = id->conn;
    if (!c) {
        sr_unlock();
        errno = EINVAL;
        return -1;
    }
    if (c->state == SR_C_ESTABLISHED || c->state == SR_C_CONNECTING) {
        int was_established = c->state == SR_C_ESTABLISHED;

        memset(&f, 0, sizeof f);
        f.type = SR_F_DISCONNECT;
        sr_conn_send(c, &f, NULL, 0);
        if (was_established) {
            sr_cm_disconnected(id);
        } else {
            c->state = SR_C_CLOSED;
            if (c->qp)
                sr_qp_set_error(c->qp);
        }
    }
    sr_unlock();
    return 0;
}

void
sr_cm_on_frame(struct sr_conn *c, const struct sr_frame *f, const unsigned char *payload)
{
    struct sr_connect m;

    memset(&m, 0, sizeof m);
    if ((f->type == SR_F_CONNECT || f->type == SR_F_ACCEPT) && f->plen == sizeof m)
        memcpy(&m, payload, sizeof m);
    switch (f->type) {
    case SR_F_CONNECT:
        if (c->state == SR_C_INCOMING)
            sr_cm_on_connect(c, &m);
        break;
    case SR_F_ACCEPT:
        if (c->state == SR_C_CONNECTING && c->id) {
            c->state = SR_C_ESTABLISHED;
            c->id->rnr_retry_count = m.rnr_retry_count;
            if (c->qp) {
                sr_qp_set_conn_attrs(c->qp, c->id->retry_count,
                                     c->id->rnr_retry_count, c->id->ack_timeout);
                sr_qp_set_rts(c->qp);
            }
            sr_cm_queue(c->id, RDMA_CM_EVENT_ESTABLISHED, 0, &m);
        }
        break;
    case SR_F_REJECT:
        if (c->state == SR_C_CONNECTING && c->id) {
            m.pdata_len = f->plen < sizeof m.pdata ? f->plen : sizeof m.pdata;
            memcpy(m.pdata, payload, m.pdata_len);
            c->state = SR_C_CLOSED;
            if (c->qp)
                sr_qp_set_error(c->qp);
            sr_cm_queue(c->id, RDMA_CM_EVENT_REJECTED, SR_REJ_CONSUMER_DEFINED, &m);
        }
        break;
    case SR_F_DISCONNECT:
        if (c->id && c->state == SR_C_ESTABLISHED)
            sr_cm_disconnected(c->id);
        else if (c->state != SR_C_INCOMING)
            c->state = SR_C_CLOSED;
        break;
    default:
        break;
    }
}

/* The QP ran out of transport retries (a peer that stopped answering): the
 * connection is over, as when the CM's DREQ goes unanswered. */
void
sr_cm_on_retry_exceeded(struct sr_conn *c)
{
    struct sr_frame f;

    if (!c->id || c->state != SR_C_ESTABLISHED)
        return;
    memset(&f, 0, sizeof f);
    f.type = SR_F_DISCONNECT;
    sr_conn_send(c, &f, NULL, 0);
    sr_cm_disconnected(c->id);
}

void
sr_cm_on_hangup(struct sr_conn *c)
{
    switch (c->state) {
    case SR_C_INCOMING:
        sr_conn_free(c);        /* nobody owns it yet */
        break;
    case SR_C_CONNECTING:
        c->state = SR_C_CLOSED;
        if (c->qp)
            sr_qp_set_error(c->qp);
        if (c->id)
            sr_cm_queue(c->id, RDMA_CM_EVENT_CONNECT_ERROR, -ECONNRESET, NULL);
        break;
    case SR_C_ESTABLISHED:
        if (c->id)
            sr_cm_disconnected(c->id);
        else
            c->state = SR_C_CLOSED;
        break;
    default:
        c->state = SR_C_CLOSED;
        if (c->qp)
            sr_qp_set_error(c->qp);
        break;
    }
}

/* ---- queue pairs on ids ---- */

int
softrdma_cm_create_qp(struct rdma_cm_id *cmid, struct ibv_pd *pd,
                      struct ibv_qp_init_attr *attr)
{
    struct sr_cmid *id = (struct sr_cmid *)cmid;
    struct sr_qp *q;

    if (!pd)
        pd = cmid->pd;
    if (!pd || !cmid->verbs) {
        errno = EINVAL;
        return -1;
    }
    q = sr_qp_create(pd, attr);
    if (!q)
        return -1;
    sr_lock();
    cmid->qp = sr_qp_ibv(q);
    if (id->conn) {
        sr_qp_attach(q, id->conn);
        if (id->conn->state == SR_C_ESTABLISHED) {
            sr_qp_set_conn_attrs(q, id->retry_count, id->rnr_retry_count,
                                 id->ack_timeout);
            sr_qp_set_rts(q);
        }
    }
    sr_unlock();
    return 0;
}

void
softrdma_cm_destroy_qp(struct rdma_cm_id *cmid)
{
    if (cmid->qp) {
        sr_lock();
        sr_qp_destroy((struct sr_qp *)cmid->qp);
        sr_unlock();
        cmid->qp = NULL;
    }
}

const char *
softrdma_cm_event_str(enum rdma_cm_event_type e)
{
    static const char *const names[] = {
        "RDMA_CM_EVENT_ADDR_RESOLVED", "RDMA_CM_EVENT_ADDR_ERROR",
        "RDMA_CM_EVENT_ROUTE_RESOLVED", "RDMA_CM_EVENT_ROUTE_ERROR",
        "RDMA_CM_EVENT_CONNECT_REQUEST", "RDMA_CM_EVENT_CONNECT_RESPONSE",
        "RDMA_CM_EVENT_CONNECT_ERROR", "RDMA_CM_EVENT_UNREACHABLE",
        "RDMA_CM_EVENT_REJECTED", "RDMA_CM_EVENT_ESTABLISHED",
        "RDMA_CM_EVENT_DISCONNECTED", "RDMA_CM_EVENT_DEVICE_REMOVAL",
        "RDMA_CM_EVENT_MULTICAST_JOIN", "RDMA_CM_EVENT_MULTICAST_ERROR",
        "RDMA_CM_EVENT_ADDR_CHANGE", "RDMA_CM_EVENT_TIMEWAIT_EXIT",
    };

    if ((unsigned)e < sizeof names / sizeof names[0])
        return names[e];
    return "UNKNOWN EVENT";
}
