/* pooltool: drive a mempool from commands on stdin, to watch its trees.
 * See usage() for the commands and the exit status. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mempool.h"

struct tool {
  struct mempool *pool;
  struct mempool_seg *segs;     /* by id - 1 */
  size_t nsegs, cap;
  unsigned long line;
  int failed;
};

static void
usage (FILE *fp)
{
  fprintf (fp,
"Usage: pooltool [--help] < COMMANDS\n"
"Drive a buddy chunk pool (4 KiB units) with one command per line:\n"
"  units N       start a new pool whose chunk has N units (a power of two,\n"
"                1 to 1048576; the first pool has 1024); ids restart at 1\n"
"  alloc SIZE    allocate SIZE bytes (suffix K, M or G: powers of 1024);\n"
"                prints \"id I chunk C offset 0xO len L\", or\n"
"                \"id I direct len L\" for a larger-than-chunk allocation\n"
"  free ID       free the allocation with that id (again: a double free,\n"
"                which the pool must refuse)\n"
"  dump [CHUNK]  print chunk CHUNK's tree (default 0, the list's head)\n"
"  stats         print the pool's counters, one key=value a line\n"
"  check         verify the pool's invariants; prints \"ok\"\n"
"Blank lines and lines starting with # are ignored.\n"
"Results go to stdout; errors go to stderr as one line\n"
"\"pooltool: line N: ...\" and the tool goes on with the next command.\n"
"Exit status: 0 if every command succeeded, 1 if any command failed,\n"
"2 on a usage error or if stdin could not be read.\n");
}

static void __attribute__ ((format (printf, 2, 3)))
error (struct tool *t, const char *fmt, ...)
{
  va_list ap;

  fflush (stdout);
  fprintf (stderr, "pooltool: line %lu: ", t->line);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputc ('\n', stderr);
  t->failed = 1;
}

/* Parse a size: decimal digits and an optional K/M/G suffix. */
static int
parse_size (const char *s, size_t *size)
{
  char *end;
  unsigned long long v;
  unsigned shift = 0;

  if (*s < '0' || *s > '9')
    return -1;
  errno = 0;
  v = strtoull (s, &end, 10);
  if (errno)
    return -1;
  switch (*end) {
  case 'k': case 'K': shift = 10; end++; break;
  case 'm': case 'M': shift = 20; end++; break;
  case 'g': case 'G': shift = 30; end++; break;
  }
  if (*end != '\0' || v > (SIZE_MAX >> shift))
    return -1;
  *size = (size_t) v << shift;
  return 0;
}

static int
parse_uint (const char *s, unsigned long *v)
{
  char *end;

  if (s == NULL || *s < '0' || *s > '9')
    return -1;
  errno = 0;
  *v = strtoul (s, &end, 10);
  return errno || *end != '\0' ? -1 : 0;
}

static int
new_pool (struct tool *t, unsigned long units)
{
  struct mempool_config cfg = { 0 };
  struct mempool *pool;
  unsigned order = 0;

  while ((1ul << order) < units)
    order++;
  cfg.unit_order = 12;
  cfg.chunk_order = 12 + order;
  pool = mempool_create (&cfg);
  if (pool == NULL)
    return -errno;
  /* pooltool reports refused frees itself. */
  mempool_set_warnings (pool, NULL);
  mempool_destroy (t->pool);
  t->pool = pool;
  t->nsegs = 0;
  return 0;
}

static void
cmd_units (struct tool *t, const char *arg)
{
  unsigned long n;
  int err;

  if (parse_uint (arg, &n) == -1 || n == 0 || (n & (n - 1)) != 0 ||
      n > 1048576) {
    error (t, "units: '%s' is not a power of two from 1 to 1048576",
           arg ? arg : "");
    return;
  }
  err = new_pool (t, n);
  if (err)
    error (t, "units: cannot create the pool: %s", strerror (-err));
}

