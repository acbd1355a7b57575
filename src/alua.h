/* Asymmetric logical unit access (ALUA, SPC-4 5.16): which of a LUN's
 * paths the target wants I/O on.  A target that reports TPGS != 0 in its
 * standard INQUIRY data groups its ports into target port groups, each in
 * one asymmetric access state per LUN; REPORT TARGET PORT GROUPS (RTPG)
 * lists them, VPD 0x83 says which port a path is connected to.
 *
 * Two halves:
 *  - pure parsers and classifiers over bytes (any thread, no state):
 *    alua_tpgs, alua_port_from_vpd, alua_parse_rtpg, alua_path_state,
 *    alua_rank_of, alua_sense, alua_state_name.  Every length in the data
 *    is checked against the bytes received: libiscsi's unmarshallers trust
 *    page lengths, these do not.
 *  - struct alua_path, the ALUA view of one (LUN, path) pair, filled
 *    synchronously at probe (alua_probe, main thread, before the session
 *    thread exists) and afterwards touched only by that path's session
 *    thread (alua_reread, alua_pending and the RTPG callback).
 *
 * Errors are 0 / -errno. */
#ifndef ISERFS_ALUA_H
#define ISERFS_ALUA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct iscsi_context;
struct scsi_task;

/* Asymmetric access states (SPC-4 table "ASYMMETRIC ACCESS STATE"). */
enum {
  ALUA_ACTIVE_OPTIMIZED = 0x0,
  ALUA_ACTIVE_NONOPTIMIZED = 0x1,
  ALUA_STANDBY = 0x2,
  ALUA_UNAVAILABLE = 0x3,
  ALUA_LBA_DEPENDENT = 0x4,
  ALUA_OFFLINE = 0xe,
  ALUA_TRANSITIONING = 0xf,
};

/* What a path chooser does with a (LUN, path) pair. */
enum alua_rank {
  ALUA_RANK_OPTIMIZED = 0,      /* active/optimized, or no ALUA */
  ALUA_RANK_NONOPTIMIZED = 1,   /* only when no rank-0 path is usable */
  ALUA_RANK_NONE = 2,           /* not for I/O */
};

/* Limits of what is kept from an RTPG answer; a longer answer is parsed
 * (and checked) whole but only this much is stored, and `incomplete` is
 * set. */
#define ALUA_MAX_GROUPS 16
#define ALUA_MAX_PORTS 32

struct alua_group {
  uint16_t id;                  /* target port group */
  uint8_t state;                /* asymmetric access state (4 bits) */
  bool pref;                    /* preferred target port group */
  uint8_t supported;            /* T_SUP..AO_SUP bits, as sent */
  uint8_t status;               /* status code (0, 1 explicit, 2 implicit) */
  unsigned nr_ports;            /* relative target port ids kept in ports[] */
  uint16_t ports[ALUA_MAX_PORTS];
};

struct alua_groups {
  bool extended;                /* extended header format (transition time) */
  uint8_t transition_time;      /* implicit transition time, s (extended) */
  bool incomplete;              /* groups or ports beyond the limits */
  unsigned nr;
  struct alua_group g[ALUA_MAX_GROUPS];
};

/* The target port a path is connected to, from VPD 0x83's designators of
 * target-port association. */
struct alua_port {
  bool has_rel_port, has_group;
  uint16_t rel_port;            /* relative target port identifier (type 4) */
  uint16_t group;               /* target port group (type 5) */
};

/* TPGS (byte 5 bits 5..4) of standard INQUIRY data: 0 no ALUA, 1
 * implicit, 2 explicit, 3 both; -EPROTO when len < 6. */
int alua_tpgs (const uint8_t *inq, size_t len);

/* The port designators of a VPD 0x83 page: 0, -EPROTO (malformed: the
 * header, a descriptor past the page, a type 4/5 value not 4 bytes), or
 * -ENOENT (neither designator present). */
int alua_port_from_vpd (const uint8_t *page, size_t len, struct alua_port *port);

/* Bytes a whole RTPG answer takes, from its first 4 bytes; -EPROTO when
 * len < 4. */
long alua_rtpg_length (const uint8_t *data, size_t len);

/* Parse RTPG parameter data (basic or extended header, told apart by the
 * FORMAT TYPE field as SPC-4 defines it).  Descriptors must tile the
 * returned length exactly.  0, or -EPROTO (truncated: the header claims
 * more than len; or malformed). */
int alua_parse_rtpg (const uint8_t *data, size_t len, struct alua_groups *out);

/* This port's state among groups: by its target port group, else by its
 * relative port in a group's port list.  The state, or -ENOENT. */
int alua_path_state (const struct alua_groups *groups,
                     const struct alua_port *port);

/* The rank of a state (an unknown one is not for I/O). */
enum alua_rank alua_rank_of (int state);

/* "active/optimized", "standby", ...; "unknown" otherwise. */
const char *alua_state_name (int state);

