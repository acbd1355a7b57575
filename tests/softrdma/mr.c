/* softrdma: memory registration and key checks.
 *
 * Keys as rxe makes them: an index in the upper 24 bits and an 8-bit key
 * below; the rkey equals the lkey when the region allows remote access and
 * is 0 otherwise.  Indexes come from a counter, so a stale key is never
 * reused.  Checks follow what hardware enforces: the key exists, belongs
 * to the QP's protection domain, the range lies inside the region, and the
 * region was registered with the access the operation needs.
 *
 * Registered pages are pinned: as in the kernel (ib_umem_get) they are
 * charged to the process and a registration that takes the total above
 * RLIMIT_MEMLOCK fails with ENOMEM unless the process has CAP_IPC_LOCK.
 * SOFTRDMA_LENIENT: nothing is charged. */
#include "config.h"

#include <errno.h>
#include <linux/capability.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "softrdma.h"

#define SR_MR_BUCKETS 1024

struct sr_mr {
    struct ibv_mr mr;
    int access;
    uint64_t pinned;            /* bytes charged to the memlock limit */
    struct sr_mr *next;
};

static struct sr_mr *sr_mr_table[SR_MR_BUCKETS];
static uint32_t sr_next_index = 0x10;
static uint64_t sr_pinned;      /* bytes of pages pinned by this process */

/* Whether the process holds CAP_IPC_LOCK in its effective set. */
static int
sr_cap_ipc_lock(void)
{
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2];

    if (syscall(SYS_capget, &h, d) != 0)
        return 0;
    return !!(d[CAP_IPC_LOCK / 32].effective & (1u << (CAP_IPC_LOCK % 32)));
}

/* The pages [addr, addr+len) touch, in bytes. */
static uint64_t
sr_page_span(const void *addr, size_t len)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t start = (uintptr_t)addr & ~(page - 1);
    uint64_t end = ((uintptr_t)addr + len + page - 1) & ~(page - 1);

    return len ? end - start : 0;
}

/* Charge bytes to the memlock limit as ib_umem_get does; -1 (ENOMEM) if
 * the limit would be exceeded without CAP_IPC_LOCK.  Locked. */
static int
sr_pin(uint64_t bytes)
{
    struct rlimit rl;

    if (!sr_strict())
        return 0;
    if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        sr_pinned + bytes > rl.rlim_cur && !sr_cap_ipc_lock()) {
        errno = ENOMEM;
        return -1;
    }
    sr_pinned += bytes;
    return 0;
}

void
sr_mr_forget_pins(void)
{
    sr_pinned = 0;              /* a fork child's mm pins nothing */
}

static struct sr_mr **
sr_mr_bucket(uint32_t key)
{
    return &sr_mr_table[(key >> 8) % SR_MR_BUCKETS];
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
    m->pinned = sr_strict() ? sr_page_span(addr, length) : 0;
    sr_lock();
    if (sr_pin(m->pinned) < 0) {
        sr_unlock();
        free(m);
        errno = ENOMEM;
        return NULL;
    }
    m->mr.handle = sr_next_index;
    m->mr.lkey = (sr_next_index++ << 8) | ((m->mr.handle * 0x9d) & 0xff);
    m->mr.rkey = access & (IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE |
                           IBV_ACCESS_REMOTE_ATOMIC) ? m->mr.lkey : 0;
    sr_pd_ref(pd, 1);
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
            sr_pinned -= m->pinned;
            sr_pd_ref(m->mr.pd, -1);
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
