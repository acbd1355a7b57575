/* softrdma: the byte streams between peers and the progress thread.
 *
 * Each connection is an AF_UNIX stream socket carrying sr_frame records.
 * Sockets are non-blocking and every write goes through a per-connection
 * output buffer, so neither an application thread nor the progress thread
 * ever blocks on a full socket (two peers writing big READ answers to each
 * other at once would otherwise deadlock).
 *
 * The progress thread is the process's "HCA": it accepts incoming
 * connections, parses frames and serves the peer's RDMA requests from our
 * registered memory.  It starts lazily, at the first listen or connect, so a
 * program that forks before using RDMA (a daemonizing FUSE server) gets its
 * thread in the right process. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "softrdma.h"

static struct sr_conn *sr_conns;
static uint64_t sr_next_serial;
static int sr_wake_fd = -1;
static int sr_running;

void
sr_progress_forget(void)
{
    /* Called in a fork child: the thread did not survive, and the wake fd
     * is shared with the parent. */
    sr_running = 0;
    if (sr_wake_fd >= 0)
        close(sr_wake_fd);
    sr_wake_fd = -1;
}

void
sr_progress_wake(void)
{
    uint64_t one = 1;

    if (sr_wake_fd >= 0 && write(sr_wake_fd, &one, sizeof one) < 0) {
        /* counter saturated: the thread is awake anyway */
    }
}

struct sr_conn *
sr_conn_first(void)
{
    return sr_conns;
}

struct sr_conn *
sr_conn_new(int fd, int listener)
{
    struct sr_conn *c = calloc(1, sizeof *c);

    if (!c)
        return NULL;
    c->fd = fd;
    c->listener = listener;
    c->serial = ++sr_next_serial;
    c->next = sr_conns;
    sr_conns = c;
    sr_progress_wake();
    return c;
}

