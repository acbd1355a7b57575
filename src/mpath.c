/* Multipath: see mpath.h.  Everything runs on the first session's thread
 * unless said otherwise. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <iscsi/iscsi.h>

#include "clock.h"
#include "command.h"
#include "identity.h"
#include "log.h"
#include "lun.h"
#include "mpath.h"
#include "session.h"
#include "stats.h"

#define RANK_ABSENT 3           /* the LUN is not used through this path */

/* Whether a path's new login ends, at the target, whatever its lost
 * connection still held (mpath.h, Fencing): libiscsi logs in again with
 * the lost session's ISID, which the target takes as a reinstatement. */
#ifdef LIBISCSI_FEATURE_RECONNECT_SAME_ISID
static const bool login_fences = true;
#else
static const bool login_fences = false;
#endif

struct mpath;

/* Commands in a line, oldest first, linked by their `next`. */
struct line {
  struct scmd *head, *tail;
};

static void
line_add (struct line *q, struct scmd *c)
{
  c->next = NULL;
  if (q->tail)
    q->tail->next = c;
  else
    q->head = c;
  q->tail = c;
}

/* One path: a command layer over one session. */
struct member {
  struct mpath *mp;
  struct path *sub;             /* the command layer */
  struct session *s;
  /* Read by mpath_stats_print from any thread. */
  atomic_uint outstanding;      /* commands sent here, not back yet */
  atomic_bool up;
  atomic_uint_fast64_t commands, errors, failovers;
  /* Fencing: writes that were out on this path when it was lost, held
   * until it logs in again or fence_timeout passes; oldest first. */
  struct line held;
  time_t lost_at;               /* clock_mono_s() */
};

/* A LUN of the first session and its rank through each path.  The LUN
 * as each path's session probed it (its struct lun there, with the ALUA
 * state of that (LUN, path) pair in it) is pair[i]; NULL where the LUN is
 * not used through path i. */
struct mp_lun {
  const struct lun *l;
  unsigned char rank[MPATH_MAX];
  struct lun *pair[MPATH_MAX];
  signed char alua[MPATH_MAX];  /* pair's ALUA state, -1 unknown or none;
                                 * atomic: mpath_stats_print reads it */
};

_Static_assert (MPATH_RANK_PREFERRED == (int) ALUA_RANK_OPTIMIZED
                && MPATH_RANK_NONPREFERRED == (int) ALUA_RANK_NONOPTIMIZED
                && MPATH_RANK_NOIO == (int) ALUA_RANK_NONE,
                "path ranks are ALUA ranks");

struct mpath {
  struct path path;             /* what the engine sees */
  enum path_policy policy;
  unsigned n;
  struct member m[MPATH_MAX];
  struct mp_lun *luns;
  unsigned nr_luns;
  unsigned current;             /* failover: the path in use */
  unsigned fence_s;             /* how long a lost path's writes are held */
  unsigned rr;                  /* where the next search starts */
  struct line park;   /* no path usable for them */
  unsigned open;                /* command layers not closed yet */
  time_t last_expire;
  struct mpath *next;           /* the registry */
  /* LUNs found while mounted, handed over by the scanner's thread
   * (mpath_add_lun) and put in luns by this one (apply_adds). */
  pthread_mutex_t add_lock;
  pthread_cond_t add_cond;
  struct mp_add *adds;          /* not applied yet, oldest first */
  uint64_t adds_queued, adds_applied;
  atomic_bool add_pending;
};

/* A LUN found while mounted: l (the first path's) and its struct lun as
 * each other path's session probed it (NULL: not seen there). */
struct mp_add {
  struct mp_add *next;
  struct lun *l;
  struct lun *o[MPATH_MAX];
};

/* Every multipath path, for the stats attribute. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mpath *registry;

static struct mpath *
mpath_of (const struct path *p)
{
  return (struct mpath *) ((char *) p - offsetof (struct mpath, path));
}

/* By the struct lun, not its number: a LUN the live scanner found later
 * under a number the mount already knew is another LUN (lun.h), and is
 * used through the first path only. */
static struct mp_lun *
find_lun (struct mpath *mp, const struct lun *l)
{
  for (unsigned i = 0; i < mp->nr_luns; i++)
    if (mp->luns[i].l == l)
      return &mp->luns[i];
  return NULL;
}

