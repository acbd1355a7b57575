/* mempool_bench: what the pool buys on the I/O path.  Not a test: it prints
 * numbers.
 *
 * For several size mixes it keeps a working set of live buffers and, in a
 * loop, frees a random one and allocates a new one in its place, timing
 * alloc+free pairs for: the pool (chunks registered through mlock/munlock
 * hooks, default configuration unless a row says eager); plain malloc/free;
 * and malloc + register + deregister + free where registration is
 * mlock/munlock of the buffer, a fair stand-in for pinning memory for RDMA.
 * All replay the same pre-drawn sequence.  Each allocator runs the sequence
 * once to warm up (the pool grows to its working set, malloc's heap too);
 * the timed run (thread CPU time) is repeated and the best is kept, because
 * other processes on the machine can only add time.  The pool's registrations during its timed
 * runs are reported: in the steady state they should be 0.
 *
 * Fairness: iserfs is multi-threaded (FUSE workers, the transport thread),
 * and glibc's malloc skips its arena lock only while a process has never
 * started a thread; so "malloc" is measured after a thread has been started,
 * as in iserfs, and "malloc 1T" (the single-threaded fast path) before.
 * The second table touches every buffer after allocating it (one write per
 * 4 KiB page), as real I/O does: fresh malloc memory may page-fault there,
 * the pool's does not.  Rows "xN" free N buffers, then allocate N, as
 * completions that arrive in batches do: the pool's deferred free (one
 * at a time) helps only the last of each batch there.
 *
 * Usage: mempool_bench [PAIRS]   (default 1000000; malloc+mlock runs
 * PAIRS/50 pairs because each of its pairs pins and unpins memory; the
 * touched table runs PAIRS/20) */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "mempool.h"

#define LIVE 64
#define REPEATS 3
#define PAGE 4096

struct step {
  unsigned slot;
  size_t size;
};

struct mix {
  const char *name;
  unsigned min_order, max_order;  /* sizes in (2^(o-1), 2^o], o in range */
  int exact;                      /* sizes exactly 2^o */
  int eager;                      /* pool's release_eagerly */
  unsigned batch;                 /* frees, then as many allocations */
};

static const struct mix mixes[] = {
  { "4K", 12, 12, 1, 0, 1 },
  { "64K", 16, 16, 1, 0, 1 },
  { "1M", 20, 20, 1, 0, 1 },
  /* Completions in batches: 8 frees, then 8 allocations.  The pool defers
   * only the last free's tree update, so most of these pay full price. */
  { "4K x8", 12, 12, 1, 0, 8 },
  { "64K x8", 16, 16, 1, 0, 8 },
  { "4K-1M", 12, 20, 0, 0, 1 },
  /* The mixed working set swings by several chunks: without the default
   * hysteresis the pool gives chunks back and registers them again. */
  { "4K-1M eager", 12, 20, 0, 1, 1 },
};
#define NMIXES (sizeof mixes / sizeof mixes[0])

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

  /* The thread's CPU time, not the wall clock: on a shared machine the
   * time other processes run while this one waits is not ours. */
  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
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

/* Write one byte per page of a new buffer, as I/O into it would: enough
 * to fault in any page not present.  The byte is in a different cache
 * line of each page: writing at the same offset of every page puts all
 * the writes in one L1 cache set, which evicts whatever else maps there
 * (the allocator's own data included) and made the result depend on
 * where that data happened to lie -- a conflict that I/O, which writes
 * every line or (with RDMA) none, does not have. */
static void
touch (void *p, size_t size)
{
  volatile char *c = p;

  for (size_t off = 0, line = 0; off < size; off += PAGE, line += 5) {
    size_t i = off + (line % (PAGE / 64)) * 64;

    c[i < size ? i : off] = 1;          /* sizes need not be whole pages */
  }
}

