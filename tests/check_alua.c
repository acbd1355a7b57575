/* Unit tests of ALUA (src/alua.c): TPGS from standard INQUIRY data, the
 * target port designators of VPD 0x83, REPORT TARGET PORT GROUPS data in
 * both header formats, a port's state and rank, the sense codes that ask
 * for a re-read, and the probe of a pair over a fake path.  Pages are laid
 * out as SPC-4 defines them (and as LIO sends them) and handed over in
 * buffers of exactly their length, so that the sanitizer build sees any
 * read past them.  No target, no root. */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include "alua.h"
#include "check_run.h"

/* A copy of len bytes in a buffer of exactly that size. */
static uint8_t *
exact (const uint8_t *b, size_t len)
{
  uint8_t *p = malloc (len ? len : 1);

  ck_assert_ptr_nonnull (p);
  memcpy (p, b, len);
  return p;
}

/* ---- standard INQUIRY ---- */

START_TEST (tpgs_bits)
{
  uint8_t inq[36] = { 0x00, 0x00, 0x05, 0x02, 31 };

  ck_assert_int_eq (alua_tpgs (inq, sizeof inq), 0);
  inq[5] = 0x10;                /* implicit */
  ck_assert_int_eq (alua_tpgs (inq, sizeof inq), 1);
  inq[5] = 0x20 | 0x08;         /* explicit, 3PC beside it */
  ck_assert_int_eq (alua_tpgs (inq, sizeof inq), 2);
  inq[5] = 0x3f;
  ck_assert_int_eq (alua_tpgs (inq, sizeof inq), 3);
  ck_assert_int_eq (alua_tpgs (inq, 5), -EPROTO);
  ck_assert_int_eq (alua_tpgs (NULL, 36), -EPROTO);
}
END_TEST

/* ---- VPD 0x83 ---- */

struct page {
  uint8_t b[512];
  size_t len;
};

static void
page_start (struct page *p)
{
  memset (p, 0, sizeof *p);
  p->b[1] = 0x83;
  p->len = 4;
}

static void
page_end (struct page *p)
{
  p->b[2] = (uint8_t) ((p->len - 4) >> 8);
  p->b[3] = (uint8_t) (p->len - 4);
}

static void
add (struct page *p, unsigned code_set, unsigned assoc, unsigned type,
     const void *value, size_t len)
{
  uint8_t *d = p->b + p->len;

  d[0] = (uint8_t) code_set;
  d[1] = (uint8_t) ((assoc ? 0x80 : 0) | assoc << 4 | type);   /* PIV */
  d[3] = (uint8_t) len;
  memcpy (d + 4, value, len);
  p->len += 4 + len;
}

/* What LIO sends for a LUN behind target port 2 of group 7: NAA, T10
 * vendor id, then relative target port, target port group, the port's
 * SCSI name string and the target's. */
static void
lio_page (struct page *p)
{
  static const uint8_t naa[16] = { 0x60, 0x01, 0x40, 0x5a, 1, 2, 3, 4,
                                   5, 6, 7, 8, 9, 10, 11, 12 };
  static const char t10[] = "LIO-ORG fileio0 0123-4567";
  static const uint8_t rel[4] = { 0, 0, 0, 2 }, tpg[4] = { 0, 0, 0, 7 };
  static const char port_name[] = "iqn.2026-01.org.example:t,t,0x0001\0\0";
  static const char target_name[] = "iqn.2026-01.org.example:t\0\0\0";

  page_start (p);
  add (p, 1, 0, 3, naa, sizeof naa);
  add (p, 2, 0, 1, t10, sizeof t10 - 1);
  add (p, 1, 1, 4, rel, sizeof rel);
  add (p, 1, 1, 5, tpg, sizeof tpg);
  add (p, 3, 1, 8, port_name, 36);
  add (p, 3, 2, 8, target_name, 28);
  page_end (p);
}

