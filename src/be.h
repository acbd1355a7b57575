/* Big-endian fields of SCSI data (CDBs, INQUIRY and VPD pages, READ
 * CAPACITY, REPORT LUNS, REPORT TARGET PORT GROUPS): read from their
 * bytes, whatever the host's order.  Any thread. */
#ifndef ISERFS_BE_H
#define ISERFS_BE_H

#include <stdint.h>

static inline uint16_t
be16 (const unsigned char *p)
{
  return (uint16_t) (p[0] << 8 | p[1]);
}

static inline uint32_t
be32 (const unsigned char *p)
{
  return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8
    | p[3];
}

static inline uint64_t
be64 (const unsigned char *p)
{
  return (uint64_t) be32 (p) << 32 | be32 (p + 4);
}

#endif
