/* iser-rw: move real data through libiscsi's synchronous API, to check the
 * iSER data path end to end (our stand-in for iscsi-dd, which Debian's
 * libiscsi-bin does not ship).
 *
 *   iser-rw read  INITIATOR-IQN URL FILE       LUN -> FILE (whole LUN)
 *   iser-rw write INITIATOR-IQN URL FILE SEED  pseudo-random bytes -> LUN,
 *                                              and the same bytes -> FILE
 *
 * A test then compares FILE with the LUN's backing file byte for byte.
 * Commands carry at most 128 KiB: Debian's libiscsi 1.19 iSER transport
 * cannot move more than 256 KiB per command. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#define CHUNK (128 * 1024)

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
fill(unsigned char *p, size_t n, uint64_t *state)
{
    size_t i;

    for (i = 0; i < n; i++) {
        *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
        p[i] = *state >> 56;
    }
}

int
main(int argc, char **argv)
{
    struct iscsi_context *iscsi;
    struct iscsi_url *url;
    struct scsi_task *task;
    struct scsi_readcapacity16 *rc16;
    unsigned char *buf;
    uint64_t blocks, lba, state = 0;
    uint32_t bs;
    int writing, fd, ret = 1;

    if (argc < 5 || (strcmp(argv[1], "read") && strcmp(argv[1], "write")) ||
        (!strcmp(argv[1], "write") && argc != 6)) {
        fprintf(stderr, "usage: iser-rw read|write INITIATOR-IQN URL FILE [SEED]\n");
        return 2;
    }
    writing = !strcmp(argv[1], "write");
    if (writing)
        state = strtoull(argv[5], NULL, 0);

    iscsi = iscsi_create_context(argv[2]);
    if (!iscsi)
        return fail(NULL, "cannot create an iSCSI context");
    url = iscsi_parse_full_url(iscsi, argv[3]);
    if (!url)
        return fail(iscsi, "bad URL");
    iscsi_set_targetname(iscsi, url->target);
    iscsi_set_session_type(iscsi, ISCSI_SESSION_NORMAL);
    iscsi_set_header_digest(iscsi, ISCSI_HEADER_DIGEST_NONE);
    if (iscsi_full_connect_sync(iscsi, url->portal, url->lun) != 0)
        return fail(iscsi, "login failed");

    task = iscsi_readcapacity16_sync(iscsi, url->lun);
    if (!task || task->status != SCSI_STATUS_GOOD ||
        !(rc16 = scsi_datain_unmarshall(task)))
        return fail(iscsi, "READ CAPACITY(16) failed");
    blocks = rc16->returned_lba + 1;
    bs = rc16->block_length;
    scsi_free_scsi_task(task);
    if (!bs || CHUNK % bs)
        return fail(iscsi, "unsupported block size");

    fd = open(argv[4], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    buf = malloc(CHUNK);
    if (fd < 0 || !buf) {
        perror(argv[4]);
        return 1;
    }
    for (lba = 0; lba < blocks; ) {
        uint32_t n = blocks - lba < CHUNK / bs ? blocks - lba : CHUNK / bs;

        if (writing) {
            fill(buf, (size_t)n * bs, &state);
            task = iscsi_write16_sync(iscsi, url->lun, lba, buf, n * bs, bs,
                                      0, 0, 0, 0, 0);
        } else {
            task = iscsi_read16_sync(iscsi, url->lun, lba, n * bs, bs,
                                     0, 0, 0, 0, 0);
        }
        if (!task || task->status != SCSI_STATUS_GOOD) {
            fail(iscsi, writing ? "WRITE(16) failed" : "READ(16) failed");
            goto out;
        }
        if (!writing && (task->datain.size != (int)(n * bs) ||
                         write_all(fd, task->datain.data, n * bs) < 0)) {
            fprintf(stderr, "iser-rw: short read or cannot write %s\n", argv[4]);
            goto out;
        }
        if (writing && write_all(fd, buf, (size_t)n * bs) < 0) {
            perror(argv[4]);
            goto out;
        }
        scsi_free_scsi_task(task);
        task = NULL;
        lba += n;
    }
    ret = 0;
out:
    if (task)
        scsi_free_scsi_task(task);
    if (close(fd) < 0)
        ret = 1;
    free(buf);
    iscsi_logout_sync(iscsi);
    iscsi_destroy_url(url);
    iscsi_destroy_context(iscsi);
    return ret;
}
