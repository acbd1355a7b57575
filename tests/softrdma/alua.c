/* softrdma: a test-only ALUA stand-in for iSER, on the initiator's side.
 *
 * tgtd has no ALUA.  Over TCP, tests/aluaproxy rewrites its answers in
 * the stream; over iSER there is no stream to sit in: the iSCSI PDUs
 * travel in SENDs behind an iSER header and the SCSI Data-In is put into
 * the initiator's registered buffer by the target's RDMA WRITE.  So the
 * rewriting happens here, in the process that connects (never in the one
 * that accepts, tgtd), and only when SOFTRDMA_ALUA names a states file:
 *
 *  - a SEND this process posts that carries a SCSI Command PDU: its ITT,
 *    CDB and the iSER header's read STag/VA (where the Data-In lands)
 *    are remembered when the command is one to rewrite;
 *  - the SEND carrying the target's SCSI Response for such a command is
 *    changed before it is placed in the receive buffer, and the Data-In
 *    already in the initiator's memory with it: standard INQUIRY gets
 *    TPGS 01b, VPD 0x83 gets a relative target port and a target port
 *    group designator first (page length and residual fixed), REPORT
 *    TARGET PORT GROUPS (tgtd: CHECK CONDITION) is answered GOOD with the
 *    groups of the states file in the format asked for;
 *  - when the states file changed (checked at every command sent: a test
 *    renames a new file into place; SIGHUP would stop a FUSE daemon), the
 *    next command without data-out on every connection is answered CHECK
 *    CONDITION, UNIT ATTENTION 2A/06 instead;
 *  - when FILE.notready exists, it is removed and the next READ on every
 *    connection to the group it names (every connection if it is empty)
 *    is answered NOT READY 04/0B;
 *  - while FILE.ua-at-login exists, the first command without data-out of
 *    every new connection is answered UNIT ATTENTION 2A/06, as a target's
 *    first answer after a reset may be.
 * The answers themselves come from tests/alua_answers.c, shared with
 * aluaproxy; each rewrite is logged on stderr, one line, as aluaproxy does.
 *
 * SOFTRDMA_ALUA_GROUP: this port's group (and relative port), "N" for every
 * connection or "PORT:N,..." by the port connected to (a bare N then is the
 * default); 1 if unset.
 *
 * Wire formats: the iSER header (RFC 7145) is 28 bytes: flags (0x10 an
 * iSCSI PDU follows, 0x08 write STag valid, 0x04 read STag valid), 3
 * reserved, write STag, write VA, read STag, read VA, big-endian.  The BHS
 * follows it; a SCSI Response has its flags (U 0x02, O 0x04) at byte 1,
 * the status at 3 and the residual count at 44.  Unset, none of this runs:
 * the QP gets no hook and the emulation behaves as before. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <netinet/in.h>

#include "softrdma.h"
#include "../alua_answers.h"

#define SR_ISER_HDR 28
#define SR_ISER_ISCSI 0x10
#define SR_ISER_RSV 0x04
#define SR_ALUA_TRACKED 512

enum sr_alua_act { SR_A_NONE, SR_A_TPGS, SR_A_VPD83, SR_A_RTPG, SR_A_UA, SR_A_NOT_READY };

struct sr_alua_cmd {
    int used;
    enum sr_alua_act act;
    uint32_t itt, edtl, stag;
    uint64_t va;                  /* where the Data-In lands; 0: nowhere */
    uint8_t cdb[16];
};

struct sr_alua {
    struct sr_alua *next;
    unsigned id;
    int group;
    int ua_armed, nr_armed;
    struct sr_alua_cmd t[SR_ALUA_TRACKED];
};

static struct {
    int init;
    const char *file;             /* NULL: off */
    char notready[4096], ua_at_login[4096];
    struct alua_states states;
    struct stat seen;             /* the states file as last read */
    struct sr_alua *all;
    unsigned next_id;
} A;

static void
sr_alua_say(const char *fmt, ...)
{
    char line[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "softrdma-alua: %s\n", line);
}

