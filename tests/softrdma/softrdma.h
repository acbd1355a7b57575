/* softrdma: a user-space stand-in for libibverbs.so.1 and librdmacm.so.1.
 *
 * Internal header shared by the files of the emulation.  Everything lives in
 * libibverbs.so.1 because one progress thread serves both the verbs objects
 * and the connection manager; librdmacm.so.1 is a thin public face that calls
 * the softrdma_cm_* functions exported here under a private version node.
 *
 * Concurrency: one process-wide mutex (sr_lock) guards every object.  The
 * emulation is for tests, so simplicity beats parallelism.  Nothing ever
 * blocks while holding it: waits happen in poll() with the lock released.
 */
#ifndef SOFTRDMA_H
#define SOFTRDMA_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

/* verbs.h turns these names into macros; we define the real functions. */
#undef ibv_reg_mr
#undef ibv_get_device_list
#undef ibv_query_port

#define SR_EXPORT __attribute__((visibility("default")))

/* ---- qp.c: mode and clock ----
 * Strict (rxe's rules) unless SOFTRDMA_LENIENT is set to a non-zero value. */
int sr_strict(void);
int64_t sr_now_us(void);                                    /* monotonic */

/* ---- lock.c: the one big lock, fork safety ---- */
void sr_lock(void);
void sr_progress_forget(void);
void sr_unlock(void);

/* ---- evq.c: a FIFO of nodes behind a pollable eventfd ----
 * The eventfd counter always equals the queue length (both are changed
 * under sr_lock), so the fd is readable exactly when an item is queued, it
 * survives dup2 and O_NONBLOCK set by the application is honoured. */
struct sr_node {
    struct sr_node *next;
};
struct sr_evq {
    int fd;
    struct sr_node *head, *tail;
};
int sr_evq_init(struct sr_evq *q);
void sr_evq_destroy(struct sr_evq *q);
void sr_evq_push(struct sr_evq *q, struct sr_node *n);        /* locked */
struct sr_node *sr_evq_pop(struct sr_evq *q);                 /* unlocked; NULL+errno */
void sr_evq_remove_if(struct sr_evq *q,
                      int (*match)(struct sr_node *, void *), void *arg,
                      void (*drop)(struct sr_node *));        /* locked */

/* ---- device.c ---- */
struct ibv_context *sr_context(void);
void sr_pd_ref(struct ibv_pd *pd, int delta);                /* locked */
void sr_async_event(enum ibv_event_type type, struct ibv_cq *cq,
                    struct ibv_qp *qp);                      /* locked */

/* ---- mr.c ---- */
void sr_mr_forget_pins(void);                              /* fork child */
int sr_mr_check(struct ibv_pd *pd, uint32_t key, int remote,
                uint64_t addr, uint64_t len, int access);  /* locked */

/* ---- cq.c ---- */
int sr_cq_push(struct ibv_cq *cq, const struct ibv_wc *wc);   /* locked; -1 full */
void sr_cq_ref(struct ibv_cq *cq, int delta);                 /* locked */
int sr_poll_cq(struct ibv_cq *cq, int n, struct ibv_wc *wc);
int sr_req_notify_cq(struct ibv_cq *cq, int solicited_only);

/* ---- stats.c ---- */
enum sr_stat {
    SR_REG_MR, SR_DEREG_MR, SR_REG_BYTES, SR_SEND, SR_RDMA_WRITE,
    SR_RDMA_WRITE_BYTES, SR_RDMA_READ, SR_RDMA_READ_BYTES,
    SR_ERROR_COMPLETIONS, SR_FLUSH_COMPLETIONS, SR_RNR_NAKS, SR_CQ_OVERFLOWS,
    SR_ACK_TIMEOUTS, SR_INJECTED_FAULTS, SR_NSTATS
};
void sr_stat_add(enum sr_stat s, uint64_t n);
void sr_stats_write(void);   /* async-signal-safe */

