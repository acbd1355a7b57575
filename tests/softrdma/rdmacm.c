/* softrdma: librdmacm.so.1, the public face of the connection manager.
 *
 * The machinery lives in libibverbs.so.1 (one progress thread serves the
 * verbs objects and the CM); these are thin forwards so that the peers find
 * every rdma_* symbol, with version RDMACM_1.0, in the library they link. */
#include "config.h"

#include <errno.h>

#include "softrdma.h"

SR_EXPORT struct rdma_event_channel *
rdma_create_event_channel(void)
{
    return softrdma_cm_create_event_channel();
}

SR_EXPORT void
rdma_destroy_event_channel(struct rdma_event_channel *ch)
{
    softrdma_cm_destroy_event_channel(ch);
}

SR_EXPORT int
rdma_create_id(struct rdma_event_channel *ch, struct rdma_cm_id **id,
               void *context, enum rdma_port_space ps)
{
    return softrdma_cm_create_id(ch, id, context, ps);
}

SR_EXPORT int
rdma_destroy_id(struct rdma_cm_id *id)
{
    return softrdma_cm_destroy_id(id);
}

SR_EXPORT int
rdma_bind_addr(struct rdma_cm_id *id, struct sockaddr *addr)
{
    return softrdma_cm_bind_addr(id, addr);
}

SR_EXPORT int
rdma_listen(struct rdma_cm_id *id, int backlog)
{
    return softrdma_cm_listen(id, backlog);
}

SR_EXPORT int
rdma_resolve_addr(struct rdma_cm_id *id, struct sockaddr *src,
                  struct sockaddr *dst, int timeout_ms)
{
    return softrdma_cm_resolve_addr(id, src, dst, timeout_ms);
}

SR_EXPORT int
rdma_resolve_route(struct rdma_cm_id *id, int timeout_ms)
{
    return softrdma_cm_resolve_route(id, timeout_ms);
}

SR_EXPORT int
rdma_connect(struct rdma_cm_id *id, struct rdma_conn_param *p)
{
    return softrdma_cm_connect(id, p);
}

SR_EXPORT int
rdma_accept(struct rdma_cm_id *id, struct rdma_conn_param *p)
{
    return softrdma_cm_accept(id, p);
}

SR_EXPORT int
rdma_reject(struct rdma_cm_id *id, const void *pdata, uint8_t len)
{
    return softrdma_cm_reject(id, pdata, len);
}

SR_EXPORT int
rdma_disconnect(struct rdma_cm_id *id)
{
    return softrdma_cm_disconnect(id);
}

SR_EXPORT int
rdma_get_cm_event(struct rdma_event_channel *ch, struct rdma_cm_event **ev)
{
    return softrdma_cm_get_event(ch, ev);
}

SR_EXPORT int
rdma_ack_cm_event(struct rdma_cm_event *ev)
{
    return softrdma_cm_ack_event(ev);
}

SR_EXPORT int
rdma_create_qp(struct rdma_cm_id *id, struct ibv_pd *pd, struct ibv_qp_init_attr *attr)
{
    return softrdma_cm_create_qp(id, pd, attr);
}

SR_EXPORT void
rdma_destroy_qp(struct rdma_cm_id *id)
{
    softrdma_cm_destroy_qp(id);
}

SR_EXPORT int
rdma_set_option(struct rdma_cm_id *id, int level, int name, void *val, size_t len)
{
    return softrdma_cm_set_option(id, level, name, val, len);
}

/* Connection-established hints matter only to real hardware. */
SR_EXPORT int
rdma_notify(struct rdma_cm_id *id, enum ibv_event_type event)
{
    (void)id;
    (void)event;
    return 0;
}

SR_EXPORT const char *
rdma_event_str(enum rdma_cm_event_type event)
{
    return softrdma_cm_event_str(event);
}
