/* iser-rw: move real data through libiscsi's synchronous API, to check the
 * iSER data path end to end (our stand-in for iscsi-dd, which Debian's
 * libiscsi-bin does not ship).
 *
 *   iser-rw read  DEPTH INITIATOR-IQN URL FILE       LUN -> FILE
 *   iser-rw write DEPTH INITIATOR-IQN URL FILE SEED  pseudo-random bytes ->
 *                                                    LUN, same bytes -> FILE
 *
 * The whole LUN is moved with DEPTH commands in flight (like a FUSE server
 * under parallel I/O), then a test compares FILE with the LUN's backing
 * file byte for byte.  Commands carry at most 128 KiB and DEPTH is capped
 * at 128: Debian's libiscsi 1.19 iSER transport cannot move more than
 * 256 KiB per command nor have more than 256 tasks in flight.  Every wait
 * for the target is bounded (10 s without progress fails).
 *
 * ISER_RW_BLOCKS=N (512-byte blocks) skips READ CAPACITY, so that the first
 * DEPTH commands leave in one burst right after the login. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#define CHUNK (128 * 1024)
#define STALL_MS 10000

struct op {
    unsigned char *buf;         /* where this command's bytes live */
    uint32_t len;
    int reading;
    int *inflight, *failed;
};

static int
fail(struct iscsi_context *iscsi, const char *what)
{
    fprintf(stderr, "iser-rw: %s: %s\n", what, iscsi ? iscsi_get_error(iscsi) : "");
    return 1;
}

static int
write_all(int fd, const unsigned char *p, size_t n)
{
    while (n) {
        ssize_t r = write(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= r;
    }
    return 0;
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

static void
done(struct iscsi_context *iscsi, int status, void *command_data, void *private_data)
{
    struct op *op = private_data;
    struct scsi_task *task = command_data;

    (void)iscsi;
    if (status != SCSI_STATUS_GOOD) {
        (*op->failed)++;
    } else if (op->reading) {
        if (!task || task->datain.size != (int)op->len)
            (*op->failed)++;
        else
            memcpy(op->buf, task->datain.data, op->len);
    }
    if (task)
        scsi_free_scsi_task(task);
    (*op->inflight)--;
    free(op);
}

/* Run the event loop until fewer than limit commands are in flight. */
static int
drain(struct iscsi_context *iscsi, int *inflight, int limit)
{
    while (*inflight > limit) {
        struct pollfd p = { .fd = iscsi_get_fd(iscsi), .events = iscsi_which_events(iscsi) };
        int r = poll(&p, 1, STALL_MS);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            fprintf(stderr, "iser-rw: no progress for %d ms\n", STALL_MS);
            return -1;
        }
        if (iscsi_service(iscsi, p.revents) < 0)
            return fail(iscsi, "iscsi_service"), -1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    struct iscsi_context *iscsi;
    struct iscsi_url *url;
    struct scsi_task *task;
    struct scsi_readcapacity16 *rc16;
    unsigned char *data;
    uint64_t blocks, lba;
    uint32_t bs;
    int writing, depth, fd, inflight = 0, failed = 0;

    if (argc < 6 || (strcmp(argv[1], "read") && strcmp(argv[1], "write")) ||
        (!strcmp(argv[1], "write") && argc != 7) ||
        (depth = atoi(argv[2])) < 1 || depth > 128) {
        fprintf(stderr, "usage: iser-rw read|write DEPTH(1-128) INITIATOR-IQN URL FILE [SEED]\n");
        return 2;
    }
    writing = !strcmp(argv[1], "write");

    iscsi = iscsi_create_context(argv[3]);
    if (!iscsi)
        return fail(NULL, "cannot create an iSCSI context");
    url = iscsi_parse_full_url(iscsi, argv[4]);
    if (!url)
        return fail(iscsi, "bad URL");
    iscsi_set_targetname(iscsi, url->target);
    iscsi_set_session_type(iscsi, ISCSI_SESSION_NORMAL);
    iscsi_set_header_digest(iscsi, ISCSI_HEADER_DIGEST_NONE);
    if (iscsi_full_connect_sync(iscsi, url->portal, url->lun) != 0)
        return fail(iscsi, "login failed");

    if (getenv("ISER_RW_BLOCKS")) {
        /* The LUN's size given: the first DEPTH commands go out right
         * after the login, before any answer arrived. */
        blocks = strtoull(getenv("ISER_RW_BLOCKS"), NULL, 0);
        bs = 512;
    } else {
        task = iscsi_readcapacity16_sync(iscsi, url->lun);
        if (!task || task->status != SCSI_STATUS_GOOD ||
            !(rc16 = scsi_datain_unmarshall(task)))
            return fail(iscsi, "READ CAPACITY(16) failed");
        blocks = rc16->returned_lba + 1;
        bs = rc16->block_length;
        scsi_free_scsi_task(task);
    }
    if (!bs || CHUNK % bs || blocks > (1ULL << 40) / bs)
        return fail(iscsi, "unsupported block size or LUN size");

    data = malloc(blocks * bs);
    if (!data)
        return fail(NULL, "out of memory");
    if (writing)
        fill(data, blocks * bs, strtoull(argv[6], NULL, 0));

    for (lba = 0; lba < blocks && !failed; ) {
        uint32_t n = blocks - lba < CHUNK / bs ? blocks - lba : CHUNK / bs;
        struct op *op = calloc(1, sizeof *op);

        if (!op)
            return fail(NULL, "out of memory");
        op->buf = data + lba * bs;
        op->len = n * bs;
        op->reading = !writing;
        op->inflight = &inflight;
        op->failed = &failed;
        task = writing
            ? iscsi_write16_task(iscsi, url->lun, lba, op->buf, op->len, bs,
                                 0, 0, 0, 0, 0, done, op)
            : iscsi_read16_task(iscsi, url->lun, lba, op->len, bs,
                                0, 0, 0, 0, 0, done, op);
        if (!task)
            return fail(iscsi, "cannot queue a command");
        inflight++;
        lba += n;
        if (drain(iscsi, &inflight, depth - 1) < 0)
            return 1;
    }
    if (drain(iscsi, &inflight, 0) < 0)
        return 1;
    if (failed)
        return fail(iscsi, writing ? "WRITE(16) failed" : "READ(16) failed");

    fd = open(argv[5], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write_all(fd, data, blocks * bs) < 0 || close(fd) < 0) {
        perror(argv[5]);
        return 1;
    }
    free(data);
    iscsi_logout_sync(iscsi);
    iscsi_destroy_url(url);
    iscsi_destroy_context(iscsi);
    return 0;
}