static uint64_t
sr_get64(const uint8_t *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static void
sr_alua_init(void)
{
    const char *f = getenv("SOFTRDMA_ALUA");
    bool changed;

    A.init = 1;
    if (!f || !*f)
        return;
    A.file = f;
    snprintf(A.notready, sizeof A.notready, "%s.notready", f);
    snprintf(A.ua_at_login, sizeof A.ua_at_login, "%s.ua-at-login", f);
    if (stat(f, &A.seen) < 0 ||
        alua_states_load("softrdma-alua", f, -1, &A.states, &changed) < 0)
        sr_alua_say("%s unreadable: REPORT TARGET PORT GROUPS lists no group "
                    "until it is", f);
}

/* This connection's group from SOFTRDMA_ALUA_GROUP, by the port. */
static int
sr_alua_group(const struct sockaddr *dst)
{
    const char *e = getenv("SOFTRDMA_ALUA_GROUP");
    int port = 0, dflt = 1;

    if (dst->sa_family == AF_INET)
        port = ntohs(((const struct sockaddr_in *)dst)->sin_port);
    else if (dst->sa_family == AF_INET6)
        port = ntohs(((const struct sockaddr_in6 *)dst)->sin6_port);
    while (e && *e) {
        char *end;
        long a = strtol(e, &end, 10), b;

        if (*end == ':') {
            b = strtol(end + 1, &end, 10);
            if (a == port)
                return (int)b;
        } else {
            dflt = (int)a;
        }
        e = *end == ',' ? end + 1 : end + strlen(end);
    }
    return dflt;
}

struct sr_alua *
sr_alua_new(const struct sockaddr *dst)
{
    struct sr_alua *a;

    if (!A.init)
        sr_alua_init();
    if (!A.file)
        return NULL;
    a = calloc(1, sizeof *a);
    if (!a)
        abort();
    a->id = ++A.next_id;
    a->group = sr_alua_group(dst);
    a->next = A.all;
    A.all = a;
    a->ua_armed = access(A.ua_at_login, F_OK) == 0;
    sr_alua_say("conn %u: connecting, target port group %d%s", a->id, a->group,
                a->ua_armed ? "; its first command gets UNIT ATTENTION 2A/06" : "");
    return a;
}

void
sr_alua_free(struct sr_alua *a)
{
    struct sr_alua **pp;

    for (pp = &A.all; *pp; pp = &(*pp)->next)
        if (*pp == a) {
            *pp = a->next;
            break;
        }
    free(a);
}

/* The triggers: a states file renamed into place (a unit attention on
 * every connection when the states changed), FILE.notready. */
static void
sr_alua_poll(void)
{
    struct stat st;
    struct sr_alua *a;
    FILE *fp;

    if (stat(A.file, &st) == 0 &&
        (st.st_ino != A.seen.st_ino || st.st_size != A.seen.st_size ||
         st.st_mtim.tv_sec != A.seen.st_mtim.tv_sec ||
         st.st_mtim.tv_nsec != A.seen.st_mtim.tv_nsec)) {
        bool changed;

        A.seen = st;
        if (alua_states_load("softrdma-alua", A.file, -1, &A.states, &changed) == 0 &&
            changed)
            for (a = A.all; a; a = a->next) {
                a->ua_armed = 1;
                sr_alua_say("conn %u: next command gets UNIT ATTENTION 2A/06", a->id);
            }
    }
    fp = fopen(A.notready, "r");
    if (fp) {
        int g = -1;

        if (fscanf(fp, "%d", &g) != 1)
            g = -1;
        fclose(fp);
        unlink(A.notready);
        for (a = A.all; a; a = a->next)
            if (g < 0 || a->group == g) {
                a->nr_armed = 1;
                sr_alua_say("conn %u: next READ gets NOT READY 04/0B", a->id);
            }
    }
}

void
sr_alua_sent(struct sr_alua *a, const struct ibv_sge *sg, int n)
{
    uint8_t m[SR_ISER_HDR + ALUA_BHS];
    const uint8_t *p = m + SR_ISER_HDR, *cdb = p + 32;
    struct sr_alua_cmd *c, *slot = NULL;
    enum sr_alua_act act = SR_A_NONE;
    size_t got = 0;
    int i;

    for (i = 0; i < n && got < sizeof m; i++) {
        size_t k = sizeof m - got < sg[i].length ? sizeof m - got : sg[i].length;
        memcpy(m + got, (const void *)(uintptr_t)sg[i].addr, k);
        got += k;
    }
    if (got < sizeof m || (m[0] & 0xf0) != SR_ISER_ISCSI || (p[0] & 0x3f) != 0x01)
        return;                 /* not a SCSI Command PDU */
    sr_alua_poll();
    /* INQUIRY never reports a unit attention; anything else may. */
    if (cdb[0] == 0x12 && !(cdb[1] & 1))
        act = SR_A_TPGS;
    else if (cdb[0] == 0x12 && cdb[2] == 0x83)
        act = SR_A_VPD83;
    else if (a->ua_armed && !(p[1] & 0x20)) {          /* no data-out */
        act = SR_A_UA;
        a->ua_armed = 0;
    } else if (a->nr_armed && (cdb[0] == 0x28 || cdb[0] == 0x88)) {
        act = SR_A_NOT_READY;
        a->nr_armed = 0;
    } else if (cdb[0] == 0xa3 && (cdb[1] & 0x1f) == 0x0a)
        act = SR_A_RTPG;
    if (act == SR_A_NONE)
        return;
    for (c = a->t; c < a->t + SR_ALUA_TRACKED; c++) {
        if (c->used && c->itt == get32(p + 16)) {
            slot = c;           /* sent again: the same command */
            break;
        }
        if (!c->used && !slot)
            slot = c;
    }
    if (!slot) {
        sr_alua_say("conn %u: too many commands to rewrite; itt 0x%x passed on",
                    a->id, get32(p + 16));
        return;
    }
    memset(slot, 0, sizeof *slot);
    slot->used = 1;
    slot->act = act;
    slot->itt = get32(p + 16);
    slot->edtl = get32(p + 20);
    memcpy(slot->cdb, cdb, 16);
    if (m[0] & SR_ISER_RSV) {
        slot->stag = get32(m + 16);
        slot->va = sr_get64(m + 20);
    }
}

static const char *
sr_alua_act_name(enum sr_alua_act act)
{
    static const char *const n[] = {
        [SR_A_TPGS] = "INQUIRY", [SR_A_VPD83] = "INQUIRY VPD 0x83",
        [SR_A_RTPG] = "REPORT TARGET PORT GROUPS",
    };
    return n[act] ? n[act] : "-";
}

/* The initiator's buffer for the command's Data-In, len bytes of it; NULL
 * when the command named none or the key does not cover them. */
static uint8_t *
sr_alua_data(struct ibv_pd *pd, const struct sr_alua_cmd *c, size_t len)
{
    if (!c->va || len > c->edtl ||
        (len && sr_mr_check(pd, c->stag, 1, c->va, len, IBV_ACCESS_REMOTE_WRITE) < 0))
        return NULL;
    return (uint8_t *)(uintptr_t)c->va;
}

/* A copy of the message (iSER header, BHS) with a new data segment seg of
 * slen bytes; *len its length. */
static unsigned char *
sr_alua_reply(const unsigned char *msg, const void *seg, size_t slen, size_t *len)
{
    unsigned char *r = calloc(1, SR_ISER_HDR + ALUA_BHS + slen + 4);

    if (!r)
        abort();
    memcpy(r, msg, SR_ISER_HDR + ALUA_BHS);
    r[SR_ISER_HDR + 4] = 0;                     /* no AHS */
    put24(r + SR_ISER_HDR + 5, (uint32_t)slen);
    if (slen)
        memcpy(r + SR_ISER_HDR + ALUA_BHS, seg, slen);
    *len = SR_ISER_HDR + ALUA_BHS + ((slen + 3) & ~(size_t)3);
    return r;
}

/* CHECK CONDITION with KEY/ASC/ASCQ in place of the target's response. */
static unsigned char *
sr_alua_sense(const unsigned char *msg, size_t *len, uint8_t key, uint8_t asc,
              uint8_t ascq)
{
    uint8_t seg[ALUA_SENSE_SEG];
    unsigned char *r;

    alua_sense_segment(seg, key, asc, ascq);
    r = sr_alua_reply(msg, seg, sizeof seg, len);
    r[SR_ISER_HDR + 1] = 0x80;                  /* F, no residual */
    r[SR_ISER_HDR + 2] = 0x00;                  /* command completed */
    r[SR_ISER_HDR + 3] = 0x02;                  /* CHECK CONDITION */
    memset(r + SR_ISER_HDR + 36, 0, 12);        /* ExpDataSN, residuals */
    return r;
}

/* GOOD with n bytes of Data-In (already in place) out of c's edtl. */
static unsigned char *
sr_alua_good(const unsigned char *msg, size_t *len, const struct sr_alua_cmd *c,
             uint32_t n)
{
    unsigned char *r = sr_alua_reply(msg, NULL, 0, len);

    r[SR_ISER_HDR + 1] = (uint8_t)(0x80 | (n < c->edtl ? 0x02 : 0));
    r[SR_ISER_HDR + 2] = 0x00;
    r[SR_ISER_HDR + 3] = 0x00;                  /* GOOD */
    put32(r + SR_ISER_HDR + 40, 0);             /* bidirectional residual */
    put32(r + SR_ISER_HDR + 44, c->edtl - n);
    return r;
}

/* INQUIRY and VPD 0x83 after the target answered GOOD: the data is in
 * the initiator's buffer; change it there.  A new response, or NULL. */
static unsigned char *
sr_alua_inquiry(struct sr_alua *a, struct ibv_pd *pd, struct sr_alua_cmd *c,
                const unsigned char *msg, size_t *len)
{
    const uint8_t *p = msg + SR_ISER_HDR;
    uint32_t resid = get32(p + 44), have = c->edtl, n;
    struct buf d = { 0 };
    unsigned char *r = NULL;
    uint8_t *data;

    if ((p[1] & 0x02) && resid <= c->edtl)
        have = c->edtl - resid;
    data = sr_alua_data(pd, c, c->edtl);
    if (!data || (c->act == SR_A_TPGS && have < 6) ||
        (c->act == SR_A_VPD83 && !alua_vpd83_data(&d, data, have, a->group))) {
        sr_alua_say("conn %u: %s: %u bytes, not rewritten", a->id,
                    sr_alua_act_name(c->act), have);
        buf_free(&d);
        return NULL;
    }
    if (c->act == SR_A_TPGS) {
        data[5] = (uint8_t)((data[5] & ~0x30) | 0x10);
        sr_alua_say("conn %u: INQUIRY: TPGS set to 01b", a->id);
        return NULL;
    }
    n = alua_alloc_len(c->cdb, c->edtl);
    if (n > d.len)
        n = (uint32_t)d.len;
    memcpy(data, d.b, n);
    r = sr_alua_good(msg, len, c, n);
    sr_alua_say("conn %u: INQUIRY VPD 0x83: port %d of group %d added", a->id,
                a->group, a->group);
    buf_free(&d);
    return r;
}

/* REPORT TARGET PORT GROUPS: our answer in the buffer, GOOD in place of
 * the target's CHECK CONDITION -- unless that is a unit attention, the
 * target's own to report. */
static unsigned char *
sr_alua_rtpg(struct sr_alua *a, struct ibv_pd *pd, struct sr_alua_cmd *c,
             const unsigned char *msg, size_t *len)
{
    bool ext = (c->cdb[1] >> 5) == 1;
    struct buf d = { 0 };
    unsigned char *r;
    uint8_t *data;
    uint32_t n;

    if (alua_unit_attention(msg + SR_ISER_HDR, *len - SR_ISER_HDR)) {
        sr_alua_say("conn %u: REPORT TARGET PORT GROUPS: the target's UNIT "
                    "ATTENTION passed on", a->id);
        return NULL;
    }
    alua_rtpg_data(&d, &A.states, ext);
    n = alua_alloc_len(c->cdb, c->edtl);
    if (n > d.len)
        n = (uint32_t)d.len;
    data = sr_alua_data(pd, c, n);
    if (!data) {
        sr_alua_say("conn %u: REPORT TARGET PORT GROUPS: no buffer for %u bytes, "
                    "passed on", a->id, n);
        buf_free(&d);
        return NULL;
    }
    memcpy(data, d.b, n);
    r = sr_alua_good(msg, len, c, n);
    sr_alua_say("conn %u: REPORT TARGET PORT GROUPS (%s format): answered %u groups "
                "in place of status 0x%02x", a->id, ext ? "extended" : "basic",
                A.states.n, msg[SR_ISER_HDR + 3]);
    buf_free(&d);
    return r;
}

unsigned char *
sr_alua_received(struct sr_alua *a, struct ibv_pd *pd, const unsigned char *msg,
                 size_t *len)
{
    const uint8_t *p = msg + SR_ISER_HDR;
    struct sr_alua_cmd *c;
    unsigned char *r = NULL;
    size_t seg;

    if (*len < SR_ISER_HDR + ALUA_BHS || (msg[0] & 0xf0) != SR_ISER_ISCSI ||
        (p[0] & 0x3f) != 0x21)
        return NULL;            /* not a SCSI Response */
    seg = ALUA_BHS + (size_t)p[4] * 4 + (get32(p + 4) & 0xffffff);
    if (SR_ISER_HDR + seg > *len)
        return NULL;
    for (c = a->t; c < a->t + SR_ALUA_TRACKED; c++)
        if (c->used && c->itt == get32(p + 16))
            break;
    if (c == a->t + SR_ALUA_TRACKED)
        return NULL;
    c->used = 0;
    switch (c->act) {
    case SR_A_UA:
        r = sr_alua_sense(msg, len, 0x06, 0x2a, 0x06);
        sr_alua_say("conn %u: itt 0x%x (opcode 0x%02x): answered UNIT ATTENTION 2A/06",
                    a->id, c->itt, c->cdb[0]);
        break;
    case SR_A_NOT_READY:
        r = sr_alua_sense(msg, len, 0x02, 0x04, 0x0b);
        sr_alua_say("conn %u: itt 0x%x (opcode 0x%02x): answered NOT READY 04/0B",
                    a->id, c->itt, c->cdb[0]);
        break;
    case SR_A_RTPG:
        r = sr_alua_rtpg(a, pd, c, msg, len);
        break;
    case SR_A_TPGS:
    case SR_A_VPD83:
        if (p[3] != 0) {        /* an error: the target's own answer */
            sr_alua_say("conn %u: %s: status 0x%02x: passed on", a->id,
                        sr_alua_act_name(c->act), p[3]);
            break;
        }
        r = sr_alua_inquiry(a, pd, c, msg, len);
        break;
    default:
        break;
    }
    return r;
}
