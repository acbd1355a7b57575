/* FUSE over io_uring: requests come as completions on a ring that the
 * first session's thread serves beside its iSCSI socket.
 *
 * Why: at 4 KiB × 32 this machine is short of CPU, and much of iserfs's
 * went into threads waking threads: a FUSE worker woken in read() on
 * /dev/fuse hands each READ to the session thread, which wakes for it.
 * With the kernel's FUSE io_uring (Linux 6.14 and later, when the fuse
 * module's enable_uring is Y), the session thread takes READ and WRITE
 * from the ring and starts their commands itself, and the answers of a
 * turn go back in one io_uring_enter, which also fetches the requests
 * that came meanwhile.  Requests that may wait (fsync, flush, release,
 * fallocate, ...) run on a thread of their own, as they would on a
 * worker.  FORGET and INTERRUPT still come through /dev/fuse, which
 * libfuse's loop keeps reading (fuse/main.c, run_loop).  docs/fuse-uring.md has the
 * kernel's side.
 *
 * An entry is one request slot: a header buffer and a payload buffer the
 * kernel copies a request into and a reply out of.  Its unique (the
 * kernel's request id) maps it back when libfuse writes the reply, which
 * it does through the writev hook below (fuse_session_custom_io). */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "jobs.h"
#include "log.h"
#include "stats.h"
#include "uring.h"

#ifdef HAVE_LIBURING
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <linux/fuse.h>
#include <liburing.h>

#include "uring_abi.h"

/* The kernel fills an entry from task_work, not from a system call that
 * valgrind sees: tell memcheck the request's bytes are defined. */
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#else
#define VALGRIND_MAKE_MEM_DEFINED(addr, len) ((void) (addr), (void) (len))
#endif

/* Room before the payload for the in-header and the op header, so that
 * libfuse sees the request as one buffer, as if read() from /dev/fuse. */
#define PREFIX 4096
#define HASH_SIZE 1024                  /* > entries; a power of two */
#define MAX_ENTRIES 256                 /* all queues together */
#define ENABLE_URING "/sys/module/fuse/parameters/enable_uring"

struct ent {
  struct ring_req_header *hdr;
  char *buf;                            /* PREFIX, then the payload */
  struct iovec iov[2];                  /* what REGISTER gives the kernel */
  uint16_t qid;
  uint64_t unique;                      /* the request it holds; 0: none */
  struct ent *hnext;
  unsigned op;                          /* the command last prepared */
  struct fuse_buf job_buf;              /* the request, for run_job */
  bool reregistered;                    /* once, after a lost COMMIT */
};

static struct {
  struct io_uring ring;
  bool ring_ok;
  pthread_mutex_t lock;                 /* the SQ and the hash */
  struct fuse_session *se;
  struct session *owner;
  int dev_fd;
  unsigned nr_queues, depth;
  size_t payload;
  struct ent *ents;
  struct ent *hash[HASH_SIZE];
  atomic_bool init_replied_next;        /* INIT seen: its reply is next */
  atomic_bool want_register;
  bool registered;
  bool stopped;                         /* uring_stop: answers go nowhere */
  atomic_bool quiet;                    /* uring_quiesce: refuse requests */
  bool quiet_seen;                      /* the owner saw it (under lock) */
  pthread_cond_t quiet_cond;
} U = { .lock = PTHREAD_MUTEX_INITIALIZER, .quiet_cond = PTHREAD_COND_INITIALIZER };

static __thread struct ent *serving;    /* the ring request run inline */

bool
uring_serving (void)
{
  return serving != NULL;
}

void *
uring_payload (size_t len)
{
  return serving && len <= U.payload ? serving->buf + PREFIX : NULL;
}

/* ---- unique -> entry ---- */

static unsigned
slot (uint64_t unique)
{
  return (unsigned) (unique >> 1) & (HASH_SIZE - 1);
}