static int
port_of (const struct page *p, size_t len, struct alua_port *port)
{
  uint8_t *b = exact (p->b, len);
  int r = alua_port_from_vpd (b, len, port);

  free (b);
  return r;
}

START_TEST (vpd_port_designators)
{
  struct page p;
  struct alua_port port;

  lio_page (&p);
  ck_assert_int_eq (port_of (&p, p.len, &port), 0);
  ck_assert (port.has_rel_port && port.has_group);
  ck_assert_uint_eq (port.rel_port, 2);
  ck_assert_uint_eq (port.group, 7);
  /* Bytes beyond the page (a transport reporting its allocation length
   * as the data length) are not read. */
  p.b[p.len] = 0xff;
  ck_assert_int_eq (port_of (&p, p.len + 8, &port), 0);
  ck_assert_uint_eq (port.group, 7);
}
END_TEST

START_TEST (vpd_no_port_designators)
{
  static const uint8_t naa[8] = { 0x30, 1, 2, 3, 4, 5, 6, 7 };
  static const uint8_t tpg[4] = { 0, 0, 0, 9 };
  struct page p;
  struct alua_port port;

  /* tgtd's: LU designators only. */
  page_start (&p);
  add (&p, 1, 0, 3, naa, sizeof naa);
  page_end (&p);
  ck_assert_int_eq (port_of (&p, p.len, &port), -ENOENT);
  /* A port group designator of logical-unit association is not one. */
  page_start (&p);
  add (&p, 1, 0, 5, tpg, sizeof tpg);
  page_end (&p);
  ck_assert_int_eq (port_of (&p, p.len, &port), -ENOENT);
}
END_TEST

START_TEST (vpd_refused)
{
  static const uint8_t short_tpg[2] = { 0, 7 };
  struct page p;
  struct alua_port port;

  lio_page (&p);
  /* Every truncation of the page: the header says more than there is. */
  for (size_t len = 0; len < p.len; len++)
    ck_assert_msg (port_of (&p, len, &port) == -EPROTO, "accepted %zu of %zu",
                   len, p.len);
  /* A descriptor whose length runs past the page. */
  lio_page (&p);
  p.b[4 + 3] = 200;
  ck_assert_int_eq (port_of (&p, p.len, &port), -EPROTO);
  /* The last descriptor's length one too long, the page length right. */
  lio_page (&p);
  p.b[p.len - 28 - 1] = 29;
  ck_assert_int_eq (port_of (&p, p.len, &port), -EPROTO);
  /* A target port group of the wrong size. */
  page_start (&p);
  add (&p, 1, 1, 5, short_tpg, sizeof short_tpg);
  page_end (&p);
  ck_assert_int_eq (port_of (&p, p.len, &port), -EPROTO);
  /* Another page. */
  lio_page (&p);
  p.b[1] = 0x80;
  ck_assert_int_eq (port_of (&p, p.len, &port), -EPROTO);
}
END_TEST

/* ---- REPORT TARGET PORT GROUPS ---- */

struct rtpg {
  uint8_t b[2048];
  size_t len;
};

static void
rtpg_start (struct rtpg *r, bool extended, uint8_t transition)
{
  memset (r, 0, sizeof *r);
  r->len = 4;
  if (extended) {
    r->b[4] = 0x10;
    r->b[5] = transition;
    r->len = 8;
  }
}

static void
rtpg_group (struct rtpg *r, bool pref, uint8_t state, uint16_t id,
            const uint16_t *ports, unsigned n)
{
  uint8_t *d = r->b + r->len;

  d[0] = (uint8_t) ((pref ? 0x80 : 0) | state);
  d[1] = 0x8f;                  /* T_SUP, U_SUP, S_SUP, AN_SUP, AO_SUP */
  d[2] = (uint8_t) (id >> 8);
  d[3] = (uint8_t) id;
  d[5] = 0x02;                  /* altered by an implicit transition */
  d[7] = (uint8_t) n;
  for (unsigned i = 0; i < n; i++) {
    d[8 + 4 * i + 2] = (uint8_t) (ports[i] >> 8);
    d[8 + 4 * i + 3] = (uint8_t) ports[i];
  }
  r->len += 8 + 4 * n;
}

