/* rwmodel: check that concurrent unaligned writes never lose an update.
 *
 *   rwmodel [-B] [-s SEED] [-p PROCS] [-n WRITES] [-w STRIPE] [-r REGION] FILE [BACKING]
 *
 * The first REGION bytes of FILE are cut into stripes of STRIPE bytes
 * (deliberately not a multiple of any block size), dealt round-robin to
 * PROCS writer processes, so neighbouring stripes of different writers
 * share logical blocks.  Each writer only ever writes inside its own
 * stripes, at random unaligned offsets and lengths, with its own random
 * data; even-numbered writers use O_DIRECT, odd ones buffered I/O (-B:
 * all buffered, for file systems that refuse unaligned O_DIRECT).  A
 * read-modify-write that races with a neighbour and writes back a stale
 * copy of the block destroys the neighbour's bytes.
 *
 * Because every byte has a single writer, the final content is known
 * regardless of scheduling: the parent replays each writer's deterministic
 * sequence into a model, then compares FILE (and BACKING, the target's
 * backing store, if given) with it.  Exit 0 if equal, 1 with the first
 * differences if not.  The seed is printed so a failure can be replayed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct params {
  uint64_t seed;
  unsigned procs, writes;
  size_t stripe, region;
  int no_direct;               /* -B: every writer buffered */
};

