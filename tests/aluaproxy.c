/* aluaproxy: a TCP proxy that makes an iSCSI target speak ALUA.
 *
 * tgtd has no ALUA: its standard INQUIRY says TPGS 0 and it refuses
 * REPORT TARGET PORT GROUPS.  This proxy sits between an initiator and
 * tgtd on 127.0.0.1, follows the iSCSI PDU framing in both directions
 * (48-byte basic header segment, additional header segments, data segment
 * padded to 4 bytes; header and data digests must be off) and, for the
 * SCSI commands it recognises, rewrites the target's answer:
 *
 *  - standard INQUIRY: TPGS set to 01b (implicit ALUA);
 *  - VPD 0x83: a relative target port and a target port group designator
 *    (both --group) put before the target's own designators;
 *  - REPORT TARGET PORT GROUPS: answered GOOD with the groups and states
 *    of --states FILE (lines "GROUP STATE", one target port per group
 *    whose relative identifier is the group number), in the header format
 *    asked for, in place of tgtd's CHECK CONDITION;
 *  - SendTargets: the target's own address in TargetAddress becomes the
 *    proxy's, so that discovery through it finds it and not the target;
 *    each --advertise adds a TargetAddress after it (another portal of
 *    the target, as a target with several portals lists them);
 *  - with --no-discovery, a discovery session's login closes the
 *    connection, as a target that refuses SendTargets.
 *
 * A rewritten answer is one Data-In PDU with the status in it; its StatSN,
 * ExpCmdSN and MaxCmdSN are those of tgtd's own final PDU for the
 * command, so the session's sequence numbers stay right.
 *
 * SIGHUP reads FILE again; when a state changed, the next command without
 * data-out on every connection is answered CHECK CONDITION, UNIT
 * ATTENTION, ASYMMETRIC ACCESS STATE CHANGED (2A/06) instead (unless
 * --no-ua), as a target announces an implicit transition; --ua-at-login
 * does the same for the first command of every connection.  SIGUSR1: the
 * next READ on every connection is answered CHECK CONDITION, NOT READY,
 * TARGET PORT IN STANDBY STATE (04/0B), whatever the states say, as a
 * port refuses I/O it cannot serve.
 *
 * SIGUSR2 stages a late write, as a network that cuts the initiator off
 * but not the target makes one: the next SCSI WRITE command from the
 * initiator is kept here, not passed on, and that connection's initiator
 * side is closed at once while its target side stays open.  SIGUSR2
 * again sends the kept command to the target on that old connection --
 * if the target has not closed it meanwhile (a session reinstatement
 * does) -- and says whether the target carried it out; a third arms
 * again.  With --cut-closes-portal the proxy also stops listening when
 * it keeps the WRITE, as a portal that is gone.
 *
 * One thread, one poll() loop (the plumbing it shares with faultproxy is
 * in proxy.c); every rewrite is logged on stderr, one line each, so a
 * failing test shows what the initiator was told. */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alua_answers.h"
#include "proxy.h"

#define MAX_CONNS 32
#define MAX_TRACKED 512         /* commands being rewritten, per connection */
#define MAX_ADVERTISE 4
#define PDU_MAX (16u << 20)     /* larger: not iSCSI as we know it */
#define OUT_HIGH (4u << 20)     /* stop reading while this much waits */
#define BHS ALUA_BHS

enum { OP_SCSI_CMD = 0x01, OP_LOGIN_REQ = 0x03, OP_SCSI_RSP = 0x21, OP_TEXT_RSP = 0x24,
       OP_DATA_IN = 0x25, OP_LOGIN_RSP = 0x23 };
enum act { ACT_NONE, ACT_TPGS, ACT_VPD83, ACT_RTPG, ACT_UA, ACT_NOT_READY };

struct track {
  bool used;
  uint32_t itt;
  enum act act;
  uint8_t cdb[16];
  uint8_t lun[8];
  uint32_t edtl;
  struct buf data;              /* Data-In collected so far */
};

struct dir {
  int from, to;
  struct buf in, out;
  bool eof;
};

struct conn {
  bool used;
  unsigned id;
  struct dir up, down;          /* initiator->target, target->initiator */
  bool ua_armed;
  bool not_ready_armed;         /* SIGUSR1: the next READ gets 04/0B */
  bool cut;                     /* its initiator side is closed (SIGUSR2) */
  struct track t[MAX_TRACKED];
};