static void
rtpg_end (struct rtpg *r)
{
  uint32_t n = (uint32_t) r->len - 4;

  r->b[0] = (uint8_t) (n >> 24);
  r->b[1] = (uint8_t) (n >> 16);
  r->b[2] = (uint8_t) (n >> 8);
  r->b[3] = (uint8_t) n;
}

/* Two groups as a dual-controller array reports them: 1 (ports 1, 3)
 * active/optimized and preferred, 2 (ports 2, 4) standby. */
static void
two_groups (struct rtpg *r, bool extended)
{
  static const uint16_t a[] = { 1, 3 }, b[] = { 2, 4 };

  rtpg_start (r, extended, 60);
  rtpg_group (r, true, ALUA_ACTIVE_OPTIMIZED, 1, a, 2);
  rtpg_group (r, false, ALUA_STANDBY, 2, b, 2);
  rtpg_end (r);
}

static int
parse (const struct rtpg *r, size_t len, struct alua_groups *g)
{
  uint8_t *b = exact (r->b, len);
  int ret = alua_parse_rtpg (b, len, g);

  free (b);
  return ret;
}

static void
check_two_groups (const struct alua_groups *g)
{
  ck_assert_uint_eq (g->nr, 2);
  ck_assert (!g->incomplete);
  ck_assert_uint_eq (g->g[0].id, 1);
  ck_assert_uint_eq (g->g[0].state, ALUA_ACTIVE_OPTIMIZED);
  ck_assert (g->g[0].pref);
  ck_assert_uint_eq (g->g[0].supported, 0x8f);
  ck_assert_uint_eq (g->g[0].status, 2);
  ck_assert_uint_eq (g->g[0].nr_ports, 2);
  ck_assert_uint_eq (g->g[0].ports[1], 3);
  ck_assert_uint_eq (g->g[1].id, 2);
  ck_assert_uint_eq (g->g[1].state, ALUA_STANDBY);
  ck_assert (!g->g[1].pref);
  ck_assert_uint_eq (g->g[1].ports[0], 2);
  ck_assert_uint_eq (g->g[1].ports[1], 4);
}

START_TEST (rtpg_basic)
{
  struct rtpg r;
  struct alua_groups g;

  two_groups (&r, false);
  ck_assert_int_eq (alua_rtpg_length (r.b, r.len), (long) r.len);
  ck_assert_int_eq (parse (&r, r.len, &g), 0);
  ck_assert (!g.extended);
  check_two_groups (&g);
}
END_TEST

START_TEST (rtpg_extended)
{
  struct rtpg r;
  struct alua_groups g;

  two_groups (&r, true);
  ck_assert_int_eq (parse (&r, r.len, &g), 0);
  ck_assert (g.extended);
  ck_assert_uint_eq (g.transition_time, 60);
  check_two_groups (&g);
  /* Allocation-length padding after the data is not parsed. */
  memset (r.b + r.len, 0xee, 64);
  ck_assert_int_eq (parse (&r, r.len + 64, &g), 0);
  check_two_groups (&g);
}
END_TEST

START_TEST (rtpg_empty)
{
  struct rtpg r;
  struct alua_groups g;

  rtpg_start (&r, false, 0);
  rtpg_end (&r);
  ck_assert_int_eq (parse (&r, r.len, &g), 0);
  ck_assert_uint_eq (g.nr, 0);
  rtpg_start (&r, true, 0);
  rtpg_end (&r);
  ck_assert_int_eq (parse (&r, r.len, &g), 0);
  ck_assert (g.extended);
  ck_assert_uint_eq (g.nr, 0);
}
END_TEST

