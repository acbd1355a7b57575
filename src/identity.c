/* A logical unit's identity from VPD 0x83 and 0x80 (identity.h).  The
 * pages are unmarshalled by libiscsi; this file only checks that their
 * lengths hold before libiscsi reads them, then keeps and compares the
 * designators. */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include "identity.h"

/* SPC-4 designator types and NAA formats used here. */
enum {
  T_T10 = 1, T_EUI64 = 2, T_NAA = 3, T_REL_PORT = 4, T_PORT_GROUP = 5,
  T_NAME = 8,
};
enum { NAA_EXT = 2, NAA_LOCAL = 3, NAA_REG = 5, NAA_REG_EXT = 6 };

#define VPD_SERIAL 0x80
#define VPD_DEVICE_ID 0x83

int
identity_check_page (const uint8_t *page, size_t len)
{
  size_t end, off;

  if (page == NULL || len < 4)
    return -EPROTO;
  end = 4 + ((size_t) page[2] << 8 | page[3]);
  if (end > len)
    return -EPROTO;             /* truncated: the page says it is longer */
  if (page[1] != VPD_DEVICE_ID)
    return 0;
  /* Descriptors must tile the page exactly: libiscsi walks them while
   * bytes remain and reads a 4-byte header wherever one would start. */
  for (off = 4; off < end; off += 4 + (size_t) page[off + 3])
    if (end - off < 4 || end - off - 4 < page[off + 3])
      return -EPROTO;
  return 0;
}

/* NAA format of an NAA designator (its first nibble), or 0. */
static unsigned
naa_format (const struct identity_designator *d)
{
  return d->type == T_NAA && d->len > 0 ? d->value[0] >> 4 : 0;
}

/* A designator the standard makes unique in the world, with the length
 * its format requires (a wrong length is kept for comparison only). */
static bool
globally_unique (const struct identity_designator *d)
{
  switch (d->type) {
  case T_NAME:
    return d->len > 0;
  case T_EUI64:
    return d->len == 8 || d->len == 12 || d->len == 16;
  case T_NAA:
    switch (naa_format (d)) {
    case NAA_EXT:
    case NAA_REG:
      return d->len == 8;
    case NAA_REG_EXT:
      return d->len == 16;
    default:
      return false;             /* NAA_LOCAL: unique within one target */
    }
  default:
    return false;               /* T10 vendor id, vendor specific, ... */
  }
}

int
identity_set_designators (struct lun_identity *id,
                          const struct scsi_inquiry_device_designator *list)
{
  id->nr = 0;
  id->incomplete = false;
  for (const struct scsi_inquiry_device_designator *p = list; p; p = p->next) {
    struct identity_designator *d;

    if (p->association != SCSI_ASSOCIATION_LOGICAL_UNIT
        || (int) p->designator_type == T_REL_PORT
        || (int) p->designator_type == T_PORT_GROUP)
      continue;
    if (id->nr == IDENTITY_MAX_DESIGNATORS || p->designator_length < 0
        || p->designator_length > IDENTITY_VALUE_MAX) {
      id->incomplete = true;
      continue;
    }
    d = &id->d[id->nr++];
    d->type = p->designator_type & 0x0f;
    d->code_set = p->code_set & 0x0f;
    d->len = (uint8_t) p->designator_length;
    memcpy (d->value, p->designator, d->len);
  }
  return 0;
}

int
identity_set_serial (struct lun_identity *id, const char *usn, size_t len)
{
  size_t a = 0, b = len;

  if (b > IDENTITY_VALUE_MAX)
    b = IDENTITY_VALUE_MAX;
  while (a < b && (usn[a] == ' ' || usn[a] == '\0'))
    a++;
  while (b > a && (usn[b - 1] == ' ' || usn[b - 1] == '\0'))
    b--;
  id->serial_len = (uint8_t) (b - a);
  memcpy (id->serial, usn + a, b - a);
  return 0;
}

int
identity_from_task (struct lun_identity *id, struct scsi_task *task)
{
  const uint8_t *page = task ? task->datain.data : NULL;
  size_t len = task && task->datain.size > 0 ? (size_t) task->datain.size : 0;
  void *data;

  /* libiscsi picks the unmarshaller by the CDB, not by the page code in
   * the data: they must agree. */
  if (identity_check_page (page, len) < 0 || task->cdb[0] != 0x12
      || !(task->cdb[1] & 1) || task->cdb[2] != page[1]
      || (page[1] != VPD_DEVICE_ID && page[1] != VPD_SERIAL))
    return -EPROTO;
  data = scsi_datain_unmarshall (task);
  if (data == NULL)
    return -ENOMEM;
  if (page[1] == VPD_DEVICE_ID)
    return identity_set_designators
      (id, ((struct scsi_inquiry_device_identification *) data)->designators);
  const char *usn = ((struct scsi_inquiry_unit_serial_number *) data)->usn;
  return identity_set_serial (id, usn, strlen (usn));
}

