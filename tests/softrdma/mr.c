/* softrdma: memory registration and key checks.
 *
 * lkey == rkey; keys come from a counter so a stale key is never reused.
 * Checks follow what hardware enforces: the key exists, belongs to the QP's
 * protection domain, the range lies inside the region, and the region was
 * registered with the access the operation needs. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "softrdma.h"

#define SR_MR_BUCKETS 1024

struct sr_mr {
    struct ibv_mr mr;
    int access;
    struct sr_mr *next;
};

static struct sr_mr *sr_mr_table[SR_MR_BUCKETS];
static uint32_t sr_next_key = 0x1000;

static struct sr_mr **
sr_mr_bucket(uint32_t key)
{
    return &sr_mr_table[key % SR_MR_BUCKETS];
}

SR_EXPORT struct ibv_mr *
ibv_reg_mr(struct ibv_pd *pd, void *addr, size_t length, int access)
{
    struct sr_mr *m;

    if (!pd || (length && !addr)) {
        errno = EINVAL;
        return NULL;
    }
    /* Remote write needs local write, as on hardware. */
    if ((access & IBV_ACCESS_REMOTE_WRITE) && !(access & IBV_ACCESS_LOCAL_WRITE)) {
        errno = EINVAL;
        return NULL;
    }
    m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->mr.context = pd->context;
    m->mr.pd = pd;
    m->mr.addr = addr;
    m->mr.length = length;
    m->access = access;
    sr_lock();
    m->mr.lkey = m->mr.rkey = m->mr.handle = sr_next_key++;
    m->next = *sr_mr_bucket(m->mr.lkey);
    *sr_mr_bucket(m->mr.lkey) = m;
    sr_unlock();
    sr_stat_add(SR_REG_MR, 1);
    sr_stat_add(SR_REG_BYTES, length);
    return &m->mr;
}

SR_EXPORT int
ibv_dereg_mr(struct ibv_mr *mr)
{
    struct sr_mr **pp;

    sr_lock();
    for (pp = sr_mr_bucket(mr->lkey); *pp; pp = &(*pp)->next) {
        if (&(*pp)->mr == mr) {
            struct sr_mr *m = *pp;
            *pp = m->next;
            sr_unlock();
            free(m);
            sr_stat_add(SR_DEREG_MR, 1);
            return 0;
        }
    }
    sr_unlock();
    return EINVAL;
}

/* 0 if [addr, addr+len) may be accessed through key with the given access
 * bits, else -1.  remote selects rkey semantics (only regions registered for
 * remote access are visible). */
int
sr_mr_check(struct ibv_pd *pd, uint32_t key, int remote, uint64_t addr,
            uint64_t len, int access)
{
    struct sr_mr *m;

    for (m = *sr_mr_bucket(key); m; m = m->next) {
        uint64_t start = (uintptr_t)m->mr.addr;

        if (m->mr.lkey != key)
            continue;
        if (m->mr.pd != pd)
            return -1;
        if (remote && !(m->access & (IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE)))
            return -1;
        if ((m->access & access) != access)
            return -1;
        if (addr < start || len > m->mr.length || addr - start > m->mr.length - len)
            return -1;
        return 0;
    }
    return -1;
}