/* Fill the working set, run the steps once to warm up (the pool grows to
 * its working set, malloc's heap too), then REPEATS timed runs, and empty
 * the set.  Returns the best ns per pair of the timed runs; if pool is
 * given, *regs gets the registrations it made during them. */
static double
run (const struct allocator *a, const struct step *steps, size_t nsteps,
     unsigned batch, const size_t *initial, int touching,
     struct mempool *pool, uint64_t *regs)
{
  void *live[LIVE];
  size_t sizes[LIVE];
  struct mempool_stats before, after;
  double best = 0;

  for (unsigned i = 0; i < LIVE; i++) {
    sizes[i] = initial[i];
    live[i] = a->alloc (a->ctx, sizes[i]);
  }
  for (int pass = 0; pass <= REPEATS; pass++) {
    double t0, t;

    if (pass == 1 && pool)
      mempool_get_stats (pool, &before);
    t0 = now_ns ();
    for (size_t i = 0; i + batch <= nsteps; i += batch) {
      for (unsigned j = 0; j < batch; j++) {
        unsigned s = steps[i + j].slot;

        a->free (a->ctx, live[s], sizes[s]);
      }
      for (unsigned j = 0; j < batch; j++) {
        unsigned s = steps[i + j].slot;

        sizes[s] = steps[i + j].size;
        live[s] = a->alloc (a->ctx, sizes[s]);
        if (touching)
          touch (live[s], sizes[s]);
      }
    }
    t = (now_ns () - t0) / (double) nsteps;
    if (pass == 1 || (pass > 1 && t < best))
      best = t;
  }
  if (pool) {
    mempool_get_stats (pool, &after);
    *regs = after.registrations - before.registrations;
  }
  for (unsigned i = 0; i < LIVE; i++)
    a->free (a->ctx, live[i], sizes[i]);
  return best;
}

/* The steps of mix m: the same sequence whenever it is asked for. */
static struct step *
make_steps (size_t m, size_t pairs, size_t *initial)
{
  const struct mix *mx = &mixes[m];
  struct step *steps = malloc (pairs * sizeof *steps);

  if (steps == NULL) {
    fprintf (stderr, "mempool_bench: out of memory\n");
    exit (EXIT_FAILURE);
  }
  rng = 0x1234567 + m;
  for (unsigned i = 0; i < LIVE; i++)
    initial[i] = draw_size (mx);
  for (size_t i = 0; i < pairs; i++) {
    /* Within a batch the slots must differ: 7 is coprime with LIVE. */
    if (i % mx->batch == 0)
      steps[i].slot = (unsigned) (rng_next () % LIVE);
    else
      steps[i].slot = (steps[i - 1].slot + 7) % LIVE;
    steps[i].size = draw_size (mx);
  }
  return steps;
}

static void *
idle_thread (void *arg)
{
  return arg;
}

/* From now on glibc's malloc takes its arena locks, as in iserfs. */
static void
become_multithreaded (void)
{
  pthread_t t;

  if (pthread_create (&t, NULL, idle_thread, NULL) != 0 ||
      pthread_join (t, NULL) != 0) {
    fprintf (stderr, "mempool_bench: cannot start a thread\n");
    exit (EXIT_FAILURE);
  }
}

static const struct allocator malloc_a = { malloc_alloc, malloc_free, NULL };
static const struct allocator mlock_a = { mlock_alloc, mlock_free, NULL };