static void
cmd_alloc (struct tool *t, const char *arg)
{
  struct mempool_seg seg;
  size_t size, offset;
  unsigned chunk;
  int err;

  if (arg == NULL || parse_size (arg, &size) == -1) {
    error (t, "alloc: '%s' is not a size (bytes, or a number with K, M "
           "or G)", arg ? arg : "");
    return;
  }
  if (t->nsegs == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 64;
    struct mempool_seg *segs = realloc (t->segs, cap * sizeof *segs);
    if (segs == NULL) {
      error (t, "alloc: out of memory for the id table");
      return;
    }
    t->segs = segs;
    t->cap = cap;
  }
  err = mempool_alloc (t->pool, size, &seg);
  if (err == -EINVAL)
    error (t, "alloc %s: a size of 0 is refused", arg);
  else if (err == -EOVERFLOW)
    error (t, "alloc %s: too large to round up to a power of two", arg);
  else if (err)
    error (t, "alloc %s: %s", arg, strerror (-err));
  if (err)
    return;
  t->segs[t->nsegs++] = seg;
  if (mempool_locate (t->pool, seg.addr, &chunk, &offset) == 0)
    printf ("id %zu chunk %u offset 0x%zx len %zu\n",
            t->nsegs, chunk, offset, seg.len);
  else
    printf ("id %zu direct len %zu\n", t->nsegs, seg.len);
}

static void
cmd_free (struct tool *t, const char *arg)
{
  unsigned long id;
  int err;

  if (parse_uint (arg, &id) == -1 || id == 0 || id > t->nsegs) {
    error (t, "free: '%s' is not the id of an allocation", arg ? arg : "");
    return;
  }
  err = mempool_free (t->pool, t->segs[id - 1].addr);
  if (err)
    error (t, "free %lu: refused by the pool: %s", id, strerror (-err));
}

static void
cmd_dump (struct tool *t, const char *arg)
{
  unsigned long chunk = 0;

  if (arg && parse_uint (arg, &chunk) == -1) {
    error (t, "dump: '%s' is not a chunk number", arg);
    return;
  }
  if (chunk > 0xffffffff || mempool_dump (t->pool, (unsigned) chunk, stdout))
    error (t, "dump: no chunk %s (the pool has %u)", arg ? arg : "0",
           mempool_nr_chunks (t->pool));
}

static void
cmd_stats (struct tool *t)
{
  struct mempool_stats st;

  mempool_get_stats (t->pool, &st);
  printf ("chunk_size=%zu\nunit_size=%zu\n",
          mempool_chunk_size (t->pool), mempool_unit_size (t->pool));
#define P(field) printf (#field "=%" PRIu64 "\n", st.field)
  P (chunks); P (registrations); P (deregistrations); P (bytes_in_use);
  P (high_water); P (direct_allocs); P (direct_live); P (allocs);
  P (frees); P (failures); P (bad_frees);
#undef P
}

static void
cmd_check (struct tool *t)
{
  char msg[256];

  if (mempool_check (t->pool, msg, sizeof msg) == 0)
    printf ("ok\n");
  else
    error (t, "check: %s", msg);
}

static void
run (struct tool *t, char *line)
{
  char *cmd, *arg, *extra, *save;

  cmd = strtok_r (line, " \t\r\n", &save);
  if (cmd == NULL || cmd[0] == '#')
    return;
  arg = strtok_r (NULL, " \t\r\n", &save);
  extra = strtok_r (NULL, " \t\r\n", &save);
  if (extra) {
    error (t, "%s: unexpected '%s'", cmd, extra);
    return;
  }
  if (strcmp (cmd, "units") == 0)
    cmd_units (t, arg);
  else if (strcmp (cmd, "alloc") == 0)
    cmd_alloc (t, arg);
  else if (strcmp (cmd, "free") == 0)
    cmd_free (t, arg);
  else if (strcmp (cmd, "dump") == 0)
    cmd_dump (t, arg);
  else if (arg)
    error (t, "%s: unexpected '%s'", cmd, arg);
  else if (strcmp (cmd, "stats") == 0)
    cmd_stats (t);
  else if (strcmp (cmd, "check") == 0)
    cmd_check (t);
  else
    error (t, "unknown command '%s' (try pooltool --help)", cmd);
}

int
main (int argc, char *argv[])
{
  struct tool t = { 0 };
  char *line = NULL;
  size_t linecap = 0;
  int err;

  if (argc == 2 && strcmp (argv[1], "--help") == 0) {
    usage (stdout);
    return 0;
  }
  if (argc != 1) {
    usage (stderr);
    return 2;
  }
  err = new_pool (&t, 1024);
  if (err) {
    fprintf (stderr, "pooltool: cannot create the pool: %s\n",
             strerror (-err));
    return 2;
  }
  while (getline (&line, &linecap, stdin) != -1) {
    t.line++;
    run (&t, line);
  }
  err = ferror (stdin);
  free (line);
  free (t.segs);
  mempool_destroy (t.pool);
  if (err) {
    fprintf (stderr, "pooltool: reading stdin: %s\n", strerror (errno));
    return 2;
  }
  if (fflush (stdout) == EOF)
    return 2;
  return t.failed ? 1 : 0;
}
