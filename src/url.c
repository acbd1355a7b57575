/* See url.h.  libiscsi does the parsing; what is here are the checks its
 * parser leaves out, each with a line that says how to write the URL. */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <iscsi/iscsi.h>

#include "portal.h"
#include "url.h"

#define URL_FORMS "iscsi://HOST[:PORT][/TARGET[/LUN]] or iser://..."

/* "iscsi://HOST:3260:iqn...": the target name written after a colon, as
 * iscsiadm and some target consoles show a portal and target together.
 * Caught before the port check, which would only call "demo" (the end of
 * the IQN) an invalid port.  0, or -EINVAL with the reason in err. */
static int
check_target_after_colon (const char *u, const char *host, const char *path,
                          char *err, size_t errlen)
{
  size_t len = path ? (size_t) (path - host) : strlen (host);
  static const char *const kinds[] = { ":iqn.", ":eui.", ":naa.", NULL };

  for (int i = 0; kinds[i]; i++) {
    const char *c = strstr (host, kinds[i]);

    if (c && (size_t) (c - host) < len) {
      snprintf (err, errlen, "invalid URL '%s': the target name follows a "
                "'/', not a ':'; write %.*s/%s", u, (int) (c - u), u, c + 1);
      return -EINVAL;
    }
  }
  return 0;
}

/* ".../TARGET/lun1": the LUN is a number, as in the files' names' digits.
 * 0, or -EINVAL with the reason in err. */
static int
check_lun_is_number (const char *u, const char *path, char *err,
                     size_t errlen)
{
  const char *lun = path ? strchr (path + 1, '/') : NULL;

  if (lun == NULL)
    return 0;
  lun++;
  if (lun[0] == '\0') {
    snprintf (err, errlen, "invalid URL '%s': nothing after the last '/'; "
              "end the URL with the target name to mount every LUN, or add "
              "a LUN number (.../TARGET/1 for file lun1)", u);
    return -EINVAL;
  }
  if (strspn (lun, "0123456789") == strlen (lun))
    return 0;
  snprintf (err, errlen, "invalid URL '%s': the LUN after the target name "
            "must be a number ('%s' is not); write .../TARGET/1 for file "
            "lun1, or leave the LUN out to mount every LUN", u, lun);
  return -EINVAL;
}

/* "iscsi://USER@HOST/...": the CHAP user name.  libiscsi's parser keeps a
 * user name only together with a password (USER%PASSWORD@), which iserfs
 * refuses, so the name is read here.  0, or -EINVAL with the reason in err
 * when the user part carries a password or is too long. */
static int
take_user (const char *u, const char *host, const char *path, struct url *out,
           char *err, size_t errlen)
{
  size_t len = path ? (size_t) (path - host) : strlen (host);
  const char *at = memrchr (host, '@', len);

  if (at == NULL)
    return 0;
  if (memchr (host, '%', at - host)) {
    snprintf (err, errlen, "refusing a password in the URL (it would be "
              "visible in ps): use credentials=FILE or "
              "LIBISCSI_CHAP_PASSWORD");
    return -EINVAL;
  }
  if ((size_t) (at - host) >= sizeof out->user) {
    snprintf (err, errlen, "invalid URL '%s': the user name is longer than "
              "%zu bytes", u, sizeof out->user - 1);
    return -EINVAL;
  }
  memcpy (out->user, host, at - host);
  out->user[at - host] = '\0';
  return 0;
}

/* What libiscsi parsed, checked and copied out.  0, or -EINVAL with the
 * reason in err. */
static int
take_parts (const char *u, const struct iscsi_url *url, bool whole_target,
            struct url *out, char *err, size_t errlen)
{
  char why[256];

  if (url->passwd[0] || url->target_passwd[0]) {
    snprintf (err, errlen, "refusing a password in the URL (it would be "
              "visible in ps): use credentials=FILE or "
              "LIBISCSI_CHAP_PASSWORD");
    return -EINVAL;
  }
  if (url->portal[0] == '\0') {
    snprintf (err, errlen, "invalid URL '%s': no host", u);
    return -EINVAL;
  }
  /* libiscsi reads the LUN with strtol and puts its low 16 bits on the
   * wire: "-2" would quietly mean "every LUN" to us, 65537 LUN 1. */
  if (!whole_target && url->target[0] && (url->lun < 0 || url->lun > 16383)) {
    snprintf (err, errlen, "invalid URL '%s': LUN %d is out of range (0 to "
              "16383)", u, url->lun);
    return -EINVAL;
  }
  if (portal_check (url->portal, why, sizeof why) < 0) {
    snprintf (err, errlen, "invalid URL '%s': %s", u, why);
    return -EINVAL;
  }
  snprintf (out->portal, sizeof out->portal, "%s", url->portal);
  snprintf (out->target, sizeof out->target, "%s", url->target);
  out->lun = whole_target || url->target[0] == '\0' ? -1 : url->lun;
  out->iser = url->transport == ISER_TRANSPORT;
  return 0;
}

/* libiscsi's parser wants a LUN in a target URL; we accept a target URL
 * without one (every LUN) by asking it about LUN 0 and forgetting the LUN. */
int
url_parse (const char *u, struct url *out, char *err, size_t errlen)
{
  struct iscsi_context *iscsi = iscsi_create_context ("iqn.2026-01.org.iserfs:parse");
  const char *sep, *path;
  struct iscsi_url *url = NULL;
  char *with_lun = NULL;
  bool whole_target = false;
  int r = -EINVAL;

  memset (out, 0, sizeof *out);
  if (iscsi == NULL) {
    snprintf (err, errlen, "out of memory");
    return -ENOMEM;
  }
  sep = strstr (u, "://");
  if (sep == NULL) {
    snprintf (err, errlen, "invalid URL '%s': expected " URL_FORMS, u);
    goto out;
  }
  if (!((sep - u == 5 && strncmp (u, "iscsi", 5) == 0)
        || (sep - u == 4 && strncmp (u, "iser", 4) == 0))) {
    snprintf (err, errlen, "unknown URL scheme '%.*s' in '%s': expected "
              "iscsi:// or iser://", (int) (sep - u), u, u);
    goto out;
  }
  path = strchr (sep + 3, '/');
  if ((r = check_target_after_colon (u, sep + 3, path, err, errlen)) < 0
      || (r = check_lun_is_number (u, path, err, errlen)) < 0
      || (r = take_user (u, sep + 3, path, out, err, errlen)) < 0)
    goto out;
  r = -EINVAL;
  if (path == NULL || path[1] == '\0')
    url = iscsi_parse_portal_url (iscsi, u);
  else if (strchr (path + 1, '/') == NULL) {
    whole_target = true;
    if (asprintf (&with_lun, "%s/0", u) < 0) {
      with_lun = NULL;
      snprintf (err, errlen, "out of memory");
      r = -ENOMEM;
      goto out;
    }
    url = iscsi_parse_full_url (iscsi, with_lun);
  }
  else
    url = iscsi_parse_full_url (iscsi, u);
  if (url == NULL) {
    /* libiscsi's text is "Invalid URL ..." and its own syntax, which
     * knows nothing of our whole-target and whole-portal forms. */
    snprintf (err, errlen, "invalid URL '%s': expected " URL_FORMS, u);
    goto out;
  }
  r = take_parts (u, url, whole_target, out, err, errlen);
 out:
  if (url)
    iscsi_destroy_url (url);
  free (with_lun);
  iscsi_destroy_context (iscsi);
  return r;
}
