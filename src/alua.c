/* ALUA: see alua.h.  The parsers read raw bytes (libiscsi has no REPORT
 * TARGET PORT GROUPS call, and its VPD 0x83 unmarshaller trusts the page
 * lengths); RTPG itself is sent as a raw MAINTENANCE IN CDB. */
#include <config.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include "alua.h"
#include "be.h"
#include "identity.h"
#include "log.h"

#define VPD_DEVICE_ID 0x83
#define ASSOC_TARGET_PORT 1
#define T_REL_PORT 4
#define T_PORT_GROUP 5

#define MAINTENANCE_IN 0xa3
#define SA_REPORT_TARGET_PORT_GROUPS 0x0a
#define RTPG_FORMAT_EXTENDED 1  /* PARAMETER DATA FORMAT / FORMAT TYPE */
#define RTPG_ALLOC 4096         /* 16 groups of 32 ports fit well inside */

int
alua_tpgs (const uint8_t *inq, size_t len)
{
  if (inq == NULL || len < 6)
    return -EPROTO;
  return (inq[5] >> 4) & 3;
}

int
alua_port_from_vpd (const uint8_t *page, size_t len, struct alua_port *port)
{
  size_t end, off;

  memset (port, 0, sizeof *port);
  /* The header and the tiling of the descriptors, as for identity. */
  if (identity_check_page (page, len) < 0 || page[1] != VPD_DEVICE_ID)
    return -EPROTO;
  end = 4 + (size_t) be16 (page + 2);
  for (off = 4; off < end; off += 4 + (size_t) page[off + 3]) {
    const uint8_t *d = page + off;
    unsigned assoc = (d[1] >> 4) & 3, type = d[1] & 0xf;

    if (assoc != ASSOC_TARGET_PORT || (type != T_REL_PORT && type != T_PORT_GROUP))
      continue;
    /* Both values are 4 bytes, the identifier in the last two. */
    if (d[3] != 4)
      return -EPROTO;
    if (type == T_REL_PORT && !port->has_rel_port) {
      port->has_rel_port = true;
      port->rel_port = be16 (d + 6);
    }
    else if (type == T_PORT_GROUP && !port->has_group) {
      port->has_group = true;
      port->group = be16 (d + 6);
    }
  }
  return port->has_rel_port || port->has_group ? 0 : -ENOENT;
}

long
alua_rtpg_length (const uint8_t *data, size_t len)
{
  if (data == NULL || len < 4)
    return -EPROTO;
  return 4 + (long) be32 (data);
}

int
alua_parse_rtpg (const uint8_t *data, size_t len, struct alua_groups *out)
{
  long total = alua_rtpg_length (data, len);
  size_t end, off = 4;

  memset (out, 0, sizeof *out);
  if (total < 0 || (unsigned long) total > len)
    return -EPROTO;             /* truncated, or the length lies */
  end = (size_t) total;
  /* In the basic format byte 4 is the first descriptor's, whose bits 6..4
   * are reserved (zero); the extended header puts FORMAT TYPE there. */
  if (end > 4 && ((data[4] >> 4) & 7) == RTPG_FORMAT_EXTENDED) {
    if (end < 8)
      return -EPROTO;
    out->extended = true;
    out->transition_time = data[5];
    off = 8;
  }
  else if (end > 4 && (data[4] & 0x70))
    return -EPROTO;             /* a format we do not know */
  while (off < end) {
    const uint8_t *d = data + off;
    size_t count, size;

    if (end - off < 8)
      return -EPROTO;
    count = d[7];
    size = 8 + 4 * count;
    if (end - off < size)
      return -EPROTO;
    if (out->nr == ALUA_MAX_GROUPS)
      out->incomplete = true;
    else {
      struct alua_group *g = &out->g[out->nr++];

      g->pref = d[0] & 0x80;
      g->state = d[0] & 0x0f;
      g->supported = d[1];
      g->id = be16 (d + 2);
      g->status = d[5];
      for (size_t i = 0; i < count; i++) {
        if (g->nr_ports == ALUA_MAX_PORTS) {
          out->incomplete = true;
          break;
        }
        g->ports[g->nr_ports++] = be16 (d + 8 + 4 * i + 2);
      }
    }
    off += size;
  }
  return 0;
}

