/* alua_answers: the SCSI side of the test targets' ALUA stand-ins.
 *
 * tgtd has no ALUA.  Two test-only stand-ins make it look as if it had:
 * tests/aluaproxy (iSCSI over TCP, a proxy) and the SOFTRDMA_ALUA hook of
 * tests/softrdma (iSER, in the initiator's own process).  They differ in
 * how they find and rewrite the iSCSI PDUs; what they answer is the same
 * and is built here: the states file, REPORT TARGET PORT GROUPS data, the
 * VPD 0x83 page with the port's designators, sense data.  Nothing here
 * knows about TCP or RDMA framing.
 *
 * Not thread safe: each caller serialises (aluaproxy has one thread, the
 * softrdma hook runs under the emulation's one lock). */
#ifndef ALUA_ANSWERS_H
#define ALUA_ANSWERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ALUA_MAX_GROUPS 16
#define ALUA_BHS 48               /* iSCSI basic header segment */
#define ALUA_SENSE_SEG 20         /* SenseLength + 18 bytes of fixed sense */

struct buf {
  uint8_t *b;
  size_t len, cap, off;         /* off: bytes of b already written out */
};

struct alua_group {
  uint16_t id;
  uint8_t state;
};

/* The groups of a states file (lines "GROUP STATE"). */
struct alua_states {
  struct alua_group g[ALUA_MAX_GROUPS];
  unsigned n;
};

static inline uint32_t
get32 (const uint8_t *p)
{
  return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

static inline void
put32 (uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t) (v >> 24);
  p[1] = (uint8_t) (v >> 16);
  p[2] = (uint8_t) (v >> 8);
  p[3] = (uint8_t) v;
}

static inline void
put24 (uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t) (v >> 16);
  p[1] = (uint8_t) (v >> 8);
  p[2] = (uint8_t) v;
}

/* Append n bytes (exits on out of memory: a test helper). */
void buf_add (struct buf *b, const void *p, size_t n);
void buf_free (struct buf *b);

/* "ao", "ano", "standby", ... for an asymmetric access state; "?". */
const char *alua_state_name (uint8_t state);

/* Read FILE into *st: 0, or -1 with *st unchanged and the reason on
 * stderr ("WHO: ...").  *changed: whether the groups differ from *st's.
 * Each group is logged, the one numbered my_group marked "(this port)". */
int alua_states_load (const char *who, const char *file, int my_group,
                      struct alua_states *st, bool *changed);

/* REPORT TARGET PORT GROUPS parameter data for st, in the extended
 * (format 001b) or basic header format, appended to d.  One target port
 * per group, its relative identifier the group number. */
void alua_rtpg_data (struct buf *d, const struct alua_states *st, bool extended);

/* The target's VPD 0x83 page t (tlen bytes) with a relative target port
 * and a target port group designator for group put first, appended to d;
 * false if t is not a VPD 0x83 page or would grow too long. */
bool alua_vpd83_data (struct buf *d, const uint8_t *t, size_t tlen, int group);

/* The data segment of a SCSI Response with fixed-format sense KEY/ASC/ASCQ
 * (SenseLength first). */
void alua_sense_segment (uint8_t seg[ALUA_SENSE_SEG], uint8_t key, uint8_t asc,
                         uint8_t ascq);

/* The most data a command (cdb, expected data transfer length edtl) may
 * receive: edtl cut to INQUIRY's or REPORT TARGET PORT GROUPS' allocation
 * length. */
uint32_t alua_alloc_len (const uint8_t *cdb, uint32_t edtl);

/* Whether a SCSI Response PDU (BHS, AHS, data segment: len bytes) is
 * CHECK CONDITION with UNIT ATTENTION sense. */
bool alua_unit_attention (const uint8_t *pdu, size_t len);

#endif
