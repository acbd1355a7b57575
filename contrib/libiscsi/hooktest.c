/* hooktest: exercise the iSER allocator hook of the patched libiscsi
 * (the patch series in contrib/libiscsi) against a real target.
 *
 *   hooktest [--no-hook] INITIATOR-IQN iser://HOST/IQN/LUN OUT-FILE
 *
 * It installs an allocator backed by one registered arena, moves data with
 * READ(16)/WRITE(16) of mixed sizes up to 1 MiB -- through the transport's
 * buffers (application memory outside the arena) and zero copy (inside it)
 * -- checks every byte read against what was written, forces a reconnect
 * and checks again, and verifies that memory is registered once per
 * protection domain and not once per I/O:
 *   - its own count of ibv_reg_mr calls (the arena, once per PD);
 *   - under tests/softrdma/softrdma-run with SOFTRDMA_STATS set (a plain
 *     file name, no %p): the emulation's process-wide reg_mr counter does
 *     not move while I/O runs after the warm-up.
 * The bytes it left on the LUN's first REGION bytes are written to
 * OUT-FILE, for the caller to compare with the target's backing file.
 *
 * With --no-hook no allocator is installed: the same I/O and reconnect
 * must work as with an unpatched libiscsi, and the arena is then only
 * ordinary memory.
 *
 * Needs a LUN of at least REGION bytes and a target accepting 1 MiB
 * commands (tgtd: --iser buf_sz_kb=1024 or more). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <infiniband/verbs.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#ifndef LIBISCSI_FEATURE_RDMA_ALLOCATOR
#error "this libiscsi has no RDMA allocator hook: build contrib/libiscsi first"
#endif

#define MIB (1024 * 1024)
#define SLOT (1 * MIB)              /* allocator slot: the largest command */
#define NSLOTS 16                   /* first half of the arena */
#define ARENA (2 * NSLOTS * SLOT)   /* second half: zero-copy buffers */
#define REGION (16 * MIB)           /* part of the LUN the test uses */

/* The allocator: fixed 1 MiB slots in one registered arena. */
struct arena {
    unsigned char *base;
    struct ibv_mr *mr;
    struct ibv_pd *pd;
    int used[NSLOTS];
    int outstanding;
    /* counters checked by the test */
    unsigned pd_set, pd_cleared, regs, allocs, fallbacks, frees, hits, misses;
    unsigned errors;                /* contract violations seen */
};

static void
note_error(struct arena *a, const char *what)
{
    fprintf(stderr, "hooktest: allocator: %s\n", what);
    a->errors++;
}

static void
arena_pd_changed(void *opaque, struct ibv_pd *pd)
{
    struct arena *a = opaque;

    if (pd == NULL) {
        a->pd_cleared++;
        if (a->outstanding != 0)
            note_error(a, "PD goes away while buffers are still out");
        if (a->mr == NULL)
            note_error(a, "PD cleared twice");
        else if (ibv_dereg_mr(a->mr) != 0)
            note_error(a, "ibv_dereg_mr failed");
        a->mr = NULL;
        a->pd = NULL;
        return;
    }
    a->pd_set++;
    if (a->mr != NULL)
        note_error(a, "new PD while the old one is still registered");
    a->pd = pd;
    /* The parentheses bypass verbs.h's macro, which at -O0 calls
     * ibv_reg_mr_iova2 (IBVERBS_1.8), not provided by softrdma. */
    a->mr = (ibv_reg_mr)(pd, a->base, ARENA, IBV_ACCESS_LOCAL_WRITE |
                       IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE);
    if (a->mr == NULL)
        note_error(a, "ibv_reg_mr failed");
    a->regs++;
}

static void *
arena_alloc(void *opaque, size_t len, struct ibv_mr **mr)
{
    struct arena *a = opaque;
    int i;

    if (a->mr == NULL)
        note_error(a, "alloc without a registered PD");
    for (i = 0; len <= SLOT && a->mr != NULL && i < NSLOTS; i++) {
        if (!a->used[i]) {
            a->used[i] = 1;
            a->outstanding++;
            a->allocs++;
            *mr = a->mr;
            return a->base + (size_t)i * SLOT;
        }
    }
    a->fallbacks++;
    return NULL;
}