/* U.lock held. */
static void
hash_add (struct ent *e)
{
  unsigned i = slot (e->unique);

  e->hnext = U.hash[i];
  U.hash[i] = e;
}

/* U.lock held. */
static struct ent *
hash_take (uint64_t unique)
{
  struct ent **p = &U.hash[slot (unique)];

  for (; *p; p = &(*p)->hnext)
    if ((*p)->unique == unique) {
      struct ent *e = *p;

      *p = e->hnext;
      return e;
    }
  return NULL;
}

/* ---- submission ---- */

/* Queue a command for e (U.lock held); the owner submits it on its turn.
 * Submitting is left to the owner because the task that submits an
 * entry's command is the one the kernel later runs (task_work) to copy
 * the next request into it. */
static int
prep (struct ent *e, unsigned op, uint64_t commit_id)
{
  struct io_uring_sqe *sqe = io_uring_get_sqe (&U.ring);
  struct ring_cmd_req req = { .commit_id = commit_id, .qid = e->qid };

  if (sqe == NULL)
    return -EBUSY;
  memset (sqe, 0, 128);                         /* an SQE128 slot */
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = U.dev_fd;
  sqe->cmd_op = op;
  if (op == RING_CMD_REGISTER) {
    sqe->addr = (uintptr_t) e->iov;
    sqe->len = 2;
  }
  memcpy (sqe->cmd, &req, sizeof req);
  io_uring_sqe_set_data (sqe, e);
  e->op = op;
  return 0;
}

/* Answer e's request: its reply is in e's buffers already. */
static void
commit (struct ent *e, uint64_t unique)
{
  int err;

  bool stopped;

  pthread_mutex_lock (&U.lock);
  stopped = U.stopped;
  err = stopped ? 0 : prep (e, RING_CMD_COMMIT_AND_FETCH, unique);
  pthread_mutex_unlock (&U.lock);
  if (err)      /* cannot happen: the SQ has a slot for every entry */
    log_error ("FUSE io_uring: no room to answer a request");
  else if (!stopped && !session_on_thread (U.owner))
    session_wake (U.owner);
}

/* Answer e's request with an error only (err: -errno, as the kernel
 * wants it in the reply). */
static void
commit_error (struct ent *e, int err)
{
  struct fuse_out_header out = { .error = err, .unique = e->unique };
  uint64_t unique = e->unique;

  pthread_mutex_lock (&U.lock);
  hash_take (unique);
  pthread_mutex_unlock (&U.lock);
  memcpy (e->hdr->in_out, &out, sizeof out);
  e->hdr->ent.payload_sz = 0;
  commit (e, unique);
}

/* ---- libfuse's I/O hooks ----
 * They answer as read(2), writev(2) and splice(2) do (-1 and errno), which
 * is what libfuse expects of them. */

static ssize_t
hook_read (int fd, void *buf, size_t len, void *userdata)
{
  (void) userdata;
  return read (fd, buf, len);
}

static ssize_t
hook_splice_send (int fdin, loff_t *offin, int fdout, loff_t *offout,
                  size_t len, unsigned flags, void *userdata)
{
  (void) userdata;
  return splice (fdin, offin, fdout, offout, len, flags);
}

/* Say FUSE_OVER_IO_URING in the INIT reply.  Without it the connection
 * takes ring commands only while the fuse module's enable_uring is Y, so
 * switching that off would strand every request held in an entry.  With
 * it the kernel holds new requests until every queue has an entry, and
 * goes back to /dev/fuse for good if a REGISTER fails. */
static void
mark_init_reply (struct iovec *iov, int count)
{
  struct fuse_init_out out;

  if (count < 2 || iov[1].iov_len < offsetof (struct fuse_init_out, flags2)
      + sizeof out.flags2)
    return;
  memcpy (&out, iov[1].iov_base,
          offsetof (struct fuse_init_out, flags2) + sizeof out.flags2);
  if (!(out.flags & FUSE_INIT_EXT))
    return;             /* a kernel that cannot read flags2 has no ring */
  out.flags2 |= RING_INIT_FLAGS2;
  memcpy ((char *) iov[1].iov_base + offsetof (struct fuse_init_out, flags2),
          &out.flags2, sizeof out.flags2);
}

