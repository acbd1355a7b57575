/* alua_answers: what the test ALUA stand-ins answer (see alua_answers.h). */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alua_answers.h"

void
buf_add (struct buf *b, const void *p, size_t n)
{
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;

    while (cap < b->len + n)
      cap *= 2;
    b->b = realloc (b->b, cap);
    if (b->b == NULL) {
      fprintf (stderr, "alua: out of memory\n");
      exit (1);
    }
    b->cap = cap;
  }
  memcpy (b->b + b->len, p, n);
  b->len += n;
}

void
buf_free (struct buf *b)
{
  free (b->b);
  memset (b, 0, sizeof *b);
}

static const struct {
  const char *name;
  uint8_t code;
} state_names[] = {
  { "ao", 0x0 }, { "ano", 0x1 }, { "standby", 0x2 }, { "unavailable", 0x3 },
  { "offline", 0xe }, { "transitioning", 0xf },
};

const char *
alua_state_name (uint8_t s)
{
  for (size_t i = 0; i < sizeof state_names / sizeof state_names[0]; i++)
    if (state_names[i].code == s)
      return state_names[i].name;
  return "?";
}

int
alua_states_load (const char *who, const char *file, int my_group,
                  struct alua_states *st, bool *changed)
{
  struct alua_group g[ALUA_MAX_GROUPS];
  unsigned n = 0, id;
  char line[256], name[64];
  FILE *fp = fopen (file, "r");

  *changed = false;
  if (fp == NULL) {
    fprintf (stderr, "%s: cannot read %s: %s\n", who, file, strerror (errno));
    return -1;
  }
  while (fgets (line, sizeof line, fp)) {
    bool known = false;

    if (line[0] == '#' || line[strspn (line, " \t\n")] == '\0')
      continue;
    if (sscanf (line, "%u %63s", &id, name) != 2 || id > 0xffff
        || n == ALUA_MAX_GROUPS) {
      fprintf (stderr, "%s: %s: bad line '%.*s'\n", who, file,
               (int) strcspn (line, "\n"), line);
      fclose (fp);
      return -1;
    }
    for (size_t i = 0; i < sizeof state_names / sizeof state_names[0]; i++)
      if (strcmp (name, state_names[i].name) == 0) {
        g[n] = (struct alua_group) { (uint16_t) id, state_names[i].code };
        known = true;
      }
    if (!known) {
      fprintf (stderr, "%s: %s: unknown state '%s'\n", who, file, name);
      fclose (fp);
      return -1;
    }
    n++;
  }
  fclose (fp);
  *changed = n != st->n || memcmp (g, st->g, n * sizeof g[0]) != 0;
  memcpy (st->g, g, n * sizeof g[0]);
  st->n = n;
  for (unsigned i = 0; i < n; i++)
    fprintf (stderr, "%s: group %u: %s%s\n", who, g[i].id,
             alua_state_name (g[i].state),
             g[i].id == my_group ? " (this port)" : "");
  return 0;
}

void
alua_rtpg_data (struct buf *d, const struct alua_states *st, bool extended)
{
  uint8_t hdr[8] = { 0 };
  size_t start = d->len;

  buf_add (d, hdr, extended ? 8 : 4);
  if (extended) {
    d->b[start + 4] = 0x10;     /* format type 001b */
    d->b[start + 5] = 10;       /* implicit transition time, s */
  }
  for (unsigned i = 0; i < st->n; i++) {
    uint8_t g[12] = { 0 };

    g[0] = st->g[i].state;
    g[1] = 0x8f;                /* T_SUP U_SUP S_SUP AN_SUP AO_SUP */
    g[2] = (uint8_t) (st->g[i].id >> 8);
    g[3] = (uint8_t) st->g[i].id;
    g[5] = 0x02;                /* altered by an implicit transition */
    g[7] = 1;                   /* one port: relative id = group id */
    g[10] = (uint8_t) (st->g[i].id >> 8);
    g[11] = (uint8_t) st->g[i].id;
    buf_add (d, g, sizeof g);
  }
  put32 (d->b + start, (uint32_t) (d->len - start) - 4);
}

bool
alua_vpd83_data (struct buf *d, const uint8_t *t, size_t tlen, int group)
{
  uint8_t hdr[4], ours[16] = {
    0x01, 0x94, 0, 4, 0, 0, (uint8_t) (group >> 8), (uint8_t) group,
    0x01, 0x95, 0, 4, 0, 0, (uint8_t) (group >> 8), (uint8_t) group,
  };
  uint32_t plen;

  if (tlen < 4 || t[1] != 0x83)
    return false;
  plen = (uint32_t) (t[2] << 8 | t[3]) + sizeof ours;
  if (plen > 0xffff)
    return false;
  memcpy (hdr, t, 4);
  hdr[2] = (uint8_t) (plen >> 8);
  hdr[3] = (uint8_t) plen;
  buf_add (d, hdr, 4);
  buf_add (d, ours, sizeof ours);
  buf_add (d, t + 4, tlen - 4);
  return true;
}

void
alua_sense_segment (uint8_t d[ALUA_SENSE_SEG], uint8_t key, uint8_t asc,
                    uint8_t ascq)
{
  memset (d, 0, ALUA_SENSE_SEG);
  d[1] = 18;                    /* SenseLength */
  d[2] = 0x70;                  /* current, fixed format */
  d[4] = key;
  d[9] = 10;
  d[14] = asc;
  d[15] = ascq;
}

uint32_t
alua_alloc_len (const uint8_t *cdb, uint32_t edtl)
{
  uint32_t alloc = edtl;

  if (cdb[0] == 0x12 && (uint32_t) (cdb[3] << 8 | cdb[4]) < alloc)
    alloc = (uint32_t) (cdb[3] << 8 | cdb[4]);
  else if (cdb[0] == 0xa3 && get32 (cdb + 6) < alloc)
    alloc = get32 (cdb + 6);
  return alloc;
}

bool
alua_unit_attention (const uint8_t *p, size_t len)
{
  size_t dlen = (size_t) get32 (p + 4) & 0xffffff;
  const uint8_t *d = p + ALUA_BHS + p[4] * 4;

  if ((p[0] & 0x3f) != 0x21 || p[3] != 0x02 || dlen < 2 + 3
      || ALUA_BHS + (size_t) p[4] * 4 + dlen > len)
    return false;
  if ((d[2] & 0x7f) == 0x70 || (d[2] & 0x7f) == 0x71)
    return (d[4] & 0x0f) == 0x06;
  return (d[3] & 0x0f) == 0x06;         /* descriptor format: 0x72/0x73 */
}
