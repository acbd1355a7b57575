/* Unit tests of a LUN's identity (src/identity.c): VPD 0x83 and 0x80 pages
 * given as bytes go through the same path as a target's answer -- a task
 * made by libiscsi's own INQUIRY constructor with the bytes as its data-in,
 * checked by identity_check_page and unmarshalled by libiscsi -- and the
 * identities that come out are named and compared.  Each page is in a
 * buffer of exactly its length, so that the sanitizer build sees any read
 * past it.  No target, no root. */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include "check_run.h"
#include "identity.h"

/* An INQUIRY task for VPD page `code` as if the target had answered with
 * `len` bytes of `page`. */
static struct scsi_task *
answered (int code, const uint8_t *page, size_t len)
{
  struct scsi_task *t = scsi_cdb_inquiry (1, code, 4096);

  ck_assert_ptr_nonnull (t);
  t->status = SCSI_STATUS_GOOD;
  t->datain.data = malloc (len ? len : 1);
  ck_assert_ptr_nonnull (t->datain.data);
  memcpy (t->datain.data, page, len);
  t->datain.size = (int) len;
  return t;
}

/* Feed one page into id; the result of identity_from_task. */
static int
feed (struct lun_identity *id, int code, const uint8_t *page, size_t len)
{
  struct scsi_task *t = answered (code, page, len);
  int r = identity_from_task (id, t);

  scsi_free_scsi_task (t);
  return r;
}

/* ---- building pages ---- */

struct page {
  uint8_t b[1024];
  size_t len;
};

static void
page_start (struct page *p, uint8_t code)
{
  memset (p, 0, sizeof *p);
  p->b[1] = code;
  p->len = 4;
}

static void
page_end (struct page *p)
{
  p->b[2] = (uint8_t) ((p->len - 4) >> 8);
  p->b[3] = (uint8_t) (p->len - 4);
}

/* One designator descriptor: association 0 (LU), 1 (port), 2 (device). */
static void
add (struct page *p, unsigned code_set, unsigned assoc, unsigned type,
     const void *value, size_t len)
{
  uint8_t *d = p->b + p->len;

  d[0] = (uint8_t) code_set;
  d[1] = (uint8_t) (assoc << 4 | type);
  d[3] = (uint8_t) len;
  memcpy (d + 4, value, len);
  p->len += 4 + len;
  page_end (p);
}

/* tgtd's device identification page for a LUN, byte for byte as
 * Debian 12's tgtd (1.0.85) answers it: the T10 vendor id is the scsi_id
 * in a 36-byte field padded with NULs, then NAA locally assigned
 * (tid << 32 | lun), then NAA IEEE registered extended: the scsi_id read
 * one character per hex digit (anything not a hex digit counts as 0),
 * right-adjusted in 128 bits, its first digit replaced by 6. */
static void
tgtd_page (struct page *p, const char *scsi_id, unsigned tid, unsigned lun)
{
  uint8_t t10[36] = { 0 }, naa3[8] = { 0 }, naa6[16] = { 0 };
  size_t n = strlen (scsi_id);

  memcpy (t10, scsi_id, n < sizeof t10 ? n : sizeof t10);
  naa3[0] = 0x30;
  naa3[3] = (uint8_t) tid;
  naa3[7] = (uint8_t) lun;
  for (size_t i = 0; i < n && i < 32; i++) {
    char c = scsi_id[n - 1 - i];
    unsigned v = c >= '0' && c <= '9' ? (unsigned) (c - '0')
      : c >= 'a' && c <= 'f' ? (unsigned) (c - 'a' + 10)
      : c >= 'A' && c <= 'F' ? (unsigned) (c - 'A' + 10) : 0;
    naa6[15 - i / 2] |= (uint8_t) (i % 2 ? v << 4 : v);
  }
  naa6[0] = (uint8_t) ((naa6[0] & 0x0f) | 0x60);
  page_start (p, 0x83);
  add (p, 2, 0, 1, t10, sizeof t10);
  add (p, 1, 0, 3, naa3, sizeof naa3);
  add (p, 1, 0, 3, naa6, sizeof naa6);
}

/* The NAA registered extended value tgtd_page gives scsi_id "aa01". */
static const uint8_t naa6_a[16] = {
  0x60, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xaa, 0x01,
};

static void
serial_page (struct page *p, const char *sn)
{
  page_start (p, 0x80);
  memcpy (p->b + 4, sn, strlen (sn));
  p->len = 4 + strlen (sn);
  page_end (p);
}

static struct lun_identity *
fresh (void)
{
  static struct lun_identity ids[4];
  static unsigned next;
  struct lun_identity *id = &ids[next++ % 4];

  memset (id, 0, sizeof *id);
  return id;
}

