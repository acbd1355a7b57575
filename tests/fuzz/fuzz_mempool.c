/* libFuzzer harness for the buddy chunk pool: the input is a program of
 * allocations, frees and trims, run against a pool and checked after every step
 * against what must hold:
 *   - a segment is at least as long as asked, a power of two of at least one
 *     unit (chunk-sized or smaller), and aligned to its length inside a chunk;
 *   - live segments never overlap: each is filled with its own byte pattern
 *     and the pattern must be intact when it is freed;
 *   - mempool_find() knows every live byte, freeing twice or freeing a middle
 *     address is refused without damage;
 *   - a trimmed segment keeps its start, its bytes and at least what it
 *     was asked to keep;
 *   - mempool_check() (tree against record) passes, and the stats'
 *     bytes_in_use is the sum of the live lengths.
 * Any violation aborts, which libFuzzer reports with the input. */
#include <config.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mempool.h"

#define MAX_LIVE 64

struct live {
  struct mempool_seg seg;
  size_t asked;
  uint8_t fill;
};

static void __attribute__ ((noreturn))
broken (const char *what)
{
  fprintf (stderr, "fuzz_mempool: invariant broken: %s\n", what);
  abort ();
}

static int
is_pow2 (size_t x)
{
  return x && !(x & (x - 1));
}

static void
check_pattern (const struct live *l)
{
  const uint8_t *p = l->seg.addr;

  /* Only what was asked is ours to fill (direct allocations may be big). */
  for (size_t i = 0; i < l->asked; i++)
    if (p[i] != l->fill)
      broken ("a live segment's bytes changed: segments overlap");
}

static void
check_pool (struct mempool *pool, const struct live *live, unsigned n)
{
  struct mempool_stats st;
  char msg[256];
  uint64_t sum = 0;

  if (mempool_check (pool, msg, sizeof msg) != 0) {
    fprintf (stderr, "fuzz_mempool: %s\n", msg);
    broken ("mempool_check");
  }
  for (unsigned i = 0; i < n; i++)
    sum += live[i].seg.len;
  mempool_get_stats (pool, &st);
  if (st.bytes_in_use != sum)
    broken ("stats.bytes_in_use is not the sum of live lengths");
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct live live[MAX_LIVE];
  unsigned n = 0;
  struct mempool_config cfg = { 0 };
  struct mempool *pool;
  size_t unit, chunk, i = 2;

  if (size < 2)
    return 0;
  /* Small geometries so a short input reaches full chunks and direct
   * allocations: chunks of 16-128 KiB, units of 512 B-4 KiB. */
  cfg.chunk_order = 14 + data[0] % 4;
  cfg.unit_order = 9 + data[1] % 4;
  cfg.spare_chunks = data[1] >> 4 & 3;
  cfg.keep_no_spares = 1;
  pool = mempool_create (&cfg);
  if (pool == NULL)
    return 0;
  mempool_set_warnings (pool, NULL);     /* misuse is on purpose here */
  unit = mempool_unit_size (pool);
  chunk = mempool_chunk_size (pool);

  while (i + 3 <= size) {
    uint8_t op = data[i];
    size_t arg = (size_t) data[i + 1] << 8 | data[i + 2];

    i += 3;
    if (op < 128 && n < MAX_LIVE) {
      /* Allocate: mostly within a chunk, sometimes beyond it. */
      struct live *l = &live[n];
      size_t want = op < 16 ? chunk + arg * 8 : arg % (chunk + 1);

      if (want == 0)
        want = 1;
      if (mempool_alloc (pool, want, &l->seg) != 0)
        continue;               /* refusal is allowed, not a crash */
      if (l->seg.len < want)
        broken ("segment shorter than asked");
      if (want <= chunk) {
        if (!is_pow2 (l->seg.len) || l->seg.len < unit || l->seg.len > chunk)
          broken ("segment length not a power of two between unit and chunk");
        if ((uintptr_t) l->seg.addr % l->seg.len)
          broken ("segment not aligned to its length");
      }
      l->asked = want;
      l->fill = (uint8_t) (i * 31 + 7);
      memset (l->seg.addr, l->fill, want);
      n++;
    }
    else if (op < 224 && n > 0) {
      /* Free one; then free it again, which must be refused. */
      unsigned k = arg % n;
      void *addr = live[k].seg.addr;
      void *h;

      check_pattern (&live[k]);
      if (mempool_find (pool, addr, live[k].asked, &h) != 0)
        broken ("mempool_find does not know a live segment");
      if (live[k].seg.len >= 2 * unit && live[k].asked <= chunk
          && mempool_free (pool, (char *) addr + unit) == 0)
        broken ("freeing the middle of a segment was accepted");
      if (mempool_free (pool, addr) != 0)
        broken ("freeing a live segment failed");
      live[k] = live[--n];
      /* The memory may be reused at once; only the pool's answer counts. */
      if (op & 1 && mempool_free (pool, addr) == 0) {
        int reused = 0;
        for (unsigned j = 0; j < n; j++)
          reused |= live[j].seg.addr == addr;
        if (!reused)
          broken ("a double free was accepted");
      }
    }
    else if (op < 240 && n > 0) {
      /* Trim one: it keeps its start and what it still holds. */
      struct live *l = &live[arg % n];
      size_t keep = 1 + (size_t) (op * 977 + arg) % l->seg.len, len = 0;

      check_pattern (l);
      if (mempool_trim (pool, l->seg.addr, keep, &len) != 0)
        broken ("trimming a live segment failed");
      if (len < keep || len > l->seg.len
          || (l->asked <= chunk && (!is_pow2 (len) || len < unit)))
        broken ("trimmed length is wrong");
      l->seg.len = len;
      if (l->asked > len)
        l->asked = len;
      check_pattern (l);
      check_pool (pool, live, n);
    }
    else
      check_pool (pool, live, n);
  }
  for (unsigned k = 0; k < n; k++) {
    check_pattern (&live[k]);
    if (mempool_free (pool, live[k].seg.addr) != 0)
      broken ("final free failed");
  }
  n = 0;
  check_pool (pool, live, 0);
  mempool_destroy (pool);
  return 0;
}