static struct {
  int group;
  const char *states_file;
  bool ua, ua_at_login, no_discovery, cut_closes_portal;
  const char *advertise[MAX_ADVERTISE];
  unsigned nr_advertise;
} opt = { .group = 1, .ua = true };

static struct conn conns[MAX_CONNS];
static int listening_port;      /* ours, as SendTargets answers say it */
static unsigned next_id = 1;
static struct alua_states states;
static volatile sig_atomic_t quit, reload, not_ready, late_write;

/* The late write of SIGUSR2: armed, then kept (with the connection it
 * came on), then sent. */
static struct {
  enum { LATE_OFF, LATE_ARMED, LATE_KEPT, LATE_SENT } state;
  struct conn *c;               /* NULL once the target closed it */
  struct buf pdu;
  uint32_t itt;
} late;

/* The names the log calls in this file have always used. */
#define say proxy_say
#define usage_error proxy_usage_error

/* Read the states file: 0, or -1 (kept as it was) with the reason said. */
static int
load_states (bool *changed)
{
  return alua_states_load ("aluaproxy", opt.states_file, opt.group, &states,
                           changed);
}

/* ---- answers ---- */

/* Queue a Data-In PDU with status GOOD carrying data (cut to what the
 * command may receive), numbered from fin (tgtd's final PDU). */
static void
send_data_in (struct dir *dn, const struct track *tr, const uint8_t *fin,
              struct buf *data)
{
  uint32_t alloc = alua_alloc_len (tr->cdb, tr->edtl), len = (uint32_t) data->len;
  uint8_t h[BHS] = { 0 }, pad[4] = { 0 };

  if (len > alloc)
    len = alloc;
  h[0] = OP_DATA_IN;
  h[1] = 0x80 | 0x01 | (len < tr->edtl ? 0x02 : 0);  /* F, S, U */
  h[3] = 0x00;                  /* GOOD */
  put24 (h + 5, len);
  memcpy (h + 8, tr->lun, 8);
  put32 (h + 16, tr->itt);
  put32 (h + 20, 0xffffffff);
  memcpy (h + 24, fin + 24, 12);        /* StatSN, ExpCmdSN, MaxCmdSN */
  put32 (h + 44, tr->edtl - len);
  buf_add (&dn->out, h, sizeof h);
  buf_add (&dn->out, data->b, len);
  buf_add (&dn->out, pad, (4 - len % 4) % 4);
}

/* CHECK CONDITION with fixed-format sense KEY/ASC/ASCQ. */
static void
send_sense (struct dir *dn, const struct track *tr, const uint8_t *fin,
            uint8_t key, uint8_t asc, uint8_t ascq)
{
  uint8_t h[BHS] = { 0 }, d[ALUA_SENSE_SEG];

  h[0] = OP_SCSI_RSP;
  h[1] = 0x80;
  h[3] = 0x02;                  /* CHECK CONDITION */
  put24 (h + 5, sizeof d);
  put32 (h + 16, tr->itt);
  memcpy (h + 24, fin + 24, 12);
  alua_sense_segment (d, key, asc, ascq);
  buf_add (&dn->out, h, sizeof h);
  buf_add (&dn->out, d, sizeof d);
}

static const char *
act_name (enum act a)
{
  static const char *const n[] = {
    [ACT_TPGS] = "INQUIRY", [ACT_VPD83] = "INQUIRY VPD 0x83",
    [ACT_RTPG] = "REPORT TARGET PORT GROUPS", [ACT_UA] = "unit attention",
    [ACT_NOT_READY] = "not ready",
  };
  return n[a] ? n[a] : "-";
}

/* tgtd's final PDU for a tracked command (status in pdu[3] for both
 * Data-In with S and SCSI Response): our answer instead. */