START_TEST (rtpg_truncated)
{
  struct rtpg r;
  struct alua_groups g;

  for (int ext = 0; ext < 2; ext++) {
    two_groups (&r, ext);
    for (size_t len = 0; len < r.len; len++)
      ck_assert_msg (parse (&r, len, &g) == -EPROTO,
                     "%s: accepted %zu of %zu bytes", ext ? "ext" : "basic",
                     len, r.len);
  }
  ck_assert_int_eq (alua_parse_rtpg (NULL, 100, &g), -EPROTO);
}
END_TEST

START_TEST (rtpg_lying_lengths)
{
  struct rtpg r;
  struct alua_groups g;

  /* A port count that runs past the returned length. */
  two_groups (&r, false);
  r.b[4 + 8 + 8 + 7] = 3;
  ck_assert_int_eq (parse (&r, r.len, &g), -EPROTO);
  /* The same with enough bytes behind it in the buffer: still past the
   * length the header gives. */
  ck_assert_int_eq (parse (&r, r.len + 4, &g), -EPROTO);
  /* A returned length that ends inside a descriptor. */
  two_groups (&r, true);
  r.b[3] -= 2;
  ck_assert_int_eq (parse (&r, r.len, &g), -EPROTO);
  /* One that ends inside a descriptor header. */
  two_groups (&r, false);
  r.b[3] = 4;
  ck_assert_int_eq (parse (&r, r.len, &g), -EPROTO);
  /* An extended header with no room for itself. */
  rtpg_start (&r, true, 0);
  r.b[3] = 2;
  ck_assert_int_eq (parse (&r, r.len, &g), -EPROTO);
  /* A format type we do not know. */
  two_groups (&r, true);
  r.b[4] = 0x20;
  ck_assert_int_eq (parse (&r, r.len, &g), -EPROTO);
}
END_TEST

START_TEST (rtpg_many)
{
  struct rtpg r;
  struct alua_groups g;
  uint16_t ports[40];

  for (unsigned i = 0; i < 40; i++)
    ports[i] = (uint16_t) (i + 1);
  rtpg_start (&r, false, 0);
  rtpg_group (&r, false, ALUA_ACTIVE_OPTIMIZED, 1, ports, 40);
  for (unsigned i = 2; i <= ALUA_MAX_GROUPS + 2; i++)
    rtpg_group (&r, false, ALUA_STANDBY, (uint16_t) i, NULL, 0);
  rtpg_end (&r);
  ck_assert_int_eq (parse (&r, r.len, &g), 0);
  ck_assert (g.incomplete);
  ck_assert_uint_eq (g.nr, ALUA_MAX_GROUPS);
  ck_assert_uint_eq (g.g[0].nr_ports, ALUA_MAX_PORTS);
  ck_assert_uint_eq (g.g[0].ports[ALUA_MAX_PORTS - 1], ALUA_MAX_PORTS);
}
END_TEST

/* ---- a port's state and rank ---- */

/* ---- the probe of one (LUN, path) pair ---- */

/* What a fake path answers alua_probe_with: TPGS in INQUIRY, LIO's VPD
 * 0x83 (this port: group 7, relative port 2), and an RTPG answer with
 * group 7 in `state`; `fail_rtpg` makes RTPG fail. */
struct fake {
  int tpgs;
  uint8_t state;
  bool fail_rtpg;
  unsigned asked[3];
};

static int
fake_ask (void *opaque, enum alua_ask what, uint8_t *buf, size_t cap,
          size_t *got)
{
  struct fake *f = opaque;
  static const uint16_t seven[] = { 2 }, eight[] = { 3 };
  struct page p;
  struct rtpg r;
  uint8_t inq[36] = { 0x00, 0x00, 0x05, 0x02, 31 };
  const uint8_t *b;
  size_t len;

  ck_assert_uint_lt (what, 3);
  f->asked[what]++;
  switch (what) {
  case ALUA_ASK_INQUIRY:
    inq[5] = (uint8_t) (f->tpgs << 4);
    b = inq;
    len = sizeof inq;
    break;
  case ALUA_ASK_DEVICE_ID:
    lio_page (&p);
    b = p.b;
    len = p.len;
    break;
  case ALUA_ASK_RTPG:
  default:
    if (f->fail_rtpg)
      return -EIO;
    rtpg_start (&r, true, 10);
    rtpg_group (&r, false, ALUA_ACTIVE_OPTIMIZED, 8, eight, 1);
    rtpg_group (&r, true, f->state, 7, seven, 1);
    rtpg_end (&r);
    b = r.b;
    len = r.len;
    break;
  }
  ck_assert_uint_ge (cap, len);
  memcpy (buf, b, len);
  *got = len;
  return 0;
}