/* One row of a table: the pool, malloc, malloc+mlock on mix m. */
static void
row (size_t m, size_t pairs, size_t mlock_pairs, int touching, int can_mlock,
     double t_malloc_1t)
{
  const struct mix *mx = &mixes[m];
  size_t initial[LIVE];
  struct step *steps = make_steps (m, pairs, initial);
  struct mempool_config cfg = { .release_eagerly = mx->eager };
  struct mempool *pool;
  struct allocator pa;
  uint64_t regs = 0;
  double t_pool, t_malloc, t_mlock = 0;

  if (can_mlock) {
    cfg.hooks.reg = mlock_reg;
    cfg.hooks.dereg = munlock_dereg;
  }
  pool = mempool_create (&cfg);
  if (pool == NULL) {
    perror ("mempool_bench: mempool_create");
    exit (EXIT_FAILURE);
  }
  pa = (struct allocator) { pool_alloc, pool_free, pool };

  t_pool = run (&pa, steps, pairs, mx->batch, initial, touching, pool, &regs);
  t_malloc = run (&malloc_a, steps, pairs, mx->batch, initial, touching, NULL,
                  NULL);
  if (can_mlock)
    t_mlock = run (&mlock_a, steps, mlock_pairs, mx->batch, initial,
                   touching, NULL, NULL);

  printf ("%-12s %9.1f %9.1f ", mx->name, t_pool, t_malloc);
  if (!touching)
    printf ("%9.1f ", t_malloc_1t);
  if (can_mlock)
    printf ("%13.1f ", t_mlock);
  else
    printf ("%13s ", "n/a");
  printf ("%11.2fx ", t_malloc / t_pool);
  if (can_mlock)
    printf ("%11.1fx ", t_mlock / t_pool);
  else
    printf ("%12s ", "n/a");
  printf ("%12" PRIu64 "\n", regs);
  mempool_destroy (pool);
  free (steps);
}

int
main (int argc, char *argv[])
{
  size_t pairs = 1000000;
  double malloc_1t[NMIXES];
  int can_mlock;

  if (argc > 2 || (argc == 2 && (pairs = strtoul (argv[1], NULL, 10)) < 1000)) {
    fprintf (stderr, "usage: mempool_bench [PAIRS] (PAIRS >= 1000)\n");
    return EXIT_FAILURE;
  }
  {
    /* mlock needs privilege or a memlock limit; without it, say so. */
    static char probe[PAGE];
    can_mlock = mlock (probe, sizeof probe) == 0;
    if (can_mlock)
      munlock (probe, sizeof probe);
  }

  /* Before any thread exists: glibc's single-threaded malloc. */
  for (size_t m = 0; m < NMIXES; m++) {
    size_t initial[LIVE];
    struct step *steps = make_steps (m, pairs, initial);

    malloc_1t[m] = run (&malloc_a, steps, pairs, mixes[m].batch, initial, 0,
                        NULL, NULL);
    free (steps);
  }
  become_multithreaded ();

  printf ("mempool_bench: working set %d live buffers; ns per alloc+free "
          "pair, best of %d runs\n(pool and malloc: %zu pairs; "
          "malloc+mlock: %zu pairs; pool: default configuration, %d spare "
          "chunks;\neager: release_eagerly, no hysteresis; malloc: in a multi-threaded process, as iserfs; "
          "malloc 1T: before any thread was started)\n\n",
          LIVE, REPEATS, pairs, pairs / 50, MEMPOOL_SPARES_DEFAULT);
  printf ("%-12s %9s %9s %9s %13s %12s %12s %12s\n", "mix", "pool",
          "malloc", "malloc 1T", "malloc+mlock", "malloc/pool", "mlock/pool",
          "steady regs");
  for (size_t m = 0; m < NMIXES; m++)
    row (m, pairs, pairs / 50, 0, can_mlock, malloc_1t[m]);

  printf ("\nTouched: one write per 4 KiB page of every new buffer "
          "(%zu pairs; malloc+mlock: %zu)\n\n", pairs / 20, pairs / 1000);
  printf ("%-12s %9s %9s %13s %12s %12s %12s\n", "mix", "pool", "malloc",
          "malloc+mlock", "malloc/pool", "mlock/pool", "steady regs");
  for (size_t m = 0; m < NMIXES; m++)
    row (m, pairs / 20, pairs / 1000, 1, can_mlock, 0);

  if (!can_mlock)
    printf ("\n(mlock not permitted here: no pinning figures)\n");
  return EXIT_SUCCESS;
}