static const char *
name (const struct lun_identity *id)
{
  static char buf[IDENTITY_NAME_MAX];
  return identity_name (id, buf, sizeof buf);
}

/* ---- tgtd ---- */

/* Two daemons configured alike (same scsi_id, same tid and lun) show one
 * LUN: the page is the same, NAA registered extended names it. */
START_TEST (tgtd_same_page_same_lun)
{
  struct lun_identity *a = fresh (), *b = fresh ();
  struct page p;

  tgtd_page (&p, "aa01", 1, 1);
  ck_assert_int_eq (feed (a, 0x83, p.b, p.len), 0);
  ck_assert_int_eq (feed (b, 0x83, p.b, p.len), 0);
  ck_assert_uint_eq (a->nr, 3);
  ck_assert_str_eq (name (a), "naa.6000000000000000000000000000aa01");
  ck_assert (identity_same (a, b));
  ck_assert (identity_same (b, a));
}
END_TEST

/* Different scsi_id, same tid 1 lun 1: the NAA locally assigned values
 * agree, everything else differs -- two LUNs. */
START_TEST (tgtd_different_scsi_id_same_naa3)
{
  struct lun_identity *a = fresh (), *b = fresh ();
  struct page p;

  tgtd_page (&p, "aa01", 1, 1);
  ck_assert_int_eq (feed (a, 0x83, p.b, p.len), 0);
  tgtd_page (&p, "bb02", 1, 1);
  ck_assert_int_eq (feed (b, 0x83, p.b, p.len), 0);
  ck_assert (!identity_same (a, b));
  ck_assert (!identity_same (b, a));
  ck_assert_str_ne (name (a), "-");
  ck_assert_str_eq (name (b), "naa.6000000000000000000000000000bb02");
}
END_TEST

/* scsi_ids whose hex digits agree give one NAA registered extended value
 * (tgtd reads non-hex characters as 0); the T10 vendor ids still differ,
 * and the sets must agree kind by kind. */
START_TEST (tgtd_naa6_collision_kept_apart)
{
  struct lun_identity *a = fresh (), *b = fresh ();
  struct page p;

  tgtd_page (&p, "disk-x-aa01", 1, 1);
  ck_assert_int_eq (feed (a, 0x83, p.b, p.len), 0);
  tgtd_page (&p, "disk-y-aa01", 1, 1);
  ck_assert_int_eq (feed (b, 0x83, p.b, p.len), 0);
  ck_assert_str_eq (name (a), "naa.600000000000000000000d000000aa01");
  ck_assert_str_eq (name (b), "naa.600000000000000000000d000000aa01");
  ck_assert (!identity_same (a, b));
}
END_TEST

/* Only T10 vendor id and NAA locally assigned (no globally unique
 * designator): never a name alone, never a match alone; the serial
 * number both report makes the match. */
START_TEST (local_designators_never_alone)
{
  struct lun_identity *a = fresh (), *b = fresh ();
  struct page p, s;
  uint8_t naa3[8] = { 0x30, 0, 0, 1, 0, 0, 0, 1 };

  page_start (&p, 0x83);
  add (&p, 2, 0, 1, "IET     00010001", 16);
  add (&p, 1, 0, 3, naa3, sizeof naa3);
  ck_assert_int_eq (feed (a, 0x83, p.b, p.len), 0);
  ck_assert_int_eq (feed (b, 0x83, p.b, p.len), 0);
  ck_assert_str_eq (name (a), "-");
  ck_assert (!identity_same (a, b));

  serial_page (&s, "      beaf11");
  ck_assert_int_eq (feed (a, 0x80, s.b, s.len), 0);
  ck_assert_str_eq (name (a), "serial:beaf11");
  ck_assert (!identity_same (a, b));      /* b has no serial yet */
  ck_assert_int_eq (feed (b, 0x80, s.b, s.len), 0);
  ck_assert (identity_same (a, b));
}
END_TEST

/* The same globally unique designator but different serial numbers:
 * the target contradicts itself, keep them apart. */
START_TEST (serial_mismatch_vetoes)
{
  struct lun_identity *a = fresh (), *b = fresh ();
  struct page p, s;

  tgtd_page (&p, "aa01", 1, 1);
  ck_assert_int_eq (feed (a, 0x83, p.b, p.len), 0);
  ck_assert_int_eq (feed (b, 0x83, p.b, p.len), 0);
  serial_page (&s, "SN-A");
  ck_assert_int_eq (feed (a, 0x80, s.b, s.len), 0);
  serial_page (&s, "SN-B");
  ck_assert_int_eq (feed (b, 0x80, s.b, s.len), 0);
  ck_assert (!identity_same (a, b));
  serial_page (&s, "SN-A");
  ck_assert_int_eq (feed (b, 0x80, s.b, s.len), 0);
  ck_assert (identity_same (a, b));
}
END_TEST

