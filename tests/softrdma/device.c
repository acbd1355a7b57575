/* softrdma: the one emulated device and its context.
 *
 * Both peers read fields of struct ibv_context directly and the inline
 * ibv_post_send/ibv_post_recv/ibv_poll_cq/ibv_req_notify_cq call through its
 * ops table, so the context is a real, fully initialised structure.  There
 * is exactly one, shared by every cm_id (tgtd compares cm_id->verbs). */
#include "config.h"

#include <errno.h>
#include <endian.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "softrdma.h"

static struct ibv_device sr_device;
static struct ibv_device *sr_device_list[2];
static struct ibv_context sr_ctx;
static struct sr_evq sr_async;      /* asynchronous events (CQ overflow) */
static pthread_once_t sr_once = PTHREAD_ONCE_INIT;

static void
sr_device_init(void)
{
    sr_device.node_type = IBV_NODE_CA;
    sr_device.transport_type = IBV_TRANSPORT_IB;
    strcpy(sr_device.name, "softrdma0");
    strcpy(sr_device.dev_name, "uverbs-softrdma0");
    strcpy(sr_device.dev_path, "/nonexistent/softrdma0");
    strcpy(sr_device.ibdev_path, "/nonexistent/softrdma0");
    sr_device_list[0] = &sr_device;

    if (sr_evq_init(&sr_async) < 0)
        abort();
    sr_ctx.device = &sr_device;
    sr_ctx.ops.poll_cq = sr_poll_cq;
    sr_ctx.ops.req_notify_cq = sr_req_notify_cq;
    sr_ctx.ops.post_send = sr_post_send;
    sr_ctx.ops.post_recv = sr_post_recv;
    sr_ctx.cmd_fd = -1;
    sr_ctx.async_fd = sr_async.fd;
    sr_ctx.num_comp_vectors = 1;
    pthread_mutex_init(&sr_ctx.mutex, NULL);
}

struct ibv_context *
sr_context(void)
{
    pthread_once(&sr_once, sr_device_init);
    return &sr_ctx;
}

SR_EXPORT struct ibv_device **
ibv_get_device_list(int *num)
{
    sr_context();
    if (num)
        *num = 1;
    return sr_device_list;
}

SR_EXPORT void
ibv_free_device_list(struct ibv_device **list)
{
    (void)list;
}

SR_EXPORT const char *
ibv_get_device_name(struct ibv_device *dev)
{
    return dev->name;
}

SR_EXPORT struct ibv_context *
ibv_open_device(struct ibv_device *dev)
{
    (void)dev;
    return sr_context();
}

SR_EXPORT int
ibv_close_device(struct ibv_context *ctx)
{
    (void)ctx;
    return 0;
}

SR_EXPORT int
ibv_query_device(struct ibv_context *ctx, struct ibv_device_attr *a)
{
    (void)ctx;
    memset(a, 0, sizeof *a);
    strcpy(a->fw_ver, "softrdma-1");
    a->node_guid = htobe64(0x5f7ad3a000000001ULL);
    a->sys_image_guid = a->node_guid;
    a->max_mr_size = UINT64_MAX;
    a->page_size_cap = 4096;
    a->vendor_id = 0x5f7a;
    a->max_qp = 65536;
    a->max_qp_wr = 16384;
    a->max_sge = 32;
    a->max_sge_rd = 32;
    a->max_cq = 65536;
    a->max_cqe = 4194303;
    a->max_mr = 1 << 20;
    a->max_pd = 65536;
    a->max_qp_rd_atom = 16;
    a->max_qp_init_rd_atom = 16;
    a->max_res_rd_atom = 1 << 20;
    a->atomic_cap = IBV_ATOMIC_NONE;
    a->max_pkeys = 1;
    a->phys_port_cnt = 1;
    return 0;
}

/* A protection domain counts the MRs and QPs on it: rxe refuses to free
 * one still in use. */
struct sr_pd {
    struct ibv_pd pd;
    int refs;
};

SR_EXPORT struct ibv_pd *
ibv_alloc_pd(struct ibv_context *ctx)
{
    static uint32_t next_handle;
    struct sr_pd *p = calloc(1, sizeof *p);

    if (!p)
        return NULL;
    p->pd.context = ctx;
    sr_lock();
    p->pd.handle = ++next_handle;
    sr_unlock();
    return &p->pd;
}

void
sr_pd_ref(struct ibv_pd *pd, int delta)
{
    ((struct sr_pd *)pd)->refs += delta;
}

SR_EXPORT int
ibv_dealloc_pd(struct ibv_pd *pd)
{
    struct sr_pd *p = (struct sr_pd *)pd;

    sr_lock();
    if (p->refs > 0 && sr_strict()) {
        sr_unlock();
        return EBUSY;
    }
    sr_unlock();
    free(p);
    return 0;
}

