/* A logical unit's identity: what its device identification page (VPD
 * 0x83) and unit serial number page (VPD 0x80) say, kept so that the same
 * LUN seen through two portals can be recognised, and a printable name
 * for it.  Pure functions over caller-owned structs, no locks: the struct
 * is filled on the main thread while LUNs are probed (discover.c) and only
 * read afterwards. */
#ifndef ISERFS_IDENTITY_H
#define ISERFS_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct scsi_inquiry_device_designator;
struct scsi_task;

/* More logical-unit designators than real devices give (tgtd: 3, LIO: 2
 * or 3); a page with more is kept as incomplete and never matched. */
#define IDENTITY_MAX_DESIGNATORS 8
#define IDENTITY_VALUE_MAX 255  /* a designator's length is one byte */

/* Room for identity_name(): "name:" and 255 bytes each escaped as %XX. */
#define IDENTITY_NAME_MAX (5 + 3 * IDENTITY_VALUE_MAX + 1)

struct identity_designator {
  uint8_t type;                 /* SPC designator type (1 T10, 2 EUI-64,
                                 * 3 NAA, 8 SCSI name string, ...) */
  uint8_t code_set;             /* 1 binary, 2 ASCII, 3 UTF-8 */
  uint8_t len;
  uint8_t value[IDENTITY_VALUE_MAX];
};

struct lun_identity {
  unsigned nr;                  /* designators in d[] */
  bool incomplete;              /* some did not fit: never matched */
  uint8_t serial_len;           /* VPD 0x80 without its padding; 0: none */
  char serial[IDENTITY_VALUE_MAX];
  struct identity_designator d[IDENTITY_MAX_DESIGNATORS];
};

/* Whether a VPD page's bytes are well formed enough to unmarshal: the
 * header, the page length within `len`, and for page 0x83 every
 * designator descriptor inside the page.  libiscsi's unmarshallers trust
 * these lengths and would read past the data otherwise.  0 or -EPROTO. */
int identity_check_page (const uint8_t *page, size_t len);

/* Fill id's designators from libiscsi's unmarshalled 0x83 list, keeping
 * those of logical-unit association only (a target port's designators
 * differ from portal to portal by nature).  Designator types 4 and 5
 * (relative target port, target port group) are skipped whatever their
 * association says.  Returns 0. */
int identity_set_designators (struct lun_identity *id,
                              const struct scsi_inquiry_device_designator *list);

/* The unit serial number (VPD 0x80 product serial number field), without
 * the spaces and NULs targets pad it with.  Returns 0. */
int identity_set_serial (struct lun_identity *id, const char *usn, size_t len);

/* The task of a finished INQUIRY for page 0x83 (or 0x80): checked with
 * identity_check_page, unmarshalled by libiscsi, stored into id.
 * 0, -EPROTO (malformed page) or -ENOMEM. */
int identity_from_task (struct lun_identity *id, struct scsi_task *task);

/* The LUN's name for people and logs: the first globally unique
 * designator -- SCSI name string ("name:..."), NAA IEEE registered
 * extended, registered or extended ("naa.6...", "naa.5...", "naa.2..."),
 * EUI-64 ("eui....") -- else the unit serial number ("serial:..."), else
 * "-".  NAA locally assigned and T10 vendor ids are never a name alone:
 * they are unique only within one target.  Bytes outside '!'..'~' and
 * '%' are written %XX.  Returns buf. */
const char *identity_name (const struct lun_identity *id, char *buf,
                           size_t len);

/* Whether a and b, seen through two portals, are the same logical unit:
 * every designator kind (type, and the NAA format or EUI-64 length) that
 * both report has the same values in both, the serial numbers agree where
 * both have one, and at least one globally unique designator or the
 * serial number is common to both.  Anything less is "different": two
 * tgtd daemons give every tid 1 lun 1 the same NAA locally assigned
 * value whatever is behind it. */
bool identity_same (const struct lun_identity *a, const struct lun_identity *b);

#endif
