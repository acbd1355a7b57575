/* A session: one iSCSI login to one target, and the thread that runs its
 * event loop.  libiscsi contexts are not thread safe, so every libiscsi call
 * on a running session happens on that session's thread; other threads hand
 * it work through session_submit(). */
#ifndef ISERFS_SESSION_H
#define ISERFS_SESSION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "iobuf.h"
#include "lun.h"
#include "recovery.h"

struct io_req;
struct scmd;

/* Another source of events served by the session thread, so that work
 * arriving there needs no hand-off between threads (fuse/uring.c: FUSE
 * requests from an io_uring).  ready() runs when fd is readable, turn()
 * before every wait; both on the session thread. */
struct session_ext {
  int fd;
  void (*ready) (void *opaque);
  void (*turn) (void *opaque);
  void *opaque;
};

struct session_config {
  const char *portal;           /* host[:port] */
  const char *target;           /* target IQN; NULL for a discovery session */
  bool iser;                    /* transport: iSER instead of TCP */
  const char *initiator_name;
  const char *user, *password;                  /* CHAP, may be NULL */
  const char *target_user, *target_password;    /* mutual CHAP, may be NULL */
  bool header_digest;           /* CRC32C header digest */
  unsigned timeout;             /* seconds; 0 = none */
  unsigned queue_depth;         /* commands in flight at most */
  unsigned poll_us;             /* poll this long before sleeping; 0 = never */
  bool splice;                  /* splice READ data when it can (TCP) */
};

struct session {
  struct iscsi_context *iscsi;
  char *target;
  char *portal;
  bool iser;
  unsigned timeout;
  unsigned queue_depth;
  uint64_t poll_ns;             /* see poll_briefly() in session.c */
  uint32_t max_xfer_bytes;      /* transport's cap on one command's data */
  struct rdma_pool *rdma;       /* the pool on the wire (iSER with the hook) */
  bool splice;                  /* READ data may be spliced (splice.h) */
  const struct iobuf_allocator *alloc;  /* I/O buffers; NULL: the default */

  struct lun *luns;
  unsigned nr_luns;

  /* Cross-thread hand-off. */
  pthread_t thread;
  bool running;
  int wake_fd;
  atomic_bool stopping;
  pthread_mutex_t lock;
  struct io_req *submit_head, *submit_tail;

  /* Owned by the session thread. */
  unsigned inflight;
  struct scmd *wait_head, *wait_tail;
  struct io_req *active;        /* submitted, not yet freed */
  time_t down_since;            /* when the session was lost; 0 while up */
  time_t last_scan;             /* both clock_mono_s() */
  unsigned error_wakeups;       /* poll() returns on a socket in error, this second */
  struct spipe *pipes;          /* splice.c's free pipes */
  struct session_ext ext;       /* another event source; fd -1: none */
  struct recovery eh;           /* commands past their deadline */
};

/* Connect and log in.  On failure returns NULL and a one-line reason in err. */
struct session *session_open (const struct session_config *cfg,
                              char *err, size_t errlen);

/* Probe the target's LUNs (synchronously, before the thread starts): every
 * LUN of a direct-access block type, or only `only_lun` if >= 0.
 * Returns 0, or -errno with a one-line reason in err. */
int session_probe_luns (struct session *s, int only_lun, unsigned max_xfer,
                        char *err, size_t errlen);

/* Start and stop the event-loop thread.  session_stop waits (bounded by the
 * session timeout) for commands in flight to finish. */
int session_start (struct session *s);
void session_stop (struct session *s);

/* Log out and free everything. */
void session_close (struct session *s);

/* Hand a request to the session thread (any thread). */
void session_submit (struct session *s, struct io_req *r);

/* Serve ext on the session thread too; before session_start. */
void session_attach (struct session *s, const struct session_ext *ext);

/* Make the session thread take a turn (any thread). */
void session_wake (struct session *s);

/* Whether the caller is s's session thread. */
bool session_on_thread (const struct session *s);

/* Engine hooks, called on the session thread (io.c). */
void session_issue (struct session *s, struct scmd *c);

#endif