/* splitmix64: small, seedable, identical in writer and replay. */
static uint64_t
next_rand (uint64_t *s)
{
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* The N-th write of writer W: offset, length and data, all from one PRNG,
 * so the writer and the replay in the parent agree exactly. */
static void
gen_write (const struct params *p, uint64_t *rng, unsigned w,
           size_t *off, size_t *len, unsigned char *data)
{
  size_t nstripes = p->region / p->stripe;
  size_t mine = (nstripes - w + p->procs - 1) / p->procs;  /* stripes w, w+P, ... */
  size_t s = w + (next_rand (rng) % mine) * p->procs;
  size_t a = next_rand (rng) % p->stripe;
  size_t b = a + 1 + next_rand (rng) % (p->stripe - a);
  *off = s * p->stripe + a;
  *len = b - a;
  for (size_t i = 0; i < *len; i++)
    data[i] = (unsigned char) next_rand (rng);
}

static uint64_t
writer_seed (const struct params *p, unsigned w)
{
  return p->seed ^ (0x100000001b3ULL * (w + 1));
}

/* pread/pwrite until len bytes moved: a short count is not an error. */
static int
full_io (int fd, unsigned char *buf, size_t len, off_t off, bool writing)
{
  while (len > 0) {
    ssize_t r = writing ? pwrite (fd, buf, len, off) : pread (fd, buf, len, off);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return -1;
    buf += r; len -= (size_t) r; off += r;
  }
  return 0;
}

static int
full_pwrite (int fd, const unsigned char *buf, size_t len, off_t off)
{
  return full_io (fd, (unsigned char *) buf, len, off, true);
}

static int
full_pread (int fd, unsigned char *buf, size_t len, off_t off)
{
  return full_io (fd, buf, len, off, false);
}

static int
run_writer (const struct params *p, const char *file, unsigned w)
{
  int direct = !p->no_direct && (w % 2) == 0;
  int fd = open (file, O_WRONLY | (direct ? O_DIRECT : 0));
  if (fd < 0) {
    fprintf (stderr, "rwmodel: writer %u: open %s: %m\n", w, file);
    return 1;
  }
  unsigned char *data;
  if (posix_memalign ((void **) &data, 4096, p->stripe))
    return 1;
  uint64_t rng = writer_seed (p, w);
  for (unsigned n = 0; n < p->writes; n++) {
    size_t off, len;
    gen_write (p, &rng, w, &off, &len, data);
    if (full_pwrite (fd, data, len, (off_t) off) < 0) {
      fprintf (stderr, "rwmodel: writer %u (%s): pwrite %zu@%zu: %m\n",
               w, direct ? "O_DIRECT" : "buffered", len, off);
      return 1;
    }
  }
  if (fsync (fd) < 0 || close (fd) < 0) {
    fprintf (stderr, "rwmodel: writer %u: fsync/close: %m\n", w);
    return 1;
  }
  free (data);
  return 0;
}

/* The initial content: a pattern nobody writes again by accident. */
static void
initial_content (const struct params *p, unsigned char *buf)
{
  uint64_t rng = p->seed ^ 0x5eed;
  for (size_t i = 0; i < p->region; i++)
    buf[i] = (unsigned char) next_rand (&rng);
}

static void
replay (const struct params *p, unsigned char *model)
{
  unsigned char *data = malloc (p->stripe);
  initial_content (p, model);
  for (unsigned w = 0; w < p->procs; w++) {
    uint64_t rng = writer_seed (p, w);
    for (unsigned n = 0; n < p->writes; n++) {
      size_t off, len;
      gen_write (p, &rng, w, &off, &len, data);
      memcpy (model + off, data, len);
    }
  }
  free (data);
}

/* Compare FILE with the model; print up to 5 differing ranges. */
static int
verify (const struct params *p, const char *what, const char *file,
        const unsigned char *model)
{
  unsigned char *buf = malloc (p->region);
  int fd = open (file, O_RDONLY);
  if (fd < 0 || full_pread (fd, buf, p->region, 0) < 0) {
    fprintf (stderr, "rwmodel: read back %s: %m\n", file);
    free (buf);
    return 1;
  }
  close (fd);
  size_t bad = 0, shown = 0;
  for (size_t i = 0; i < p->region; i++) {
    if (buf[i] == model[i])
      continue;
    if (bad++ == 0 || shown < 5) {
      size_t stripe = i / p->stripe;
      printf ("rwmodel: %s: byte %zu is %02x, model %02x (stripe %zu of writer %zu)\n",
              what, i, buf[i], model[i], stripe, stripe % p->procs);
      shown++;
    }
  }
  free (buf);
  if (bad) {
    printf ("rwmodel: %s: %zu of %zu bytes differ from the model\n", what, bad, p->region);
    return 1;
  }
  printf ("rwmodel: %s: all %zu bytes match the model\n", what, p->region);
  return 0;
}

int
main (int argc, char *argv[])
{
  struct params p = { .seed = 0, .procs = 4, .writes = 2000,
                      .stripe = 1000, .region = 4 << 20 };
  int opt;
  p.seed = (uint64_t) time (NULL) ^ ((uint64_t) getpid () << 32);
  while ((opt = getopt (argc, argv, "Bs:p:n:w:r:")) != -1) {
    switch (opt) {
    case 'B': p.no_direct = 1; break;
    case 's': p.seed = strtoull (optarg, NULL, 0); break;
    case 'p': p.procs = (unsigned) atoi (optarg); break;
    case 'n': p.writes = (unsigned) atoi (optarg); break;
    case 'w': p.stripe = strtoull (optarg, NULL, 0); break;
    case 'r': p.region = strtoull (optarg, NULL, 0); break;
    default: goto usage;
    }
  }
  if (p.seed == 0)
    p.seed = 1;                 /* keep the printed seed meaningful */
  if (optind >= argc || argc - optind > 2 || p.procs < 1 || p.stripe < 2 ||
      p.region / p.stripe < p.procs)
    goto usage;
  const char *file = argv[optind], *backing = argv[optind + 1];
  printf ("rwmodel: seed=%" PRIu64 " procs=%u writes=%u stripe=%zu region=%zu\n",
          p.seed, p.procs, p.writes, p.stripe, p.region);
  fflush (stdout);

  unsigned char *model = malloc (p.region);
  initial_content (&p, model);
  int fd = open (file, O_WRONLY);
  if (fd < 0 || full_pwrite (fd, model, p.region, 0) < 0 || fsync (fd) < 0 ||
      close (fd) < 0) {
    fprintf (stderr, "rwmodel: initial write of %s: %m\n", file);
    free (model);
    return 1;
  }

  int failed = 0;
  for (unsigned w = 0; w < p.procs; w++) {
    pid_t pid = fork ();
    if (pid < 0) { perror ("fork"); return 1; }
    if (pid == 0)
      _exit (run_writer (&p, file, w));
  }
  for (unsigned w = 0; w < p.procs; w++) {
    int st;
    if (wait (&st) < 0 || !WIFEXITED (st) || WEXITSTATUS (st) != 0)
      failed = 1;
  }
  if (failed) {
    fprintf (stderr, "rwmodel: a writer failed (seed %" PRIu64 ")\n", p.seed);
    free (model);
    return 1;
  }
  replay (&p, model);
  failed |= verify (&p, "file", file, model);
  if (backing)
    failed |= verify (&p, "backing store", backing, model);
  free (model);
  return failed;

 usage:
  fprintf (stderr, "usage: rwmodel [-B] [-s SEED] [-p PROCS] [-n WRITES] [-w STRIPE] "
           "[-r REGION] FILE [BACKING]\n");
  return 2;
}
