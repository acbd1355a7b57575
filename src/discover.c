/* Discovery.  Everything here runs synchronously, before any session thread
 * exists, so the sync libiscsi API is safe to use. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include "alua.h"
#include "be.h"
#include "discover.h"
#include "identity.h"
#include "log.h"
#include "session.h"

int
discover_targets (const struct session_config *cfg_in,
                  struct target_info **out, char *err, size_t errlen)
{
  /* SendTargets runs over TCP even for iSER targets, as open-iscsi does:
   * an iSER target listens for TCP discovery on the same portal, and
   * libiscsi 1.19's iSER transport cannot receive a long text response. */
  struct session_config tcp = *cfg_in, *cfg = &tcp;
  struct session *s;

  tcp.iser = false;
  s = session_open (cfg, err, errlen);
  struct iscsi_discovery_address *da, *p;
  struct target_info *t = NULL;
  int n = 0;

  if (s == NULL)
    return -EIO;                /* err says why */
  da = iscsi_discovery_sync (s->iscsi);
  if (da == NULL && iscsi_get_error (s->iscsi)[0]) {
    char why[256];
    first_line (why, sizeof why, iscsi_get_error (s->iscsi));
    snprintf (err, errlen, "SendTargets discovery at %s failed: %s",
              cfg->portal, why);
    session_close (s);
    return -EIO;
  }
  for (p = da; p; p = p->next)
    n++;
  t = calloc (n ? n : 1, sizeof *t);
  if (t == NULL)
    goto oom;
  n = 0;
  for (p = da; p; p = p->next, n++) {
    struct iscsi_target_portal *tp;

    t[n].name = strdup (p->target_name);
    for (tp = p->portals; tp; tp = tp->next)
      t[n].nr_portals++;
    t[n].portals = calloc (t[n].nr_portals + 1, sizeof (char *));
    if (t[n].name == NULL || t[n].portals == NULL)
      goto oom;
    t[n].nr_portals = 0;
    for (tp = p->portals; tp; tp = tp->next)
      if ((t[n].portals[t[n].nr_portals++] = strdup (tp->portal)) == NULL)
        goto oom;
  }
  if (da)
    iscsi_free_discovery_data (s->iscsi, da);
  session_close (s);
  *out = t;
  return n;

 oom:
  snprintf (err, errlen, "out of memory");
  if (da)
    iscsi_free_discovery_data (s->iscsi, da);
  session_close (s);
  free_targets (t, n + 1);
  return -ENOMEM;
}

void
free_targets (struct target_info *t, int n)
{
  if (t == NULL)
    return;
  for (int i = 0; i < n; i++) {
    for (unsigned j = 0; j < t[i].nr_portals; j++)
      free (t[i].portals[j]);
    free (t[i].portals);
    free (t[i].name);
  }
  free (t);
}

/* ---- LUNs ---- */

/* A target reports a UNIT ATTENTION (power on, reset) on the first command
 * after login; like a kernel initiator, take note and ask again. */
static bool
unit_attention (const struct scsi_task *t)
{
  return t && t->status == SCSI_STATUS_CHECK_CONDITION
    && t->sense.key == SCSI_SENSE_UNIT_ATTENTION;
}

#define RETRY_UA(expr) ({                                       \
      struct scsi_task *t_;                                     \
      int tries_ = 0;                                           \
      while ((t_ = (expr)) && unit_attention (t_) && ++tries_ < 5) \
        scsi_free_scsi_task (t_);                               \
      t_;                                                       \
    })

/* ---- queries with a data-in length ---- */

enum query { Q_INQUIRY, Q_VPD, Q_MODESENSE, Q_REPORTLUNS };

static struct scsi_task *
issue_query (struct session *s, enum query q, int lun, int page, int alloc)
{
  switch (q) {
  case Q_INQUIRY:
    return iscsi_inquiry_sync (s->iscsi, lun, 0, 0, alloc);
  case Q_VPD:
    return iscsi_inquiry_sync (s->iscsi, lun, 1, page, alloc);
  case Q_MODESENSE:
    return iscsi_modesense6_sync (s->iscsi, lun, 1, SCSI_MODESENSE_PC_CURRENT,
                                  SCSI_MODEPAGE_RETURN_ALL_PAGES, 0, alloc);
  case Q_REPORTLUNS:
  default:
    return iscsi_reportluns_sync (s->iscsi, 0, alloc);
  }
}