/* Every reply libfuse writes: one to a ring request goes into its entry,
 * any other (the INIT reply, replies to what came by /dev/fuse, and
 * notifications) to /dev/fuse as before. */
static ssize_t
hook_writev (int fd, struct iovec *iov, int count, void *userdata)
{
  struct fuse_out_header out;
  struct ent *e = NULL;
  size_t total = 0, len = iov[0].iov_len;
  ssize_t res;

  (void) userdata;
  memcpy (&out, iov[0].iov_base, sizeof out);
  if (out.unique) {
    pthread_mutex_lock (&U.lock);
    e = hash_take (out.unique);
    pthread_mutex_unlock (&U.lock);
  }
  if (e == NULL) {
    /* The first reply after fs_init is INIT's. */
    bool init = atomic_exchange (&U.init_replied_next, false);

    if (init)
      mark_init_reply (iov, count);
    res = writev (fd, iov, count);
    /* The kernel now takes the ring's entries. */
    if (init) {
      atomic_store (&U.want_register, true);
      session_wake (U.owner);
    }
    return res;
  }
  for (int i = 1; i < count; i++) {
    if (iov[i].iov_len > U.payload - total) {
      log_error ("FUSE io_uring: a reply of more than %zu bytes", U.payload);
      out.error = -EIO;
      total = 0;
      break;
    }
    /* A READ lent the payload (uring_payload) has its data there. */
    if (iov[i].iov_base != e->buf + PREFIX + total)
      memmove (e->buf + PREFIX + total, iov[i].iov_base, iov[i].iov_len);
    total += iov[i].iov_len;
    len += iov[i].iov_len;
  }
  memcpy (e->hdr->in_out, &out, sizeof out);
  e->hdr->ent.payload_sz = (uint32_t) total;
  commit (e, out.unique);
  return (ssize_t) len;
}

/* ---- requests ---- */

/* A request other than READ and WRITE, on a job thread (jobs.c): it may
 * wait for the target (fsync, flush, release, fallocate, ...), and the
 * session thread must never wait for itself. */
static void
run_job (void *arg)
{
  struct ent *e = arg;

  fuse_session_process_buf (U.se, &e->job_buf);
}

/* The daemon is stopping and the job never ran: answer it. */
static void
cancel_job (void *arg)
{
  commit_error (arg, -EIO);
}

/* e was given a request: read its header into in, and make e findable
 * by its unique for the answer. */
static void
hold (struct ent *e, struct fuse_in_header *in)
{
  VALGRIND_MAKE_MEM_DEFINED (e->hdr, sizeof *e->hdr);
  memcpy (in, e->hdr->in_out, sizeof *in);
  e->unique = in->unique;
  pthread_mutex_lock (&U.lock);
  hash_add (e);
  pthread_mutex_unlock (&U.lock);
}

/* e holds a request: rebuild the bytes read() would have given and let
 * libfuse dispatch them. */
