/* Unit tests of the I/O engine (src/io.c) against a fake path (src/path.h):
 * no target, no root, no threads.  The test plays the session thread: it
 * submits requests, lets the engine take them, and answers the commands
 * the engine sent from a small in-memory disk, in the order it chooses.
 *
 * What is checked: overlapping writes go out one after the other in
 * submission order, and a read waits for an earlier overlapping write;
 * a write with partial first/last blocks reads them first and keeps the
 * bytes around its range; requests are split into commands no larger than
 * the LUN's maximum transfer; at the deadline a request is answered EIO
 * while its command stays out and its range stays held until the path
 * answers; a lent request answered at its deadline moves its data to a
 * buffer of its own first; which failures the command layer retries; a
 * query brings back exactly the bytes the path answered; and nothing of a
 * removed LUN reaches the path. */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <check.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include "check_run.h"
#include "clock.h"
#include "io-internal.h"
#include "iobuf.h"
#include "sense.h"

#define BS 512
#define NR_BLOCKS 64
#define MAX_XFER 4              /* blocks per READ/WRITE command */
#define MAX_OUT 64

/* ---- the fake path: commands wait in `out` until the test answers them ---- */

static struct fake {
  struct path path;
  struct scmd *out[MAX_OUT];
  unsigned nr_out;
  unsigned sent;                /* commands sent in all */
  unsigned char disk[NR_BLOCKS * BS];
} F;

static struct lun L;

static void
fake_send (struct path *p, struct scmd *c)
{
  (void) p;
  ck_assert_uint_lt (F.nr_out, MAX_OUT);
  F.out[F.nr_out++] = c;
  F.sent++;
}

static void
fake_wake (struct path *p)
{
  (void) p;
}

/* The test is the path's thread. */
static bool
fake_on_thread (const struct path *p)
{
  (void) p;
  return true;
}

static const struct path_ops fake_ops = {
  .send = fake_send, .wake = fake_wake, .on_thread = fake_on_thread,
};

/* Answer the i-th command out: with err 0, carry it out on the disk. */
static void
answer (unsigned i, int err)
{
  struct scmd *c;
  size_t off, bytes;

  ck_assert_uint_lt (i, F.nr_out);
  c = F.out[i];
  memmove (&F.out[i], &F.out[i + 1], (F.nr_out - i - 1) * sizeof F.out[0]);
  F.nr_out--;
  off = (size_t) c->lba * BS;
  bytes = (size_t) c->nblocks * BS;
  if (err == 0) {
    if (c->kind == CMD_READ) {
      ck_assert_uint_eq (c->iov.iov_len, bytes);
      memcpy (c->iov.iov_base, F.disk + off, bytes);
    }
    else if (c->kind == CMD_WRITE) {
      ck_assert_uint_eq (c->iov.iov_len, bytes);
      memcpy (F.disk + off, c->iov.iov_base, bytes);
    }
    else if (c->kind == CMD_WRITESAME || c->kind == CMD_UNMAP)
      memset (F.disk + off, 0, bytes);
  }
  F.path.client.done (c, err);
}

static void
answer_all (void)
{
  while (F.nr_out)
    answer (0, 0);
}

/* The session thread's turn after a hand-off. */
static void
take (void)
{
  F.path.client.take (F.path.client.eng);
}

/* ---- requests ---- */

struct result {
  unsigned calls;
  int err;
  unsigned char data[NR_BLOCKS * BS];
};

static void
on_done (struct io_req *r, void *ctx)
{
  struct result *res = ctx;

  res->calls++;
  res->err = io_req_err (r);
  if (res->err == 0 && io_req_len (r) > 0
      && io_req_len (r) <= sizeof res->data)
    memcpy (res->data, io_req_data (r), io_req_len (r));
}

/* Submit op on [off, off+len) (a write of byte fill) and let the engine
 * take it. */
static void
submit (enum io_op op, uint64_t off, size_t len, int fill, struct result *res)
{
  struct io_req *r;

  memset (res, 0, sizeof *res);
  ck_assert_int_eq (io_req_new (&r, &L, op, off, len, on_done, res), 0);
  if (op == IO_WRITE)
    memset (io_req_data (r), fill, len);
  io_submit (r);
  take ();
}