int
alua_path_state (const struct alua_groups *groups, const struct alua_port *port)
{
  if (port->has_group)
    for (unsigned i = 0; i < groups->nr; i++)
      if (groups->g[i].id == port->group)
        return groups->g[i].state;
  /* No group designator (or one RTPG does not list): the relative port
   * in a group's port list says it as well. */
  if (port->has_rel_port)
    for (unsigned i = 0; i < groups->nr; i++)
      for (unsigned j = 0; j < groups->g[i].nr_ports; j++)
        if (groups->g[i].ports[j] == port->rel_port)
          return groups->g[i].state;
  return -ENOENT;
}

enum alua_rank
alua_rank_of (int state)
{
  switch (state) {
  case ALUA_ACTIVE_OPTIMIZED:
    return ALUA_RANK_OPTIMIZED;
  case ALUA_ACTIVE_NONOPTIMIZED:
  case ALUA_LBA_DEPENDENT:      /* some blocks only: usable, not preferred */
    return ALUA_RANK_NONOPTIMIZED;
  default:
    return ALUA_RANK_NONE;      /* standby, unavailable, offline,
                                 * transitioning, reserved */
  }
}

const char *
alua_state_name (int state)
{
  switch (state) {
  case ALUA_ACTIVE_OPTIMIZED: return "active/optimized";
  case ALUA_ACTIVE_NONOPTIMIZED: return "active/non-optimized";
  case ALUA_STANDBY: return "standby";
  case ALUA_UNAVAILABLE: return "unavailable";
  case ALUA_LBA_DEPENDENT: return "logical-block-dependent";
  case ALUA_OFFLINE: return "offline";
  case ALUA_TRANSITIONING: return "transitioning";
  default: return "unknown";
  }
}

unsigned
alua_sense (int key, int asc_ascq)
{
  if (key == SCSI_SENSE_UNIT_ATTENTION
      && (asc_ascq == 0x2a06 || asc_ascq == 0x2a07))
    return ALUA_SENSE_REREAD;
  if (key == SCSI_SENSE_NOT_READY
      && (asc_ascq == 0x040a || asc_ascq == 0x040b || asc_ascq == 0x040c))
    return ALUA_SENSE_REREAD | ALUA_SENSE_ELSEWHERE;
  return 0;
}

/* ---- stats ---- */

/* (LUN, path) pairs under ALUA in each state; a pair counts while its
 * state is known. */
static atomic_uint_fast64_t in_state[16];
static atomic_uint_fast64_t changes, rereads;

static void
count_state (int old, int now)
{
  if (old >= 0 && old < 16)
    atomic_fetch_sub (&in_state[old], 1);
  if (now >= 0 && now < 16)
    atomic_fetch_add (&in_state[now], 1);
}

uint64_t
alua_stat_paths (void)
{
  uint64_t n = 0;

  for (int i = 0; i < 16; i++)
    n += atomic_load (&in_state[i]);
  return n;
}

/* The least usable state: worst rank first, then the higher code. */
uint64_t
alua_stat_state (void)
{
  int worst = -1;

  for (int i = 0; i < 16; i++)
    if (atomic_load (&in_state[i])
        && (worst < 0 || alua_rank_of (i) > alua_rank_of (worst)
            || (alua_rank_of (i) == alua_rank_of (worst) && i > worst)))
      worst = i;
  return worst < 0 ? 0 : (uint64_t) worst;
}

uint64_t
alua_stat_changes (void)
{
  return atomic_load (&changes);
}

uint64_t
alua_stat_rereads (void)
{
  return atomic_load (&rereads);
}

void
alua_forget (struct alua_path *ap)
{
  /* Only a probed pair under ALUA was ever counted (a LUN made zeroed,
   * by the live scanner, has state 0 and no ALUA). */
  if (ap->tpgs == 0)
    return;
  count_state (ap->state, -1);
  ap->state = -1;
  ap->tpgs = 0;                 /* and nothing more is asked for it */
  ap->reread_wanted = false;
}

void
alua_refused (struct alua_path *ap)
{
  enum alua_rank old = ap->rank;

  if (ap->tpgs == 0)
    return;
  ap->rank = ALUA_RANK_NONE;
  if (old != ap->rank && ap->changed)
    ap->changed (ap->changed_opaque, ap, old);
}

/* ---- one (LUN, path) pair ---- */

