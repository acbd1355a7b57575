/* SCSI status and sense data: errno mapping and readable logging. */
#ifndef ISERFS_SENSE_H
#define ISERFS_SENSE_H

struct scsi_task;

/* The errno a failed task means for the caller (0 for GOOD). */
int task_errno (int status, const struct scsi_task *task);

/* Log a failed command once, with sense key, ASC/ASCQ in words. */
void task_log_failure (const char *what, int status,
                       const struct scsi_task *task);

/* True if the task failed because the target does not implement the
 * command (ILLEGAL REQUEST / INVALID OPERATION CODE or INVALID FIELD IN CDB). */
int task_unsupported (int status, const struct scsi_task *task);

#endif
