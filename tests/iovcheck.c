/* iovcheck: write a LUN through libiscsi's iovec tasks with each command's
 * data scattered over many buffers of uneven sizes, DEPTH commands in
 * flight, then read it back (scattered differently) and compare.
 *
 * Why: a sender that batches several PDUs per system call walks a task's
 * buffer list ahead of what the socket has taken; after a short send it
 * must find its place again, also behind a buffer boundary.  iserfs hands
 * libiscsi one buffer per command, so its own tests never see a list of
 * buffers; other users of the library (and the library's own API) do.
 *
 * Usage: iovcheck URL BYTES_PER_COMMAND PIECES DEPTH TOTAL_BYTES
 * Exit 0 and "ok ..." when every byte read back is the byte written. */
#include <config.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include "rawlogin.h"
#include "xorshift.h"

struct cmd {
  struct run *run;
  struct scsi_iovec *iov;       /* must outlive the task */
};

struct run {
  struct iscsi_context *iscsi;
  int lun;
  unsigned cmd_bytes, pieces, block_size;
  uint64_t total, next;         /* bytes; next: offset of the next command */
  unsigned in_flight;
  bool writing, failed;
  unsigned char *data;          /* what is written, then what is read */
  uint64_t rng;
};

/* Cut [base, base + len) into PIECES buffers at random places (empty
 * pieces allowed: libiscsi must step over them too). */
static struct scsi_iovec *
scatter (struct run *r, unsigned char *base)
{
  struct scsi_iovec *iov = calloc (r->pieces, sizeof *iov);
  uint32_t *cut = calloc (r->pieces + 1, sizeof *cut);
  unsigned i, j;

  if (iov == NULL || cut == NULL) {
    fprintf (stderr, "iovcheck: out of memory\n");
    exit (1);
  }
  cut[0] = 0;
  cut[r->pieces] = r->cmd_bytes;
  for (i = 1; i < r->pieces; i++)
    cut[i] = xorshift64 (&r->rng) % (r->cmd_bytes + 1);
  /* insertion sort: a few hundred cuts at most */
  for (i = 2; i < r->pieces; i++)
    for (j = i; j > 1 && cut[j - 1] > cut[j]; j--) {
      uint32_t t = cut[j];
      cut[j] = cut[j - 1];
      cut[j - 1] = t;
    }
  for (i = 0; i < r->pieces; i++) {
    iov[i].iov_base = base + cut[i];
    iov[i].iov_len = cut[i + 1] - cut[i];
  }
  free (cut);
  return iov;
}

static void
done (struct iscsi_context *iscsi, int status, void *command_data,
      void *private_data)
{
  struct cmd *c = private_data;
  struct run *r = c->run;

  (void) iscsi;
  if (status != SCSI_STATUS_GOOD) {
    fprintf (stderr, "iovcheck: %s failed: %s\n",
             r->writing ? "WRITE" : "READ", iscsi_get_error (r->iscsi));
    r->failed = true;
  }
  scsi_free_scsi_task (command_data);
  free (c->iov);
  free (c);
  r->in_flight--;
}

static int
issue (struct run *r)
{
  struct cmd *c = malloc (sizeof *c);
  uint64_t off = r->next;
  uint64_t lba = off / r->block_size;
  struct scsi_task *t;

  if (c == NULL)
    return -1;
  c->run = r;
  c->iov = scatter (r, r->data + off);
  if (r->writing)
    t = iscsi_write16_iov_task (r->iscsi, r->lun, lba, NULL, r->cmd_bytes,
                                r->block_size, 0, 0, 0, 0, 0, done, c,
                                c->iov, r->pieces);
  else
    t = iscsi_read16_iov_task (r->iscsi, r->lun, lba, r->cmd_bytes,
                               r->block_size, 0, 0, 0, 0, 0, done, c,
                               c->iov, r->pieces);
  if (t == NULL) {
    fprintf (stderr, "iovcheck: cannot queue a command: %s\n",
             iscsi_get_error (r->iscsi));
    free (c->iov);
    free (c);
    return -1;
  }
  r->next += r->cmd_bytes;
  r->in_flight++;
  return 0;
}