static void
take_request (struct ent *e)
{
  struct fuse_in_header in;
  uint32_t payload = e->hdr->ent.payload_sz;
  struct fuse_buf buf = { 0 };
  size_t arg0;
  char *msg;

  hold (e, &in);
  atomic_fetch_add_explicit (&stats.ring_requests, 1, memory_order_relaxed);
  if (in.len < sizeof in + payload || payload > U.payload
      || (arg0 = in.len - sizeof in - payload) > sizeof e->hdr->op_in) {
    log_error ("FUSE io_uring: a request of %u bytes with %u of payload",
               in.len, payload);
    commit_error (e, -EIO);
    return;
  }
  VALGRIND_MAKE_MEM_DEFINED (e->buf + PREFIX, payload);
  msg = e->buf + PREFIX - sizeof in - arg0;
  memcpy (msg, &in, sizeof in);
  memcpy (msg + sizeof in, e->hdr->op_in, arg0);
  buf.mem = msg;
  buf.size = in.len;
  if (in.opcode == FUSE_READ || in.opcode == FUSE_WRITE) {
    serving = e;
    fuse_session_process_buf (U.se, &buf);
    serving = NULL;
  }
  else {
    int err;

    e->job_buf = buf;
    err = jobs_run (run_job, cancel_job, e);
    if (err == -EAGAIN)
      log_error ("FUSE io_uring: cannot start a thread for a request");
    else if (err == -ENOMEM)
      log_error ("FUSE io_uring: out of memory for a request");
    if (err)
      commit_error (e, err == -ESHUTDOWN ? -EIO : err);
  }
}

/* The daemon is stopping: answer without running the request (the open
 * files it would use are being closed). */
static void
refuse_request (struct ent *e)
{
  struct fuse_in_header in;

  hold (e, &in);
  commit_error (e, -EIO);
}

/* The kernel failed e's command (session thread).  A refused REGISTER
 * means the kernel went back to /dev/fuse for this connection: nothing to
 * retry.  A COMMIT whose request the kernel no longer knows (-ENOENT)
 * leaves the entry out of its queue: register the buffers again as a new
 * entry, once, so that the queue keeps its depth.  Anything else is final
 * for the entry. */
static void
command_failed (struct ent *e, int res)
{
  uint64_t n = atomic_fetch_add_explicit (&stats.ring_errors, 1,
                                          memory_order_relaxed);

  if (e->op == RING_CMD_REGISTER) {
    if (n == 0)
      log_info ("FUSE io_uring: the kernel refused the ring (%s); requests "
                "come through /dev/fuse", strerror (-res));
    return;
  }
  if (n < 10)                           /* a few, not a flood */
    log_error ("FUSE io_uring: queue %u: an answer failed: %s", e->qid,
               strerror (-res));
  if (res == -ENOENT && !e->reregistered && !atomic_load (&U.quiet)) {
    e->reregistered = true;
    pthread_mutex_lock (&U.lock);
    prep (e, RING_CMD_REGISTER, 0);
    pthread_mutex_unlock (&U.lock);
  }
}

/* The ring has completions (session thread). */
static void
on_ready (void *opaque)
{
  struct io_uring_cqe *cqe;
  unsigned head, n = 0;

  (void) opaque;
  io_uring_for_each_cqe (&U.ring, head, cqe) {
    struct ent *e = io_uring_cqe_get_data (cqe);

    n++;
    if (cqe->res == 0 && atomic_load (&U.quiet))
      refuse_request (e);
    else if (cqe->res == 0)
      take_request (e);
    else if (cqe->res != -ENOTCONN && cqe->res != -ECONNABORTED
             && cqe->res != -ECANCELED)
      command_failed (e, cqe->res);
  }
  io_uring_cq_advance (&U.ring, n);
}

static int
alloc_entries (void)
{
  unsigned n = U.nr_queues * U.depth;

  U.ents = calloc (n, sizeof *U.ents);
  if (U.ents == NULL)
    return -ENOMEM;
  for (unsigned i = 0; i < n; i++) {
    struct ent *e = &U.ents[i];
    void *hdr, *buf;

    e->qid = (uint16_t) (i / U.depth);
    /* posix_memalign: aligned_alloc wants sizes that are multiples of
     * the alignment, which the header (288 bytes) is not. */
    if (posix_memalign (&hdr, 64, sizeof *e->hdr) != 0)
      return -ENOMEM;
    e->hdr = hdr;
    if (posix_memalign (&buf, 4096, PREFIX + U.payload) != 0)
      return -ENOMEM;
    e->buf = buf;
    memset (e->hdr, 0, sizeof *e->hdr);
    e->iov[0] = (struct iovec) { e->hdr, sizeof *e->hdr };
    e->iov[1] = (struct iovec) { e->buf + PREFIX, U.payload };
  }
  return 0;
}