struct scsi_task *
alua_rtpg_task (size_t alloc)
{
  uint8_t cdb[12] = {
    MAINTENANCE_IN, RTPG_FORMAT_EXTENDED << 5 | SA_REPORT_TARGET_PORT_GROUPS,
    0, 0, 0, 0,
    (uint8_t) (alloc >> 24), (uint8_t) (alloc >> 16),
    (uint8_t) (alloc >> 8), (uint8_t) alloc, 0, 0,
  };

  return scsi_create_task (sizeof cdb, cdb, SCSI_XFER_READ, (int) alloc);
}

/* A new state for the pair, from a good RTPG answer: logged once per
 * change.  Returns the old rank. */
static enum alua_rank
set_state (struct alua_path *ap, const struct alua_groups *groups)
{
  enum alua_rank old = ap->rank;
  int state = alua_path_state (groups, &ap->port);

  if (state < 0) {
    if (ap->state >= 0)         /* at probe, alua_probe says it */
      log_info ("%s: this port is in no target port group the target "
                "reports; ALUA state unknown", ap->who);
    count_state (ap->state, -1);
    ap->state = -1;
    ap->rank = ALUA_RANK_OPTIMIZED;   /* as without ALUA */
    return old;
  }
  if (state != ap->state) {
    if (ap->state >= 0)
      atomic_fetch_add (&changes, 1);
    log_info ("%s: ALUA state %s%s%s (target port group %u)", ap->who,
              ap->state >= 0 ? alua_state_name (ap->state) : "",
              ap->state >= 0 ? " -> " : "", alua_state_name (state),
              ap->port.has_group ? ap->port.group : 0);
    count_state (ap->state, state);
    ap->state = state;
  }
  ap->rank = alua_rank_of (state);
  return old;
}

/* Parse a finished RTPG task into groups: 0 or -errno. */
static int
rtpg_result (struct scsi_task *task, struct alua_groups *groups)
{
  if (task == NULL || task->status != SCSI_STATUS_GOOD)
    return -EIO;
  if (task->datain.data == NULL || task->datain.size <= 0)
    return -EPROTO;
  return alua_parse_rtpg (task->datain.data, (size_t) task->datain.size,
                          groups);
}

/* A sync command, asked again after a UNIT ATTENTION (as at login). */
static struct scsi_task *
sync_retry_ua (struct iscsi_context *iscsi, int lun, enum alua_ask what)
{
  for (int tries = 0; tries < 5; tries++) {
    struct scsi_task *t, *r;

    switch (what) {
    case ALUA_ASK_INQUIRY:
      t = scsi_cdb_inquiry (0, 0, 255);
      break;
    case ALUA_ASK_DEVICE_ID:
      t = scsi_cdb_inquiry (1, VPD_DEVICE_ID, ALUA_PROBE_ALLOC);
      break;
    case ALUA_ASK_RTPG:
    default:
      t = alua_rtpg_task (RTPG_ALLOC);
      break;
    }
    if (t == NULL)
      return NULL;
    r = iscsi_scsi_command_sync (iscsi, lun, t, NULL);
    if (r == NULL)
      return NULL;              /* libiscsi may still hold t: not ours */
    if (r->status != SCSI_STATUS_CHECK_CONDITION
        || r->sense.key != SCSI_SENSE_UNIT_ATTENTION)
      return r;
    scsi_free_scsi_task (r);
  }
  return NULL;
}

struct sync_ask {
  struct iscsi_context *iscsi;
  int lun;
};

/* alua_probe's way of asking: libiscsi's sync API. */
static int
ask_sync (void *opaque, enum alua_ask what, uint8_t *buf, size_t cap,
          size_t *got)
{
  const struct sync_ask *sa = opaque;
  struct scsi_task *t = sync_retry_ua (sa->iscsi, sa->lun, what);
  int r = -EIO;

  *got = 0;
  if (t && t->status == SCSI_STATUS_GOOD && t->datain.data
      && t->datain.size > 0) {
    *got = (size_t) t->datain.size < cap ? (size_t) t->datain.size : cap;
    memcpy (buf, t->datain.data, *got);
    r = 0;
  }
  if (t)
    scsi_free_scsi_task (t);
  return r;
}

int
alua_probe (struct iscsi_context *iscsi, int lun, const char *who,
            struct alua_path *ap)
{
  struct sync_ask sa = { .iscsi = iscsi, .lun = lun };

  return alua_probe_with (ap, lun, who, ask_sync, &sa);
}

