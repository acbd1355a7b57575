/* See memlock.h. */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "memlock.h"
#include "stats.h"

static bool
has_cap_ipc_lock (void)
{
  struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
  struct __user_cap_data_struct d[2];

  if (syscall (SYS_capget, &h, d) != 0)
    return false;
  return (d[CAP_IPC_LOCK / 32].effective >> (CAP_IPC_LOCK % 32)) & 1;
}

static void
memlock_raise_once (void)
{
  struct rlimit rl, unlimited = { RLIM_INFINITY, RLIM_INFINITY };

  if (has_cap_ipc_lock ())
    return;                     /* the limit does not apply */
  if (getrlimit (RLIMIT_MEMLOCK, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
    return;
  if (setrlimit (RLIMIT_MEMLOCK, &unlimited) == 0)
    return;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit (RLIMIT_MEMLOCK, &rl) != 0)
      getrlimit (RLIMIT_MEMLOCK, &rl);
  }
  if (rl.rlim_cur != RLIM_INFINITY)
    atomic_store (&stats.memlock_limit, rl.rlim_cur);
}

void
memlock_raise (void)
{
  static pthread_once_t once = PTHREAD_ONCE_INIT;

  pthread_once (&once, memlock_raise_once);
}

/* What libiscsi's iSER transport registers, from its lib/iser.c and
 * include/iser-private.h.  The kernel charges each registration the pages
 * it spans, so small buffers registered one by one cost a page each, plus
 * one for every page boundary inside them. */
enum {
  ISER_HDRS = 28 + 48,          /* iSER header + iSCSI basic header segment */
  LOGIN_RX = ISER_HDRS + 8192,  /* login response: headers + 8 KiB of data */
  RX_DESCS = 255,               /* receive descriptors posted after login */
  RX_DESC_SIZE = 232,           /* struct iser_rx_desc, in one array */
  TX_DESC_SIZE = 168,           /* struct iser_tx_desc, malloc'd one by one */
  TX_EXTRA = 4,                 /* NOP-Out, task management, logout, text */
};

/* Pages that n registrations of small buffers laid out over n * size bytes
 * pin at most: one each, and one more per page boundary they may cross. */
static uint64_t
small_regs_pages (uint64_t n, uint64_t size, uint64_t page)
{
  return n + (n * size + page - 1) / page;
}

/* Pages one buffer of len bytes at an unknown alignment may span. */
static uint64_t
span_pages (uint64_t len, uint64_t page)
{
  return (len + page - 2) / page + 1;
}

uint64_t
memlock_iser_need (unsigned queue_depth)
{
  long ps = sysconf (_SC_PAGESIZE);
  uint64_t page = ps > 0 ? (uint64_t) ps : 4096;
  uint64_t pages;

  /* Both versions: the login response buffer and, once logged in, the
   * receive descriptors. */
  pages = span_pages (LOGIN_RX, page)
    + small_regs_pages (RX_DESCS, RX_DESC_SIZE, page);
#ifdef HAVE_LIBISCSI_1_20
  /* 1.20: a send descriptor per PDU in flight, its headers registered
   * alone, and the first 4 MiB chunk (DATA_BUFFER_CHUNK_SIZE) its own data
   * buffers are carved from: the data of every PDU whose buffer the
   * application did not register (login text, copies) goes there. */
  pages += small_regs_pages (queue_depth + TX_EXTRA, TX_DESC_SIZE, page);
  return pages * page + (UINT64_C (4) << 20);
#else
  /* 1.19: at connect, NUM_MRS (256) send descriptors, each with its
   * headers and a 256 KiB (DATA_BUFFER_SIZE) data buffer registered. */
  (void) queue_depth;
  pages += small_regs_pages (256, TX_DESC_SIZE, page)
    + 256 * span_pages (256 << 10, page);
  return pages * page;
#endif
}

/* Bytes the open iSER sessions reserved. */
static atomic_uint_fast64_t reserved;

int64_t
memlock_reserve_iser (unsigned queue_depth, char *err, size_t errlen)
{
  uint64_t limit, need = memlock_iser_need (queue_depth), old;

  memlock_raise ();
  limit = atomic_load (&stats.memlock_limit);
  if (limit == 0)
    return 0;                   /* CAP_IPC_LOCK, or no limit */
  old = atomic_load (&reserved);
  do {
    if (old + need > limit) {
      snprintf (err, errlen,
                "iSER needs %llu MiB of locked memory for libiscsi's buffers "
                "but RLIMIT_MEMLOCK allows %llu MiB: raise it (ulimit -l, "
                "LimitMEMLOCK= in a systemd unit) or give iserfs CAP_IPC_LOCK",
                (unsigned long long) ((old + need + (1 << 20) - 1) >> 20),
                (unsigned long long) (limit >> 20));
      return -ENOMEM;
    }
  } while (!atomic_compare_exchange_weak (&reserved, &old, old + need));
  return (int64_t) need;
}

void
memlock_release_iser (int64_t r)
{
  if (r > 0)
    atomic_fetch_sub (&reserved, (uint64_t) r);
}