static void
finish (struct conn *c, struct track *tr, const uint8_t *pdu, size_t pdulen)
{
  struct dir *dn = &c->down;
  int status = pdu[3];
  struct buf d = { 0 };

  switch (tr->act) {
  case ACT_UA:
    /* ASYMMETRIC ACCESS STATE CHANGED */
    send_sense (dn, tr, pdu, 0x06, 0x2a, 0x06);
    say ("conn %u: itt 0x%x (opcode 0x%02x): answered UNIT ATTENTION 2A/06",
         c->id, tr->itt, tr->cdb[0]);
    break;
  case ACT_NOT_READY:
    send_sense (dn, tr, pdu, 0x02, 0x04, 0x0b);
    say ("conn %u: itt 0x%x (opcode 0x%02x): answered NOT READY 04/0B",
         c->id, tr->itt, tr->cdb[0]);
    break;
  case ACT_RTPG:
    if (alua_unit_attention (pdu, pdulen)) {       /* the target's to report */
      say ("conn %u: REPORT TARGET PORT GROUPS: the target's UNIT ATTENTION "
           "passed on", c->id);
      buf_add (&dn->out, pdu, pdulen);
      break;
    }
    alua_rtpg_data (&d, &states, (tr->cdb[1] >> 5) == 1);
    send_data_in (dn, tr, pdu, &d);
    say ("conn %u: REPORT TARGET PORT GROUPS (%s format): answered %u groups "
         "in place of status 0x%02x", c->id, (tr->cdb[1] >> 5) == 1
         ? "extended" : "basic", states.n, status);
    break;
  case ACT_TPGS:
  case ACT_VPD83:
    if (pdu[0] == OP_DATA_IN && pdu[1] & 1)   /* this PDU's data too */
      buf_add (&tr->data, pdu + BHS + pdu[4] * 4, (size_t) get32 (pdu + 4) & 0xffffff);
    if (status != 0) {          /* an error: the target's own answer */
      say ("conn %u: %s: status 0x%02x: passed on", c->id,
           act_name (tr->act), status);
      buf_add (&dn->out, pdu, pdulen);
      break;
    }
    if ((tr->act == ACT_TPGS && tr->data.len < 6)
        || (tr->act == ACT_VPD83 && !alua_vpd83_data (&d, tr->data.b, tr->data.len, opt.group))) {
      say ("conn %u: %s: %zu bytes, not rewritten", c->id,
           act_name (tr->act), tr->data.len);
      send_data_in (dn, tr, pdu, &tr->data);
      break;
    }
    if (tr->act == ACT_TPGS) {
      tr->data.b[5] = (uint8_t) ((tr->data.b[5] & ~0x30) | 0x10);
      send_data_in (dn, tr, pdu, &tr->data);
      say ("conn %u: INQUIRY: TPGS set to 01b", c->id);
    }
    else {
      send_data_in (dn, tr, pdu, &d);
      say ("conn %u: INQUIRY VPD 0x83: port %d of group %d added", c->id,
           opt.group, opt.group);
    }
    break;
  default:
    break;
  }
  buf_free (&d);
  buf_free (&tr->data);
  tr->used = false;
}

static struct track *
find (struct conn *c, uint32_t itt)
{
  for (int i = 0; i < MAX_TRACKED; i++)
    if (c->t[i].used && c->t[i].itt == itt)
      return &c->t[i];
  return NULL;
}

/* Whether PDU p (of len bytes) is a login request of a discovery session. */
static bool
discovery_login (const uint8_t *p, size_t len)
{
  static const char key[] = "SessionType=Discovery";

  if ((p[0] & 0x3f) != OP_LOGIN_REQ)
    return false;
  for (size_t i = BHS; i + strlen (key) <= len; i++)
    if (memcmp (p + i, key, strlen (key)) == 0)
      return true;
  return false;
}

/* A PDU from the initiator: note the commands to rewrite; passed on.
 * false: the connection is to be closed (--no-discovery). */
