/* xorshift64 for the raw test programs (rawio, iovcheck): cheap and
 * deterministic, so a run's offsets and cuts are the same every time and
 * a failure can be rerun.  The state must not be 0. */
#ifndef ISERFS_TESTS_XORSHIFT_H
#define ISERFS_TESTS_XORSHIFT_H

#include <stdint.h>

static inline uint64_t
xorshift64 (uint64_t *state)
{
  *state ^= *state << 13;
  *state ^= *state >> 7;
  *state ^= *state << 17;
  return *state;
}

#endif