/* Give the kernel every entry (session thread, once INIT was answered). */
static void
register_entries (void)
{
  U.registered = true;
  if (alloc_entries () < 0) {
    /* The INIT reply promised a ring: a REGISTER the kernel refuses (no
     * buffers) makes it go back to /dev/fuse instead of waiting for one. */
    static struct ent none;

    log_error ("FUSE io_uring: out of memory; requests keep coming "
               "through /dev/fuse");
    pthread_mutex_lock (&U.lock);
    prep (&none, RING_CMD_REGISTER, 0);
    pthread_mutex_unlock (&U.lock);
    return;
  }
  pthread_mutex_lock (&U.lock);
  for (unsigned i = 0; i < U.nr_queues * U.depth; i++)
    prep (&U.ents[i], RING_CMD_REGISTER, 0);
  pthread_mutex_unlock (&U.lock);
  log_info ("FUSE requests come by io_uring: %u queues of %u entries",
            U.nr_queues, U.depth);
}

/* Before the session thread waits: send what this turn prepared. */
static void
on_turn (void *opaque)
{
  (void) opaque;
  if (!U.registered && atomic_load (&U.want_register))
    register_entries ();
  pthread_mutex_lock (&U.lock);
  if (atomic_load (&U.quiet) && !U.quiet_seen) {
    U.quiet_seen = true;
    pthread_cond_broadcast (&U.quiet_cond);
  }
  if (io_uring_sq_ready (&U.ring) > 0) {
    int rc = io_uring_submit (&U.ring);

    if (rc < 0)
      log_error ("FUSE io_uring: submit: %s", strerror (-rc));
  }
  pthread_mutex_unlock (&U.lock);
}

/* ---- setup ---- */

/* The fuse module's switch: 'Y', 'N', or 0 when it has none (a kernel
 * before 6.14). */
static char
enable_uring (void)
{
  char c = 0;
  int fd = open (ENABLE_URING, O_RDONLY | O_CLOEXEC);

  if (fd < 0)
    return 0;
  if (read (fd, &c, 1) != 1)
    c = 0;
  close (fd);
  return c;
}

bool
uring_supported (void)
{
  return enable_uring () == 'Y';
}

const char *
uring_why_not (void)
{
  switch (enable_uring ()) {
  case 'Y':
    return "FUSE over io_uring is available";
  case 0:
    return "this kernel's FUSE has no io_uring (Linux 6.14 or later has; "
      "no " ENABLE_URING ")";
  default:
    return "the kernel's FUSE io_uring is switched off (echo Y > "
      ENABLE_URING ")";
  }
}

/* The kernel has a queue for every possible CPU (num_possible_cpus(),
 * not only the online ones) and takes the ring only once each has an
 * entry: count the CPUs in the possible mask ("0-7", "0", "0-3,8-11"). */
static unsigned
possible_cpus (void)
{
  FILE *fp = fopen ("/sys/devices/system/cpu/possible", "re");
  unsigned n = 0, a, b;
  int c;

  /* Fewer queues than the kernel's would leave the mount waiting for the
   * ring (the INIT reply promises it): no count, no ring. */
  if (fp == NULL)
    return 0;
  while (fscanf (fp, "%u", &a) == 1) {
    b = a;
    c = fgetc (fp);
    if (c == '-') {
      if (fscanf (fp, "%u", &b) != 1 || b < a)
        break;
      c = fgetc (fp);
    }
    n += b - a + 1;
    if (c != ',')
      break;
  }
  fclose (fp);
  return n;
}