/* ---- wire.c: frames exchanged over the AF_UNIX stream ---- */
enum sr_frame_type {
    SR_F_CONNECT = 1,   /* payload: struct sr_connect */
    SR_F_ACCEPT,        /* payload: struct sr_connect */
    SR_F_REJECT,        /* payload: private data */
    SR_F_SEND,          /* payload: message */
    SR_F_WRITE,         /* rkey, raddr, seq; payload: data */
    SR_F_READ,          /* rkey, raddr, len, seq */
    SR_F_ACK,           /* seq, status (answers WRITE) */
    SR_F_READ_RESP,     /* seq, status; payload: data */
    SR_F_DISCONNECT,
    SR_F_RNR,           /* seq; rkey = RNR timer in us (answers SEND) */
};
struct sr_frame {
    uint32_t type;
    uint32_t status;
    uint32_t rkey;
    uint32_t pad;
    uint64_t seq;
    uint64_t raddr;
    uint64_t len;       /* READ: bytes wanted */
    uint64_t plen;      /* bytes of payload that follow */
};
struct sr_connect {
    struct sockaddr_storage src, dst;
    uint8_t responder_resources, initiator_depth, pdata_len;
    uint8_t retry_count, rnr_retry_count;
    uint8_t pdata[256];
};

/* ---- conn.c: one connected (or connecting) stream, polled by the
 * progress thread ---- */
enum sr_conn_state {
    SR_C_INCOMING,      /* passive, waiting for the CONNECT frame */
    SR_C_REQUESTED,     /* passive, CONNECT_REQUEST delivered */
    SR_C_CONNECTING,    /* active, CONNECT sent */
    SR_C_ESTABLISHED,
    SR_C_CLOSED,        /* disconnected, fd kept for draining */
};
struct sr_cmid;
struct sr_qp;
struct sr_conn {
    struct sr_conn *next;
    uint64_t serial;
    int fd;                       /* -1 once the peer went away */
    int listener;                 /* listening socket, not a stream */
    enum sr_conn_state state;
    struct sr_cmid *id;           /* owning cm id (NULL while INCOMING) */
    struct sr_cmid *listen_id;    /* for INCOMING/listener */
    struct sr_qp *qp;
    unsigned char *obuf;          /* bytes waiting to be written */
    size_t olen, ocap;
    unsigned char *ibuf;          /* bytes read, not yet parsed */
    size_t ilen, icap;
};
struct sr_conn *sr_conn_new(int fd, int listener);       /* locked */
void sr_conn_free(struct sr_conn *c);                    /* locked */
struct sr_conn *sr_conn_first(void);                     /* locked */
void sr_conn_send(struct sr_conn *c, const struct sr_frame *f,
                  const void *payload, size_t plen);      /* locked */
void sr_conn_break(struct sr_conn *c);                   /* locked */
void sr_progress_start(void);                             /* locked */
void sr_progress_wake(void);

/* ---- qp.c ---- */
struct sr_qp *sr_qp_create(struct ibv_pd *pd, struct ibv_qp_init_attr *attr);
void sr_qp_destroy(struct sr_qp *qp);                      /* locked */
struct ibv_qp *sr_qp_ibv(struct sr_qp *qp);
void sr_qp_attach(struct sr_qp *qp, struct sr_conn *c);    /* locked */
void sr_qp_attach_none(struct sr_qp *qp);                   /* locked */
void sr_qp_set_error(struct sr_qp *qp);                    /* locked */
void sr_qp_set_rts(struct sr_qp *qp);                      /* locked */
void sr_qp_set_conn_attrs(struct sr_qp *qp, int retry_cnt, int rnr_retry,
                          int timeout);                    /* locked */
int64_t sr_qp_next_timer(void);                            /* locked; 0 none */
void sr_qp_run_timers(void);                               /* locked */
void sr_qp_kick(struct sr_qp *qp);                         /* locked */
void sr_qp_on_frame(struct sr_qp *qp, const struct sr_frame *f,
                    const unsigned char *payload);          /* locked */
int sr_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr,
                 struct ibv_send_wr **bad);
int sr_post_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr,
                 struct ibv_recv_wr **bad);