/* Keep DEPTH commands in flight until TOTAL bytes are done. */
static int
pass (struct run *r, unsigned depth)
{
  r->next = 0;
  while (!r->failed && (r->next < r->total || r->in_flight > 0)) {
    while (r->next < r->total && r->in_flight < depth)
      if (issue (r) < 0)
        return -1;
    if (rawlogin_service (r->iscsi, "iovcheck") < 0)
      return -1;
  }
  return r->failed ? -1 : 0;
}

static int
connect_lun (struct run *r, const char *url_text)
{
  struct rawlogin l;

  if (rawlogin (&l, "iovcheck", "iqn.2026-01.org.iserfs:iovcheck",
                url_text) < 0)
    return -1;
  r->iscsi = l.iscsi;
  r->lun = l.lun;
  r->block_size = l.block_size;
  /* A broken connection is a failure here, not something to retry. */
  iscsi_set_noautoreconnect (r->iscsi, 1);
  if (l.nr_blocks * l.block_size < r->total) {
    fprintf (stderr, "iovcheck: the LUN is smaller than %" PRIu64 " bytes\n",
             r->total);
    return -1;
  }
  return 0;
}

int
main (int argc, char *argv[])
{
  struct run r = { .rng = 0x9e3779b97f4a7c15u };
  unsigned depth, total;
  unsigned char *want;
  uint64_t i;

  if (argc != 6 || rawlogin_parse_uint (argv[2], &r.cmd_bytes) < 0
      || rawlogin_parse_uint (argv[3], &r.pieces) < 0
      || rawlogin_parse_uint (argv[4], &depth) < 0
      || rawlogin_parse_uint (argv[5], &total) < 0
      || r.cmd_bytes == 0 || r.pieces == 0 || depth == 0 || total == 0
      || total % r.cmd_bytes) {
    fprintf (stderr, "usage: iovcheck URL BYTES_PER_COMMAND PIECES DEPTH "
             "TOTAL_BYTES (TOTAL a multiple of BYTES_PER_COMMAND)\n");
    return 2;
  }
  r.total = total;
  if (connect_lun (&r, argv[1]) < 0)
    return 1;
  if (r.cmd_bytes % r.block_size) {
    fprintf (stderr, "iovcheck: %u bytes per command is not a multiple of "
             "the %u-byte block\n", r.cmd_bytes, r.block_size);
    return 2;
  }
  want = malloc (r.total);
  r.data = malloc (r.total);
  if (want == NULL || r.data == NULL) {
    fprintf (stderr, "iovcheck: out of memory\n");
    return 1;
  }
  for (i = 0; i + 8 <= r.total; i += 8) {
    uint64_t v = xorshift64 (&r.rng);
    memcpy (want + i, &v, 8);
  }
  memcpy (r.data, want, r.total);
  r.writing = true;
  if (pass (&r, depth) < 0)
    return 1;
  memset (r.data, 0, r.total);
  r.writing = false;
  if (pass (&r, depth) < 0)
    return 1;
  for (i = 0; i < r.total; i++)
    if (r.data[i] != want[i]) {
      fprintf (stderr, "iovcheck: byte %" PRIu64 " read back as 0x%02x, "
               "written as 0x%02x\n", i, r.data[i], want[i]);
      return 1;
    }
  printf ("ok: %" PRIu64 " bytes in commands of %u bytes, %u buffers each, "
          "%u in flight\n", r.total, r.cmd_bytes, r.pieces, depth);
  iscsi_logout_sync (r.iscsi);
  iscsi_destroy_context (r.iscsi);
  free (want);
  free (r.data);
  return 0;
}
