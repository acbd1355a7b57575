/* JSON and Prometheus text from the stats attribute's text (see
 * stats_export.h). */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"
#include "alua.h"
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

/* A path's line (mpath.h): "path TARGET PORTAL state=up|down inflight=N
 * commands=N errors=N failovers=N [alua=lunN:STATE,...]". */
struct path_line {
  char target[256], portal[300];
  char alua[512];               /* "" without ALUA */
  bool up;
  uint64_t v[4];                /* in path_keys' order */
};

static const char *const path_keys[] = {
  "inflight", "commands", "errors", "failovers",
};

static bool
parse_path_line (const char *s, size_t n, struct path_line *pl)
{
  char line[4096], *save = NULL, *tok;
  unsigned field = 0;

  if (n < 5 || strncmp (s, "path ", 5) != 0)
    return false;
  /* Only the alua list, last, can be that long: cut it. */
  if (n >= sizeof line)
    n = sizeof line - 1;
  memcpy (line, s, n);
  line[n] = '\0';
  memset (pl, 0, sizeof *pl);
  for (tok = strtok_r (line, " ", &save); tok; tok = strtok_r (NULL, " ", &save), field++) {
    char *eq = strchr (tok, '=');

    if (field == 1)
      snprintf (pl->target, sizeof pl->target, "%s", tok);
    else if (field == 2)
      snprintf (pl->portal, sizeof pl->portal, "%s", tok);
    else if (field > 2 && eq) {
      *eq = '\0';
      if (strcmp (tok, "state") == 0)
        pl->up = strcmp (eq + 1, "up") == 0;
      if (strcmp (tok, "alua") == 0)
        snprintf (pl->alua, sizeof pl->alua, "%s", eq + 1);
      for (unsigned k = 0; k < sizeof path_keys / sizeof path_keys[0]; k++)
        if (strcmp (tok, path_keys[k]) == 0)
          pl->v[k] = strtoull (eq + 1, NULL, 10);
    }
  }
  return field >= 3;
}

/* Calls fn for every path line of text, in order. */
static void
each_path (const char *text,
           void (*fn) (FILE *, const struct path_line *, void *), FILE *fp,
           void *arg)
{
  for (const char *s = text; *s;) {
    size_t n = strcspn (s, "\n");
    struct path_line pl;

    if (parse_path_line (s, n, &pl))
      fn (fp, &pl, arg);
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

static void
json_path (FILE *fp, const struct path_line *pl, void *arg)
{
  bool *first = arg;

  fputs (*first ? ",\n  \"paths\": [\n    {\"target\": " : ",\n    {\"target\": ",
         fp);
  json_string (fp, pl->target);
  fputs (", \"portal\": ", fp);
  json_string (fp, pl->portal);
  fprintf (fp, ", \"state\": \"%s\"", pl->up ? "up" : "down");
  for (unsigned k = 0; k < sizeof path_keys / sizeof path_keys[0]; k++)
    fprintf (fp, ", \"%s\": %" PRIu64, path_keys[k], pl->v[k]);
  if (pl->alua[0]) {
    fputs (", \"alua\": ", fp);
    json_string (fp, pl->alua);
  }
  fputc ('}', fp);
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
  fputs ("\n  }", fp);
  /* With several paths to a target (mpath.h), one object each. */
  first = true;
  each_path (text, json_path, fp, &first);
  if (!first)
    fputs ("\n  ]", fp);
  fputs ("\n}\n", fp);
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

/* One family of per-path samples: which value, and how it is shown. */
struct path_family {
  const char *mountpoint;
  int key;                      /* index in path_keys, -1: state */
};

static void
prom_path_sample (FILE *fp, const struct path_line *pl, void *arg)
{
  const struct path_family *f = arg;

  fprintf (fp, "iserfs_path_%s%s{mountpoint=",
           f->key < 0 ? "up" : path_keys[f->key],
           f->key > 0 ? "_total" : "");
  prom_label (fp, f->mountpoint);
  fputs (",target=", fp);
  prom_label (fp, pl->target);
  fputs (",portal=", fp);
  prom_label (fp, pl->portal);
  fprintf (fp, "} %" PRIu64 "\n", f->key < 0 ? (uint64_t) pl->up : pl->v[f->key]);
}

/* The ALUA state of each LUN through the path, from its alua= list
 * ("lun1:standby,lun2:active/optimized"): its SPC-4 code, as alua_state. */
static void
prom_path_alua (FILE *fp, const struct path_line *pl, void *arg)
{
  char list[sizeof pl->alua], *save = NULL, *tok;

  snprintf (list, sizeof list, "%s", pl->alua);
  for (tok = strtok_r (list, ",", &save); tok; tok = strtok_r (NULL, ",", &save)) {
    char *colon = strchr (tok, ':');
    int code = -1;

    if (strncmp (tok, "lun", 3) != 0 || colon == NULL)
      continue;
    *colon = '\0';
    for (int c = 0; c < 16 && code < 0; c++)
      if (strcmp (colon + 1, alua_state_name (c)) == 0)
        code = c;
    if (code < 0)
      continue;
    fputs ("iserfs_path_alua_state{mountpoint=", fp);
    prom_label (fp, arg);
    fputs (",target=", fp);
    prom_label (fp, pl->target);
    fputs (",portal=", fp);
    prom_label (fp, pl->portal);
    fputs (",lun=", fp);
    prom_label (fp, tok + 3);
    fprintf (fp, "} %d\n", code);
  }
}

static void
count_alua (FILE *fp, const struct path_line *pl, void *arg)
{
  (void) fp;
  if (pl->alua[0])
    (*(unsigned *) arg)++;
}

static void
count_path (FILE *fp, const struct path_line *pl, void *arg)
{
  (void) fp;
  (void) pl;
  (*(unsigned *) arg)++;
}

/* Per-path samples, labelled by target and portal, each family with its
 * HELP and TYPE lines once, as the text format wants. */
static void
prom_paths (FILE *fp, const char *mountpoint, const char *text)
{
  static const char *const help[] = {
    "Whether the path is logged in (1) or not (0)",
    "Commands sent on the path and not back yet",
    "Commands sent on the path",
    "Commands that failed on the path",
    "Commands moved off the path: it was lost, or refused them (ALUA)",
  };
  unsigned n = 0;

  each_path (text, count_path, fp, &n);
  if (n == 0)
    return;
  for (int key = -1; key < 4; key++) {
    struct path_family f = { mountpoint, key };
    const char *name = key < 0 ? "up" : path_keys[key];
    const char *suffix = key > 0 ? "_total" : "";

    fprintf (fp, "# HELP iserfs_path_%s%s %s\n", name, suffix, help[key + 1]);
    fprintf (fp, "# TYPE iserfs_path_%s%s %s\n", name, suffix,
             key > 0 ? "counter" : "gauge");
    each_path (text, prom_path_sample, fp, &f);
  }
  n = 0;
  each_path (text, count_alua, fp, &n);
  if (n == 0)
    return;
  fputs ("# HELP iserfs_path_alua_state ALUA state of a LUN through the path "
         "(SPC-4 code: 0 active/optimized, 1 active/non-optimized, "
         "2 standby, 3 unavailable, 14 offline, 15 transitioning)\n"
         "# TYPE iserfs_path_alua_state gauge\n", fp);
  each_path (text, prom_path_alua, fp, (void *) mountpoint);
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
  prom_paths (fp, mountpoint, text);
  return fflush (fp) == 0 && !ferror (fp) ? 0 : -EIO;
}
