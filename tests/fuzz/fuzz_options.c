/* libFuzzer harness for what a user (or an fstab line) types: the input is
 * split at NUL and newline bytes into an argument vector, parsed as iserfs's
 * command line (options_parse: libfuse's option parser plus our checks),
 * then the URL (options_parse_url, libiscsi's parser plus our checks).
 * Besides memory errors (ASan) and leaks, it checks what callers rely on:
 * a parsed URL has a host, a LUN of -1 or 0..65535, NUL-terminated fields,
 * and never carries a password. */
#include <config.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

#define MAX_ARGS 32

static void __attribute__ ((noreturn))
broken (const char *what)
{
  fprintf (stderr, "fuzz_options: invariant broken: %s\n", what);
  abort ();
}

static void
check_terminated (const char *field, size_t size, const char *what)
{
  if (memchr (field, '\0', size) == NULL)
    broken (what);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char *copy = malloc (size + 1);
  char *argv[MAX_ARGS + 2];
  int argc = 0;
  struct fuse_args args;
  struct options o;

  if (copy == NULL)
    return 0;
  memcpy (copy, data, size);
  copy[size] = '\0';
  argv[argc++] = (char *) "iserfs";
  for (char *p = copy, *end = copy + size; p <= end && argc <= MAX_ARGS;) {
    size_t len = strcspn (p, "\n");
    p[len] = '\0';
    argv[argc++] = p;
    p += len + 1;
  }
  argv[argc] = NULL;

  args = (struct fuse_args) FUSE_ARGS_INIT (argc, argv);
  if (options_parse (&args, &o) == 0 && o.url) {
    if (options_parse_url (&o) == 0) {
      check_terminated (o.portal, sizeof o.portal, "portal not terminated");
      check_terminated (o.target, sizeof o.target, "target not terminated");
      check_terminated (o.user, sizeof o.user, "user not terminated");
      if (o.portal[0] == '\0')
        broken ("a URL accepted without a host");
      if (o.lun < -1 || o.lun > 16383)
        broken ("LUN out of range");
      if (o.password != NULL)
        broken ("a password taken from the URL");
    }
  }
  options_free (&o);
  fuse_opt_free_args (&args);
  free (copy);
  return 0;
}