static bool
member_up (const struct member *m)
{
  return m->sub->down_since == 0;
}

/* ---- choosing a path ---- */

static unsigned
rank_of (const struct mp_lun *ml, unsigned i)
{
  if (ml == NULL)
    return i == 0 ? MPATH_RANK_PREFERRED : RANK_ABSENT;
  return ml->rank[i];
}

/* The path whose session c's struct lun belongs to, if not the first's:
 * the scanner probing a LUN through that path (mpath_add_lun). */
static struct member *
pinned (struct mpath *mp, const struct scmd *c)
{
  for (unsigned i = 1; i < mp->n; i++)
    if (c->lun->session == mp->m[i].s)
      return &mp->m[i];
  return NULL;
}

/* The path for c, or NULL when none is usable now. */
static struct member *
choose (struct mpath *mp, const struct scmd *c)
{
  const struct mp_lun *ml = find_lun (mp, c->lun);
  unsigned best = MPATH_RANK_NOIO, pick = mp->n, start;

  for (unsigned i = 0; i < mp->n; i++)
    if (member_up (&mp->m[i]) && rank_of (ml, i) < best)
      best = rank_of (ml, i);
  if (best >= MPATH_RANK_NOIO)
    return NULL;
#define CANDIDATE(i) (member_up (&mp->m[i]) && rank_of (ml, i) == best)
  switch (mp->policy) {
  case POLICY_FAILOVER:
    if (mp->current < mp->n && CANDIDATE (mp->current))
      return &mp->m[mp->current];
    for (unsigned i = 0; i < mp->n; i++)
      if (CANDIDATE (i)) {
        mp->current = i;
        return &mp->m[i];
      }
    return NULL;
  case POLICY_ROUND_ROBIN:
    start = mp->rr++;
    for (unsigned k = 0; k < mp->n; k++) {
      unsigned i = (start + k) % mp->n;

      if (CANDIDATE (i))
        return &mp->m[i];
    }
    return NULL;
  case POLICY_QUEUE_LENGTH:
  default:
    start = mp->rr++;
    for (unsigned k = 0; k < mp->n; k++) {
      unsigned i = (start + k) % mp->n;

      if (CANDIDATE (i)
          && (pick == mp->n || atomic_load (&mp->m[i].outstanding)
                               < atomic_load (&mp->m[pick].outstanding)))
        pick = i;
    }
    return pick < mp->n ? &mp->m[pick] : NULL;
  }
#undef CANDIDATE
}

/* Whether a command of LUN l waits for a path.  A newer one of that LUN
 * waits behind it, so that the LUN's commands keep their order; those of
 * other LUNs need not: a LUN that no usable path reaches (one seen
 * through a single path that is down, or whose paths are all standby)
 * must not hold up the others until its commands' deadlines. */
static bool
lun_parked (const struct mpath *mp, const struct lun *l)
{
  for (const struct scmd *c = mp->park.head; c; c = c->next)
    if (c->lun == l)
      return true;
  return false;
}

static void
park (struct mpath *mp, struct scmd *c)
{
  line_add (&mp->park, c);
}

/* Send c on a usable path, or keep it until one is. */
static void
route (struct mpath *mp, struct scmd *c)
{
  struct member *m;

  if (c->abandoned) {
    /* Its request was answered at the deadline. */
    mp->path.client.done (c, -ECANCELED);
    return;
  }
  if ((m = pinned (mp, c)) != NULL) {
    /* Asked of that path only: not there now is an answer too. */
    if (!member_up (m)) {
      mp->path.client.done (c, -ENOTCONN);
      return;
    }
  }
  else if ((m = choose (mp, c)) == NULL) {
    /* A query is the LUN scanner's, which asks again at its next pass:
     * parked, it would hold up every command behind it until its
     * deadline, when the LUN it asks about is reached only through a
     * path that is down. */
    if (c->kind == CMD_QUERY)
      mp->path.client.done (c, -ENOTCONN);
    else
      park (mp, c);
    return;
  }
  atomic_fetch_add (&m->outstanding, 1);
  atomic_fetch_add (&m->commands, 1);
  m->sub->ops->send (m->sub, c);
}

