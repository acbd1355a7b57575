/* softrdma: counters, written as key=value lines to $SOFTRDMA_STATS.
 *
 * The file is written when the process exits, after every disconnection
 * and on SIGUSR2 if the program leaves that signal alone.  tgtd never exits
 * cleanly (tests SIGKILL it) and keeps SIGUSR2 for itself (signalfd), so
 * for it the file is current as of its last finished connection.  "%p" in the name is replaced by the pid, so every
 * process of a run (a daemonized FUSE server and its parent, tgtd and the
 * initiator) can keep its own file.  The file is written to a temporary
 * name and renamed, so a reader never sees half of it.  The writer only
 * uses async-signal-safe calls because it runs in the signal handler. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "softrdma.h"

static const char *const sr_stat_names[SR_NSTATS] = {
    "reg_mr", "dereg_mr", "reg_bytes", "send", "rdma_write",
    "rdma_write_bytes", "rdma_read", "rdma_read_bytes",
    "error_completions", "flush_completions", "rnr_naks", "cq_overflows",
    "ack_timeouts", "injected_faults",
};
static uint64_t sr_stats[SR_NSTATS];
static char sr_stats_name[4096];

void
sr_stat_add(enum sr_stat s, uint64_t n)
{
    __atomic_add_fetch(&sr_stats[s], n, __ATOMIC_RELAXED);
}

/* Append s to buf (bounded); returns the new length. */
static size_t
sr_put(char *buf, size_t len, size_t cap, const char *s)
{
    while (*s && len + 1 < cap)
        buf[len++] = *s++;
    buf[len] = '\0';
    return len;
}

static size_t
sr_put_u64(char *buf, size_t len, size_t cap, uint64_t v)
{
    char tmp[24];
    int i = sizeof tmp - 1;

    tmp[i] = '\0';
    do {
        tmp[--i] = '0' + v % 10;
        v /= 10;
    } while (v);
    return sr_put(buf, len, cap, tmp + i);
}

void
sr_stats_write(void)
{
    char path[4200], tmp[4300], body[1024];
    size_t plen = 0, blen = 0;
    const char *p;
    int fd, i, saved = 0;

    if (!sr_stats_name[0])
        return;
    for (p = sr_stats_name; *p; p++) {
        if (p[0] == '%' && p[1] == 'p') {
            plen = sr_put_u64(path, plen, sizeof path, (uint64_t)getpid());
            p++;
        } else if (plen + 1 < sizeof path) {
            path[plen++] = *p;
            path[plen] = '\0';
        }
    }
    for (i = 0; i < SR_NSTATS; i++) {
        blen = sr_put(body, blen, sizeof body, sr_stat_names[i]);
        blen = sr_put(body, blen, sizeof body, "=");
        blen = sr_put_u64(body, blen, sizeof body,
                          __atomic_load_n(&sr_stats[i], __ATOMIC_RELAXED));
        blen = sr_put(body, blen, sizeof body, "\n");
    }
    i = (int)sr_put(tmp, 0, sizeof tmp, path);
    sr_put(tmp, i, sizeof tmp, ".tmp");
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    if (write(fd, body, blen) == (ssize_t)blen)
        saved = 1;
    close(fd);
    if (saved)
        rename(tmp, path);
    else
        unlink(tmp);
}

static void
sr_stats_signal(int sig)
{
    int e = 0;

    (void)sig;
    e = errno;
    sr_stats_write();
    errno = e;
}

__attribute__((constructor)) static void
sr_stats_init(void)
{
    const char *name = getenv("SOFTRDMA_STATS");
    struct sigaction sa, old;

    if (!name || !*name || strlen(name) >= sizeof sr_stats_name)
        return;
    strcpy(sr_stats_name, name);
    /* Only take SIGUSR2 if the program does not use it itself. */
    if (sigaction(SIGUSR2, NULL, &old) == 0 && old.sa_handler == SIG_DFL) {
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = sr_stats_signal;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGUSR2, &sa, NULL);
    }
}

__attribute__((destructor)) static void
sr_stats_fini(void)
{
    sr_stats_write();
}
