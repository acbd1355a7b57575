/* Unit tests of the mount URL (src/url.c): the forms iserfs accepts come
 * apart into portal, target, LUN and transport as libiscsi's parser reads
 * them, and each malformed URL is refused with -EINVAL and the line that
 * says how to write it.  Also the portals a SendTargets answer lists
 * (src/portal.c).  No target, no root: only the parsers run. */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "check_run.h"
#include "portal.h"
#include "url.h"

/* libiscsi's parser fills in LIBISCSI_CHAP_* from the environment. */
static void
setup (void)
{
  unsetenv ("LIBISCSI_CHAP_USERNAME");
  unsetenv ("LIBISCSI_CHAP_PASSWORD");
  unsetenv ("LIBISCSI_CHAP_TARGET_USERNAME");
  unsetenv ("LIBISCSI_CHAP_TARGET_PASSWORD");
}

START_TEST (target_every_lun)
{
  struct url u;
  char err[512] = "";

  ck_assert_int_eq (url_parse ("iscsi://127.0.0.1/iqn.2026-01.test:a", &u,
                               err, sizeof err), 0);
  ck_assert_str_eq (u.portal, "127.0.0.1");
  ck_assert_str_eq (u.target, "iqn.2026-01.test:a");
  ck_assert_str_eq (u.user, "");
  ck_assert_int_eq (u.lun, -1);
  ck_assert (!u.iser);
}
END_TEST

START_TEST (one_lun_over_iser)
{
  struct url u;
  char err[512] = "";

  ck_assert_int_eq (url_parse ("iser://[::1]:3261/iqn.2026-01.test:a/3",
                               &u, err, sizeof err), 0);
  ck_assert_str_eq (u.portal, "[::1]:3261");
  ck_assert_str_eq (u.target, "iqn.2026-01.test:a");
  ck_assert_int_eq (u.lun, 3);
  ck_assert (u.iser);
}
END_TEST

START_TEST (portal)
{
  struct url u;
  char err[512] = "";

  ck_assert_int_eq (url_parse ("iscsi://host.example:3260", &u, err,
                               sizeof err), 0);
  ck_assert_str_eq (u.portal, "host.example:3260");
  ck_assert_str_eq (u.target, "");
  ck_assert_int_eq (u.lun, -1);
}
END_TEST

/* The CHAP user name of "USER@HOST", which libiscsi's parser drops when
 * no password comes with it. */
START_TEST (user_without_password)
{
  struct url u;
  char err[512] = "";

  ck_assert_int_eq (url_parse ("iscsi://alice@127.0.0.1:3261/iqn.2026-01.test:a",
                               &u, err, sizeof err), 0);
  ck_assert_str_eq (u.user, "alice");
  ck_assert_str_eq (u.portal, "127.0.0.1:3261");
  ck_assert_str_eq (u.target, "iqn.2026-01.test:a");
  ck_assert_int_eq (url_parse ("iser://bob@[::1]", &u, err, sizeof err), 0);
  ck_assert_str_eq (u.user, "bob");
  ck_assert_str_eq (u.portal, "[::1]");
}
END_TEST

/* Each refused URL and a piece of the line that must explain it. */
static const struct {
  const char *url, *says;
} bad[] = {
  { "127.0.0.1/iqn.x", "expected iscsi://HOST" },
  { "http://127.0.0.1/iqn.x", "unknown URL scheme 'http'" },
  { "iscsi://127.0.0.1:3260:iqn.2026-01.test:a",
    "write iscsi://127.0.0.1:3260/iqn.2026-01.test:a" },
  { "iscsi://127.0.0.1/iqn.2026-01.test:a/lun1", "('lun1' is not)" },
  { "iscsi://127.0.0.1/iqn.2026-01.test:a/", "nothing after the last '/'" },
  { "iscsi://127.0.0.1/iqn.2026-01.test:a/20000", "LUN 20000 is out of range" },
  { "iscsi://127.0.0.1:notaport/iqn.2026-01.test:a", "invalid port 'notaport'" },
  { "iscsi://alice%@127.0.0.1/iqn.2026-01.test:a", "refusing a password" },
  { "iscsi://alice%secret@127.0.0.1/iqn.2026-01.test:a",
    "refusing a password in the URL" },
};

START_TEST (refused)
{
  struct url u;
  char err[512] = "";

  ck_assert_int_eq (url_parse (bad[_i].url, &u, err, sizeof err), -EINVAL);
  ck_assert_msg (strstr (err, bad[_i].says) != NULL,
                 "%s: expected '%s' in: %s", bad[_i].url, bad[_i].says, err);
  /* The password is never repeated back. */
  ck_assert (strstr (err, "secret") == NULL);
}
END_TEST

/* A portal as SendTargets lists it: its group tag is no part of the
 * address, and an unspecified address is refused (a connection to it
 * would reach this host). */
static const struct {
  const char *portal;
  int r;
} listed[] = {
  { "192.0.2.1:3260,1", 0 },
  { "192.0.2.1:3261,7", 0 },
  { "192.0.2.1:3260", 0 },
  { "192.0.2.1,2", 0 },
  { "target.example:3260,1", 0 },
  { "[2001:db8::1]:3260,1", 0 },
  { "[2001:db8::1],1", 0 },
  { "0.0.0.0:3260,1", -EADDRNOTAVAIL },
  { "0.0.0.0", -EADDRNOTAVAIL },
  { "[::]:3260,1", -EADDRNOTAVAIL },
  { "[0:0::0]:3261", -EADDRNOTAVAIL },
  { "192.0.2.1:0,1", -EINVAL },
  { "[2001:db8::1:3260,1", -EINVAL },
  { ":3260,1", -EINVAL },
};

START_TEST (listed_portal)
{
  char err[512] = "";

  ck_assert_msg (portal_check_listed (listed[_i].portal, err, sizeof err)
                 == listed[_i].r, "%s: expected %d (%s)", listed[_i].portal,
                 listed[_i].r, err);
  if (listed[_i].r == -EADDRNOTAVAIL)
    ck_assert_msg (strstr (err, "names no address") != NULL, "%s: %s",
                   listed[_i].portal, err);
}
END_TEST

static Suite *
url_suite (void)
{
  Suite *s = suite_create ("url");
  TCase *tc = tcase_create ("parse");

  tcase_add_checked_fixture (tc, setup, NULL);
  tcase_add_test (tc, target_every_lun);
  tcase_add_test (tc, one_lun_over_iser);
  tcase_add_test (tc, portal);
  tcase_add_test (tc, user_without_password);
  tcase_add_loop_test (tc, refused, 0, sizeof bad / sizeof bad[0]);
  suite_add_tcase (s, tc);
  tc = tcase_create ("listed portal");
  tcase_add_loop_test (tc, listed_portal, 0, sizeof listed / sizeof listed[0]);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return check_run (url_suite (), CK_FORK_GETENV);
}