/* The engine's send. */
static void
mp_send (struct path *p, struct scmd *c)
{
  struct mpath *mp = mpath_of (p);

  c->path_lost = false;
  c->unfenced = false;
  /* Behind those of its LUN already waiting for a path: the order is kept. */
  if (lun_parked (mp, c->lun))
    park (mp, c);
  else
    route (mp, c);
}

/* Send what waited for a path, in order, as far as paths allow. */
static void
unpark (struct mpath *mp)
{
  struct scmd *c = mp->park.head;

  mp->park.head = mp->park.tail = NULL;
  while (c) {
    struct scmd *next = c->next;

    if (lun_parked (mp, c->lun))
      park (mp, c);             /* an older one of its LUN still waits */
    else
      route (mp, c);
    c = next;
  }
}

/* Of line q, answer the commands whose requests were answered (every
 * one, if all) and keep the others in order.  done() may queue new
 * commands on q meanwhile: they go behind the kept ones. */
static void
sift_abandoned (struct mpath *mp, struct line *q, bool all)
{
  struct scmd *c = q->head, *keep = NULL, *last = NULL;

  q->head = q->tail = NULL;
  while (c) {
    struct scmd *next = c->next;

    if (all || c->abandoned)
      mp->path.client.done (c, -ECANCELED);
    else {
      c->next = NULL;
      if (last)
        last->next = c;
      else
        keep = c;
      last = c;
    }
    c = next;
  }
  if (last) {
    last->next = q->head;
    q->head = keep;
    if (q->tail == NULL)
      q->tail = last;
  }
}

/* c goes out again, behind what already waits for a path. */
static void
reroute (struct mpath *mp, struct scmd *c)
{
  c->unfenced = false;
  if (c->abandoned)
    mp->path.client.done (c, -ECANCELED);
  else if (lun_parked (mp, c->lun))
    park (mp, c);
  else
    route (mp, c);
}

/* ---- fencing (mpath.h) ---- */

/* c, a write that was out on m's lost connection, waits for the fence. */
static void
hold (struct member *m, struct scmd *c)
{
  struct mpath *mp = m->mp;

  if (m->held.head == NULL) {
    m->lost_at = m->sub->down_since ? m->sub->down_since : clock_mono_s ();
    log_info ("path %u of %s (%s) was lost with writes out on it: they wait "
              "until it logs in again, at most %u s, before another path "
              "carries them", (unsigned) (m - mp->m), m->s->target,
              m->s->portal, mp->fence_s);
  }
  atomic_fetch_add (&stats.fence_waits, 1);
  line_add (&m->held, c);
}

/* m's held writes go out again, oldest first: fenced, because m logged
 * in again; or not, because fence_timeout passed. */
static void
release_held (struct member *m, bool fenced)
{
  struct mpath *mp = m->mp;
  struct scmd *c = m->held.head;
  unsigned n = 0;

  if (c == NULL)
    return;
  m->held.head = m->held.tail = NULL;
  for (struct scmd *h = c; h; h = h->next)
    n++;
  if (fenced)
    log_info ("path %u of %s (%s) logged in again, which ended what its lost "
              "connection held at the target: %u writes go out again",
              (unsigned) (m - mp->m), m->s->target, m->s->portal, n);
  else {
    atomic_fetch_add (&stats.fence_expired, n);
    log_error ("path %u of %s (%s) not fenced after %u s: %u writes that "
               "were out on it go on another path; the target may still "
               "carry out the copies it held", (unsigned) (m - mp->m),
               m->s->target, m->s->portal, mp->fence_s, n);
  }
  while (c) {
    struct scmd *next = c->next;

    reroute (mp, c);
    c = next;
  }
}

/* Each second (now 0: stopping): held writes whose requests were
 * answered end; those held for fence_timeout go out unfenced. */
static void
expire_held (struct mpath *mp, time_t now)
{
  for (unsigned i = 0; i < mp->n; i++) {
    struct member *m = &mp->m[i];

    sift_abandoned (mp, &m->held, now == 0);
    if (m->held.head && now - m->lost_at >= (time_t) mp->fence_s)
      release_held (m, false);
  }
}

static bool
none_held (const struct mpath *mp)
{
  for (unsigned i = 0; i < mp->n; i++)
    if (mp->m[i].held.head)
      return false;
  return true;
}

/* ---- the command layers' client calls (path.h) ---- */

