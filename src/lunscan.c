/* A target's LUNs asked again while mounted; see lunscan.h.  The answers
 * are read from their bytes (SPC-4, SBC-3): the same on every transport
 * and libiscsi version, where libiscsi 1.19 over iSER reports the
 * allocation length as the length of the data (discover.c). */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include "be.h"
#include "clock.h"
#include "identity.h"
#include "io.h"
#include "log.h"
#include "lunscan.h"
#include "mpath.h"
#include "session.h"

#define MAX_LUNS 1024           /* REPORT LUNS answers read, at most */

/* ---- one query, waited for ---- */

/* Shared by the waiting thread and the completion on the session thread.
 * A waiter that gives up leaves it to the completion to free. */
struct qwait {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool done, gave_up;
  int err;
  unsigned char *buf;
  size_t cap, got;
};

static void
qwait_free (struct qwait *w)
{
  pthread_cond_destroy (&w->cond);
  pthread_mutex_destroy (&w->lock);
  free (w);
}

static void
query_done (struct io_req *r, void *ctx)
{
  struct qwait *w = ctx;

  pthread_mutex_lock (&w->lock);
  if (w->gave_up) {
    pthread_mutex_unlock (&w->lock);
    qwait_free (w);
    return;
  }
  w->err = io_req_err (r);
  if (w->err == 0) {
    w->got = io_req_len (r) < w->cap ? io_req_len (r) : w->cap;
    memcpy (w->buf, io_req_data (r), w->got);
  }
  w->done = true;
  pthread_cond_signal (&w->cond);
  pthread_mutex_unlock (&w->lock);
}

/* Ask q of l and wait for the answer in buf (at most cap bytes; *got of
 * them came).  The engine answers by the session's timeout; with none
 * (timeout=0 queues forever) the wait still ends after 30 s, so that a
 * scan never hangs the unmount. */
static int
query (struct lun *l, enum io_query q, unsigned page, void *buf, size_t cap,
       size_t *got)
{
  unsigned t = l->session->timeout;
  struct timespec deadline = clock_deadline_ms (((t ? t : 28) + 2) * 1000u);
  struct qwait *w = calloc (1, sizeof *w);
  struct io_req *r;
  int e;

  if (w == NULL)
    return -ENOMEM;
  pthread_mutex_init (&w->lock, NULL);
  pthread_cond_init (&w->cond, NULL);
  w->buf = buf;
  w->cap = cap;
  e = io_req_new_query (&r, l, q, page, cap, query_done, w);
  if (e < 0) {
    qwait_free (w);
    return e;
  }
  io_submit (r);
  pthread_mutex_lock (&w->lock);
  while (!w->done)
    if (clock_cond_wait (&w->cond, &w->lock, &deadline) == ETIMEDOUT)
      break;
  if (!w->done) {
    w->gave_up = true;
    pthread_mutex_unlock (&w->lock);
    return -ETIMEDOUT;
  }
  pthread_mutex_unlock (&w->lock);
  e = w->err;
  *got = w->got;
  qwait_free (w);
  return e;
}

/* A query of ls's; a wait given up leaves l in use until the answer. */
static int
ask (struct lunscan *ls, struct lun *l, enum io_query q, unsigned page,
     void *buf, size_t cap, size_t *got)
{
  int e = query (l, q, page, buf, cap, got);

  if (e == -ETIMEDOUT)
    ls->lost = true;
  return e;
}

/* ---- LUNs ---- */

static struct lun *
new_lun (struct lunscan *ls, int number)
{
  struct lun *l = ls->spare;

  /* The last probe's, which no command uses any more: reused, so that
   * a LUN that is no disk (tgtd's LUN 0) costs nothing at every scan. */
  if (l) {
    ls->spare = NULL;
    memset (l, 0, sizeof *l);
    l->session = ls->s;
    l->engine = ls->s->engine;
    l->lun = number;
    l->block_size = 512;
    l->live = true;
    return l;
  }

  if (ls->nr_made == ls->cap_made) {
    unsigned cap = ls->cap_made ? 2 * ls->cap_made : 8;
    struct lun **m = realloc (ls->made, cap * sizeof *m);

    if (m == NULL)
      return NULL;
    ls->made = m;
    ls->cap_made = cap;
  }
  l = calloc (1, sizeof *l);
  if (l == NULL)
    return NULL;
  l->session = ls->s;
  l->engine = ls->s->engine;
  l->lun = number;
  l->block_size = 512;          /* until READ CAPACITY says */
  l->live = true;
  ls->made[ls->nr_made++] = l;
  return l;
}

