/* timeshift.so: an LD_PRELOAD shim that steps the wall clock of the
 * process it is loaded into, as chrony or date(1) would step the machine's.
 *
 * TIMESHIFT_FILE names a file whose first bytes are a decimal number of
 * seconds (negative: back), read afresh on every call through a shared
 * mapping, so a test changes the offset while the process runs:
 *   printf '%-31s\n' 3600 | dd of=FILE conv=notrunc status=none
 * time(), gettimeofday() and clock_gettime() on the realtime clocks are
 * shifted; the monotonic and boot-time clocks are not. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAP_BYTES 32

static const volatile char *shift_map;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void
map_file (void)
{
  const char *path = getenv ("TIMESHIFT_FILE");
  int fd;
  void *p;

  if (path == NULL || (fd = open (path, O_RDONLY | O_CLOEXEC)) < 0)
    return;
  p = mmap (NULL, MAP_BYTES, PROT_READ, MAP_SHARED, fd, 0);
  close (fd);
  if (p != MAP_FAILED)
    shift_map = p;
}

static long
shift (void)
{
  char buf[MAP_BYTES + 1];

  pthread_once (&once, map_file);
  if (shift_map == NULL)
    return 0;
  for (int i = 0; i < MAP_BYTES; i++)
    buf[i] = shift_map[i];
  buf[MAP_BYTES] = 0;
  return strtol (buf, NULL, 10);
}

static int
real_clock_gettime (clockid_t id, struct timespec *ts)
{
  return (int) syscall (SYS_clock_gettime, id, ts);
}

int
clock_gettime (clockid_t id, struct timespec *ts)
{
  int r = real_clock_gettime (id, ts);

  if (r == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
    ts->tv_sec += shift ();
  return r;
}

int
gettimeofday (struct timeval *restrict tv, void *restrict tz)
{
  struct timespec ts;

  (void) tz;
  clock_gettime (CLOCK_REALTIME, &ts);
  tv->tv_sec = ts.tv_sec;
  tv->tv_usec = ts.tv_nsec / 1000;
  return 0;
}

time_t
time (time_t *t)
{
  struct timespec ts;

  clock_gettime (CLOCK_REALTIME, &ts);
  if (t)
    *t = ts.tv_sec;
  return ts.tv_sec;
}
