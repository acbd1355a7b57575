/* SCSI status and sense data: errno mapping and readable logging.  Pure
 * functions of their arguments (task_log_failure keeps what it last
 * logged, atomically): any thread. */
#ifndef ISERFS_SENSE_H
#define ISERFS_SENSE_H

#include <stdbool.h>

struct scsi_task;

/* What a task's status means for the caller: 0 for GOOD (and CONDITION
 * MET, or sense that reports no error), else -errno as a kernel initiator
 * would map it (-EIO, -EROFS, -ENOSPC, -EAGAIN, -EBUSY, ...). */
int task_error (int status, const struct scsi_task *task);

/* Log a failed command once, with sense key, ASC/ASCQ in words. */
void task_log_failure (const char *what, int status,
                       const struct scsi_task *task);

/* Whether the task failed because the target does not implement the
 * command (ILLEGAL REQUEST / INVALID OPERATION CODE or INVALID FIELD IN CDB). */
bool task_unsupported (int status, const struct scsi_task *task);

/* Whether a command that failed so, already sent again retries times,
 * should be sent once more: the transient conditions a kernel initiator
 * retries (a UNIT ATTENTION after a target restart or a capacity change,
 * NOT READY short of no medium, BUSY, TASK SET FULL), five times at most. */
bool task_worth_retrying (int status, const struct scsi_task *task,
                          unsigned retries);

#endif