static bool
from_initiator (struct conn *c, const uint8_t *p, size_t len)
{
  const uint8_t *cdb = p + 32;
  enum act a = ACT_NONE;
  struct track *tr;

  if (opt.no_discovery && discovery_login (p, len)) {
    say ("conn %u: a discovery session: refused (--no-discovery)", c->id);
    return false;
  }
  if (late.state == LATE_ARMED && (p[0] & 0x3f) == OP_SCSI_CMD
      && (p[1] & 0x20)) {
    late.state = LATE_KEPT;
    late.c = c;
    late.itt = get32 (p + 16);
    buf_add (&late.pdu, p, len);
    c->cut = true;
    say ("conn %u: WRITE itt 0x%x kept; the initiator's side is cut%s",
         c->id, late.itt,
         opt.cut_closes_portal ? "; no more connections accepted" : "");
    return true;
  }
  if (c->cut)
    return true;                /* what came after it, never sent */
  buf_add (&c->up.out, p, len);
  if ((p[0] & 0x3f) != OP_SCSI_CMD)
    return true;
  /* INQUIRY never reports a unit attention; anything else may. */
  if (cdb[0] == 0x12 && !(cdb[1] & 1))
    a = ACT_TPGS;
  else if (cdb[0] == 0x12 && cdb[2] == 0x83)
    a = ACT_VPD83;
  else if (c->ua_armed && !(p[1] & 0x20)) {   /* no data-out */
    a = ACT_UA;
    c->ua_armed = false;
  }
  else if (c->not_ready_armed && (cdb[0] == 0x28 || cdb[0] == 0x88)) {
    a = ACT_NOT_READY;
    c->not_ready_armed = false;
  }
  else if (cdb[0] == 0xa3 && (cdb[1] & 0x1f) == 0x0a)
    a = ACT_RTPG;
  if (a == ACT_NONE)
    return true;
  for (tr = c->t; tr < c->t + MAX_TRACKED && tr->used; tr++)
    ;
  if (tr == c->t + MAX_TRACKED) {
    say ("conn %u: too many commands to rewrite; itt 0x%x passed on", c->id,
         get32 (p + 16));
    return true;
  }
  memset (tr, 0, sizeof *tr);
  tr->used = true;
  tr->act = a;
  tr->itt = get32 (p + 16);
  tr->edtl = get32 (p + 20);
  memcpy (tr->cdb, cdb, 16);
  memcpy (tr->lun, p + 8, 8);
  return true;
}

static bool
login_digest (const uint8_t *p, size_t len)
{
  static const char *const keys[] = { "HeaderDigest=CRC32C", "DataDigest=CRC32C" };

  for (size_t k = 0; k < 2; k++)
    for (size_t i = BHS; i + strlen (keys[k]) <= len; i++)
      if (memcmp (p + i, keys[k], strlen (keys[k])) == 0)
        return true;
  return false;
}

/* A SendTargets answer names the target's own portal; a discovery through
 * this proxy must find the proxy instead, or an initiator would open a
 * second path around it.  Every TargetAddress=UPSTREAM[,TPGT] becomes
 * 127.0.0.1:LISTENING[,TPGT], followed by TargetAddress=ADDR for each
 * --advertise ADDR; others are left alone. */
static void
text_response (struct conn *c, const uint8_t *p, size_t len)
{
  size_t dlen = (size_t) get32 (p + 4) & 0xffffff, ahs = (size_t) p[4] * 4;
  const char *d = (const char *) p + BHS + ahs;
  char want[96], mine[64];
  struct buf out = { 0 };
  uint8_t h[BHS], pad[4] = { 0 };
  unsigned n = 0;

  if (p[1] & 0x40) {            /* continued in the next PDU */
    say ("conn %u: a text answer in several PDUs: passed on as it is", c->id);
    buf_add (&c->down.out, p, len);
    return;
  }
  snprintf (want, sizeof want, "TargetAddress=%s:%d", proxy.host, proxy.port);
  snprintf (mine, sizeof mine, "TargetAddress=127.0.0.1:%d", listening_port);
  for (size_t off = 0; off < dlen;) {
    size_t kv = strnlen (d + off, dlen - off), w = strlen (want);
    const char *rest = d + off + w;

    if (kv >= w && memcmp (d + off, want, w) == 0
        && (kv == w || *rest == ',')) {
      buf_add (&out, mine, strlen (mine));
      buf_add (&out, rest, kv - w);
      n++;
      for (unsigned a = 0; a < opt.nr_advertise; a++) {
        buf_add (&out, "", 1);
        buf_add (&out, "TargetAddress=", strlen ("TargetAddress="));
        buf_add (&out, opt.advertise[a], strlen (opt.advertise[a]));
      }
    }
    else
      buf_add (&out, d + off, kv);
    buf_add (&out, "", 1);
    off += kv + 1;
  }
  memcpy (h, p, BHS);
  put24 (h + 5, (uint32_t) out.len);
  buf_add (&c->down.out, h, BHS);
  buf_add (&c->down.out, p + BHS, ahs);
  buf_add (&c->down.out, out.b, out.len);
  buf_add (&c->down.out, pad, (4 - out.len % 4) % 4);
  if (n)
    say ("conn %u: SendTargets: %u TargetAddress made 127.0.0.1:%d, "
         "%u more each", c->id, n, listening_port, opt.nr_advertise);
  buf_free (&out);
}

