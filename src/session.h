/* A session: one iSCSI login to one target (with what libiscsi 1.19 needs
 * worked around), and the thread that runs its event loop.  libiscsi
 * contexts are not thread safe, so every libiscsi call on a running session
 * happens on that session's thread; other threads hand work to the layer
 * above and wake the thread with session_wake().
 *
 * The session knows nothing of commands or requests: the layer above (the
 * command layer, command.h) is its client, which the loop calls at the
 * points listed in struct session_client.  Calls go down only. */
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
#include "session_config.h"

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

/* The layer above, as the session thread calls it (all on that thread,
 * except closed()). */
struct session_client {
  /* Work was handed over (session_wake, or the ext source was ready). */
  void (*take) (void *opaque);
  /* After every turn.  back: the login came back this turn; second: a new
   * second began (now is clock_mono_s()). */
  void (*tick) (void *opaque, time_t now, bool back, bool second);
  /* Whether nothing is left to do: a stopping session may end. */
  bool (*idle) (void *opaque);
  /* Stopping, and out of time or the target gone: answer everything. */
  void (*cancel_all) (void *opaque);
  /* The libiscsi context is destroyed (session_close, main thread): no
   * callback can come any more; free what the client keeps. */
  void (*closed) (void *opaque);
  void *opaque;
};

struct session {
  struct iscsi_context *iscsi;
  char *target;
  char *portal;
  bool iser;
  unsigned timeout;
  unsigned fence_timeout; /* session_config's */
  unsigned queue_depth;
  uint64_t poll_ns;             /* see poll_briefly() in session.c */
  uint32_t max_xfer_bytes;      /* transport's cap on one command's data */
  struct rdma_pool *rdma;       /* the pool on the wire (iSER with the hook) */
  int64_t memlock_reserved;     /* memlock_reserve_iser's, while open */
  bool splice;                  /* READ data may be spliced (splice.h) */
  const struct iobuf_allocator *alloc;  /* I/O buffers; NULL: the default */

  struct lun *luns;
  unsigned nr_luns;

  struct session_client client;  /* the layer above; set before the start */
  struct engine *engine;        /* carries its requests (stack.c) */

  /* Set by the command layer on REPORTED LUNS DATA HAS CHANGED, taken
   * (and cleared) by whoever scans the target's LUNs again. */
  atomic_bool luns_changed;

  /* Cross-thread. */
  pthread_t thread;
  bool running;
  int wake_fd;
  atomic_bool stopping;

  /* Owned by the session thread. */
  unsigned inflight;            /* commands with libiscsi: kept by the
                                 * command layer, read to decide on polling */
  time_t down_since;            /* when the session was lost; 0 while up
                                 * (other threads: atomic loads only) */
  time_t last_scan;             /* both clock_mono_s() */
  unsigned error_wakeups;       /* poll() returns on a socket in error, this second */
  struct session_ext ext;       /* another event source; fd -1: none */

  /* Other paths to the same target (session_add_path): sessions whose
   * sockets this session's thread serves too, so that one thread runs
   * every libiscsi context, command layer and the engine above them. */
  struct session *next_path;    /* the next one this thread serves */
  struct session *first_path;   /* the session whose thread serves this
                                 * one; NULL: itself */
  time_t last_service;          /* a turn without events was given, at */
  /* libiscsi 1.19 with automatic reconnects off (command.c, relogin):
   * the connection was lost, and the layer above logs in again. */
  bool relogin_by_hand;
  bool dropped;
};

/* Connect and log in.  On failure returns NULL and a one-line reason in err. */
struct session *session_open (const struct session_config *cfg,
                              char *err, size_t errlen);

/* Probe the target's LUNs (synchronously, before the thread starts): every
 * LUN of a direct-access block type, or only `only_lun` if >= 0.
 * Returns 0, or -errno with a one-line reason in err. */
int session_probe_luns (struct session *s, int only_lun, unsigned max_xfer,
                        char *err, size_t errlen);

/* The layer above (before session_start). */
void session_set_client (struct session *s, const struct session_client *c);

/* Start and stop the event-loop thread (a client must be set): 0 or
 * -errno.  session_stop waits (bounded by the session timeout) until the
 * client is idle. */
int session_start (struct session *s);
void session_stop (struct session *s);

/* Log out and free everything. */
void session_close (struct session *s);

/* Serve ext on the session thread too; before session_start. */
void session_attach (struct session *s, const struct session_ext *ext);

/* Serve other, a session to the same target through another portal, on
 * s's thread (before session_start; both logged in, LUNs probed).
 * session_close(s) closes it too. */
void session_add_path (struct session *s, struct session *other);

/* Whether every session s's thread serves is down; main thread before
 * the start, session thread after. */
bool session_all_down (const struct session *s);

/* Make the session thread take a turn (any thread). */
void session_wake (struct session *s);

/* Whether the caller is s's session thread. */
bool session_on_thread (const struct session *s);

#endif