static void
arena_free(void *opaque, void *buf)
{
    struct arena *a = opaque;
    size_t off = (unsigned char *)buf - a->base;

    if ((unsigned char *)buf < a->base || off % SLOT || off / SLOT >= NSLOTS ||
        !a->used[off / SLOT]) {
        note_error(a, "free of a buffer it did not hand out");
        return;
    }
    a->used[off / SLOT] = 0;
    a->outstanding--;
    a->frees++;
}

static int
arena_lookup(void *opaque, void *buf, size_t len, struct ibv_mr **mr)
{
    struct arena *a = opaque;
    unsigned char *p = buf;

    if (a->mr != NULL && p >= a->base && len <= ARENA &&
        (size_t)(p - a->base) <= ARENA - len) {
        *mr = a->mr;
        a->hits++;
        return 1;
    }
    a->misses++;
    return 0;
}

/* ---- helpers */

static struct iscsi_context *iscsi;
static int lun;
static uint32_t bs;

static void
die(const char *what)
{
    fprintf(stderr, "hooktest: %s%s%s\n", what, iscsi ? ": " : "",
            iscsi ? iscsi_get_error(iscsi) : "");
    exit(1);
}

static void
fill(unsigned char *p, size_t n, uint64_t state)
{
    size_t i;

    for (i = 0; i < n; i++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        p[i] = state >> 56;
    }
}

/* The emulation's reg_mr counter, or -1 when not running under it. */
static long
softrdma_reg_mr(void)
{
    const char *path = getenv("SOFTRDMA_STATS");
    char line[128];
    long v = -1;
    FILE *f;

    if (!path || !*path || strstr(path, "%p"))
        return -1;
    if (raise(SIGUSR2) != 0)    /* softrdma writes its file synchronously */
        return -1;
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "reg_mr=%ld", &v) == 1)
            break;
    fclose(f);
    return v;
}

static void
write_lun(uint64_t off, struct scsi_iovec *iov, int niov, uint32_t len)
{
    struct scsi_task *t;

    t = iscsi_write16_iov_sync(iscsi, lun, off / bs, NULL, len, bs,
                               0, 0, 0, 0, 0, iov, niov);
    if (!t || t->status != SCSI_STATUS_GOOD) {
        fprintf(stderr, "hooktest: WRITE(16) of %" PRIu32 " bytes at %" PRIu64
                " failed\n", len, off);
        die("write");
    }
    scsi_free_scsi_task(t);
}

static void
read_lun(uint64_t off, struct scsi_iovec *iov, int niov, uint32_t len)
{
    struct scsi_task *t;

    t = iscsi_read16_iov_sync(iscsi, lun, off / bs, len, bs,
                              0, 0, 0, 0, 0, iov, niov);
    if (!t || t->status != SCSI_STATUS_GOOD) {
        fprintf(stderr, "hooktest: READ(16) of %" PRIu32 " bytes at %" PRIu64
                " failed\n", len, off);
        die("read");
    }
    scsi_free_scsi_task(t);
}

/* Buffers for one command: outside the arena (bounced through the
 * transport's buffers), one contiguous arena range (zero copy), the same
 * range split in two iovecs (merged: still zero copy), or two separate
 * arena ranges (cannot be advertised as one: bounced). */
enum path { BOUNCE, ZC, ZC_SPLIT, ARENA_GAP, NPATHS };
static const char *const path_name[NPATHS] = {
    "outside the arena", "zero copy", "zero copy, 2 iovecs",
    "arena with a gap"
};

static int
make_iov(enum path p, unsigned char *heap, struct arena *a,
         struct scsi_iovec *iov, uint32_t len)
{
    unsigned char *zc = a->base + NSLOTS * SLOT;