START_TEST (probe_with)
{
  struct alua_path ap;
  struct fake f = { .tpgs = 1, .state = ALUA_STANDBY };

  /* ALUA: the port's group and its state, through the caller's asks. */
  ck_assert_int_eq (alua_probe_with (&ap, 3, "lun3", fake_ask, &f), 0);
  ck_assert_int_eq (ap.tpgs, 1);
  ck_assert (ap.port.has_group && ap.port.group == 7);
  ck_assert_int_eq (ap.state, ALUA_STANDBY);
  ck_assert_int_eq (ap.rank, ALUA_RANK_NONE);
  ck_assert_int_eq (ap.lun, 3);
  ck_assert_uint_eq (f.asked[ALUA_ASK_RTPG], 1);
  alua_forget (&ap);

  /* No ALUA: nothing asked after INQUIRY, the pair used as it is. */
  memset (&f, 0, sizeof f);
  ck_assert_int_eq (alua_probe_with (&ap, 3, "lun3", fake_ask, &f), 0);
  ck_assert_int_eq (ap.tpgs, 0);
  ck_assert_int_eq (ap.state, -1);
  ck_assert_int_eq (ap.rank, ALUA_RANK_OPTIMIZED);
  ck_assert_uint_eq (f.asked[ALUA_ASK_DEVICE_ID] + f.asked[ALUA_ASK_RTPG], 0);

  /* RTPG fails: ALUA, state unknown, still usable. */
  f = (struct fake) { .tpgs = 2, .fail_rtpg = true };
  ck_assert_int_lt (alua_probe_with (&ap, 3, "lun3", fake_ask, &f), 0);
  ck_assert_int_eq (ap.tpgs, 2);
  ck_assert_int_eq (ap.state, -1);
  ck_assert_int_eq (ap.rank, ALUA_RANK_OPTIMIZED);
  alua_forget (&ap);
}
END_TEST

START_TEST (path_state)
{
  struct rtpg r;
  struct alua_groups g;
  struct alua_port port = { .has_group = true, .group = 2 };

  two_groups (&r, true);
  ck_assert_int_eq (parse (&r, r.len, &g), 0);
  ck_assert_int_eq (alua_path_state (&g, &port), ALUA_STANDBY);
  port.group = 1;
  ck_assert_int_eq (alua_path_state (&g, &port), ALUA_ACTIVE_OPTIMIZED);
  /* Only a relative port: found in a group's port list. */
  port = (struct alua_port) { .has_rel_port = true, .rel_port = 4 };
  ck_assert_int_eq (alua_path_state (&g, &port), ALUA_STANDBY);
  port.rel_port = 3;
  ck_assert_int_eq (alua_path_state (&g, &port), ALUA_ACTIVE_OPTIMIZED);
  port.rel_port = 9;
  ck_assert_int_eq (alua_path_state (&g, &port), -ENOENT);
  /* A group the answer does not list, and a port in none. */
  port = (struct alua_port) { .has_group = true, .group = 5 };
  ck_assert_int_eq (alua_path_state (&g, &port), -ENOENT);
}
END_TEST