void
sr_conn_free(struct sr_conn *c)
{
    struct sr_conn **pp;

    for (pp = &sr_conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    if (c->fd >= 0)
        close(c->fd);
    if (c->qp) {
        struct sr_qp *q = c->qp;

        c->qp = NULL;
        sr_qp_attach_none(q);
        sr_qp_set_error(q);
    }
    free(c->obuf);
    free(c->ibuf);
    free(c);
    sr_progress_wake();
}

static int
sr_buf_reserve(unsigned char **buf, size_t *cap, size_t need)
{
    size_t n = *cap ? *cap : 65536;
    unsigned char *p;

    if (need <= *cap)
        return 0;
    while (n < need)
        n *= 2;
    p = realloc(*buf, n);
    if (!p)
        return -1;
    *buf = p;
    *cap = n;
    return 0;
}

static void
sr_conn_flush(struct sr_conn *c)
{
    size_t done = 0;

    while (c->fd >= 0 && done < c->olen) {
        ssize_t n = send(c->fd, c->obuf + done, c->olen - done,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            done += n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            done = c->olen;     /* peer gone: the reader sees the hang-up */
        }
    }
    memmove(c->obuf, c->obuf + done, c->olen - done);
    c->olen -= done;
}

void
sr_conn_send(struct sr_conn *c, const struct sr_frame *f, const void *payload,
             size_t plen)
{
    struct sr_frame h = *f;

    if (!c || c->fd < 0)
        return;
    h.plen = plen;
    if (sr_buf_reserve(&c->obuf, &c->ocap, c->olen + sizeof h + plen) < 0)
        abort();
    memcpy(c->obuf + c->olen, &h, sizeof h);
    if (plen)
        memcpy(c->obuf + c->olen + sizeof h, payload, plen);
    c->olen += sizeof h + plen;
    sr_conn_flush(c);
    if (c->olen)
        sr_progress_wake();     /* let the thread wait for POLLOUT */
}

/* Parse and dispatch complete frames.  Returns without touching c again if
 * c may have been freed. */
static void
sr_conn_parse(struct sr_conn *c)
{
    size_t off = 0;

    while (c->ilen - off >= sizeof(struct sr_frame)) {
        struct sr_frame f;

        memcpy(&f, c->ibuf + off, sizeof f);
        if (c->ilen - off - sizeof f < f.plen)
            break;
        if ((f.type >= SR_F_SEND && f.type <= SR_F_READ_RESP) || f.type == SR_F_RNR) {
            if (c->qp)
                sr_qp_on_frame(c->qp, &f, c->ibuf + off + sizeof f);
        } else {
            sr_cm_on_frame(c, &f, c->ibuf + off + sizeof f);
        }
        off += sizeof f + f.plen;
    }
    memmove(c->ibuf, c->ibuf + off, c->ilen - off);
    c->ilen -= off;
}

static void
sr_conn_readable(struct sr_conn *c)
{
    for (;;) {
        ssize_t n;

        if (sr_buf_reserve(&c->ibuf, &c->icap, c->ilen + 65536) < 0)
            abort();
        n = recv(c->fd, c->ibuf + c->ilen, c->icap - c->ilen, MSG_DONTWAIT);
        if (n > 0) {
            c->ilen += n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        sr_conn_parse(c);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        /* EOF or error: the peer closed or died. */
        close(c->fd);
        c->fd = -1;
        c->olen = 0;
        sr_cm_on_hangup(c);     /* may free c */
        return;
    }
}

/* Cut the stream as a failing link would: both ends read what was already
 * sent, then see the hang-up (DISCONNECTED, flushes). */
void
sr_conn_break(struct sr_conn *c)
{
    if (c && c->fd >= 0) {
        shutdown(c->fd, SHUT_RDWR);
        sr_progress_wake();
    }
}

static struct sr_conn *
sr_conn_by_serial(uint64_t serial)
{
    struct sr_conn *c;

    for (c = sr_conns; c; c = c->next)
        if (c->serial == serial)
            return c;
    return NULL;
}

static void *
sr_progress_main(void *arg)
{
    (void)arg;
    for (;;) {
        struct pollfd *p;
        uint64_t *serial;
        struct sr_conn *c;
        size_t n = 1, i;
        int64_t next;
        int timeout = -1;

        sr_lock();
        /* Wake for the earliest QP timer (RNR wait, ACK timeout). */
        next = sr_qp_next_timer();
        if (next) {
            int64_t d = next - sr_now_us();
            timeout = d <= 0 ? 0 : (int)(d / 1000) + 1;
        }
        for (c = sr_conns; c; c = c->next)
            n++;
        p = calloc(n, sizeof *p);
        serial = calloc(n, sizeof *serial);
        if (!p || !serial)
            abort();
        p[0].fd = sr_wake_fd;
        p[0].events = POLLIN;
        for (i = 1, c = sr_conns; c; c = c->next) {
            if (c->fd < 0)
                continue;
            p[i].fd = c->fd;
            p[i].events = POLLIN | (c->olen ? POLLOUT : 0);
            serial[i++] = c->serial;
        }
        n = i;
        sr_unlock();

        if (poll(p, n, timeout) < 0 && errno != EINTR)
            abort();

        sr_lock();
        sr_qp_run_timers();
        if (p[0].revents & POLLIN) {
            uint64_t v;
            if (read(sr_wake_fd, &v, sizeof v) < 0) {
                /* nothing to drain */
            }
        }
        for (i = 1; i < n; i++) {
            if (!p[i].revents || !(c = sr_conn_by_serial(serial[i])) || c->fd < 0)
                continue;
            if (c->listener) {
                sr_cm_on_incoming(c);
                continue;
            }
            if (p[i].revents & POLLOUT)
                sr_conn_flush(c);
            if (p[i].revents & (POLLIN | POLLHUP | POLLERR))
                sr_conn_readable(c);
        }
        sr_unlock();
        free(p);
        free(serial);
    }
    return NULL;
}

void
sr_progress_start(void)
{
    pthread_t t;
    sigset_t all, old;

    if (sr_running)
        return;
    if (sr_wake_fd < 0) {
        sr_wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (sr_wake_fd < 0)
            abort();
    }
    /* The thread must not take the application's signals. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    if (pthread_create(&t, NULL, sr_progress_main, NULL) != 0)
        abort();
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_detach(t);
    sr_running = 1;
}