    switch (p) {
    case BOUNCE:
        iov[0].iov_base = heap;
        iov[0].iov_len = len;
        return 1;
    case ZC:
        iov[0].iov_base = zc;
        iov[0].iov_len = len;
        return 1;
    case ZC_SPLIT:
    case ARENA_GAP:
        iov[0].iov_base = zc;
        iov[0].iov_len = len / 2;
        iov[1].iov_base = zc + len / 2 + (p == ARENA_GAP ? 4096 : 0);
        iov[1].iov_len = len - len / 2;
        return 2;
    default:
        abort();
    }
}

static void
gather(unsigned char *dst, const struct scsi_iovec *iov, int niov)
{
    int i;

    for (i = 0; i < niov; i++) {
        memcpy(dst, iov[i].iov_base, iov[i].iov_len);
        dst += iov[i].iov_len;
    }
}

static void
scatter(struct scsi_iovec *iov, int niov, const unsigned char *src)
{
    int i;

    for (i = 0; i < niov; i++) {
        memcpy(iov[i].iov_base, src, iov[i].iov_len);
        src += iov[i].iov_len;
    }
}

/* Write fresh bytes through one path, read them back through another, and
 * compare with the shadow copy of the region. */
static void
round_trip(struct arena *a, unsigned char *shadow, unsigned char *heap,
           unsigned char *tmp, uint64_t off, uint32_t len, enum path wp,
           enum path rp, uint64_t seed)
{
    struct scsi_iovec iov[2];
    int niov;

    fill(shadow + off, len, seed);
    niov = make_iov(wp, heap, a, iov, len);
    scatter(iov, niov, shadow + off);
    write_lun(off, iov, niov, len);

    niov = make_iov(rp, heap, a, iov, len);
    memset(iov[0].iov_base, 0xa5, iov[0].iov_len);
    if (niov > 1)
        memset(iov[1].iov_base, 0x5a, iov[1].iov_len);
    read_lun(off, iov, niov, len);
    gather(tmp, iov, niov);
    if (memcmp(tmp, shadow + off, len) != 0) {
        fprintf(stderr, "hooktest: %" PRIu32 " bytes at %" PRIu64
                " written %s and read %s differ\n", len, off,
                path_name[wp], path_name[rp]);
        exit(1);
    }
}

static void
check_whole_region(struct arena *a, unsigned char *shadow, unsigned char *tmp)
{
    struct scsi_iovec iov[2];
    uint64_t off;

    for (off = 0; off < REGION; off += SLOT) {
        int niov = make_iov(ZC, NULL, a, iov, SLOT);

        read_lun(off, iov, niov, SLOT);
        gather(tmp, iov, niov);
        if (memcmp(tmp, shadow + off, SLOT) != 0) {
            fprintf(stderr, "hooktest: LUN differs at MiB %" PRIu64 "\n",
                    off / MIB);
            exit(1);
        }
    }
}

/* ---- many commands in flight (as under a FUSE server): more transport
 * buffers out at once than the allocator has slots, so some commands
 * also take the transport's own buffers. */

#define PSLICES 32
#define PSLICE (REGION / PSLICES)

struct pending {
    int outstanding, failed;
};

static void
parallel_done(struct iscsi_context *ctx, int status, void *command_data,
              void *private_data)
{
    struct pending *p = private_data;

    (void)ctx;
    if (status != SCSI_STATUS_GOOD)
        p->failed++;
    if (command_data)
        scsi_free_scsi_task(command_data);
    p->outstanding--;
}

static void
wait_all(struct pending *p)
{
    while (p->outstanding > 0) {
        struct pollfd pfd = { .fd = iscsi_get_fd(iscsi),
                              .events = iscsi_which_events(iscsi) };
        int r = poll(&pfd, 1, 10000);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            die("no progress for 10 s with commands in flight");
        if (iscsi_service(iscsi, pfd.revents) < 0)
            die("iscsi_service");
    }
    if (p->failed)
        die("a command in flight failed");
}

/* Slice i's buffer: zero copy for every fourth slice, outside the arena
 * (bounced) for the others: 24 bounce buffers wanted, 16 slots. */
static unsigned char *
slice_buf(struct arena *a, unsigned char *big, int i)
{
    return (i % 4 ? big : a->base + NSLOTS * SLOT) + (size_t)i * PSLICE;
}