/* ---- alua.c: the test-only ALUA stand-in of an iSER initiator, on only
 * when SOFTRDMA_ALUA is set (see alua.c) ---- */
struct sr_alua;
struct sr_alua *sr_alua_new(const struct sockaddr *dst);   /* locked; NULL: off */
void sr_alua_free(struct sr_alua *a);                      /* locked */
void sr_alua_sent(struct sr_alua *a, const struct ibv_sge *sg,
                  int n);                                  /* locked */
unsigned char *sr_alua_received(struct sr_alua *a, struct ibv_pd *pd,
                                const unsigned char *msg,
                                size_t *len);   /* locked; NULL: unchanged */
void sr_qp_alua(struct sr_qp *qp, const struct sockaddr *dst);   /* locked */

/* ---- cm.c ---- */
struct sr_cmid {
    struct rdma_cm_id id;           /* first: the application's view */
    struct sr_conn *conn;
    int listen_fd;
    struct sr_conn *listen_conn;
    int afonly;
    int bound;
    char path[108];                 /* listening socket name */
    pid_t owner;                    /* only the binder removes the name */
    int disconnected;
    int ack_timeout;                /* RDMA_OPTION_ID_ACK_TIMEOUT, -1 unset */
    int retry_count, rnr_retry_count;   /* what the QP gets at RTS */
};
void sr_cm_on_frame(struct sr_conn *c, const struct sr_frame *f,
                    const unsigned char *payload);          /* locked */
void sr_cm_on_hangup(struct sr_conn *c);                    /* locked */
void sr_cm_on_retry_exceeded(struct sr_conn *c);            /* locked */
void sr_cm_on_incoming(struct sr_conn *listener);           /* locked */

/* Private entry points for librdmacm.so.1 (version node SOFTRDMA_PRIVATE). */
SR_EXPORT struct rdma_event_channel *softrdma_cm_create_event_channel(void);
SR_EXPORT void softrdma_cm_destroy_event_channel(struct rdma_event_channel *ch);
SR_EXPORT int softrdma_cm_create_id(struct rdma_event_channel *ch,
                                    struct rdma_cm_id **id, void *context,
                                    enum rdma_port_space ps);
SR_EXPORT int softrdma_cm_destroy_id(struct rdma_cm_id *id);
SR_EXPORT int softrdma_cm_bind_addr(struct rdma_cm_id *id, struct sockaddr *addr);
SR_EXPORT int softrdma_cm_listen(struct rdma_cm_id *id, int backlog);
SR_EXPORT int softrdma_cm_resolve_addr(struct rdma_cm_id *id, struct sockaddr *src,
                                       struct sockaddr *dst, int timeout_ms);
SR_EXPORT int softrdma_cm_resolve_route(struct rdma_cm_id *id, int timeout_ms);
SR_EXPORT int softrdma_cm_connect(struct rdma_cm_id *id, struct rdma_conn_param *p);
SR_EXPORT int softrdma_cm_accept(struct rdma_cm_id *id, struct rdma_conn_param *p);
SR_EXPORT int softrdma_cm_reject(struct rdma_cm_id *id, const void *pdata,
                                 uint8_t len);
SR_EXPORT int softrdma_cm_disconnect(struct rdma_cm_id *id);
SR_EXPORT int softrdma_cm_get_event(struct rdma_event_channel *ch,
                                    struct rdma_cm_event **ev);
SR_EXPORT int softrdma_cm_ack_event(struct rdma_cm_event *ev);
SR_EXPORT int softrdma_cm_create_qp(struct rdma_cm_id *id, struct ibv_pd *pd,
                                    struct ibv_qp_init_attr *attr);
SR_EXPORT void softrdma_cm_destroy_qp(struct rdma_cm_id *id);
SR_EXPORT int softrdma_cm_set_option(struct rdma_cm_id *id, int level, int name,
                                     void *val, size_t len);
SR_EXPORT const char *softrdma_cm_event_str(enum rdma_cm_event_type e);

#endif
