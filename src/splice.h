/* READ data spliced from the TCP socket into a pipe, and from the pipe to
 * the reader, never copied into a buffer of ours.
 *
 * A READ's data normally takes two copies in iserfs: libiscsi reads it
 * from the socket into the request's buffer, and the FUSE reply copies it
 * from there into the reader's pages.  Raw libiscsi pays only the first.
 * With a pipe attached, the session thread moves the data with splice(2):
 * the pipe then holds references to the socket's own pages, and the reply
 * (fuse_reply_data with the pipe as its source) copies them once, into
 * the reader's pages.  It needs libiscsi's DATA-IN sink (contrib/libiscsi
 * patch 0008) and a TCP session; iSER has its own zero-copy path.
 *
 * Whatever goes wrong on the way -- a pipe that fills up, a command sent
 * again after a reconnect or a retry -- the data falls back to the
 * request's buffer, which every READ keeps: the sink declines and libiscsi
 * reads into the buffer as before, and at the end what the pipe holds is
 * either moved into the buffer or dropped.  All of it runs on the
 * session's thread. */
#ifndef ISERFS_SPLICE_H
#define ISERFS_SPLICE_H

#include <stdbool.h>
#include <stddef.h>

struct scsi_task;
struct session;
struct io_req;
struct scmd;

/* Smaller READs are copied: libfuse copies a reply under two pages even
 * from a pipe, and a small copy costs less than the splices. */
#define SPLICE_MIN_BYTES (64 * 1024)

/* A pipe of the session's pool. */
struct spipe {
  int rd, wr;
  struct spipe *next;           /* in the session's free list */
};

/* Whether this build and machine can splice reads at all: libiscsi has
 * the sink, and pipes can be made of twice the largest request or, where
 * that is above fs.pipe-max-size without CAP_SYS_RESOURCE, of that size
 * (then READs up to half of it are spliced).  Sets *why to a short
 * reason when not. */
bool splice_supported (size_t max_request, const char **why);

/* Give r (a whole-block READ sent as one command) a pipe from s's pool.
 * Returns false when none can be had; r then reads into its buffer. */
bool splice_attach (struct session *s, struct io_req *r);

/* Point the task of c, a READ just sent, at its request's pipe. */
void splice_arm (struct scmd *c, struct scsi_task *task);

/* The last command of r is back: leave the data whole in the pipe (the
 * reply splices it out) or whole in the buffer. */
void splice_settle (struct io_req *r);

/* The pipe holding all of r's data, or -1 if the data is in r's buffer. */
int splice_fd (const struct io_req *r);

/* r is being freed: its pipe goes back to the pool (or is closed, if data
 * is left in it). */
void splice_detach (struct io_req *r);

/* Close every pipe of s's pool. */
void splice_pool_free (struct session *s);

#endif