/* A PDU from the target.  false: the connection cannot be followed. */
static bool
from_target (struct conn *c, const uint8_t *p, size_t len)
{
  uint8_t op = p[0] & 0x3f;
  struct track *tr;

  if (c->cut) {
    if (late.state == LATE_SENT && late.c == c && op == OP_SCSI_RSP
        && get32 (p + 16) == late.itt)
      say ("conn %u: late WRITE itt 0x%x carried out by the target "
           "(status 0x%02x)", c->id, late.itt, p[3]);
    return true;                /* nobody to tell */
  }
  if (op == OP_LOGIN_RSP && login_digest (p, len)) {
    say ("conn %u: digests negotiated; this proxy cannot follow them", c->id);
    return false;
  }
  if (op == OP_TEXT_RSP) {
    text_response (c, p, len);
    return true;
  }
  if ((op != OP_DATA_IN && op != OP_SCSI_RSP)
      || (tr = find (c, get32 (p + 16))) == NULL) {
    buf_add (&c->down.out, p, len);
    return true;
  }
  if (op == OP_DATA_IN && !(p[1] & 1)) {      /* more to come: hold it */
    if (tr->act == ACT_TPGS || tr->act == ACT_VPD83)
      buf_add (&tr->data, p + BHS + p[4] * 4, (size_t) get32 (p + 4) & 0xffffff);
    return true;
  }
  finish (c, tr, p, len);
  return true;
}

/* Whole PDUs of d->in, one by one.  false: give up the connection. */
static bool
parse (struct conn *c, struct dir *d, bool up)
{
  size_t off = 0;

  while (d->in.len - off >= BHS) {
    const uint8_t *p = d->in.b + off;
    size_t dlen = (size_t) get32 (p + 4) & 0xffffff;
    size_t total = BHS + (size_t) p[4] * 4 + ((dlen + 3) & ~(size_t) 3);

    if (total > PDU_MAX) {
      say ("conn %u: a PDU of %zu bytes: not iSCSI as expected", c->id, total);
      return false;
    }
    if (d->in.len - off < total)
      break;
    if (up) {
      if (!from_initiator (c, p, total))
        return false;
    }
    else if (!from_target (c, p, total))
      return false;
    off += total;
  }
  memmove (d->in.b, d->in.b + off, d->in.len - off);
  d->in.len -= off;
  return true;
}

/* ---- connections ---- */

static void
conn_close (struct conn *c, const char *why)
{
  say ("conn %u: closed (%s)", c->id, c->cut ? "by the target" : why);
  if (late.c == c)
    late.c = NULL;
  if (c->up.from >= 0)
    close (c->up.from);
  close (c->up.to);
  buf_free (&c->up.in);
  buf_free (&c->up.out);
  buf_free (&c->down.in);
  buf_free (&c->down.out);
  for (int i = 0; i < MAX_TRACKED; i++)
    buf_free (&c->t[i].data);
  c->used = false;
}

static void
accept_one (int lfd)
{
  struct conn *c = NULL;
  int cfd, sfd;

  for (int i = 0; i < MAX_CONNS && !c; i++)
    if (!conns[i].used)
      c = &conns[i];
  if (!proxy_accept (lfd, c != NULL, &cfd, &sfd))
    return;
  memset (c, 0, sizeof *c);
  c->used = true;
  c->id = next_id++;
  c->up.from = c->down.to = cfd;
  c->up.to = c->down.from = sfd;
  c->ua_armed = opt.ua_at_login;
  say ("conn %u: accepted%s", c->id,
       c->ua_armed ? "; its first command gets UNIT ATTENTION 2A/06" : "");
}

/* Move bytes for one direction.  false: the connection has ended. */
static bool
pump (struct conn *c, struct dir *d, bool up, short rev_from, short rev_to)
{
  if (!d->eof && d->out.len - d->out.off < OUT_HIGH
      && (rev_from & (POLLIN | POLLHUP | POLLERR))) {
    uint8_t tmp[65536];
    ssize_t n = proxy_read (d->from, tmp, sizeof tmp, &d->eof);

    if (n < 0)
      return false;
    if (n > 0) {
      buf_add (&d->in, tmp, (size_t) n);
      if (!parse (c, d, up))
        return false;
    }
  }
  if (d->out.len > d->out.off && (rev_to & POLLOUT)
      && proxy_write (d->to, d->out.b, &d->out.off, &d->out.len) < 0)
    return false;
  return !(d->eof && d->out.len == d->out.off);
}