static void
parallel(struct arena *a, unsigned char *shadow, unsigned char *big,
         uint64_t seed)
{
    struct scsi_iovec iov[PSLICES];
    struct pending p = { 0, 0 };
    int i;

    for (i = 0; i < PSLICES; i++) {
        fill(shadow + (size_t)i * PSLICE, PSLICE, seed + i);
        memcpy(slice_buf(a, big, i), shadow + (size_t)i * PSLICE, PSLICE);
        iov[i].iov_base = slice_buf(a, big, i);
        iov[i].iov_len = PSLICE;
        if (!iscsi_write16_iov_task(iscsi, lun, (uint64_t)i * PSLICE / bs,
                                    NULL, PSLICE, bs, 0, 0, 0, 0, 0,
                                    parallel_done, &p, &iov[i], 1))
            die("cannot queue a WRITE(16)");
        p.outstanding++;
    }
    wait_all(&p);
    for (i = 0; i < PSLICES; i++) {
        memset(slice_buf(a, big, i), 0xa5, PSLICE);
        if (!iscsi_read16_iov_task(iscsi, lun, (uint64_t)i * PSLICE / bs,
                                   PSLICE, bs, 0, 0, 0, 0, 0,
                                   parallel_done, &p, &iov[i], 1))
            die("cannot queue a READ(16)");
        p.outstanding++;
    }
    wait_all(&p);
    for (i = 0; i < PSLICES; i++)
        if (memcmp(slice_buf(a, big, i), shadow + (size_t)i * PSLICE, PSLICE)) {
            fprintf(stderr, "hooktest: slice %d differs after %d commands "
                    "in flight\n", i, PSLICES);
            exit(1);
        }
}

static const uint32_t sizes[] = {
    4096, 1 * MIB, 65536, 524288, 12288, 786432, 262144, 1 * MIB - 4096,
};
#define NSIZES (sizeof sizes / sizeof sizes[0])

/* Mixed sizes and paths over the region; returns the bytes moved. */
static uint64_t
workload(struct arena *a, unsigned char *shadow, unsigned char *heap,
         unsigned char *tmp, int rounds, uint64_t seed)
{
    uint64_t moved = 0, off = 0;
    int i;

    for (i = 0; i < rounds; i++) {
        uint32_t len = sizes[i % NSIZES];

        if (off + len > REGION)
            off = 0;
        round_trip(a, shadow, heap, tmp, off, len, i % NPATHS,
                   (i / NPATHS + i) % NPATHS, seed + i);
        moved += 2ULL * len;
        off += len + (uint64_t)bs * (i % 3);
    }
    return moved;
}

static void
expect(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "hooktest: FAILED: %s\n", what);
        exit(1);
    }
    printf("ok: %s\n", what);
}

static void
report_limits(void)
{
    struct scsi_task *t = iscsi_inquiry_sync(iscsi, lun, 1,
                                             SCSI_INQUIRY_PAGECODE_BLOCK_LIMITS, 255);
    struct scsi_inquiry_block_limits *bl;

    if (t && t->status == SCSI_STATUS_GOOD && (bl = scsi_datain_unmarshall(t)))
        printf("target block limits: max transfer %" PRIu32
               " blocks, optimal %" PRIu32 " blocks (0 = not reported)\n",
               bl->max_xfer_len, bl->opt_xfer_len);
    else
        printf("target has no block limits page\n");
    if (t)
        scsi_free_scsi_task(t);
}

static int
save_region(const char *path, const unsigned char *shadow)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    if (fd < 0 || write(fd, shadow, REGION) != REGION || close(fd) != 0) {
        perror(path);
        return 1;
    }
    return 0;
}

static void
read_capacity(void)
{
    struct scsi_task *t = iscsi_readcapacity16_sync(iscsi, lun);
    struct scsi_readcapacity16 *rc;

    if (!t || t->status != SCSI_STATUS_GOOD || !(rc = scsi_datain_unmarshall(t)))
        die("READ CAPACITY(16) failed");
    bs = rc->block_length;
    if (!bs || 4096 % bs || (rc->returned_lba + 1) * bs < REGION)
        die("the LUN must be at least 16 MiB with a block size dividing 4096");
    scsi_free_scsi_task(t);
}