START_TEST (ranks)
{
  ck_assert_int_eq (alua_rank_of (ALUA_ACTIVE_OPTIMIZED), ALUA_RANK_OPTIMIZED);
  ck_assert_int_eq (alua_rank_of (ALUA_ACTIVE_NONOPTIMIZED),
                    ALUA_RANK_NONOPTIMIZED);
  ck_assert_int_eq (alua_rank_of (ALUA_LBA_DEPENDENT), ALUA_RANK_NONOPTIMIZED);
  ck_assert_int_eq (alua_rank_of (ALUA_STANDBY), ALUA_RANK_NONE);
  ck_assert_int_eq (alua_rank_of (ALUA_UNAVAILABLE), ALUA_RANK_NONE);
  ck_assert_int_eq (alua_rank_of (ALUA_OFFLINE), ALUA_RANK_NONE);
  ck_assert_int_eq (alua_rank_of (ALUA_TRANSITIONING), ALUA_RANK_NONE);
  for (int s = 5; s < 0xe; s++)
    ck_assert_int_eq (alua_rank_of (s), ALUA_RANK_NONE);
  ck_assert_int_eq (alua_rank_of (-1), ALUA_RANK_NONE);
  ck_assert_str_eq (alua_state_name (ALUA_STANDBY), "standby");
  ck_assert_str_eq (alua_state_name (7), "unknown");
}
END_TEST

/* ---- sense ---- */

START_TEST (sense_classes)
{
  const unsigned both = ALUA_SENSE_REREAD | ALUA_SENSE_ELSEWHERE;

  ck_assert_uint_eq (alua_sense (SCSI_SENSE_UNIT_ATTENTION, 0x2a06),
                     ALUA_SENSE_REREAD);
  ck_assert_uint_eq (alua_sense (SCSI_SENSE_UNIT_ATTENTION, 0x2a07),
                     ALUA_SENSE_REREAD);
  ck_assert_uint_eq (alua_sense (SCSI_SENSE_NOT_READY, 0x040a), both);
  ck_assert_uint_eq (alua_sense (SCSI_SENSE_NOT_READY, 0x040b), both);
  ck_assert_uint_eq (alua_sense (SCSI_SENSE_NOT_READY, 0x040c), both);
  /* Neighbours that are not about port groups. */
  ck_assert_uint_eq (alua_sense (SCSI_SENSE_UNIT_ATTENTION, 0x2a09), 0);
  ck_assert_uint_eq (alua_sense (SCSI_SENSE_UNIT_ATTENTION, 0x2900), 0);
  ck_assert_uint_eq (alua_sense (SCSI_SENSE_UNIT_ATTENTION, 0x3f0e), 0);
  ck_assert_uint_eq (alua_sense (SCSI_SENSE_NOT_READY, 0x0401), 0);
  ck_assert_uint_eq (alua_sense (SCSI_SENSE_NOT_READY, 0x3a00), 0);
  /* The right codes under the wrong key. */
  ck_assert_uint_eq (alua_sense (SCSI_SENSE_NOT_READY, 0x2a06), 0);
  ck_assert_uint_eq (alua_sense (SCSI_SENSE_UNIT_ATTENTION, 0x040b), 0);
  ck_assert_uint_eq (alua_sense (SCSI_SENSE_ILLEGAL_REQUEST, 0x040a), 0);
}
END_TEST

static Suite *
alua_suite (void)
{
  Suite *s = suite_create ("alua");
  TCase *tc = tcase_create ("parse");

  tcase_add_test (tc, tpgs_bits);
  tcase_add_test (tc, vpd_port_designators);
  tcase_add_test (tc, vpd_no_port_designators);
  tcase_add_test (tc, vpd_refused);
  tcase_add_test (tc, rtpg_basic);
  tcase_add_test (tc, rtpg_extended);
  tcase_add_test (tc, rtpg_empty);
  tcase_add_test (tc, rtpg_truncated);
  tcase_add_test (tc, rtpg_lying_lengths);
  tcase_add_test (tc, rtpg_many);
  tcase_add_test (tc, probe_with);
  tcase_add_test (tc, path_state);
  tcase_add_test (tc, ranks);
  tcase_add_test (tc, sense_classes);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return check_run (alua_suite (), CK_FORK_GETENV);
}
