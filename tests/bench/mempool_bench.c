/* mempool_bench: what the pool buys on the I/O path.  Not a test: it prints
 * numbers.
 *
 * For several size mixes it keeps a working set of live buffers and, in a
 * loop, frees a random one and allocates a new one in its place, timing
 * alloc+free pairs for: the pool (chunks registered through mlock/munlock
 * hooks); plain malloc/free; and malloc + register + deregister + free where
 * registration is mlock/munlock of the buffer, a fair stand-in for pinning
 * memory for RDMA.  All three replay the same pre-drawn sequence.  The pool
 * runs the sequence once to warm up, then its registrations during the timed
 * (steady-state) run are reported: they should be 0.
 *
 * Usage: mempool_bench [PAIRS]   (default 1000000; malloc+mlock runs
 * PAIRS/50 because each of its pairs pins and unpins memory) */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "mempool.h"

#define LIVE 64

struct step {
  unsigned slot;
  size_t size;
};

struct mix {
  const char *name;
  unsigned min_order, max_order;  /* sizes in (2^(o-1), 2^o], o in range */
  int exact;                      /* sizes exactly 2^o */
  unsigned spares;                /* pool's spare_chunks; 0: default */
};

static const struct mix mixes[] = {
  { "4K", 12, 12, 1, 0 },
  { "64K", 16, 16, 1, 0 },
  { "1M", 20, 20, 1, 0 },
  { "4K-1M", 12, 20, 0, 0 },
  /* The mixed working set swings by several chunks; with the default two
   * spares the pool gives chunks back and registers them again.  Spares
   * sized to the swing make the steady state registration-free. */
  { "4K-1M sp=8", 12, 20, 0, 8 },
};

static uint64_t rng = 0x1234567;

