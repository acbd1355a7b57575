/* The kernel's FUSE-over-io_uring ABI (protocol 7.42, Linux 6.14 to 6.18),
 * which libfuse 3.14's fuse_kernel.h predates.  Names carry a ring_ prefix
 * so that a newer header cannot clash.  docs/fuse-uring.md says what each
 * field means and how it was checked. */
#ifndef ISERFS_URING_ABI_H
#define ISERFS_URING_ABI_H

#include <stdint.h>

/* FUSE_OVER_IO_URING (bit 41 of the INIT flags), as a bit of flags2. */
#define RING_INIT_FLAGS2 (1u << 9)

/* IORING_OP_URING_CMD's cmd_op values. */
enum {
  RING_CMD_REGISTER = 1,
  RING_CMD_COMMIT_AND_FETCH = 2,
};

/* Where a delivered request's sizes are, and where a reply's size goes. */
struct ring_ent_in_out {
  uint64_t flags;
  uint64_t commit_id;           /* the request's unique */
  uint32_t payload_sz;
  uint32_t padding;
  uint64_t reserved;
};

/* An entry's header buffer (iovec 0 at REGISTER). */
struct ring_req_header {
  char in_out[128];             /* fuse_in_header / fuse_out_header */
  char op_in[128];              /* the request's first argument */
  struct ring_ent_in_out ent;
};

/* In the SQE's command area (SQE128 rings). */
struct ring_cmd_req {
  uint64_t flags;
  uint64_t commit_id;
  uint16_t qid;
  uint8_t padding[6];
};

_Static_assert (sizeof (struct ring_ent_in_out) == 32, "ring_ent_in_out");
_Static_assert (sizeof (struct ring_req_header) == 288, "ring_req_header");
_Static_assert (sizeof (struct ring_cmd_req) == 24, "ring_cmd_req");

#endif
