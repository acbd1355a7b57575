/* rawlogin: log in to the LUN an iscsi:// URL names, and turn libiscsi's
 * event loop, for the test programs that drive libiscsi directly (rawio,
 * iovcheck). */
#ifndef ISERFS_TESTS_RAWLOGIN_H
#define ISERFS_TESTS_RAWLOGIN_H

#include <stdint.h>

#include <iscsi/iscsi.h>

struct rawlogin {
  struct iscsi_context *iscsi;
  int lun;
  unsigned block_size;
  uint64_t nr_blocks;
};

/* Log in as INITIATOR, read the capacity; errors go to stderr as
 * "PROG: ...".  Returns 0 or -1. */
int rawlogin (struct rawlogin *l, const char *prog, const char *initiator,
              const char *url_text);

/* One turn of the event loop: wait up to a second for what libiscsi
 * waits for, then let it work (callbacks run here).  Returns 0, or -1
 * after saying why on stderr. */
int rawlogin_service (struct iscsi_context *iscsi, const char *prog);

/* A decimal (or 0x hex) number that fits in 32 bits; 0 or -1. */
int rawlogin_parse_uint (const char *s, unsigned *v);

#endif