/* Asynchronous events: only IBV_EVENT_CQ_ERR (a completion queue
 * overflowed) is generated; other errors show up as error completions and
 * CM events, which is what both peers act on. */
struct sr_async_node {
    struct sr_node node;
    struct ibv_async_event ev;
};

void
sr_async_event(enum ibv_event_type type, struct ibv_cq *cq, struct ibv_qp *qp)
{
    struct sr_async_node *n = calloc(1, sizeof *n);

    sr_context();
    if (!n)
        abort();
    n->ev.event_type = type;
    if (cq)
        n->ev.element.cq = cq;
    else
        n->ev.element.qp = qp;
    sr_evq_push(&sr_async, &n->node);
}

SR_EXPORT int
ibv_get_async_event(struct ibv_context *ctx, struct ibv_async_event *ev)
{
    struct sr_async_node *n;

    (void)ctx;
    n = (struct sr_async_node *)sr_evq_pop(&sr_async);
    if (!n)
        return -1;
    *ev = n->ev;
    free(n);
    return 0;
}

SR_EXPORT void
ibv_ack_async_event(struct ibv_async_event *ev)
{
    (void)ev;
}

SR_EXPORT const char *
ibv_event_type_str(enum ibv_event_type e)
{
    static const char *const names[] = {
        [IBV_EVENT_CQ_ERR] = "CQ error",
        [IBV_EVENT_QP_FATAL] = "local work queue catastrophic error",
        [IBV_EVENT_QP_REQ_ERR] = "invalid request local work queue error",
        [IBV_EVENT_QP_ACCESS_ERR] = "local access violation work queue error",
        [IBV_EVENT_COMM_EST] = "communication established",
        [IBV_EVENT_SQ_DRAINED] = "send queue drained",
        [IBV_EVENT_PATH_MIG] = "path migrated",
        [IBV_EVENT_PATH_MIG_ERR] = "path migration request error",
        [IBV_EVENT_DEVICE_FATAL] = "local catastrophic error",
        [IBV_EVENT_PORT_ACTIVE] = "port active",
        [IBV_EVENT_PORT_ERR] = "port error",
        [IBV_EVENT_LID_CHANGE] = "LID change",
        [IBV_EVENT_PKEY_CHANGE] = "P_Key change",
        [IBV_EVENT_SM_CHANGE] = "SM change",
        [IBV_EVENT_SRQ_ERR] = "SRQ catastrophic error",
        [IBV_EVENT_SRQ_LIMIT_REACHED] = "SRQ limit reached",
        [IBV_EVENT_QP_LAST_WQE_REACHED] = "last WQE reached",
        [IBV_EVENT_CLIENT_REREGISTER] = "client reregistration",
        [IBV_EVENT_GID_CHANGE] = "GID table change",
    };

    if ((unsigned)e < sizeof names / sizeof names[0] && names[e])
        return names[e];
    return "unknown";
}

SR_EXPORT const char *
ibv_wc_status_str(enum ibv_wc_status s)
{
    static const char *const names[] = {
        [IBV_WC_SUCCESS] = "success",
        [IBV_WC_LOC_LEN_ERR] = "local length error",
        [IBV_WC_LOC_QP_OP_ERR] = "local QP operation error",
        [IBV_WC_LOC_EEC_OP_ERR] = "local EE context operation error",
        [IBV_WC_LOC_PROT_ERR] = "local protection error",
        [IBV_WC_WR_FLUSH_ERR] = "Work Request Flushed Error",
        [IBV_WC_MW_BIND_ERR] = "memory management operation error",
        [IBV_WC_BAD_RESP_ERR] = "bad response error",
        [IBV_WC_LOC_ACCESS_ERR] = "local access error",
        [IBV_WC_REM_INV_REQ_ERR] = "remote invalid request error",
        [IBV_WC_REM_ACCESS_ERR] = "remote access error",
        [IBV_WC_REM_OP_ERR] = "remote operation error",
        [IBV_WC_RETRY_EXC_ERR] = "transport retry counter exceeded",
        [IBV_WC_RNR_RETRY_EXC_ERR] = "RNR retry counter exceeded",
        [IBV_WC_LOC_RDD_VIOL_ERR] = "local RDD violation error",
        [IBV_WC_REM_INV_RD_REQ_ERR] = "remote invalid RD request",
        [IBV_WC_REM_ABORT_ERR] = "aborted error",
        [IBV_WC_INV_EECN_ERR] = "invalid EE context number",
        [IBV_WC_INV_EEC_STATE_ERR] = "invalid EE context state",
        [IBV_WC_FATAL_ERR] = "fatal error",
        [IBV_WC_RESP_TIMEOUT_ERR] = "response timeout error",
        [IBV_WC_GENERAL_ERR] = "general error",
    };

    if ((unsigned)s < sizeof names / sizeof names[0] && names[s])
        return names[s];
    return "unknown";
}