struct lunscan *
lunscan_new (struct session *s, unsigned max_xfer)
{
  struct lunscan *ls = calloc (1, sizeof *ls);

  if (ls == NULL)
    return NULL;
  ls->s = s;
  ls->max_xfer = max_xfer;
  ls->any = new_lun (ls, 0);
  if (ls->any == NULL) {
    lunscan_free (ls);
    return NULL;
  }
  return ls;
}

void
lunscan_free (struct lunscan *ls)
{
  if (ls == NULL)
    return;
  for (unsigned i = 0; i < ls->nr_made; i++)
    free (ls->made[i]);
  free (ls->made);
  free (ls);
}

int
lunscan_report (struct lunscan *ls, int **luns)
{
  size_t cap = 8 + 8 * MAX_LUNS, got = 0;
  unsigned char *d = malloc (cap);
  uint32_t listed, n;
  int *out, e;

  *luns = NULL;
  if (d == NULL)
    return -ENOMEM;
  e = ask (ls, ls->any, QUERY_REPORT_LUNS, 0, d, cap, &got);
  if (e == 0 && got < 8)
    e = -EIO;
  if (e < 0) {
    free (d);
    return e;
  }
  listed = be32 (d) / 8;
  n = listed < (got - 8) / 8 ? listed : (uint32_t) (got - 8) / 8;
  if (listed > n)
    log_error ("%s reports %" PRIu32 " LUNs; only the first %" PRIu32
               " are looked at", ls->s->target, listed, n);
  out = calloc (n ? n : 1, sizeof *out);
  if (out == NULL) {
    free (d);
    return -ENOMEM;
  }
  /* The first two bytes, as libiscsi reads them at mount time, so that
   * a LUN has the same number either way. */
  for (uint32_t i = 0; i < n; i++)
    out[i] = d[8 + 8 * i] << 8 | d[9 + 8 * i];
  free (d);
  *luns = out;
  return (int) n;
}

int
lunscan_geometry (struct lunscan *ls, struct lun *l, uint32_t *block_size,
                  uint64_t *nr_blocks)
{
  unsigned char d[32];
  size_t got = 0;
  int e = ask (ls, l, QUERY_CAPACITY, 0, d, sizeof d, &got);

  if (e < 0)
    return e;
  if (got < 12)
    return -EIO;
  *nr_blocks = be64 (d) + 1;
  *block_size = be32 (d + 8);
  return 0;
}

/* Direct access, logical unit connected (discover.c: is_disk). */
static bool
is_disk (struct lunscan *ls, struct lun *l)
{
  unsigned char d[36];
  size_t got = 0;

  return ask (ls, l, QUERY_INQUIRY, 0, d, sizeof d, &got) == 0 && got >= 1
    && d[0] == 0x00;
}

/* Block Limits (0xB0) and, for thin provisioning, Logical Block
 * Provisioning (0xB2): as discover.c reads them at mount time. */
static void
read_limits (struct lunscan *ls, struct lun *l)
{
  unsigned char d[64];
  size_t got = 0;

  if (ask (ls, l, QUERY_VPD, 0xb0, d, sizeof d, &got) == 0 && got >= 44
      && d[1] == 0xb0) {
    uint32_t max_xfer = be32 (d + 8), max_unmap = be32 (d + 20);
    uint64_t max_ws = be64 (d + 36);

    if (max_xfer && max_xfer < l->max_xfer_blocks)
      l->max_xfer_blocks = max_xfer;
    if (max_unmap)
      l->max_unmap_blocks = max_unmap;
    if (max_ws)
      l->max_ws_blocks = max_ws > UINT32_MAX ? UINT32_MAX : (uint32_t) max_ws;
  }
  if (l->unmap) {
    l->unmap = ask (ls, l, QUERY_VPD, 0xb2, d, sizeof d, &got) == 0 && got >= 6
      && d[1] == 0xb2 && (d[5] & 0x80);
  }
}