/* How many bytes the target has for this query, from its header. */
static int
full_length (enum query q, const struct scsi_task *t)
{
  const unsigned char *d = t->datain.data;
  int n;

  if (d == NULL || t->datain.size < 4)
    return 0;
  switch (q) {
  case Q_INQUIRY:
    n = t->datain.size < 5 ? 0 : 5 + d[4];
    break;
  case Q_VPD:
    n = 4 + be16 (d + 2);
    break;
  case Q_MODESENSE:
    n = 1 + d[0];
    break;
  case Q_REPORTLUNS:
  default:
    n = (int) (8 + be32 (d));
    break;
  }
  return n;
}

/* Ask twice: once for the length, then for exactly that much.  Debian's
 * libiscsi 1.19 iSER transport reports the allocation length as the length
 * of the data in, and the unmarshallers refuse more than the target sent;
 * asking for the exact length gives the same answer on every transport. */
static struct scsi_task *
query (struct session *s, enum query q, int lun, int page)
{
  static const int max[] = {
    [Q_INQUIRY] = 255, [Q_VPD] = 4096, [Q_MODESENSE] = 255,
    [Q_REPORTLUNS] = 65536,
  };
  int first = q == Q_REPORTLUNS ? 16 : 8, need;
  struct scsi_task *t = RETRY_UA (issue_query (s, q, lun, page, first));

  if (t == NULL || t->status != SCSI_STATUS_GOOD)
    return t;
  need = full_length (q, t);
  if (need > max[q])
    need = max[q];
  if (need <= 0 || need == first)
    return t;
  scsi_free_scsi_task (t);
  return RETRY_UA (issue_query (s, q, lun, page, need));
}

/* Why a sync command failed, in words, for the one-line error. */
static const char *
task_why (struct session *s, struct scsi_task *t, char *buf, size_t len)
{
  if (t == NULL)
    first_line (buf, len, iscsi_get_error (s->iscsi));
  else if (t->status == SCSI_STATUS_CHECK_CONDITION)
    snprintf (buf, len, "%s, %s", scsi_sense_key_str (t->sense.key),
              scsi_sense_ascq_str (t->sense.ascq));
  else
    snprintf (buf, len, "SCSI status 0x%x", t->status);
  return buf;
}

/* Unmarshalled data of a sync command, or NULL (the task is freed by the
 * caller via *taskp). */
static void *
command_data (struct scsi_task *task)
{
  if (task == NULL || task->status != SCSI_STATUS_GOOD)
    return NULL;
  return scsi_datain_unmarshall (task);
}

static bool
is_disk (struct session *s, int lun)
{
  struct scsi_task *task = query (s, Q_INQUIRY, lun, 0);
  struct scsi_inquiry_standard *inq = command_data (task);
  bool yes = inq && inq->qualifier == SCSI_INQUIRY_PERIPHERAL_QUALIFIER_CONNECTED
    && inq->device_type == SCSI_INQUIRY_PERIPHERAL_DEVICE_TYPE_DIRECT_ACCESS;

  if (task)
    scsi_free_scsi_task (task);
  return yes;
}

static int
read_capacity (struct session *s, struct lun *l, char *err, size_t errlen)
{
  struct scsi_task *task = RETRY_UA (iscsi_readcapacity16_sync (s->iscsi, l->lun));
  struct scsi_readcapacity16 *rc = command_data (task);
  int r = -EIO;

  if (rc && rc->block_length >= 512 && (rc->block_length & (rc->block_length - 1)) == 0) {
    l->block_size = rc->block_length;
    l->nr_blocks = rc->returned_lba + 1;
    l->size = l->nr_blocks * l->block_size;
    /* Thin provisioning with zeroes after deallocation makes UNMAP a
     * faithful hole punch; without LBPRZ it would not read back as zeros. */
    l->unmap = rc->lbpme && rc->lbprz;
    r = 0;
  }
  else {
    char why[256];
    snprintf (err, errlen, "READ CAPACITY(16) of LUN %d on %s failed: %s",
              l->lun, s->target, task_why (s, task, why, sizeof why));
  }
  if (task)
    scsi_free_scsi_task (task);
  return r;
}

static void
read_block_limits (struct session *s, struct lun *l)
{
  struct scsi_task *task =
    query (s, Q_VPD, l->lun, SCSI_INQUIRY_PAGECODE_BLOCK_LIMITS);
  struct scsi_inquiry_block_limits *bl = command_data (task);

  if (bl) {
    if (bl->max_xfer_len && bl->max_xfer_len < l->max_xfer_blocks)
      l->max_xfer_blocks = bl->max_xfer_len;
    if (bl->max_unmap)
      l->max_unmap_blocks = bl->max_unmap;
    if (bl->max_ws_len)
      l->max_ws_blocks = bl->max_ws_len;
  }
  if (task)
    scsi_free_scsi_task (task);

  if (l->unmap) {
    task = query (s, Q_VPD, l->lun,
                  SCSI_INQUIRY_PAGECODE_LOGICAL_BLOCK_PROVISIONING);
    struct scsi_inquiry_logical_block_provisioning *lbp = command_data (task);
    l->unmap = lbp && lbp->lbpu;
    if (task)
      scsi_free_scsi_task (task);
  }
}

