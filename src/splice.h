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

/* Smaller READs are copied: libfuse copies a reply under two pages even
 * from a pipe, and a small copy costs less than the splices. */
#define SPLICE_MIN_BYTES (64 * 1024)

/* A pipe; kept for reuse in a pool (a list through next) owned by the
 * engine of one session thread. */
struct spipe {
  int rd, wr;
  struct spipe *next;
};

/* A READ's data on its way through a pipe; part of the request, touched
 * on the session thread only. */
struct splice_sink {
  struct spipe *pipe;           /* NULL: the data goes to the buffer */
  size_t len;                   /* bytes the READ asked for */
  size_t piped;                 /* bytes of the data in the pipe, from the start */
  unsigned char state;
};

/* Whether this build and machine can splice reads at all: libiscsi has
 * the sink, and pipes can be made of twice the largest request or, where
 * that is above fs.pipe-max-size without CAP_SYS_RESOURCE, of that size
 * (then READs up to half of it are spliced).  Sets *why to a short
 * reason when not. */
bool splice_supported (size_t max_request, const char **why);

/* Give sk (a whole-block READ of len bytes sent as one command) a pipe
 * from *pool.  Returns false when none can be had; the READ then reads
 * into its buffer. */
bool splice_attach (struct spipe **pool, struct splice_sink *sk, size_t len);

/* Point task, a READ just sent, at sk's pipe (the command layer). */
void splice_arm (struct splice_sink *sk, struct scsi_task *task);

/* The last command of the READ is back: leave the data whole in the pipe
 * (the reply splices it out) or whole in the buffer at data.  Returns 0,
 * or -EIO when what the pipe held could not be moved to the buffer. */
int splice_settle (struct splice_sink *sk, void *data);

/* The pipe holding all of the data, or -1 if the data is in the buffer. */
int splice_fd (const struct splice_sink *sk);

/* The READ is being freed: its pipe goes back to *pool (or is closed, if
 * data is left in it). */
void splice_detach (struct spipe **pool, struct splice_sink *sk);

/* Close every pipe of *pool. */
void splice_pool_free (struct spipe **pool);

#endif