static void
mp_done (struct scmd *c, int err)
{
  struct member *m = c->path->client.eng;
  struct mpath *mp = m->mp;

  atomic_fetch_sub (&m->outstanding, 1);
  if (c->path_lost && !c->abandoned) {
    /* Its connection is gone, the target can no longer answer it there:
     * send it on another path, still under its request's range lock --
     * a write only once the lost connection is fenced. */
    c->path_lost = false;
    atomic_fetch_add (&m->failovers, 1);
    atomic_fetch_add (&stats.failovers, 1);
    if (c->unfenced && mp->fence_s > 0)
      hold (m, c);
    else
      reroute (mp, c);
    return;
  }
  c->path_lost = false;
  c->unfenced = false;
  if (err < 0 && err != -ECANCELED && err != -EOPNOTSUPP)
    atomic_fetch_add (&m->errors, 1);
  mp->path.client.done (c, err);
}

static void apply_adds (struct mpath *mp);

static void
mp_take (void *opaque)
{
  struct mpath *mp = ((struct member *) opaque)->mp;

  if (atomic_load (&mp->add_pending))
    apply_adds (mp);
  mp->path.client.take (mp->path.client.eng);
}

/* Every command layer calls it each second: the engine's once. */
static void
mp_expire (void *opaque, time_t now)
{
  struct mpath *mp = ((struct member *) opaque)->mp;

  if (now && now == mp->last_expire)
    return;
  mp->last_expire = now;
  mp->path.client.expire (mp->path.client.eng, now);
  /* Waiting for a path, or held for a fence, whose requests were answered. */
  sift_abandoned (mp, &mp->park, false);
  expire_held (mp, now);
}

static bool
mp_idle (void *opaque)
{
  struct mpath *mp = ((struct member *) opaque)->mp;

  return mp->park.head == NULL && none_held (mp)
         && mp->path.client.idle (mp->path.client.eng);
}

/* A path went down or came back: what the engine sees of the target, and
 * what waited for a path. */
static void
mp_changed (void *opaque)
{
  struct member *m = opaque;
  struct mpath *mp = m->mp;
  time_t all_down = 0;
  bool any = false;

  atomic_store (&m->up, member_up (m));
  log_info ("path %u of %s (%s) is %s", (unsigned) (m - mp->m), m->s->target,
            m->s->portal, member_up (m) ? "up" : "down");
  for (unsigned i = 0; i < mp->n; i++) {
    if (member_up (&mp->m[i]))
      any = true;
    else if (mp->m[i].sub->down_since > all_down)
      all_down = mp->m[i].sub->down_since;
  }
  mp->path.down_since = any ? 0 : all_down;
  if (member_up (m) && login_fences)
    release_held (m, true);
  if (any && mp->park.head)
    unpark (mp);
}

/* What the scanner handed over and this thread never applied. */
static void
free_adds (struct mpath *mp)
{
  while (mp->adds) {
    struct mp_add *a = mp->adds;

    mp->adds = a->next;
    free (a);
  }
  pthread_cond_destroy (&mp->add_cond);
  pthread_mutex_destroy (&mp->add_lock);
}

static void
unregister (struct mpath *mp)
{
  pthread_mutex_lock (&registry_lock);
  for (struct mpath **pp = &registry; *pp; pp = &(*pp)->next)
    if (*pp == mp) {
      *pp = mp->next;
      break;
    }
  pthread_mutex_unlock (&registry_lock);
}

/* A command layer's session closed (main thread): the last one takes the
 * engine and this path with it. */
static void
mp_closed (void *opaque)
{
  struct mpath *mp = ((struct member *) opaque)->mp;

  /* The stats attribute must not read a session being freed. */
  unregister (mp);
  if (--mp->open > 0)
    return;
  /* Nothing can come back any more: what still waits for a path ends. */
  expire_held (mp, 0);
  while (mp->park.head) {
    struct scmd *c = mp->park.head;

    mp->park.head = c->next;
    mp->path.client.done (c, -ECANCELED);
  }
  unregister (mp);
  if (mp->path.client.closed)
    mp->path.client.closed (mp->path.client.eng);
  free_adds (mp);
  free (mp->luns);
  free (mp);
}

/* ---- the path's other calls ---- */

static void
mp_wake (struct path *p)
{
  struct path *first = mpath_of (p)->m[0].sub;

  first->ops->wake (first);
}