static void
on_signal (int sig)
{
  if (sig == SIGHUP)
    reload = 1;
  else if (sig == SIGUSR1)
    not_ready = 1;
  else if (sig == SIGUSR2)
    late_write = 1;
  else
    quit = 1;
}

static void
do_reload (void)
{
  bool changed;

  reload = 0;
  if (load_states (&changed) < 0 || !changed)
    return;
  if (!opt.ua)
    return;
  for (int i = 0; i < MAX_CONNS; i++)
    if (conns[i].used) {
      conns[i].ua_armed = true;
      say ("conn %u: next command gets UNIT ATTENTION 2A/06", conns[i].id);
    }
}

static void
arm_not_ready (void)
{
  not_ready = 0;
  for (int i = 0; i < MAX_CONNS; i++)
    if (conns[i].used) {
      conns[i].not_ready_armed = true;
      say ("conn %u: next READ gets NOT READY 04/0B", conns[i].id);
    }
}

/* SIGUSR2: arm the late write, or send the one kept. */
static void
step_late_write (void)
{
  late_write = 0;
  switch (late.state) {
  case LATE_OFF:
  case LATE_SENT:
    late.state = LATE_ARMED;
    late.c = NULL;
    late.pdu.len = late.pdu.off = 0;
    say ("the next WRITE is kept and its connection cut");
    return;
  case LATE_KEPT:
    late.state = LATE_SENT;
    if (late.c == NULL) {
      say ("late WRITE itt 0x%x not sent: the target closed its connection",
           late.itt);
      return;
    }
    buf_add (&late.c->up.out, late.pdu.b, late.pdu.len);
    say ("conn %u: late WRITE itt 0x%x sent to the target", late.c->id,
         late.itt);
    return;
  case LATE_ARMED:
  default:
    say ("SIGUSR2: no WRITE kept yet");
    return;
  }
}

static int
serve (int lfd)
{
  while (!quit) {
    struct pollfd pfd[1 + 2 * MAX_CONNS];
    int idx[MAX_CONNS], n = 1;

    if (reload)
      do_reload ();
    if (not_ready)
      arm_not_ready ();
    if (late_write)
      step_late_write ();
    if (opt.cut_closes_portal && late.state == LATE_KEPT && lfd >= 0) {
      close (lfd);
      lfd = -1;
    }
    pfd[0] = (struct pollfd) { .fd = lfd, .events = POLLIN };
    for (int i = 0; i < MAX_CONNS; i++) {
      struct conn *c = &conns[i];

      idx[i] = -1;
      if (!c->used)
        continue;
      idx[i] = n;
      if (c->cut && c->up.from >= 0) {
        /* As a cable pulled on the initiator's side. */
        close (c->up.from);
        c->up.from = c->down.to = -1;
        c->up.in.len = c->down.out.len = c->down.out.off = 0;
      }
      pfd[n++] = (struct pollfd) {
        .fd = c->up.from,
        .events = (c->up.eof ? 0 : POLLIN)
          | (c->down.out.len > c->down.out.off ? POLLOUT : 0),
      };
      pfd[n++] = (struct pollfd) {
        .fd = c->down.from,
        .events = (c->down.eof ? 0 : POLLIN)
          | (c->up.out.len > c->up.out.off ? POLLOUT : 0),
      };
    }
    if (poll (pfd, (nfds_t) n, 1000) < 0) {
      if (errno == EINTR)
        continue;
      perror ("aluaproxy: poll");
      return 1;
    }
    if (lfd >= 0 && (pfd[0].revents & POLLIN))
      accept_one (lfd);
    for (int i = 0; i < MAX_CONNS; i++) {
      struct conn *c = &conns[i];
      short cli, srv;

      if (!c->used || idx[i] < 0)
        continue;
      cli = pfd[idx[i]].revents;
      srv = pfd[idx[i] + 1].revents;
      if (c->cut)
        cli = POLLOUT;          /* nothing comes; what goes is dropped */
      if (!pump (c, &c->up, true, cli, srv) || !pump (c, &c->down, false, srv, cli))
        conn_close (c, "peer closed or unparsable");
      else if (c->cut)
        c->down.out.len = c->down.out.off = 0;
    }
  }
  say ("exiting");
  return 0;
}