/* ---- names ---- */

static void
put_hex (char *buf, size_t len, const struct identity_designator *d,
         const char *prefix)
{
  size_t n = (size_t) snprintf (buf, len, "%s", prefix);

  for (unsigned i = 0; i < d->len && n + 3 <= len; i++)
    n += (size_t) snprintf (buf + n, len - n, "%02x", d->value[i]);
}

/* Text as one token: what is not a visible ASCII character becomes %XX;
 * trailing NULs (a name string's padding) are dropped. */
static void
put_text (char *buf, size_t len, const uint8_t *s, size_t slen,
          const char *prefix)
{
  size_t n = (size_t) snprintf (buf, len, "%s", prefix);

  while (slen > 0 && s[slen - 1] == '\0')
    slen--;
  for (size_t i = 0; i < slen && n + 4 <= len; i++) {
    if (s[i] > ' ' && s[i] <= '~' && s[i] != '%')
      buf[n++] = (char) s[i];
    else
      n += (size_t) snprintf (buf + n, len - n, "%%%02X", s[i]);
  }
  if (n < len)
    buf[n] = '\0';
}

/* The first designator of a kind that may name the LUN alone, in the
 * order of preference. */
static const struct identity_designator *
find (const struct lun_identity *id, unsigned type, unsigned naa)
{
  for (unsigned i = 0; i < id->nr; i++) {
    const struct identity_designator *d = &id->d[i];
    if (d->type == type && globally_unique (d)
        && (type != T_NAA || naa_format (d) == naa))
      return d;
  }
  return NULL;
}

const char *
identity_name (const struct lun_identity *id, char *buf, size_t len)
{
  const struct identity_designator *d;

  if (len == 0)
    return buf;
  if ((d = find (id, T_NAME, 0)))
    put_text (buf, len, d->value, d->len, "name:");
  else if ((d = find (id, T_NAA, NAA_REG_EXT)) || (d = find (id, T_NAA, NAA_REG))
           || (d = find (id, T_NAA, NAA_EXT)))
    put_hex (buf, len, d, "naa.");
  else if ((d = find (id, T_EUI64, 0)))
    put_hex (buf, len, d, "eui.");
  else if (id->serial_len)
    put_text (buf, len, (const uint8_t *) id->serial, id->serial_len,
              "serial:");
  else
    snprintf (buf, len, "-");
  return buf;
}

/* ---- comparison ---- */

/* Designators of one kind are compared with each other: tgtd's NAA
 * locally assigned and NAA registered extended are both type 3, and an
 * EUI-64 comes in three lengths. */
static bool
same_kind (const struct identity_designator *a,
           const struct identity_designator *b)
{
  if (a->type != b->type)
    return false;
  if (a->type == T_NAA)
    return naa_format (a) == naa_format (b);
  if (a->type == T_EUI64)
    return a->len == b->len;
  return true;
}

static bool
equal (const struct identity_designator *a,
       const struct identity_designator *b)
{
  return same_kind (a, b) && a->len == b->len
    && memcmp (a->value, b->value, a->len) == 0;
}

/* Every designator of x whose kind y also reports has an equal one in y. */
static bool
covered (const struct lun_identity *x, const struct lun_identity *y)
{
  for (unsigned i = 0; i < x->nr; i++) {
    bool kind = false, found = false;

    for (unsigned j = 0; j < y->nr && !found; j++) {
      kind = kind || same_kind (&x->d[i], &y->d[j]);
      found = equal (&x->d[i], &y->d[j]);
    }
    if (kind && !found)
      return false;
  }
  return true;
}

bool
identity_same (const struct lun_identity *a, const struct lun_identity *b)
{
  bool common_unique = false;

  if (a->incomplete || b->incomplete)
    return false;
  if (!covered (a, b) || !covered (b, a))
    return false;
  if (a->serial_len && b->serial_len
      && (a->serial_len != b->serial_len
          || memcmp (a->serial, b->serial, a->serial_len) != 0))
    return false;
  for (unsigned i = 0; i < a->nr && !common_unique; i++)
    for (unsigned j = 0; j < b->nr && !common_unique; j++)
      common_unique = globally_unique (&a->d[i]) && equal (&a->d[i], &b->d[j]);
  return common_unique || (a->serial_len && a->serial_len == b->serial_len);
}