static bool
mp_on_thread (const struct path *p)
{
  const struct path *first = mpath_of (p)->m[0].sub;

  return first->ops->on_thread (first);
}

static const struct path_ops ops = {
  .send = mp_send, .wake = mp_wake, .on_thread = mp_on_thread,
};

/* ---- setting up ---- */

static struct lun *
lun_of (const struct session *s, int lun)
{
  for (unsigned i = 0; i < s->nr_luns; i++)
    if (s->luns[i].lun == lun)
      return &s->luns[i];
  return NULL;
}

static const char *const rank_names[] = {
  [MPATH_RANK_PREFERRED] = "preferred",
  [MPATH_RANK_NONPREFERRED] = "used only without a preferred path",
  [MPATH_RANK_NOIO] = "not used for I/O",
};

/* A re-read of the pair's ALUA states changed its rank (alua.h; on the
 * one thread): choose by the new one, and send what waited for a path. */
static void
pair_changed (void *opaque, struct alua_path *ap, enum alua_rank old)
{
  struct member *m = opaque;
  struct mpath *mp = m->mp;
  unsigned i = (unsigned) (m - mp->m);

  (void) old;
  for (unsigned j = 0; j < mp->nr_luns; j++) {
    struct mp_lun *ml = &mp->luns[j];

    if (ml->pair[i] == NULL || &ml->pair[i]->alua != ap)
      continue;
    __atomic_store_n (&ml->alua[i], (signed char) ap->state,
                      __ATOMIC_RELAXED);
    if (ml->rank[i] == (unsigned char) ap->rank)
      continue;
    ml->rank[i] = (unsigned char) ap->rank;
    log_info ("path %u of %s (%s), lun%d: %s", i, m->s->target,
              m->s->portal, ml->l->lun, rank_names[ap->rank]);
  }
  if (mp->park.head)
    unpark (mp);
}

/* LUN ml is used through path i, as o: its rank is the pair's ALUA rank
 * (0 without ALUA), and re-reads of its states change it (pair_changed).
 * Main thread, before the start. */
static void
add_pair (struct mpath *mp, struct mp_lun *ml, unsigned i, struct lun *o)
{
  struct member *m = &mp->m[i];

  ml->pair[i] = o;
  ml->rank[i] = (unsigned char) o->alua.rank;
  ml->alua[i] = (signed char) (o->alua.tpgs ? o->alua.state : -1);
  o->alua.changed = pair_changed;
  o->alua.changed_opaque = m;
  /* The logs must tell the paths apart. */
  snprintf (o->who, sizeof o->who, "lun%d of %s via %s", o->lun,
            m->s->target, m->s->portal);
  if (o->alua.tpgs && o->alua.state >= 0)
    log_info ("%s: ALUA state %s: %s", o->who,
              alua_state_name (o->alua.state), rank_names[o->alua.rank]);
}

/* Which paths LUN l of the first session is used through, into ml: o[i]
 * is its struct lun as path i's session probed it, NULL where it was not
 * seen (mpath.h). */
static void
pair_up (struct mpath *mp, struct mp_lun *ml, const struct lun *l,
         struct lun *const *o)
{
  const struct session *first = mp->m[0].s;
  char a[IDENTITY_NAME_MAX], b[IDENTITY_NAME_MAX];

  ml->l = l;
  for (unsigned i = 0; i < mp->n; i++) {
    ml->rank[i] = RANK_ABSENT;
    ml->alua[i] = -1;
    if (o[i] == NULL)
      log_info ("lun%d of %s: not seen through %s", l->lun,
                first->target, mp->m[i].s->portal);
    else if (i == 0 || identity_same (&l->id, &o[i]->id))
      add_pair (mp, ml, i, o[i]);
    else
      log_error ("lun%d of %s has identity %s through %s but %s through "
                 "%s: not the same LUN, used only through %s", l->lun,
                 first->target, identity_name (&l->id, a, sizeof a),
                 first->portal, identity_name (&o[i]->id, b, sizeof b),
                 mp->m[i].s->portal, first->portal);
  }
}