static void
setup (void)
{
  memset (&F, 0, sizeof F);
  for (size_t i = 0; i < sizeof F.disk; i++)
    F.disk[i] = (unsigned char) (i * 7 + 3);
  F.path.ops = &fake_ops;
  memset (&L, 0, sizeof L);
  L.block_size = BS;
  L.nr_blocks = NR_BLOCKS;
  L.size = NR_BLOCKS * BS;
  L.max_xfer_blocks = MAX_XFER;
  L.max_unmap_blocks = NR_BLOCKS;
  L.max_ws_blocks = NR_BLOCKS;
  L.sync16 = true;
  L.engine = io_engine_new (&F.path);
  ck_assert_ptr_nonnull (L.engine);
}

static void
teardown (void)
{
  F.path.client.closed (F.path.client.eng);
}

static unsigned char
old_byte (size_t i)
{
  return (unsigned char) (i * 7 + 3);
}

/* ---- splitting ---- */

START_TEST (test_split)
{
  struct result w;

  submit (IO_WRITE, 0, 10 * BS, 'a', &w);
  ck_assert_uint_eq (F.nr_out, 3);
  for (unsigned i = 0; i < F.nr_out; i++) {
    ck_assert_int_eq (F.out[i]->kind, CMD_WRITE);
    ck_assert_uint_le (F.out[i]->nblocks, MAX_XFER);
  }
  ck_assert_uint_eq (F.out[0]->lba, 0);
  ck_assert_uint_eq (F.out[1]->lba, 4);
  ck_assert_uint_eq (F.out[2]->lba, 8);
  ck_assert_uint_eq (F.out[2]->nblocks, 2);
  answer (2, 0);
  answer (0, 0);
  ck_assert_uint_eq (w.calls, 0);       /* one piece still out */
  answer (0, 0);
  ck_assert_uint_eq (w.calls, 1);
  ck_assert_int_eq (w.err, 0);
  for (size_t i = 0; i < 10 * BS; i++)
    ck_assert_uint_eq (F.disk[i], 'a');
  ck_assert_uint_eq (F.disk[10 * BS], old_byte (10 * BS));
}
END_TEST

/* One failed piece fails the request, once. */
START_TEST (test_split_error)
{
  struct result r;

  submit (IO_READ, 0, 8 * BS, 0, &r);
  ck_assert_uint_eq (F.nr_out, 2);
  answer (0, -EIO);
  answer (0, 0);
  ck_assert_uint_eq (r.calls, 1);
  ck_assert_int_eq (r.err, -EIO);
}
END_TEST

/* ---- range locks ---- */

START_TEST (test_overlapping_writes_in_order)
{
  struct result w1, w2, w3;

  submit (IO_WRITE, 0, 4 * BS, 'a', &w1);
  submit (IO_WRITE, 2 * BS, 4 * BS, 'b', &w2);
  submit (IO_WRITE, 16 * BS, BS, 'c', &w3);     /* overlaps neither */
  /* w2 waits for w1; w3 goes out at once. */
  ck_assert_uint_eq (F.nr_out, 2);
  ck_assert_uint_eq (F.out[0]->lba, 0);
  ck_assert_uint_eq (F.out[1]->lba, 16);
  answer (1, 0);
  ck_assert_uint_eq (w3.calls, 1);
  ck_assert_uint_eq (F.nr_out, 1);              /* still only w1 */
  answer (0, 0);
  ck_assert_uint_eq (w1.calls, 1);
  ck_assert_uint_eq (F.nr_out, 1);              /* now w2 */
  ck_assert_uint_eq (F.out[0]->lba, 2);
  answer (0, 0);
  ck_assert_uint_eq (w2.calls, 1);
  for (size_t i = 0; i < 2 * BS; i++)
    ck_assert_uint_eq (F.disk[i], 'a');
  for (size_t i = 2 * BS; i < 6 * BS; i++)
    ck_assert_uint_eq (F.disk[i], 'b');
}
END_TEST

/* A read submitted after an overlapping write sees that write's data,
 * even though the write may have been answered early (write-behind). */