/* Commands with data-in that fail: libiscsi frees their in-data with
 * the PDU instead of handing it to the task (libiscsi 1.20.0 allocated
 * and freed it with mismatched functions: patch 0001).  A 16-byte
 * buffer then sits in the small-allocation cache, and the next PDU's
 * 48-byte header is written over it (ASan sees it). */
static void
failing_reads(void)
{
    int i;

    for (i = 0; i < 8; i++) {
        struct scsi_task *t = iscsi_inquiry_sync(iscsi, lun, 1, 0x7e, 16);

        if (!t)
            die("INQUIRY failed to run");
        if (t->status != SCSI_STATUS_CHECK_CONDITION)
            die("INQUIRY of VPD page 0x7e did not fail");
        scsi_free_scsi_task(t);
        read_capacity();
    }
}

/* The same I/O and reconnect without an allocator: the transport's own
 * buffers, as in an unpatched libiscsi.  The hook must never be called. */
static int
no_hook(struct arena *a, struct iscsi_url *url, unsigned char *shadow,
        unsigned char *heap, unsigned char *tmp, unsigned char *big,
        const char *out)
{
    uint64_t moved;

    read_capacity();
    failing_reads();
    parallel(a, shadow, big, 77);
    moved = workload(a, shadow, heap, tmp, 320, 1);
    check_whole_region(a, shadow, tmp);
    printf("moved %" PRIu64 " MiB without an allocator\n", moved / MIB);
    if (iscsi_force_reconnect_sync(iscsi) != 0)
        die("reconnect failed");
    check_whole_region(a, shadow, tmp);
    workload(a, shadow, heap, tmp, 2 * NSIZES * NPATHS, 5000);
    check_whole_region(a, shadow, tmp);
    printf("ok: data intact across a reconnect\n");
    iscsi_logout_sync(iscsi);
    iscsi_destroy_url(url);
    iscsi_destroy_context(iscsi);
    iscsi = NULL;
    expect(a->pd_set + a->pd_cleared + a->allocs + a->frees + a->hits +
           a->misses == 0, "no allocator callback without an allocator");
    return save_region(out, shadow);
}