/* Which LUNs of the first session each path carries (mpath.h). */
static int
group_luns (struct mpath *mp)
{
  const struct session *first = mp->m[0].s;

  mp->luns = calloc (first->nr_luns ? first->nr_luns : 1, sizeof *mp->luns);
  if (mp->luns == NULL)
    return -ENOMEM;
  mp->nr_luns = first->nr_luns;
  for (unsigned j = 0; j < first->nr_luns; j++) {
    struct lun *o[MPATH_MAX] = { first->luns + j };

    for (unsigned i = 1; i < mp->n; i++)
      o[i] = lun_of (mp->m[i].s, first->luns[j].lun);
    pair_up (mp, &mp->luns[j], &first->luns[j], o);
  }
  for (unsigned i = 1; i < mp->n; i++)
    for (unsigned j = 0; j < mp->m[i].s->nr_luns; j++)
      if (lun_of (first, mp->m[i].s->luns[j].lun) == NULL)
        log_info ("lun%d of %s: seen only through %s, not used",
                  mp->m[i].s->luns[j].lun, first->target,
                  mp->m[i].s->portal);
  return 0;
}

/* ---- LUNs found while mounted ---- */

/* Put the LUNs the scanner handed over in the table, paired as at mount
 * (pair_up).  The table grows by a new copy swapped in under the
 * registry lock: this thread's readers (choose, find_lun, pair_changed)
 * never hold an entry across this call, and mpath_stats_print reads it
 * only under that lock, so the old copy can go at once. */
static void
apply_adds (struct mpath *mp)
{
  struct mp_add *list, *a;
  struct mp_lun *luns, *old;
  unsigned n = 0, k;
  uint64_t seq;

  pthread_mutex_lock (&mp->add_lock);
  atomic_store (&mp->add_pending, false);
  list = mp->adds;
  mp->adds = NULL;
  seq = mp->adds_queued;
  pthread_mutex_unlock (&mp->add_lock);

  for (a = list; a; a = a->next)
    n++;
  luns = calloc (mp->nr_luns + n, sizeof *luns);
  if (luns == NULL)
    log_error ("%s: out of memory: new LUNs used only through %s",
               mp->m[0].s->target, mp->m[0].s->portal);
  else {
    memcpy (luns, mp->luns, mp->nr_luns * sizeof *luns);
    for (a = list, k = mp->nr_luns; a; a = a->next, k++) {
      struct lun *prev = a->l;

      pair_up (mp, &luns[k], a->l, a->o);
      /* command.c finds a path's struct lun of it by this chain, and
       * reads its ALUA states again as the mount-time LUNs'. */
      for (unsigned i = 0; i < mp->n; i++)
        if (luns[k].pair[i]) {
          if (i > 0) {
            prev->pair_next = luns[k].pair[i];
            prev = luns[k].pair[i];
          }
          if (command_path_watch (mp->m[i].sub, luns[k].pair[i], a->l) < 0)
            log_error ("%s: out of memory: ALUA states not read again",
                       luns[k].pair[i]->who);
        }
      a->l->paired = true;
    }
    pthread_mutex_lock (&registry_lock);
    old = mp->luns;
    mp->luns = luns;
    mp->nr_luns += n;
    pthread_mutex_unlock (&registry_lock);
    free (old);
  }
  while (list) {
    a = list;
    list = a->next;
    free (a);
  }
  pthread_mutex_lock (&mp->add_lock);
  mp->adds_applied = seq;
  pthread_cond_broadcast (&mp->add_cond);
  pthread_mutex_unlock (&mp->add_lock);
  if (mp->park.head)
    unpark (mp);
}

int
mpath_add_lun (struct lun *l, struct lun *const *o, unsigned n)
{
  struct timespec deadline = clock_deadline_ms (10000);
  struct mpath *mp;
  struct mp_add *a;
  uint64_t seq;
  int e = 0;

  pthread_mutex_lock (&registry_lock);
  for (mp = registry; mp; mp = mp->next)
    if (mp->m[0].s == l->session)
      break;
  pthread_mutex_unlock (&registry_lock);
  if (mp == NULL)
    return 0;                   /* one path: nothing to choose */
  a = calloc (1, sizeof *a);
  if (a == NULL)
    return -ENOMEM;
  a->l = l;
  a->o[0] = l;
  for (unsigned i = 1; i < mp->n && i < n; i++)
    a->o[i] = o[i];

  pthread_mutex_lock (&mp->add_lock);
  if (mp->adds == NULL)
    mp->adds = a;
  else {
    struct mp_add *t = mp->adds;

    while (t->next)
      t = t->next;
    t->next = a;
  }
  seq = ++mp->adds_queued;
  atomic_store (&mp->add_pending, true);
  pthread_mutex_unlock (&mp->add_lock);
  mp_wake (&mp->path);

  /* So that the file appears with its paths in place; a thread that
   * does not answer in time still applies it later. */
  pthread_mutex_lock (&mp->add_lock);
  while (mp->adds_applied < seq && e == 0)
    if (clock_cond_wait (&mp->add_cond, &mp->add_lock, &deadline) == ETIMEDOUT)
      e = -ETIMEDOUT;
  pthread_mutex_unlock (&mp->add_lock);
  return e;
}