int
alua_probe_with (struct alua_path *ap, int lun, const char *who,
                 alua_ask_fn *ask, void *opaque)
{
  struct alua_groups *groups;
  uint8_t *d;
  size_t len;
  int r;

  memset (ap, 0, sizeof *ap);
  ap->who = who;
  ap->lun = lun;
  ap->state = -1;
  ap->rank = ALUA_RANK_OPTIMIZED;

  d = malloc (ALUA_PROBE_ALLOC);
  if (d == NULL)
    return -ENOMEM;
  r = ask (opaque, ALUA_ASK_INQUIRY, d, ALUA_PROBE_ALLOC, &len);
  r = alua_tpgs (r == 0 ? d : NULL, len);
  if (r <= 0) {
    free (d);
    return r;                   /* no ALUA: nothing more to ask */
  }
  ap->tpgs = r;

  r = ask (opaque, ALUA_ASK_DEVICE_ID, d, ALUA_PROBE_ALLOC, &len);
  r = r == 0 && len > 0 ? alua_port_from_vpd (d, len, &ap->port) : -EIO;
  if (r < 0) {
    log_info ("%s: ALUA (TPGS %d) but %s; ALUA ignored", who, ap->tpgs,
              r == -ENOENT ? "VPD 0x83 names no target port group"
              : "VPD 0x83 is unreadable");
    ap->tpgs = 0;
    free (d);
    return r;
  }

  groups = malloc (sizeof *groups);
  if (groups == NULL) {
    free (d);
    return -ENOMEM;
  }
  atomic_fetch_add (&rereads, 1);
  r = ask (opaque, ALUA_ASK_RTPG, d, ALUA_PROBE_ALLOC, &len);
  if (r == 0)
    r = len > 0 ? alua_parse_rtpg (d, len, groups) : -EPROTO;
  if (r == 0) {
    set_state (ap, groups);
    if (ap->state < 0)
      log_info ("%s: this port is in no target port group the target "
                "reports; ALUA state unknown", who);
  }
  else
    log_info ("%s: REPORT TARGET PORT GROUPS %s; ALUA state unknown", who,
              r == -EPROTO ? "answer malformed" : "failed");
  free (groups);
  free (d);
  return r;
}

static void
rtpg_cb (struct iscsi_context *iscsi, int status, void *command_data,
         void *private_data)
{
  struct alua_path *ap = private_data;
  /* A cancelled command comes back without its task; it is still ours. */
  struct scsi_task *task = command_data ? command_data : ap->task;
  struct alua_groups *groups = malloc (sizeof *groups);
  int r;

  (void) iscsi;
  ap->rereading = false;
  ap->task = NULL;
  if (status == SCSI_STATUS_CANCELLED || groups == NULL)
    r = -ECANCELED;
  else
    r = rtpg_result (task, groups);
  if (r == 0) {
    int old_state = ap->state;
    enum alua_rank old = set_state (ap, groups);

    if ((ap->rank != old || ap->state != old_state) && ap->changed)
      ap->changed (ap->changed_opaque, ap, old);
  }
  else if (r != -ECANCELED && task && task->status == SCSI_STATUS_CHECK_CONDITION
           && (task->sense.key == SCSI_SENSE_UNIT_ATTENTION
               || task->sense.key == SCSI_SENSE_NOT_READY))
    /* A unit attention of its own (the first command after a reconnect)
     * or a transition under way: ask again (alua_pending). */
    ap->reread_wanted = true;
  else if (r != -ECANCELED)
    log_info ("%s: REPORT TARGET PORT GROUPS %s", ap->who,
              r == -EPROTO ? "answer malformed" : "failed");
  free (groups);
  if (task)
    scsi_free_scsi_task (task);
}

int
alua_reread (struct iscsi_context *iscsi, struct alua_path *ap, bool can_send)
{
  struct scsi_task *t;

  if (ap->tpgs == 0)
    return 0;
  if (ap->rereading || !can_send) {
    ap->reread_wanted = true;
    return 0;
  }
  ap->reread_wanted = false;
  t = alua_rtpg_task (RTPG_ALLOC);
  if (t == NULL)
    return -ENOMEM;
  if (iscsi_scsi_command_async (iscsi, ap->lun, t, rtpg_cb, NULL, ap) != 0) {
    scsi_free_scsi_task (t);
    ap->reread_wanted = true;   /* try again later */
    return -EIO;
  }
  ap->rereading = true;
  ap->task = t;
  atomic_fetch_add (&rereads, 1);
  return 0;
}

bool
alua_pending (const struct alua_path *ap)
{
  return ap->reread_wanted && !ap->rereading;
}