/* ---- preference and association ---- */

START_TEST (name_string_preferred)
{
  struct lun_identity *a = fresh ();
  struct page p;
  static const char nm[] = "iqn.2026-01.org.example:store,lun,1\0\0\0";
  uint8_t eui[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
  uint8_t naa5[8] = { 0x50, 0x01, 0x40, 0x5a, 0x1b, 0x2c, 0x3d, 0x4e };

  page_start (&p, 0x83);
  add (&p, 1, 0, 2, eui, sizeof eui);
  add (&p, 1, 0, 3, naa5, sizeof naa5);
  add (&p, 3, 0, 8, nm, 36);
  ck_assert_int_eq (feed (a, 0x83, p.b, p.len), 0);
  ck_assert_str_eq (name (a), "name:iqn.2026-01.org.example:store,lun,1");

  /* Without the name string: NAA before EUI-64. */
  page_start (&p, 0x83);
  add (&p, 1, 0, 2, eui, sizeof eui);
  add (&p, 1, 0, 3, naa5, sizeof naa5);
  ck_assert_int_eq (feed (a, 0x83, p.b, p.len), 0);
  ck_assert_str_eq (name (a), "naa.5001405a1b2c3d4e");

  page_start (&p, 0x83);
  add (&p, 1, 0, 2, eui, sizeof eui);
  ck_assert_int_eq (feed (a, 0x83, p.b, p.len), 0);
  ck_assert_str_eq (name (a), "eui.0102030405060708");
}
END_TEST

/* A name with bytes that are not visible ASCII stays one token. */
START_TEST (name_escaped)
{
  struct lun_identity *a = fresh ();
  struct page p;

  page_start (&p, 0x83);
  add (&p, 3, 0, 8, "a b%\xc3\xa9\0\0\0", 8);
  ck_assert_int_eq (feed (a, 0x83, p.b, p.len), 0);
  ck_assert_str_eq (name (a), "name:a%20b%25%C3%A9");
}
END_TEST

/* Target-port and target-device designators (they differ from portal to
 * portal) are not part of the LUN's identity; with nothing else the serial
 * number names it. */
START_TEST (no_lu_designator_serial)
{
  struct lun_identity *a = fresh (), *b = fresh ();
  struct page p, s;
  uint8_t port[4] = { 0, 0, 0, 1 }, tpg[4] = { 0, 0, 0, 2 };
  uint8_t naa6[16] = { 0x60, 9, 9, 9 };
  static const char device[28] = "iqn.2026-01.org.example:t";

  page_start (&p, 0x83);
  add (&p, 0x51, 1, 4, port, sizeof port);
  add (&p, 0x51, 1, 5, tpg, sizeof tpg);
  add (&p, 3, 2, 8, device, sizeof device);
  add (&p, 1, 1, 3, naa6, sizeof naa6);
  ck_assert_int_eq (feed (a, 0x83, p.b, p.len), 0);
  ck_assert_uint_eq (a->nr, 0);
  ck_assert_str_eq (name (a), "-");
  serial_page (&s, "XYZ123  ");
  ck_assert_int_eq (feed (a, 0x80, s.b, s.len), 0);
  ck_assert_str_eq (name (a), "serial:XYZ123");

  /* Another portal: other port designators, same serial: one LUN. */
  port[3] = 2;
  tpg[3] = 3;
  naa6[3] = 8;
  page_start (&p, 0x83);
  add (&p, 0x51, 1, 4, port, sizeof port);
  add (&p, 0x51, 1, 5, tpg, sizeof tpg);
  add (&p, 1, 1, 3, naa6, sizeof naa6);
  ck_assert_int_eq (feed (b, 0x83, p.b, p.len), 0);
  ck_assert_int_eq (feed (b, 0x80, s.b, s.len), 0);
  ck_assert (identity_same (a, b));
}
END_TEST

/* Kinds only one side reports do not count against a match; a kind both
 * report must agree. */
START_TEST (compare_kind_by_kind)
{
  struct lun_identity *a = fresh (), *b = fresh ();
  struct page p;
  uint8_t eui[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

  page_start (&p, 0x83);
  add (&p, 1, 0, 3, naa6_a, 16);
  ck_assert_int_eq (feed (a, 0x83, p.b, p.len), 0);
  add (&p, 1, 0, 2, eui, sizeof eui);
  ck_assert_int_eq (feed (b, 0x83, p.b, p.len), 0);
  ck_assert (identity_same (a, b));

  page_start (&p, 0x83);
  add (&p, 1, 0, 3, naa6_a, 16);
  add (&p, 2, 0, 1, "VENDOR  A", 9);
  ck_assert_int_eq (feed (a, 0x83, p.b, p.len), 0);
  page_start (&p, 0x83);
  add (&p, 1, 0, 3, naa6_a, 16);
  add (&p, 2, 0, 1, "VENDOR  B", 9);
  ck_assert_int_eq (feed (b, 0x83, p.b, p.len), 0);
  ck_assert (!identity_same (a, b));

  /* No identity at all matches nothing, not even itself. */
  memset (a, 0, sizeof *a);
  ck_assert (!identity_same (a, a));
}
END_TEST

/* More designators than are kept: incomplete, never matched. */
START_TEST (too_many_designators)
{
  struct lun_identity *a = fresh (), *b = fresh ();
  struct page p;

  page_start (&p, 0x83);
  add (&p, 1, 0, 3, naa6_a, 16);
  for (uint8_t i = 0; i < IDENTITY_MAX_DESIGNATORS; i++)
    add (&p, 1, 0, 0, &i, 1);
  ck_assert_int_eq (feed (a, 0x83, p.b, p.len), 0);
  ck_assert_int_eq (feed (b, 0x83, p.b, p.len), 0);
  ck_assert (a->incomplete);
  ck_assert (!identity_same (a, b));
}
END_TEST

/* ---- malformed pages ---- */

START_TEST (malformed_refused)
{
  struct lun_identity *a = fresh ();
  struct page p;
  size_t full;

  tgtd_page (&p, "aa01", 1, 1);
  full = p.len;

  /* Truncated anywhere: the page length promises more than came. */
  for (size_t len = 0; len < full; len++)
    ck_assert_int_eq (feed (a, 0x83, p.b, len), -EPROTO);
  ck_assert_uint_eq (a->nr, 0);

  /* A descriptor longer than what is left of the page. */
  p.b[full - 16 - 1] = 40;
  ck_assert_int_eq (feed (a, 0x83, p.b, full), -EPROTO);
  p.b[full - 16 - 1] = 16;
  ck_assert_int_eq (feed (a, 0x83, p.b, full), 0);

  /* Two bytes after the last descriptor: half a header. */
  p.b[3] += 2;
  ck_assert_int_eq (feed (a, 0x83, p.b, full + 2), -EPROTO);
  p.b[3] -= 2;

  /* The data is another page than the one asked for. */
  ck_assert_int_eq (feed (a, 0x80, p.b, full), -EPROTO);

  /* A serial number page longer than its data. */
  serial_page (&p, "beaf11");
  ck_assert_int_eq (feed (a, 0x80, p.b, p.len - 1), -EPROTO);
  ck_assert_uint_eq (a->serial_len, 0);

  /* A page the identity does not read. */
  p.b[1] = 0xb0;
  ck_assert_int_eq (feed (a, 0xb0, p.b, p.len), -EPROTO);

  ck_assert_int_eq (identity_check_page (NULL, 0), -EPROTO);
  ck_assert_int_eq (identity_from_task (a, NULL), -EPROTO);
}
END_TEST

/* A name buffer too small is cut, never overrun. */
START_TEST (short_buffer)
{
  struct lun_identity *a = fresh ();
  struct page p;
  char buf[10];

  tgtd_page (&p, "aa01", 1, 1);
  ck_assert_int_eq (feed (a, 0x83, p.b, p.len), 0);
  identity_name (a, buf, sizeof buf);
  ck_assert_str_eq (buf, "naa.6000");
  identity_name (a, buf, 3);
  ck_assert_str_eq (buf, "na");
}
END_TEST

static Suite *
identity_suite (void)
{
  Suite *s = suite_create ("identity");
  TCase *tc = tcase_create ("vpd");

  tcase_add_test (tc, tgtd_same_page_same_lun);
  tcase_add_test (tc, tgtd_different_scsi_id_same_naa3);
  tcase_add_test (tc, tgtd_naa6_collision_kept_apart);
  tcase_add_test (tc, local_designators_never_alone);
  tcase_add_test (tc, serial_mismatch_vetoes);
  tcase_add_test (tc, name_string_preferred);
  tcase_add_test (tc, name_escaped);
  tcase_add_test (tc, no_lu_designator_serial);
  tcase_add_test (tc, compare_kind_by_kind);
  tcase_add_test (tc, too_many_designators);
  tcase_add_test (tc, malformed_refused);
  tcase_add_test (tc, short_buffer);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return check_run (identity_suite (), CK_FORK_GETENV);
}