static void
usage (void)
{
  printf (
"Usage: aluaproxy --connect HOST:PORT --states FILE [OPTIONS]\n"
"Forward iSCSI connections from 127.0.0.1 to HOST:PORT, making the target\n"
"report ALUA: TPGS=01b in INQUIRY, this port's group in VPD 0x83, and the\n"
"groups of FILE (lines \"GROUP STATE\", STATE one of ao, ano, standby,\n"
"unavailable, offline, transitioning) to REPORT TARGET PORT GROUPS; its own\n"
"address in place of HOST:PORT in SendTargets answers.\n"
"\n"
"  --advertise ADDR     add TargetAddress=ADDR (HOST:PORT,TPGT) after it in\n"
"                       SendTargets answers (repeatable, up to 4)\n"
"  --no-discovery       close the connection of a discovery session's login\n"
"  --cut-closes-portal  stop listening once the WRITE of SIGUSR2 is kept\n"
"  --group N            this port's target port group and relative target\n"
"                       port identifier (default 1)\n"
"  --listen PORT        port to listen on (default 0: any free port)\n"
"  --port-file FILE     write the listening port there once ready\n"
"  --no-ua              no UNIT ATTENTION 2A/06 after a state change\n"
"  --ua-at-login        UNIT ATTENTION 2A/06 to the first command (with no\n"
"                       data-out, not INQUIRY) of every connection\n"
"\n"
"SIGHUP reads FILE again (a change arms the UNIT ATTENTION on every\n"
"connection); SIGUSR1 answers the next READ of every connection NOT READY\n"
"04/0B; SIGUSR2 keeps the next WRITE and cuts the initiator off its\n"
"connection, and SIGUSR2 again sends the WRITE to the target on it;\n"
"SIGTERM/SIGINT exit.  Digests must be off.\n");
}

static unsigned long
parse_num (const char *what, const char *s, unsigned long max)
{
  uint64_t v;

  if (!proxy_number (s, &v) || v > max)
    usage_error ("%s: '%s' is not a number up to %lu", what, s, max);
  return v;
}

int
main (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "connect", required_argument, NULL, 'c' },
    { "states", required_argument, NULL, 's' },
    { "group", required_argument, NULL, 'g' },
    { "listen", required_argument, NULL, 'l' },
    { "port-file", required_argument, NULL, 'p' },
    { "no-ua", no_argument, NULL, 'n' },
    { "ua-at-login", no_argument, NULL, 'u' },
    { "advertise", required_argument, NULL, 'a' },
    { "no-discovery", no_argument, NULL, 'D' },
    { "cut-closes-portal", no_argument, NULL, 'X' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  bool changed;
  int c, lfd;

  proxy.name = "aluaproxy";
  while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case 'c':
      proxy.port = (int) parse_num ("--connect port",
                                    proxy_connect_host (optarg), 65535);
      break;
    case 's': opt.states_file = optarg; break;
    case 'g': opt.group = (int) parse_num ("--group", optarg, 0xffff); break;
    case 'l': proxy.listen_port = (int) parse_num ("--listen", optarg, 65535); break;
    case 'p': proxy.port_file = optarg; break;
    case 'n': opt.ua = false; break;
    case 'u': opt.ua_at_login = true; break;
    case 'D': opt.no_discovery = true; break;
    case 'X': opt.cut_closes_portal = true; break;
    case 'a':
      if (opt.nr_advertise == MAX_ADVERTISE)
        usage_error ("--advertise: at most %d", MAX_ADVERTISE);
      if (strchr (optarg, ':') == NULL)
        usage_error ("--advertise: expected HOST:PORT,TPGT, got '%s'", optarg);
      opt.advertise[opt.nr_advertise++] = optarg;
      break;
    case 'h': usage (); return 0;
    default: usage_error ("bad option");
    }
  }
  if (optind != argc)
    usage_error ("unexpected argument '%s'", argv[optind]);
  if (proxy.port == 0 || opt.states_file == NULL)
    usage_error ("--connect HOST:PORT and --states FILE are required");
  if (load_states (&changed) < 0)
    return 1;

  proxy_catch (on_signal,
               (const int[]) { SIGHUP, SIGUSR1, SIGUSR2, SIGTERM, SIGINT, 0 });
  if ((lfd = proxy_listen (&listening_port)) < 0)
    return 1;
  say ("listening on 127.0.0.1:%d -> %s:%d, group %d", listening_port,
       proxy.host, proxy.port, opt.group);
  if (proxy_write_port_file (listening_port) < 0)
    return 1;
  return serve (lfd);
}
