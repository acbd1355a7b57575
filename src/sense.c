/* SCSI errors become errnos the way a kernel initiator maps them, so that
 * applications see the same failures as on a local disk. */
#include <config.h>

#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include "log.h"
#include "sense.h"

/* 0 or -errno, like task_error. */
static int
sense_error (const struct scsi_sense *s)
{
  switch (s->key) {
  case SCSI_SENSE_NO_SENSE:
  case SCSI_SENSE_RECOVERED_ERROR:
    return 0;
  case SCSI_SENSE_DATA_PROTECTION:
    return -EROFS;
  case SCSI_SENSE_ILLEGAL_REQUEST:
    /* LBA out of range is the target's ENOSPC; other illegal requests
     * mean the command is not supported as sent. */
    if (s->ascq == SCSI_SENSE_ASCQ_LBA_OUT_OF_RANGE)
      return -ENOSPC;
    if (s->ascq == SCSI_SENSE_ASCQ_INVALID_OPERATION_CODE)
      return -EOPNOTSUPP;
    if (s->ascq == SCSI_SENSE_ASCQ_LOGICAL_UNIT_NOT_SUPPORTED)
      return -EIO;                       /* the LUN was removed */
    return -EINVAL;
  case SCSI_SENSE_NOT_READY:
  case SCSI_SENSE_UNIT_ATTENTION:
  case SCSI_SENSE_COMMAND_ABORTED:
    return -EAGAIN;
  case SCSI_SENSE_OVERFLOW_COMMAND:
    return -ENOSPC;
  case SCSI_SENSE_MEDIUM_ERROR:
  case SCSI_SENSE_HARDWARE_ERROR:
  default:
    return -EIO;
  }
}

int
task_error (int status, const struct scsi_task *task)
{
  switch (status) {
  case SCSI_STATUS_GOOD:
  case SCSI_STATUS_CONDITION_MET:
    return 0;
  case SCSI_STATUS_CHECK_CONDITION:
    return task ? sense_error (&task->sense) : -EIO;
  case SCSI_STATUS_BUSY:
  case SCSI_STATUS_TASK_SET_FULL:
  case SCSI_STATUS_RESERVATION_CONFLICT:
    return -EBUSY;
  case SCSI_STATUS_TIMEOUT:
    return -ETIMEDOUT;
  case SCSI_STATUS_CANCELLED:
    return -ECANCELED;
  default:
    return -EIO;
  }
}

bool
task_unsupported (int status, const struct scsi_task *task)
{
  return status == SCSI_STATUS_CHECK_CONDITION && task
    && task->sense.key == SCSI_SENSE_ILLEGAL_REQUEST
    && (task->sense.ascq == SCSI_SENSE_ASCQ_INVALID_OPERATION_CODE
        || task->sense.ascq == SCSI_SENSE_ASCQ_INVALID_FIELD_IN_CDB);
}

/* libiscsi 1.19 has no words for some keys; SPC-4 table 27 does. */
static const char *
sense_key_name (int key)
{
  static const char *const names[] = {
    "NO SENSE", "RECOVERED ERROR", "NOT READY", "MEDIUM ERROR",
    "HARDWARE ERROR", "ILLEGAL REQUEST", "UNIT ATTENTION", "DATA PROTECT",
    "BLANK CHECK", "VENDOR SPECIFIC", "COPY ABORTED", "ABORTED COMMAND",
    "RESERVED", "VOLUME OVERFLOW", "MISCOMPARE", "COMPLETED",
  };
  return key >= 0 && key < 16 ? names[key] : "UNKNOWN";
}

void
task_log_failure (const char *what, int status, const struct scsi_task *task)
{
  /* Log each distinct failure once: a failing disk would otherwise fill the
   * log with the same line for every block. */
  static _Atomic int last_key = -1, last_ascq = -1, last_status = -1;
  int key = -1, ascq = -1;

  if (status == SCSI_STATUS_CHECK_CONDITION && task) {
    key = task->sense.key;
    ascq = task->sense.ascq;
  }
  if (atomic_exchange (&last_status, status) == status
      && atomic_exchange (&last_key, key) == key
      && atomic_exchange (&last_ascq, ascq) == ascq)
    return;

  if (key >= 0)
  {
    const char *asc = scsi_sense_ascq_str (ascq);
    log_error ("%s failed: %s (sense key 0x%x), %s (ASC/ASCQ 0x%04x)", what,
               sense_key_name (key), key, asc ? asc : "no description",
               ascq);
  }
  else
    log_error ("%s failed: SCSI status 0x%x (%s)", what, status,
               strerror (-task_error (status, task)));
}

bool
task_worth_retrying (int status, const struct scsi_task *task,
                     unsigned retries)
{
  if (retries >= 5)
    return false;
  if (status == SCSI_STATUS_BUSY || status == SCSI_STATUS_TASK_SET_FULL)
    return true;
  return status == SCSI_STATUS_CHECK_CONDITION && task
    && (task->sense.key == SCSI_SENSE_UNIT_ATTENTION
        || (task->sense.key == SCSI_SENSE_NOT_READY
            && task->sense.ascq != SCSI_SENSE_ASCQ_MEDIUM_NOT_PRESENT));
}
