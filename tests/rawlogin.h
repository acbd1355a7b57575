/* rawlogin: log in to the LUN an iscsi:// URL names, for the test
 * programs that drive libiscsi directly (rawio, iovcheck). */
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

/* A decimal (or 0x hex) number that fits in 32 bits; 0 or -1. */
int rawlogin_parse_uint (const char *s, unsigned *v);

#endif