START_TEST (test_read_waits_for_write)
{
  struct result w, r;

  submit (IO_WRITE, 0, 4 * BS, 'w', &w);
  submit (IO_READ, BS, BS, 0, &r);
  ck_assert_uint_eq (F.nr_out, 1);
  ck_assert_int_eq (F.out[0]->kind, CMD_WRITE);
  answer (0, 0);
  ck_assert_uint_eq (F.nr_out, 1);
  ck_assert_int_eq (F.out[0]->kind, CMD_READ);
  answer (0, 0);
  ck_assert_uint_eq (r.calls, 1);
  for (size_t i = 0; i < BS; i++)
    ck_assert_uint_eq (r.data[i], 'w');
}
END_TEST

/* Reads never wait for each other. */
START_TEST (test_reads_overlap_freely)
{
  struct result r1, r2;

  submit (IO_READ, 0, 2 * BS, 0, &r1);
  submit (IO_READ, BS, 2 * BS, 0, &r2);
  ck_assert_uint_eq (F.nr_out, 2);
  answer_all ();
  ck_assert_uint_eq (r1.calls + r2.calls, 2);
}
END_TEST

/* ---- read-modify-write ---- */

START_TEST (test_rmw_keeps_edges)
{
  struct result w;
  size_t off = 100, len = 1000;         /* blocks 0..2, partly */

  submit (IO_WRITE, off, len, 'z', &w);
  /* First the partial first and last blocks are read. */
  ck_assert_uint_eq (F.nr_out, 2);
  ck_assert_int_eq (F.out[0]->kind, CMD_READ);
  ck_assert_uint_eq (F.out[0]->lba, 0);
  ck_assert_uint_eq (F.out[0]->nblocks, 1);
  ck_assert_int_eq (F.out[1]->kind, CMD_READ);
  ck_assert_uint_eq (F.out[1]->lba, 2);
  answer_all ();
  ck_assert_uint_eq (w.calls, 1);
  ck_assert_int_eq (w.err, 0);
  for (size_t i = 0; i < 4 * BS; i++)
    ck_assert_uint_eq (F.disk[i], i >= off && i < off + len ? 'z'
                       : old_byte (i));
}
END_TEST

/* Both edges in one block: one read, and the bytes on both sides kept. */
START_TEST (test_rmw_one_block)
{
  struct result w;

  submit (IO_WRITE, 3 * BS + 10, 20, 'q', &w);
  ck_assert_uint_eq (F.nr_out, 1);
  ck_assert_int_eq (F.out[0]->kind, CMD_READ);
  ck_assert_uint_eq (F.out[0]->lba, 3);
  answer (0, 0);
  ck_assert_uint_eq (F.nr_out, 1);
  ck_assert_int_eq (F.out[0]->kind, CMD_WRITE);
  ck_assert_uint_eq (F.out[0]->nblocks, 1);
  answer (0, 0);
  ck_assert_uint_eq (w.calls, 1);
  for (size_t i = 3 * BS; i < 4 * BS; i++)
    ck_assert_uint_eq (F.disk[i], i >= 3 * BS + 10 && i < 3 * BS + 30
                       ? 'q' : old_byte (i));
}
END_TEST

/* A failed edge read writes nothing. */
START_TEST (test_rmw_read_fails)
{
  struct result w;

  submit (IO_WRITE, 10, 100, 'x', &w);
  ck_assert_uint_eq (F.nr_out, 1);
  answer (0, -EIO);
  ck_assert_uint_eq (F.nr_out, 0);
  ck_assert_uint_eq (w.calls, 1);
  ck_assert_int_eq (w.err, -EIO);
  for (size_t i = 0; i < BS; i++)
    ck_assert_uint_eq (F.disk[i], old_byte (i));
}
END_TEST

/* ---- deadlines ---- */

/* Answered EIO at the deadline, but its command stays the path's and its
 * range stays held: a newer write to the same blocks waits until the
 * target has answered the old one. */