static bool
write_protected (struct lunscan *ls, struct lun *l)
{
  unsigned char d[192];
  size_t got = 0;

  return ask (ls, l, QUERY_MODE_SENSE, 0, d, sizeof d, &got) == 0 && got >= 3
    && (d[2] & 0x80);
}

/* Room for a VPD 0x83 or 0x80 answer, as discover.c asks at mount time. */
#define VPD_ALLOC 4096

/* VPD page `page` (0x83 or 0x80) of l into id.  The bytes go through
 * identity_from_task, in a task made for the same CDB, so that a LUN
 * probed now gets the same identity as at mount time.  0, -EPROTO for a
 * malformed page (id untouched), or -errno when it could not be asked. */
static int
read_id_page (struct lunscan *ls, struct lun *l, unsigned page,
              struct lun_identity *id)
{
  unsigned char *d = malloc (VPD_ALLOC);
  struct scsi_task *task;
  size_t got = 0;
  int e;

  if (d == NULL)
    return -ENOMEM;
  e = ask (ls, l, QUERY_VPD, page, d, VPD_ALLOC, &got);
  if (e < 0) {
    free (d);
    return e;
  }
  task = scsi_cdb_inquiry (1, (int) page, VPD_ALLOC);
  if (task == NULL) {
    free (d);
    return -ENOMEM;
  }
  task->datain.data = d;        /* the task's from now on */
  task->datain.size = (int) got;
  e = identity_from_task (id, task);
  scsi_free_scsi_task (task);
  return e;
}

/* As discover.c at mount time: a page that cannot be read leaves its part
 * of the identity empty. */
static void
read_identity (struct lunscan *ls, struct lun *l)
{
  memset (&l->id, 0, sizeof l->id);
  if (read_id_page (ls, l, 0x83, &l->id) < 0) {
    l->id.nr = 0;
    l->id.incomplete = false;
  }
  if (read_id_page (ls, l, 0x80, &l->id) < 0)
    l->id.serial_len = 0;
}

/* Whether a and b list the same designators, byte for byte.
 * (identity_same answers another question, one LUN behind two portals,
 * and calls "different" what it cannot prove is the same.) */
static bool
same_designators (const struct lun_identity *a, const struct lun_identity *b)
{
  if (a->nr != b->nr || a->incomplete != b->incomplete)
    return false;
  for (unsigned i = 0; i < a->nr; i++)
    if (a->d[i].type != b->d[i].type || a->d[i].code_set != b->d[i].code_set
        || a->d[i].len != b->d[i].len
        || memcmp (a->d[i].value, b->d[i].value, a->d[i].len) != 0)
      return false;
  return true;
}

int
lunscan_same_identity (struct lunscan *ls, struct lun *l)
{
  struct lun_identity now;
  int e;

  if (l->id.nr || l->id.incomplete) {
    memset (&now, 0, sizeof now);
    e = read_id_page (ls, l, 0x83, &now);
    if (e < 0)
      return e;
    if (!same_designators (&l->id, &now))
      return 0;
  }
  if (l->id.serial_len) {
    memset (&now, 0, sizeof now);
    e = read_id_page (ls, l, 0x80, &now);
    if (e < 0)
      return e;
    if (now.serial_len != l->id.serial_len
        || memcmp (now.serial, l->id.serial, now.serial_len) != 0)
      return 0;
  }
  return 1;
}

static int probe (struct lunscan *ls, struct lun *l);

/* ---- ALUA ---- */

struct alua_ask_ctx {
  struct lunscan *ls;
  struct lun *l;
};

/* alua_probe_with's commands, through the engine (a UNIT ATTENTION is
 * retried by the command layer). */
static int
alua_ask (void *opaque, enum alua_ask what, uint8_t *buf, size_t cap,
          size_t *got)
{
  struct alua_ask_ctx *a = opaque;

  *got = 0;
  switch (what) {
  case ALUA_ASK_INQUIRY:
    return ask (a->ls, a->l, QUERY_INQUIRY, 0, buf, cap > 255 ? 255 : cap,
                got);
  case ALUA_ASK_DEVICE_ID:
    return ask (a->ls, a->l, QUERY_VPD, 0x83, buf, cap, got);
  case ALUA_ASK_RTPG:
  default:
    return ask (a->ls, a->l, QUERY_RTPG, 0, buf, cap, got);
  }
}