static bool
write_protected (struct session *s, struct lun *l)
{
  struct scsi_task *task =
    query (s, Q_MODESENSE, l->lun, 0);
  struct scsi_mode_sense *ms = command_data (task);
  bool wp = ms && (ms->device_specific_parameter & 0x80);

  if (task)
    scsi_free_scsi_task (task);
  return wp;
}

/* The LUN's identity (identity.h), so that the same LUN behind two
 * portals can be told from two LUNs that only look alike.  A target
 * without these pages, or with a malformed one, leaves the LUN without an
 * identity: it is still mounted, it just never matches another. */
static void
read_identity (struct session *s, struct lun *l)
{
  static const int pages[] = {
    SCSI_INQUIRY_PAGECODE_DEVICE_IDENTIFICATION,
    SCSI_INQUIRY_PAGECODE_UNIT_SERIAL_NUMBER,
  };
  char name[IDENTITY_NAME_MAX];

  for (unsigned i = 0; i < sizeof pages / sizeof pages[0]; i++) {
    struct scsi_task *task = query (s, Q_VPD, l->lun, pages[i]);

    if (task && task->status == SCSI_STATUS_GOOD
        && identity_from_task (&l->id, task) == -EPROTO)
      log_info ("%s lun %d: malformed VPD page 0x%02x ignored", s->target,
                l->lun, pages[i]);
    if (task)
      scsi_free_scsi_task (task);
  }
  log_debug ("%s lun %d: id %s", s->target, l->lun,
             identity_name (&l->id, name, sizeof name));
}

static int
probe_lun (struct session *s, struct lun *l, int lun, unsigned max_xfer,
           char *err, size_t errlen)
{
  int r;

  memset (l, 0, sizeof *l);
  l->session = s;
  l->lun = lun;
  l->sync16 = true;
  l->write_same = true;
  if ((r = read_capacity (s, l, err, errlen)) < 0)
    return r;
  if (max_xfer == 0 || max_xfer > s->max_xfer_bytes)
    max_xfer = s->max_xfer_bytes;
  l->max_xfer_blocks = max_xfer / l->block_size;
  if (l->max_xfer_blocks == 0)
    l->max_xfer_blocks = 1;
  l->max_unmap_blocks = 1u << 22;
  l->max_ws_blocks = 1u << 16;
  read_block_limits (s, l);
  l->read_only = write_protected (s, l);
  read_identity (s, l);
  snprintf (l->who, sizeof l->who, "lun%d of %s", lun, s->target);
  alua_probe (s->iscsi, lun, l->who, &l->alua);
  log_debug ("%s lun %d: %" PRIu64 " blocks of %u, max xfer %u blocks%s%s",
             s->target, lun, l->nr_blocks, l->block_size, l->max_xfer_blocks,
             l->read_only ? ", write protected" : "",
             l->unmap ? ", unmap" : "");
  return 0;
}

int
session_probe_luns (struct session *s, int only_lun, unsigned max_xfer,
                    char *err, size_t errlen)
{
  struct scsi_task *task = query (s, Q_REPORTLUNS, 0, 0);
  struct scsi_reportluns_list *list = command_data (task);
  bool found = false;
  int r = -EIO;

  if (list == NULL) {
    char why[256];
    snprintf (err, errlen, "REPORT LUNS on %s failed: %s", s->target,
              task_why (s, task, why, sizeof why));
    goto out;
  }
  s->luns = calloc (list->num ? list->num : 1, sizeof *s->luns);
  if (s->luns == NULL) {
    snprintf (err, errlen, "out of memory");
    r = -ENOMEM;
    goto out;
  }
  for (uint32_t i = 0; i < list->num; i++) {
    int lun = list->luns[i];

    if (only_lun >= 0 && lun != only_lun)
      continue;
    found = found || lun == only_lun;
    if (!is_disk (s, lun)) {
      if (only_lun >= 0) {
        snprintf (err, errlen, "LUN %d of %s is not a disk", lun, s->target);
        r = -ENODEV;
        goto out;
      }
      continue;
    }
    r = probe_lun (s, &s->luns[s->nr_luns], lun, max_xfer, err, errlen);
    if (r < 0)
      goto out;
    s->nr_luns++;
  }
  if (only_lun >= 0 && !found) {
    snprintf (err, errlen, "LUN %d does not exist on target %s", only_lun,
              s->target);
    r = -ENOENT;
    goto out;
  }
  r = 0;
 out:
  if (task)
    scsi_free_scsi_task (task);
  return r;
}
