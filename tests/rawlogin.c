/* rawlogin: the login and the event-loop turn both raw libiscsi test
 * programs need, in one place.
 * Header digests are off: the programs measure or check data transfer,
 * and rawio must compare with iserfs, which negotiates none by default. */
#include <config.h>

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <iscsi/scsi-lowlevel.h>

#include "rawlogin.h"

int
rawlogin (struct rawlogin *l, const char *prog, const char *initiator,
          const char *url_text)
{
  struct iscsi_url *url;
  struct scsi_task *t;
  struct scsi_readcapacity16 *rc16;

  l->iscsi = iscsi_create_context (initiator);
  if (l->iscsi == NULL) {
    fprintf (stderr, "%s: out of memory\n", prog);
    return -1;
  }
  url = iscsi_parse_full_url (l->iscsi, url_text);
  if (url == NULL) {
    fprintf (stderr, "%s: bad URL %s: %s\n", prog, url_text,
             iscsi_get_error (l->iscsi));
    return -1;
  }
  iscsi_set_targetname (l->iscsi, url->target);
  iscsi_set_session_type (l->iscsi, ISCSI_SESSION_NORMAL);
  iscsi_set_header_digest (l->iscsi, ISCSI_HEADER_DIGEST_NONE);
  l->lun = url->lun;
  if (iscsi_full_connect_sync (l->iscsi, url->portal, url->lun) != 0) {
    fprintf (stderr, "%s: login to %s failed: %s\n", prog, url->portal,
             iscsi_get_error (l->iscsi));
    iscsi_destroy_url (url);
    return -1;
  }
  iscsi_destroy_url (url);
  t = iscsi_readcapacity16_sync (l->iscsi, l->lun);
  if (t == NULL || t->status != SCSI_STATUS_GOOD
      || (rc16 = scsi_datain_unmarshall (t)) == NULL) {
    fprintf (stderr, "%s: READ CAPACITY(16) failed: %s\n", prog,
             iscsi_get_error (l->iscsi));
    return -1;
  }
  l->block_size = rc16->block_length;
  l->nr_blocks = rc16->returned_lba + 1;
  scsi_free_scsi_task (t);
  return 0;
}

int
rawlogin_service (struct iscsi_context *iscsi, const char *prog)
{
  struct pollfd pfd = {
    .fd = iscsi_get_fd (iscsi), .events = iscsi_which_events (iscsi),
  };

  if (poll (&pfd, 1, 1000) < 0 && errno != EINTR) {
    fprintf (stderr, "%s: poll: %s\n", prog, strerror (errno));
    return -1;
  }
  if (iscsi_service (iscsi, pfd.revents) < 0) {
    fprintf (stderr, "%s: %s\n", prog, iscsi_get_error (iscsi));
    return -1;
  }
  return 0;
}

int
rawlogin_parse_uint (const char *s, unsigned *v)
{
  char *end;
  unsigned long n;

  errno = 0;
  n = strtoul (s, &end, 0);
  if (errno || end == s || *end || n > UINT32_MAX)
    return -1;
  *v = n;
  return 0;
}