struct path *
mpath_new (struct session *s, enum path_policy policy)
{
  struct mpath *mp = calloc (1, sizeof *mp);
  struct session *o;

  if (mp == NULL)
    return NULL;
  mp->policy = policy;
  /* Held writes must go out before their requests' deadlines. */
  mp->fence_s = s->fence_timeout;
  if (s->timeout && mp->fence_s > s->timeout / 2)
    mp->fence_s = s->timeout / 2;
  pthread_mutex_init (&mp->add_lock, NULL);
  pthread_cond_init (&mp->add_cond, NULL);
  for (o = s; o && mp->n < MPATH_MAX; o = o->next_path) {
    struct member *m = &mp->m[mp->n];
    struct path *sub = command_path_new (o);

    if (sub == NULL)
      goto oom;
    m->mp = mp;
    m->sub = sub;
    m->s = o;
    atomic_init (&m->up, true);
    command_path_give_back_on_loss (sub);
    sub->client = (struct path_client) {
      .done = mp_done, .take = mp_take, .expire = mp_expire,
      .idle = mp_idle, .closed = mp_closed, .changed = mp_changed,
      .eng = m,
    };
    mp->n++;
    mp->open++;
  }
  if (group_luns (mp) < 0)
    goto oom;
  mp->path.ops = &ops;
  mp->path.alloc = s->alloc;
  mp->path.timeout = s->timeout;
  mp->path.can_lend = !s->iser;
  mp->path.splice = s->splice;
  for (o = s->next_path; o; o = o->next_path)
    mp->path.splice = mp->path.splice && o->splice;
  log_info ("%s: %u paths, path_policy=%s", s->target, mp->n,
            mpath_policy_name (policy));
  stats_print_also (mpath_stats_print);
  pthread_mutex_lock (&registry_lock);
  mp->next = registry;
  registry = mp;
  pthread_mutex_unlock (&registry_lock);
  return &mp->path;

 oom:
  /* The command layers made so far go with their sessions; until then
   * they must not call back into this. */
  for (unsigned i = 0; i < mp->n; i++)
    mp->m[i].sub->client = (struct path_client) { 0 };
  free_adds (mp);
  free (mp->luns);
  free (mp);
  return NULL;
}

void
mpath_stats_print (FILE *fp)
{
  pthread_mutex_lock (&registry_lock);
  for (struct mpath *mp = registry; mp; mp = mp->next)
    for (unsigned i = 0; i < mp->n; i++) {
      struct member *m = &mp->m[i];

      const char *sep = " alua=";

      fprintf (fp, "path %s %s state=%s inflight=%u commands=%" PRIuFAST64
               " errors=%" PRIuFAST64 " failovers=%" PRIuFAST64,
               m->s->target, m->s->portal,
               atomic_load (&m->up) ? "up" : "down",
               atomic_load (&m->outstanding),
               atomic_load (&m->commands), atomic_load (&m->errors),
               atomic_load (&m->failovers));
      /* Each LUN's ALUA state through this path, where known. */
      for (unsigned j = 0; j < mp->nr_luns; j++) {
        int st = __atomic_load_n (&mp->luns[j].alua[i], __ATOMIC_RELAXED);

        /* A removed LUN is used through no path any more. */
        if (st < 0 || lun_removed (mp->luns[j].l))
          continue;
        fprintf (fp, "%slun%d:%s", sep, mp->luns[j].l->lun,
                 alua_state_name (st));
        sep = ",";
      }
      fputc ('\n', fp);
    }
  pthread_mutex_unlock (&registry_lock);
}