START_TEST (test_deadline_keeps_range)
{
  struct result w1, w2;
  struct scmd *c;

  F.path.timeout = 5;
  submit (IO_WRITE, 0, BS, 'o', &w1);
  ck_assert_uint_eq (F.nr_out, 1);
  c = F.out[0];
  F.path.client.expire (F.path.client.eng, clock_mono_s () + 3);
  ck_assert_uint_eq (w1.calls, 0);      /* not yet */
  F.path.client.expire (F.path.client.eng, clock_mono_s () + 6);
  ck_assert_uint_eq (w1.calls, 1);
  ck_assert_int_eq (w1.err, -EIO);
  ck_assert (c->abandoned);
  ck_assert (!F.path.client.idle (F.path.client.eng));
  submit (IO_WRITE, 0, BS, 'n', &w2);
  ck_assert_uint_eq (F.nr_out, 1);      /* w2 waits behind w1 */
  answer (0, 0);                        /* the target carries w1 out late */
  ck_assert_uint_eq (w1.calls, 1);      /* answered once only */
  ck_assert_uint_eq (F.nr_out, 1);
  answer (0, 0);
  ck_assert_uint_eq (w2.calls, 1);
  ck_assert_uint_eq (F.disk[0], 'n');
  ck_assert (F.path.client.idle (F.path.client.eng));
}
END_TEST

/* While the path has been down for the timeout, a request fails at once. */
START_TEST (test_down_fails_fast)
{
  struct result r;

  F.path.timeout = 5;
  F.path.down_since = clock_mono_s () - 10;
  submit (IO_READ, 0, BS, 0, &r);
  ck_assert_uint_eq (F.nr_out, 0);
  ck_assert_uint_eq (r.calls, 1);
  ck_assert_int_eq (r.err, -EIO);
}
END_TEST

/* A query goes out as one CMD_QUERY with its kind and page, and its
 * answer is the bytes the path copied, no more. */
START_TEST (test_query_answer)
{
  static const unsigned char answer_bytes[] = { 0, 0, 0, 8, 0, 0, 0, 0,
                                                0, 3, 0, 0, 0, 0, 0, 0 };
  struct result res = { 0 };
  struct io_req *r;
  struct scmd *c;

  ck_assert_int_eq (io_req_new_query (&r, &L, QUERY_VPD, 0xb0, 64, on_done,
                                      &res), 0);
  io_submit (r);
  take ();
  ck_assert_uint_eq (F.nr_out, 1);
  c = F.out[0];
  ck_assert_int_eq (c->kind, CMD_QUERY);
  ck_assert_uint_eq (c->query, QUERY_VPD);
  ck_assert_uint_eq (c->page, 0xb0);
  ck_assert_uint_eq (c->iov.iov_len, 64);
  memcpy (c->iov.iov_base, answer_bytes, sizeof answer_bytes);
  c->datain = sizeof answer_bytes;
  F.nr_out = 0;
  F.path.client.done (c, 0);
  ck_assert_uint_eq (res.calls, 1);
  ck_assert_int_eq (res.err, 0);
  ck_assert_mem_eq (res.data, answer_bytes, sizeof answer_bytes);
  ck_assert_int_eq (io_req_new_query (&r, &L, QUERY_INQUIRY, 0, 0, on_done,
                                      &res), -EINVAL);
}
END_TEST

/* Once the LUN is removed (another may have its number), its requests
 * fail at once and send nothing. */
START_TEST (test_removed_lun_sends_nothing)
{
  struct result r;

  L.removed = true;
  submit (IO_READ, 0, BS, 0, &r);
  ck_assert_uint_eq (F.sent, 0);
  ck_assert_uint_eq (r.calls, 1);
  ck_assert_int_eq (r.err, -EIO);
  submit (IO_WRITE, 0, BS, 1, &r);
  ck_assert_uint_eq (F.sent, 0);
  ck_assert_int_eq (r.err, -EIO);
}
END_TEST

/* A lent READ answered at its deadline gives the lender its memory back:
 * the late data lands in a buffer of the request's own. */
START_TEST (test_unlend)
{
  static unsigned char lent[4 * BS];
  struct result r = { 0 };
  struct io_req *req;
  struct scmd *c;

  F.path.timeout = 5;
  F.path.can_lend = true;
  memset (lent, 0x11, sizeof lent);
  ck_assert_int_eq (io_req_new_lent (&req, &L, IO_READ, 0, sizeof lent,
                                     lent, on_done, &r), 0);
  ck_assert_ptr_nonnull (req);
  io_submit (req);
  take ();
  ck_assert_uint_eq (F.nr_out, 1);
  c = F.out[0];
  ck_assert_ptr_eq (c->iov.iov_base, lent);
  F.path.client.expire (F.path.client.eng, clock_mono_s () + 6);
  ck_assert_uint_eq (r.calls, 1);
  ck_assert_int_eq (r.err, -EIO);
  ck_assert ((unsigned char *) c->iov.iov_base < lent
             || (unsigned char *) c->iov.iov_base >= lent + sizeof lent);
  answer (0, 0);
  for (size_t i = 0; i < sizeof lent; i++)
    ck_assert_uint_eq (lent[i], 0x11);
}
END_TEST