int
uring_setup (struct fuse_session *se, struct session *owner, unsigned depth,
             unsigned max_threads)
{
  static const struct fuse_custom_io io = {
    .read = hook_read,
    .writev = hook_writev,
    .splice_send = hook_splice_send,
  };
  struct io_uring_params p = { .flags = IORING_SETUP_SQE128 };
  unsigned entries;
  int rc;

  U.se = se;
  U.owner = owner;
  jobs_init (max_threads);
  U.dev_fd = fuse_session_fd (se);
  U.nr_queues = possible_cpus ();
  if (U.nr_queues == 0 || U.nr_queues > MAX_ENTRIES)
    return -ENOTSUP;
  /* Every entry may come to hold a payload of max_write bytes: bound them
   * all together, and give each CPU's queue what one program there may
   * keep in flight. */
  U.depth = depth < MAX_ENTRIES / U.nr_queues ? depth : MAX_ENTRIES / U.nr_queues;
  if (U.depth == 0)
    U.depth = 1;
  entries = U.nr_queues * U.depth + 8;
  p.flags |= IORING_SETUP_CQSIZE;
  p.cq_entries = 2 * entries;
  rc = io_uring_queue_init_params (entries, &U.ring, &p);
  if (rc < 0)
    return rc;
  rc = fuse_session_custom_io (se, &io, U.dev_fd);
  if (rc < 0) {
    io_uring_queue_exit (&U.ring);
    return rc;
  }
  session_attach (owner, &(struct session_ext) {
    .fd = U.ring.ring_fd, .ready = on_ready, .turn = on_turn,
  });
  U.ring_ok = true;
  return 0;
}

void
uring_init_done (const struct fuse_conn_info *conn)
{
  size_t page = (size_t) sysconf (_SC_PAGESIZE);

  if (!U.ring_ok)
    return;
  U.payload = (conn->max_write + page - 1) / page * page;
  if (U.payload < 8192)
    U.payload = 8192;
  atomic_store (&U.init_replied_next, true);
}

void
uring_quiesce (void)
{
  struct timespec until;

  if (!U.ring_ok)
    return;
  atomic_store (&U.quiet, true);
  /* The owner acknowledges between two turns, so no request it took
   * before is still being dispatched. */
  until = clock_deadline_ms (5 * 1000);
  session_wake (U.owner);
  pthread_mutex_lock (&U.lock);
  while (!U.quiet_seen
         && clock_cond_wait (&U.quiet_cond, &U.lock, &until) == 0)
    ;
  pthread_mutex_unlock (&U.lock);
  /* Requests already on the job threads finish, as on libfuse's
   * workers; those still queued are refused. */
  until.tv_sec += 25;
  jobs_stop (&until);
}

void
uring_stop (void)
{
  struct timespec until;

  if (!U.ring_ok)
    return;
  pthread_mutex_lock (&U.lock);
  U.stopped = true;
  pthread_mutex_unlock (&U.lock);
  /* A job thread still running may yet write its answer into an
   * entry (the sessions answered everything when they stopped, so this is
   * short); past 5 s leave the memory to the exit. */
  until = clock_deadline_ms (5 * 1000);
  if (jobs_stop (&until) < 0)
    return;
  io_uring_queue_exit (&U.ring);
  U.ring_ok = false;
  if (U.ents)
    for (unsigned i = 0; i < U.nr_queues * U.depth; i++) {
      free (U.ents[i].hdr);
      free (U.ents[i].buf);
    }
  free (U.ents);
  U.ents = NULL;
}

#else  /* !HAVE_LIBURING */

bool uring_supported (void) { return false; }
const char *uring_why_not (void)
{
  return "iserfs was built without liburing";
}
bool uring_serving (void) { return false; }
void *uring_payload (size_t len) { (void) len; return NULL; }
int uring_setup (struct fuse_session *se, struct session *owner,
                 unsigned depth, unsigned max_threads)
{
  (void) se; (void) owner; (void) depth; (void) max_threads;
  return -ENOTSUP;
}
void uring_init_done (const struct fuse_conn_info *conn) { (void) conn; }
void uring_stop (void) { }
void uring_quiesce (void) { }

#endif