int
main(int argc, char **argv)
{
    static struct arena a;
    struct iscsi_rdma_allocator hook = {
        .pd_changed = arena_pd_changed, .alloc = arena_alloc,
        .free = arena_free, .lookup = arena_lookup, .opaque = &a,
    };
    struct iscsi_url *url;
    unsigned char *shadow, *heap, *tmp, *big;
    unsigned regs_before;
    long sr_before, sr_after;
    uint64_t moved;
    int use_hook = 1;

    if (argc == 5 && !strcmp(argv[1], "--no-hook")) {
        use_hook = 0;
        argv++;
        argc--;
    }
    if (argc != 4) {
        fprintf(stderr, "usage: hooktest [--no-hook] INITIATOR-IQN iser://HOST/IQN/LUN OUT-FILE\n");
        return 2;
    }
    a.base = mmap(NULL, ARENA, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    shadow = calloc(1, REGION);
    heap = malloc(SLOT + 4096);
    tmp = malloc(SLOT);
    big = malloc(REGION);
    if (a.base == MAP_FAILED || !shadow || !heap || !tmp || !big)
        die("out of memory");

    iscsi = iscsi_create_context(argv[1]);
    if (!iscsi)
        die("cannot create an iSCSI context");
    url = iscsi_parse_full_url(iscsi, argv[2]);
    if (!url)
        die("bad URL");
    lun = url->lun;
    if (use_hook)
        expect(iscsi_set_rdma_allocator(iscsi, &hook) == 0,
               "allocator installed before connecting");
    iscsi_set_targetname(iscsi, url->target);
    iscsi_set_session_type(iscsi, ISCSI_SESSION_NORMAL);
    iscsi_set_header_digest(iscsi, ISCSI_HEADER_DIGEST_NONE);
    iscsi_set_timeout(iscsi, 20);
    /* the target reports a reset to the new session: let libiscsi eat
     * the unit attentions instead of failing the first command */
    iscsi_set_no_ua_on_reconnect(iscsi, 1);
    if (iscsi_full_connect_sync(iscsi, url->portal, url->lun) != 0)
        die("login failed");
    if (!use_hook) {
        int rc = no_hook(&a, url, shadow, heap, tmp, big, argv[3]);

        munmap(a.base, ARENA);
        free(shadow);
        free(heap);
        free(tmp);
        free(big);
        return rc;
    }
    expect(a.pd_set == 1 && a.mr != NULL, "pd_changed gave the PD, arena registered once");
    expect(a.allocs > 0 && a.outstanding == 0,
           "login PDUs used allocator buffers and gave them back");
    expect(iscsi_set_rdma_allocator(iscsi, NULL) != 0,
           "allocator cannot be removed while connected");

    read_capacity();
    report_limits();
    failing_reads();
    printf("ok: failing small reads\n");

    /* Warm-up: the transport registers its per-descriptor headers and
     * receive buffers on first use. */
    workload(&a, shadow, heap, tmp, NSIZES * NPATHS, 1);
    check_whole_region(&a, shadow, tmp);
    parallel(&a, shadow, big, 77);
    check_whole_region(&a, shadow, tmp);
    printf("ok: %d commands of %d KiB in flight: %u allocator buffers, "
           "%u fallbacks to transport buffers, %u zero copy\n", PSLICES,
           PSLICE / 1024, a.allocs, a.fallbacks, a.hits);
    expect(a.outstanding == 0, "all buffers returned after the parallel I/O");

    regs_before = a.regs;
    sr_before = softrdma_reg_mr();
    a.hits = a.misses = a.allocs = a.fallbacks = 0;
    moved = workload(&a, shadow, heap, tmp, 320, 1000);
    sr_after = softrdma_reg_mr();
    printf("moved %" PRIu64 " MiB: %u allocator buffers, %u zero-copy "
           "commands, %u lookups missed, %u fallbacks\n", moved / MIB,
           a.allocs, a.hits, a.misses, a.fallbacks);
    expect(a.regs == regs_before, "no arena re-registration during I/O");
    if (sr_before >= 0) {
        printf("softrdma reg_mr: %ld before, %ld after the I/O\n",
               sr_before, sr_after);
        expect(sr_after == sr_before, "process registered no memory per I/O");
    } else {
        printf("SKIP: not under softrdma with SOFTRDMA_STATS, no process-wide count\n");
    }
    expect(moved >= 256ULL * MIB, "moved at least 256 MiB after the warm-up");
    expect(a.hits >= 160 && a.allocs >= 160,
           "both zero-copy and allocator-buffer commands ran");
    expect(a.fallbacks == 0, "every transport buffer came from the allocator");
    expect(a.outstanding == 0, "all buffers returned after the I/O");

    /* Reconnect: a new protection domain, the arena registered again,
     * data intact. */
    if (iscsi_force_reconnect_sync(iscsi) != 0)
        die("reconnect failed");
    expect(a.pd_cleared == 1 && a.pd_set == 2 && a.regs == 2 && a.mr != NULL,
           "reconnect: old PD cleared, new PD registered");
    check_whole_region(&a, shadow, tmp);
    printf("ok: data intact after reconnect\n");
    workload(&a, shadow, heap, tmp, 2 * NSIZES * NPATHS, 5000);
    check_whole_region(&a, shadow, tmp);
    printf("ok: I/O after reconnect\n");

    iscsi_logout_sync(iscsi);
    iscsi_destroy_url(url);
    iscsi_destroy_context(iscsi);
    iscsi = NULL;
    expect(a.pd_cleared == 2 && a.mr == NULL && a.outstanding == 0,
           "destroy: PD cleared after every buffer came back");
    expect(a.errors == 0, "allocator saw no contract violation");

    if (save_region(argv[3], shadow) != 0)
        return 1;
    munmap(a.base, ARENA);
    free(shadow);
    free(heap);
    free(tmp);
    free(big);
    return 0;
}