/* Without a path that takes the caller's memory, nothing is lent. */
START_TEST (test_no_lending_on_iser)
{
  unsigned char buf[BS];
  struct io_req *req;

  F.path.can_lend = false;
  ck_assert_int_eq (io_req_new_lent (&req, &L, IO_READ, 0, BS, buf, NULL,
                                     NULL), 0);
  ck_assert_ptr_null (req);
  F.path.can_lend = true;
  ck_assert_int_eq (io_req_new_lent (&req, &L, IO_READ, 1, BS, buf, NULL,
                                     NULL), 0);
  ck_assert_ptr_null (req);             /* not whole blocks */
}
END_TEST

/* ---- retries ---- */

/* SYNCHRONIZE CACHE(16) refused: the engine sends (10) instead, once. */
START_TEST (test_sync16_falls_back)
{
  struct result s;

  submit (IO_SYNC, 0, 0, 0, &s);
  ck_assert_uint_eq (F.nr_out, 1);
  answer (0, -EOPNOTSUPP);
  ck_assert (!L.sync16);
  ck_assert_uint_eq (F.nr_out, 1);
  ck_assert_uint_eq (s.calls, 0);
  answer (0, 0);
  ck_assert_uint_eq (s.calls, 1);
  ck_assert_int_eq (s.err, 0);
}
END_TEST

/* Which failures the command layer sends again (command.c): the ones a
 * kernel initiator retries, five times at most. */
START_TEST (test_retry_policy)
{
  struct scsi_task t;

  memset (&t, 0, sizeof t);
  ck_assert (task_worth_retrying (SCSI_STATUS_BUSY, NULL, 0));
  ck_assert (task_worth_retrying (SCSI_STATUS_TASK_SET_FULL, NULL, 4));
  ck_assert (!task_worth_retrying (SCSI_STATUS_BUSY, NULL, 5));
  t.sense.key = SCSI_SENSE_UNIT_ATTENTION;
  ck_assert (task_worth_retrying (SCSI_STATUS_CHECK_CONDITION, &t, 0));
  t.sense.key = SCSI_SENSE_NOT_READY;
  ck_assert (task_worth_retrying (SCSI_STATUS_CHECK_CONDITION, &t, 0));
  t.sense.ascq = SCSI_SENSE_ASCQ_MEDIUM_NOT_PRESENT;
  ck_assert (!task_worth_retrying (SCSI_STATUS_CHECK_CONDITION, &t, 0));
  t.sense.key = SCSI_SENSE_MEDIUM_ERROR;
  t.sense.ascq = 0;
  ck_assert (!task_worth_retrying (SCSI_STATUS_CHECK_CONDITION, &t, 0));
  ck_assert (!task_worth_retrying (SCSI_STATUS_CHECK_CONDITION, NULL, 0));
}
END_TEST

static Suite *
io_suite (void)
{
  Suite *s = suite_create ("io");
  TCase *tc = tcase_create ("engine");

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_split);
  tcase_add_test (tc, test_split_error);
  tcase_add_test (tc, test_overlapping_writes_in_order);
  tcase_add_test (tc, test_read_waits_for_write);
  tcase_add_test (tc, test_reads_overlap_freely);
  tcase_add_test (tc, test_rmw_keeps_edges);
  tcase_add_test (tc, test_rmw_one_block);
  tcase_add_test (tc, test_rmw_read_fails);
  tcase_add_test (tc, test_deadline_keeps_range);
  tcase_add_test (tc, test_down_fails_fast);
  tcase_add_test (tc, test_unlend);
  tcase_add_test (tc, test_no_lending_on_iser);
  tcase_add_test (tc, test_sync16_falls_back);
  tcase_add_test (tc, test_retry_policy);
  tcase_add_test (tc, test_query_answer);
  tcase_add_test (tc, test_removed_lun_sends_nothing);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  if (iobuf_use_mempool () < 0)
    return 1;
  return check_run (io_suite (), CK_FORK_GETENV);
}