/* l's name in the logs (lun.h) and its ALUA state through its path. */
static void
probe_alua (struct lunscan *ls, struct lun *l)
{
  struct alua_ask_ctx a = { .ls = ls, .l = l };

  if (l->session->first_path || l->session->next_path)
    snprintf (l->who, sizeof l->who, "lun%d of %s via %s", l->lun,
              l->session->target, l->session->portal);
  else
    snprintf (l->who, sizeof l->who, "lun%d of %s", l->lun,
              l->session->target);
  alua_probe_with (&l->alua, l->lun, l->who, alua_ask, &a);
}

/* ---- the other paths of a multipath mount ---- */

/* LUN l (the first path's) as path o's session sees it: a disk, its
 * identity and its ALUA state through o.  NULL when it is none there or
 * could not be asked. */
static struct lun *
probe_pair (struct lunscan *ls, struct lun *l, struct session *o)
{
  struct lun *p = new_lun (ls, l->lun);

  if (p == NULL)
    return NULL;
  p->session = o;               /* the multipath path sends it through o */
  if (!is_disk (ls, p)) {
    if (!ls->lost)
      ls->spare = p;
    return NULL;
  }
  p->block_size = l->block_size;
  p->nr_blocks = l->nr_blocks;
  p->size = l->size;
  read_identity (ls, p);
  probe_alua (ls, p);
  return p;
}

/* A multipath mount: l probed through every other path and handed to the
 * multipath path, before its file appears. */
static void
add_paths (struct lunscan *ls, struct lun *l)
{
  struct lun *o[MPATH_MAX] = { l };
  unsigned n = 1;
  int e;

  for (struct session *m = ls->s->next_path; m && n < MPATH_MAX;
       m = m->next_path)
    o[n++] = probe_pair (ls, l, m);
  e = mpath_add_lun (l, o, n);
  if (e < 0)
    log_error ("lun%d of %s: its other paths not ready yet: %s", l->lun,
               ls->s->target, strerror (-e));
}

int
lunscan_probe (struct lunscan *ls, int number, struct lun **out)
{
  struct lun *l = new_lun (ls, number);
  int e;

  *out = NULL;
  if (l == NULL)
    return -ENOMEM;
  ls->lost = false;
  e = probe (ls, l);
  if (e == 0 && l->block_size && l->nr_blocks) {
    *out = l;
    if (ls->s->next_path)
      add_paths (ls, l);
  }
  else if (!ls->lost)
    ls->spare = l;
  return e;
}

/* Fill in l as discover.c does at mount time; 0 with l->nr_blocks 0 for
 * a LUN that is no disk. */
static int
probe (struct lunscan *ls, struct lun *l)
{
  struct session *s = ls->s;
  unsigned char d[32];
  size_t got = 0;
  unsigned max_xfer = ls->max_xfer;
  uint32_t bs;
  int e;

  if (!is_disk (ls, l))
    return 0;
  e = ask (ls, l, QUERY_CAPACITY, 0, d, sizeof d, &got);
  if (e == 0 && got < 15)
    e = -EIO;
  if (e < 0)
    return e;
  bs = be32 (d + 8);
  if (bs < 512 || (bs & (bs - 1)) != 0)
    return -EIO;
  l->block_size = bs;
  l->nr_blocks = be64 (d) + 1;
  l->size = l->nr_blocks * bs;
  /* LBPME and LBPRZ: see discover.c. */
  l->unmap = (d[14] & 0x80) && (d[14] & 0x40);
  l->sync16 = true;
  l->write_same = true;
  if (max_xfer == 0 || max_xfer > s->max_xfer_bytes)
    max_xfer = s->max_xfer_bytes;
  l->max_xfer_blocks = max_xfer / bs ? max_xfer / bs : 1;
  l->max_unmap_blocks = 1u << 22;
  l->max_ws_blocks = 1u << 16;
  read_limits (ls, l);
  l->read_only = write_protected (ls, l);
  read_identity (ls, l);
  probe_alua (ls, l);
  log_debug ("%s lun %d: %" PRIu64 " blocks of %u, max xfer %u blocks%s%s",
             s->target, l->lun, l->nr_blocks, bs, l->max_xfer_blocks,
             l->read_only ? ", write protected" : "",
             l->unmap ? ", unmap" : "");
  return 0;
}
