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

#include "discover.h"
#include "log.h"
#include "session.h"

int
discover_targets (const struct session_config *cfg, struct target_info **out,
                  char *err, size_t errlen)
{
  struct session *s = session_open (cfg, err, errlen);
  struct iscsi_discovery_address *da, *p;
  struct target_info *t = NULL;
  int n = 0;

  if (s == NULL)
    return -1;
  da = iscsi_discovery_sync (s->iscsi);
  if (da == NULL && iscsi_get_error (s->iscsi)[0]) {
    char why[256];
    first_line (why, sizeof why, iscsi_get_error (s->iscsi));
    snprintf (err, errlen, "SendTargets discovery at %s failed: %s",
              cfg->portal, why);
    session_close (s);
    return -1;
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
  return -1;
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
  struct scsi_task *task = RETRY_UA (iscsi_inquiry_sync (s->iscsi, lun, 0, 0, 64));
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
  int r = -1;

  if (rc && rc->block_length >= 512 && (rc->block_length & (rc->block_length - 1)) == 0) {
    l->block_size = rc->block_length;
    l->nr_blocks = rc->returned_lba + 1;
    l->size = l->nr_blocks * l->block_size;
    /* Thin provisioning with zeroes after deallocation makes UNMAP a
     * faithful hole punch; without LBPRZ it would not read back as zeros. */
    l->unmap = rc->lbpme && rc->lbprz;
    r = 0;
  }
  else
    snprintf (err, errlen, "READ CAPACITY(16) of LUN %d on %s failed",
              l->lun, s->target);
  if (task)
    scsi_free_scsi_task (task);
  return r;
}

static void
read_block_limits (struct session *s, struct lun *l)
{
  struct scsi_task *task =
    RETRY_UA (iscsi_inquiry_sync (s->iscsi, l->lun, 1,
                        SCSI_INQUIRY_PAGECODE_BLOCK_LIMITS, 64));
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
    task = RETRY_UA (iscsi_inquiry_sync (s->iscsi, l->lun, 1,
                               SCSI_INQUIRY_PAGECODE_LOGICAL_BLOCK_PROVISIONING,
                               64));
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
    RETRY_UA (iscsi_modesense6_sync (s->iscsi, l->lun, 1, SCSI_MODESENSE_PC_CURRENT,
                           SCSI_MODEPAGE_RETURN_ALL_PAGES, 0, 255));
  struct scsi_mode_sense *ms = command_data (task);
  bool wp = ms && (ms->device_specific_parameter & 0x80);

  if (task)
    scsi_free_scsi_task (task);
  return wp;
}

static int
probe_lun (struct session *s, struct lun *l, int lun, unsigned max_xfer,
           char *err, size_t errlen)
{
  memset (l, 0, sizeof *l);
  l->session = s;
  l->lun = lun;
  l->sync16 = true;
  l->write_same = true;
  if (read_capacity (s, l, err, errlen) < 0)
    return -1;
  if (max_xfer == 0 || max_xfer > s->max_xfer_bytes)
    max_xfer = s->max_xfer_bytes;
  l->max_xfer_blocks = max_xfer / l->block_size;
  if (l->max_xfer_blocks == 0)
    l->max_xfer_blocks = 1;
  l->max_unmap_blocks = 1u << 22;
  l->max_ws_blocks = 1u << 16;
  read_block_limits (s, l);
  l->read_only = write_protected (s, l);
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
  struct scsi_task *task = RETRY_UA (iscsi_reportluns_sync (s->iscsi, 0, 16384));
  struct scsi_reportluns_list *list = command_data (task);
  bool found = false;
  int r = -1;

  if (list == NULL) {
    snprintf (err, errlen, "REPORT LUNS on %s failed", s->target);
    goto out;
  }
  s->luns = calloc (list->num ? list->num : 1, sizeof *s->luns);
  if (s->luns == NULL) {
    snprintf (err, errlen, "out of memory");
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
        goto out;
      }
      continue;
    }
    if (probe_lun (s, &s->luns[s->nr_luns], lun, max_xfer, err, errlen) < 0)
      goto out;
    s->nr_luns++;
  }
  if (only_lun >= 0 && !found) {
    snprintf (err, errlen, "LUN %d does not exist on target %s", only_lun,
              s->target);
    goto out;
  }
  r = 0;
 out:
  if (task)
    scsi_free_scsi_task (task);
  return r;
}
