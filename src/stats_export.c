/* JSON and Prometheus text from the stats attribute's text (see
 * stats_export.h). */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"
#include "stats_export.h"

/* One NAME=VALUE line: the name (not NUL-terminated) and the value.
 * Names are [a-z0-9_] (what both formats can carry unquoted); anything
 * else is not a counter line. */
struct line {
  const char *name;
  size_t len;
  uint64_t value;
};

static bool
parse_line (const char *s, size_t n, struct line *l)
{
  const char *eq = memchr (s, '=', n);
  uint64_t v = 0;

  if (eq == NULL || eq == s || eq + 1 == s + n)
    return false;
  for (const char *p = s; p < eq; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
      return false;
  for (const char *p = eq + 1; p < s + n; p++) {
    if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
      return false;
    v = v * 10 + (uint64_t) (*p - '0');
  }
  l->name = s;
  l->len = (size_t) (eq - s);
  l->value = v;
  return true;
}

/* Calls fn for every counter line of text, in order. */
static void
each_line (const char *text, void (*fn) (FILE *, const struct line *, void *),
           FILE *fp, void *arg)
{
  for (const char *s = text; *s;) {
    size_t n = strcspn (s, "\n");
    struct line l;

    if (parse_line (s, n, &l))
      fn (fp, &l, arg);
    s += n + (s[n] == '\n');
  }
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void
json_string (FILE *fp, const char *s)
{
  fputc ('"', fp);
  for (; *s; s++) {
    unsigned char c = (unsigned char) *s;

    if (c == '"' || c == '\\')
      fprintf (fp, "\\%c", c);
    else if (c < 0x20)
      fprintf (fp, "\\u%04x", c);
    else
      fputc (c, fp);
  }
  fputc ('"', fp);
}

static void
json_member (FILE *fp, const struct line *l, void *arg)
{
  bool *first = arg;

  fprintf (fp, "%s\n    \"%.*s\": %" PRIu64, *first ? "" : ",", (int) l->len,
           l->name, l->value);
  *first = false;
}

int
stats_write_json (FILE *fp, const char *mountpoint, const char *text)
{
  bool first = true;

  fputs ("{\n  \"mountpoint\": ", fp);
  json_string (fp, mountpoint);
  fputs (",\n  \"counters\": {", fp);
  each_line (text, json_member, fp, &first);
  fputs ("\n  }\n}\n", fp);
  return fflush (fp) == 0 && !ferror (fp) ? 0 : -EIO;
}

/* A label value: backslash, double quote and newline escaped, as the text
 * format wants. */
static void
prom_label (FILE *fp, const char *s)
{
  fputc ('"', fp);
  for (; *s; s++) {
    if (*s == '\\' || *s == '"')
      fprintf (fp, "\\%c", *s);
    else if (*s == '\n')
      fputs ("\\n", fp);
    else
      fputc (*s, fp);
  }
  fputc ('"', fp);
}

static void
prom_sample (FILE *fp, const struct line *l, void *arg)
{
  const char *mountpoint = arg;
  const struct stat_desc *d = stats_find (l->name, l->len);
  const char *suffix = d && d->type == STAT_COUNTER ? "_total" : "";
  const char *type = !d ? "untyped"
    : d->type == STAT_COUNTER ? "counter" : "gauge";

  /* Help texts are ours and hold no backslash or newline to escape. */
  fprintf (fp, "# HELP iserfs_%.*s%s %s\n", (int) l->len, l->name, suffix,
           d ? d->help : "iserfs counter");
  fprintf (fp, "# TYPE iserfs_%.*s%s %s\n", (int) l->len, l->name, suffix,
           type);
  fprintf (fp, "iserfs_%.*s%s{mountpoint=", (int) l->len, l->name, suffix);
  prom_label (fp, mountpoint);
  fprintf (fp, "} %" PRIu64 "\n", l->value);
}

int
stats_write_prometheus (FILE *fp, const char *mountpoint, const char *url,
                        const char *text)
{
  fputs ("# HELP iserfs_mount_info An iserfs mount: its mount point and URL\n"
         "# TYPE iserfs_mount_info gauge\n"
         "iserfs_mount_info{mountpoint=", fp);
  prom_label (fp, mountpoint);
  fputs (",url=", fp);
  prom_label (fp, url);
  fputs ("} 1\n", fp);
  each_line (text, prom_sample, fp, (void *) mountpoint);
  return fflush (fp) == 0 && !ferror (fp) ? 0 : -EIO;
}