static uint64_t
rng_next (void)
{
  uint64_t z = (rng += UINT64_C (0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C (0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C (0x94D049BB133111EB);
  return z ^ (z >> 31);
}

static size_t
draw_size (const struct mix *mx)
{
  unsigned o = mx->min_order +
    (unsigned) (rng_next () % (mx->max_order - mx->min_order + 1));
  size_t hi = (size_t) 1 << o, lo = hi / 2 + 1;

  if (mx->exact)
    return hi;
  return lo + rng_next () % (hi - lo + 1);
}

static double
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* ---- the three allocators, behind one interface ---- */

struct allocator {
  void *(*alloc) (void *ctx, size_t size);
  void (*free) (void *ctx, void *p, size_t size);
  void *ctx;
};

/* The pool's registration hooks: pin a region, remember it in the handle. */
struct pinned {
  void *base;
  size_t len;
};

static int
mlock_reg (void *ctx, void *base, size_t len, void **handle)
{
  struct pinned *p = malloc (sizeof *p);

  (void) ctx;
  if (p == NULL)
    return -ENOMEM;
  if (mlock (base, len) != 0) {
    int err = -errno;
    free (p);
    return err;
  }
  p->base = base;
  p->len = len;
  *handle = p;
  return 0;
}

static void
munlock_dereg (void *ctx, void *handle)
{
  struct pinned *p = handle;

  (void) ctx;
  munlock (p->base, p->len);
  free (p);
}

static void *
pool_alloc (void *ctx, size_t size)
{
  struct mempool_seg seg;

  if (mempool_alloc (ctx, size, &seg) != 0) {
    fprintf (stderr, "mempool_bench: pool allocation of %zu failed\n", size);
    exit (EXIT_FAILURE);
  }
  return seg.addr;
}

static void
pool_free (void *ctx, void *p, size_t size)
{
  (void) size;
  mempool_free (ctx, p);
}

static void *
malloc_alloc (void *ctx, size_t size)
{
  void *p = malloc (size);

  (void) ctx;
  if (p == NULL) {
    fprintf (stderr, "mempool_bench: malloc of %zu failed\n", size);
    exit (EXIT_FAILURE);
  }
  return p;
}

static void
malloc_free (void *ctx, void *p, size_t size)
{
  (void) ctx;
  (void) size;
  free (p);
}

/* Out of line: glibc declares mlock as reading its buffer, and GCC would
 * warn that fresh malloc memory is "used uninitialized"; mlock only pins. */
static int __attribute__ ((noinline))
pin (void *p, size_t size)
{
  return mlock (p, size);
}

static void *
mlock_alloc (void *ctx, size_t size)
{
  void *p = malloc_alloc (ctx, size);

  if (pin (p, size) != 0) {
    perror ("mempool_bench: mlock");
    exit (EXIT_FAILURE);
  }
  return p;
}

static void
mlock_free (void *ctx, void *p, size_t size)
{
  munlock (p, size);
  malloc_free (ctx, p, size);
}

/* Fill the working set, run the steps once to warm up (the pool grows to
 * its working set, malloc's heap too), run them again timed, empty the set.
 * Returns ns per pair of the timed run; if pool is given, *regs gets the
 * registrations it made during the timed run. */
static double
run (const struct allocator *a, const struct step *steps, size_t nsteps,
     const size_t *initial, struct mempool *pool, uint64_t *regs)
{
  void *live[LIVE];
  size_t sizes[LIVE];
  struct mempool_stats before, after;
  double t0 = 0, t1;

  for (unsigned i = 0; i < LIVE; i++) {
    sizes[i] = initial[i];
    live[i] = a->alloc (a->ctx, sizes[i]);
  }
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1) {
      if (pool)
        mempool_get_stats (pool, &before);
      t0 = now_ns ();
    }
    for (size_t i = 0; i < nsteps; i++) {
      unsigned s = steps[i].slot;

      a->free (a->ctx, live[s], sizes[s]);
      sizes[s] = steps[i].size;
      live[s] = a->alloc (a->ctx, sizes[s]);
    }
  }
  t1 = now_ns ();
  if (pool) {
    mempool_get_stats (pool, &after);
    *regs = after.registrations - before.registrations;
  }
  for (unsigned i = 0; i < LIVE; i++)
    a->free (a->ctx, live[i], sizes[i]);
  return (t1 - t0) / (double) nsteps;
}

int
main (int argc, char *argv[])
{
  size_t pairs = 1000000, mlock_pairs;
  int can_mlock;

  if (argc > 2 || (argc == 2 && (pairs = strtoul (argv[1], NULL, 10)) < 50)) {
    fprintf (stderr, "usage: mempool_bench [PAIRS] (PAIRS >= 50)\n");
    return EXIT_FAILURE;
  }
  mlock_pairs = pairs / 50;
  {
    /* mlock needs privilege or a memlock limit; without it, say so. */
    static char probe[4096];
    can_mlock = mlock (probe, sizeof probe) == 0;
    if (can_mlock)
      munlock (probe, sizeof probe);
  }

  printf ("mempool_bench: working set %d live buffers; ns per alloc+free "
          "pair\n(pool and malloc: %zu pairs; malloc+mlock: %zu pairs; "
          "sp=N: N spare chunks, else %d)\n\n",
          LIVE, pairs, mlock_pairs, MEMPOOL_SPARES_DEFAULT);
  printf ("%-12s %9s %9s %13s %12s %12s %14s\n", "mix", "pool", "malloc",
          "malloc+mlock", "malloc/pool", "mlock/pool", "steady regs");

  for (size_t m = 0; m < sizeof mixes / sizeof mixes[0]; m++) {
    const struct mix *mx = &mixes[m];
    struct step *steps = malloc (pairs * sizeof *steps);
    size_t initial[LIVE];
    struct mempool_config cfg = { .spare_chunks = mx->spares };
    struct mempool *pool;
    uint64_t regs = 0;
    struct allocator pa, ma = { malloc_alloc, malloc_free, NULL };
    struct allocator la = { mlock_alloc, mlock_free, NULL };
    double t_pool, t_malloc, t_mlock = 0;

    if (steps == NULL) {
      fprintf (stderr, "mempool_bench: out of memory\n");
      return EXIT_FAILURE;
    }
    for (unsigned i = 0; i < LIVE; i++)
      initial[i] = draw_size (mx);
    for (size_t i = 0; i < pairs; i++) {
      steps[i].slot = (unsigned) (rng_next () % LIVE);
      steps[i].size = draw_size (mx);
    }

    if (can_mlock) {
      cfg.hooks.reg = mlock_reg;
      cfg.hooks.dereg = munlock_dereg;
    }
    pool = mempool_create (&cfg);
    if (pool == NULL) {
      perror ("mempool_bench: mempool_create");
      return EXIT_FAILURE;
    }
    pa = (struct allocator) { pool_alloc, pool_free, pool };

    t_pool = run (&pa, steps, pairs, initial, pool, &regs);
    t_malloc = run (&ma, steps, pairs, initial, NULL, NULL);
    if (can_mlock)
      t_mlock = run (&la, steps, mlock_pairs, initial, NULL, NULL);

    printf ("%-12s %9.1f %9.1f ", mx->name, t_pool, t_malloc);
    if (can_mlock)
      printf ("%13.1f ", t_mlock);
    else
      printf ("%13s ", "n/a");
    printf ("%11.2fx ", t_malloc / t_pool);
    if (can_mlock)
      printf ("%11.1fx ", t_mlock / t_pool);
    else
      printf ("%12s ", "n/a");
    printf ("%14" PRIu64 "\n", regs);
    mempool_destroy (pool);
    free (steps);
  }
  if (!can_mlock)
    printf ("\n(mlock not permitted here: no pinning figures)\n");
  return EXIT_SUCCESS;
}