/* What sense data means for ALUA, as flags. */
enum {
  ALUA_SENSE_REREAD = 1,        /* read the port group states again */
  ALUA_SENSE_ELSEWHERE = 2,     /* this path cannot do the command now:
                                 * retry it on another path */
};

/* key: sense key; asc_ascq: ASC << 8 | ASCQ (libiscsi's sense.ascq).
 * UNIT ATTENTION 2A/06 (asymmetric access state changed) and 2A/07
 * (implicit transition failed) ask for a re-read; NOT READY 04/0A (in
 * transition), 04/0B (standby) and 04/0C (unavailable) also mean this
 * path cannot take the command.  0 for anything else. */
unsigned alua_sense (int key, int asc_ascq);

/* ---- one (LUN, path) pair ---- */

struct alua_path;

/* Called on the session thread after a re-read changed the pair's rank
 * or state, or alua_refused its rank (not at probe: the caller reads
 * ap->rank then). */
typedef void alua_rank_changed_fn (void *opaque, struct alua_path *ap,
                                   enum alua_rank old_rank);

struct alua_path {
  const char *who;              /* for logs: "lun1 of IQN", caller-owned */
  int lun;
  int tpgs;                     /* 0: no ALUA, nothing more is asked */
  struct alua_port port;
  int state;                    /* asymmetric access state; -1 unknown */
  enum alua_rank rank;
  alua_rank_changed_fn *changed;
  void *changed_opaque;
  /* Session thread. */
  bool rereading;               /* an RTPG is with libiscsi: */
  struct scsi_task *task;       /* this one */
  bool reread_wanted;           /* another is needed once it is back */
};

/* At probe, with libiscsi's sync API (main thread, the session thread not
 * started): TPGS from standard INQUIRY; if ALUA, this port from VPD 0x83
 * and the states from RTPG.  Logs the state once.  The pair stays usable
 * (rank 0, state unknown) whatever fails; returns 0, or -errno for what
 * did (the caller may ignore it). */
int alua_probe (struct iscsi_context *iscsi, int lun, const char *who,
                struct alua_path *ap);

/* The commands a probe sends, and the room it gives each answer. */
enum alua_ask {
  ALUA_ASK_INQUIRY,             /* standard INQUIRY data */
  ALUA_ASK_DEVICE_ID,           /* VPD 0x83 */
  ALUA_ASK_RTPG,                /* REPORT TARGET PORT GROUPS (alua_rtpg_task) */
};
#define ALUA_PROBE_ALLOC 4096

/* Send `what` to the pair's LUN through its path and wait: the answer's
 * bytes in buf (at most cap; *got of them came), after retrying a UNIT
 * ATTENTION.  0, or -errno for no good answer. */
typedef int alua_ask_fn (void *opaque, enum alua_ask what, uint8_t *buf,
                         size_t cap, size_t *got);

/* alua_probe with the commands sent by ask: the same probe, at mount
 * through libiscsi's sync API (alua_probe) and while mounted through the
 * engine (lunscan.c).  Any thread that may wait for ask. */
int alua_probe_with (struct alua_path *ap, int lun, const char *who,
                     alua_ask_fn *ask, void *opaque);

/* A REPORT TARGET PORT GROUPS task (extended format) asking for alloc
 * bytes, to be sent by the caller.  NULL when out of memory. */
struct scsi_task *alua_rtpg_task (size_t alloc);

/* Read the states again (sense data said so): sends RTPG asynchronously
 * on iscsi, whose session thread this must be, and updates ap and calls
 * ap->changed from its callback.  One at a time: a request while one is
 * out is remembered and sent when it is back.  can_send: whether a
 * command may go to libiscsi now (false while an iSER session logs in
 * again); if not, the re-read waits for alua_pending.  No-op without
 * ALUA.  0 or -errno. */
int alua_reread (struct iscsi_context *iscsi, struct alua_path *ap,
                 bool can_send);

/* A re-read is wanted and none is out (call now and then on the session
 * thread, with alua_reread when it says yes). */
bool alua_pending (const struct alua_path *ap);

/* The stats: (LUN, path) pairs under ALUA, the least usable state among
 * them (0 when none), state changes seen, RTPG commands sent.  Any
 * thread. */
uint64_t alua_stat_paths (void);
uint64_t alua_stat_state (void);
uint64_t alua_stat_changes (void);
uint64_t alua_stat_rereads (void);

/* The pair is going away (its session closes, or its LUN was removed):
 * drop it from the stats; nothing more is asked for it.  No-op for a
 * pair without ALUA.  Its session thread, or after that thread ended. */
void alua_forget (struct alua_path *ap);

/* The pair's path refused a command for an ALUA reason (alua_sense said
 * ALUA_SENSE_ELSEWHERE): not for I/O (rank ALUA_RANK_NONE, ap->changed
 * called) until the next re-read, which the caller asks for, says
 * otherwise.  No-op without ALUA, since no re-read would ever lift it.
 * Session thread. */
void alua_refused (struct alua_path *ap);

#endif
