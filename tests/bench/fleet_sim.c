/*
 * fleet_sim.c - a thousand light executors on NATS, for the distributor
 * scale benchmark (benchmark 5 of issue 6; scripts/bench/bench.py part
 * `dscale`, docs/performance.md).
 *
 * Each simulated executor speaks the executor's half of the contract in
 * docs/architecture.md and nothing more: it publishes a Heartbeat on
 * j4.hb.<id> every interval (offering one plugin, with the (epoch,
 * version) it applied and, per scenario, its share of Planned(now) as
 * both planned and running, as if its workers followed the plan at
 * once), takes the DesiredState the leader sends on j4.assign.<id> under
 * the executor's rules (its incarnation only, no older epoch, no older
 * version within the epoch) and heartbeats ~20 ms after applying a new
 * state, as a real executor confirms one. It runs no worker and sends no
 * metrics report, so the leader's control plane is what gets measured.
 *
 * The executors share a few NATS connections, each with a sender thread
 * that walks its executors' heartbeat deadlines (spread evenly over the
 * interval), and cnats's global delivery pool rather than a thread per
 * subscription.
 *
 * Commands come one per line on stdin; each answer is one line of
 * key=value pairs on stdout:
 *
 *   converge S MS   wait up to MS ms until every live executor holds S
 *                   scenarios, each on the slot the leader's rule gives
 *                   it (live executors ordered by id, slot 0 rotated by
 *                   the scenario id): "converged ms=..." or "timeout ..."
 *   kill I MS       stop the heartbeats of executor I and wait up to MS
 *                   ms until every survivor has received a desired state
 *                   holding its new slot of every scenario
 *   stats           message counters since start
 *   quit            unsubscribe, close and exit
 *
 * Only loopback NATS URLs are accepted: this is a load tool.
 */
#include <errno.h>
#include <getopt.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "j4.pb-c.h"
#include "schedule.h"
#include "split.h"

#define HB_AFTER_CHANGE_MS 20
#define POLL_MS 5
#define ID_MAX 64

struct options {
    const char *nats_url;
    const char *prefix;
    const char *plugin;
    unsigned executors;
    unsigned connections;
    unsigned delivery_threads;
    unsigned capacity;
    int64_t heartbeat_ms;
};

struct sim_share {
    int64_t scenario_id;
    uint32_t slot;
    uint32_t slots;
    int64_t start_wall_ms;
    struct schedule sched;
};

struct sim_conn;

/* One simulated executor. lock guards everything below it. */
struct sim_exec {
    pthread_mutex_t lock;
    char id[ID_MAX + 1];
    char subj_hb[ID_MAX + 8];
    uint64_t incarnation;
    uint64_t seq;
    uint64_t epoch_seen;
    uint64_t applied_epoch;
    uint64_t applied_version;
    struct sim_share *shares;
    size_t n_shares;
    uint32_t lease_ms;
    int64_t hb_due_ms;
    int64_t last_hb_ms;         /* mono ms of the last heartbeat sent */
    int killed;
    uint64_t matched_gen;       /* expectation its state has matched */
    int64_t matched_ms;         /* when that state arrived */
    uint64_t reacted_gen;       /* first state with the new slot count */
    int64_t reacted_ms;
    struct sim_conn *conn;
    natsSubscription *sub;
};

/* One NATS connection and the sender thread of its executors. */
struct sim_conn {
    natsConnection *nc;
    pthread_t sender;
    int started;
    pthread_mutex_t lock;
    pthread_cond_t poke;
    size_t first;
    size_t count;
    uint8_t *buf;
    size_t cap;
};

/* What every live executor should hold: its position among the live
 * ones (ordered by id) and the scenarios. Guarded by expect_lock. */
struct expectation {
    uint64_t gen;
    uint32_t n_live;
    int32_t *pos;               /* per executor index, -1: not live */
    int64_t *sids;
    size_t n_sids;
};

static struct options opt = {
    .nats_url = "nats://127.0.0.1:4222",
    .prefix = "sim",
    .plugin = "fleet_sim",
    .executors = 1000,
    .connections = 4,
    .delivery_threads = 2,
    .capacity = 10000,
    .heartbeat_ms = 1000,
};

static struct sim_exec *execs;
static struct sim_conn *conns;
static atomic_int quitting;
static pthread_rwlock_t expect_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct expectation expect;

static atomic_ullong hb_sent, hb_bytes, ds_recv, ds_bytes, ds_ignored;

/* ------------------------------------------------------------ helpers */

static uint64_t random64(void)
{
    uint64_t v = 0;
    FILE *f = fopen("/dev/urandom", "rb");

    if (!f || fread(&v, sizeof(v), 1, f) != 1)
        v = (uint64_t)clock_mono_us() * 0x9e3779b97f4a7c15ULL;
    if (f)
        fclose(f);
    return v ? v : 1;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static uint32_t share_now(const struct sim_share *sh, int64_t wall)
{
    uint32_t planned = schedule_planned(&sh->sched,
                                        wall - sh->start_wall_ms);

    return split_share(planned, sh->slot, sh->slots);
}

static const struct sim_share *share_of(const struct sim_exec *e,
                                        int64_t sid)
{
    for (size_t i = 0; i < e->n_shares; i++) {
        if (e->shares[i].scenario_id == sid)
            return &e->shares[i];
    }
    return NULL;
}

/* The leader's rule (docs/architecture.md, "The split"): slot of the
 * executor at position pos of n live ones, for scenario sid. */
static uint32_t expected_slot(uint32_t pos, uint32_t n, int64_t sid)
{
    uint32_t rotation = (uint32_t)(sid % n);

    return (pos + n - rotation) % n;
}

/* ------------------------------------------------------- expectations */

/* Non-zero when e's state holds exactly the expected slot of every
 * expected scenario. Call with e->lock and expect_lock held. */
static int state_matches(const struct sim_exec *e, size_t index)
{
    int32_t pos = expect.pos[index];

    if (pos < 0 || e->n_shares != expect.n_sids)
        return 0;
    for (size_t i = 0; i < expect.n_sids; i++) {
        const struct sim_share *sh = share_of(e, expect.sids[i]);

        if (!sh || sh->slots != expect.n_live ||
            sh->slot != expected_slot((uint32_t)pos, expect.n_live,
                                      expect.sids[i]))
            return 0;
    }
    return 1;
}

/* Notes when e's state first matched the expectation, and when it first
 * carried the expected slot count (the leader's first reaction). Call
 * with e->lock held. */
static void note_match(struct sim_exec *e, int64_t now)
{
    size_t index = (size_t)(e - execs);

    pthread_rwlock_rdlock(&expect_lock);
    if (expect.gen && e->matched_gen != expect.gen &&
        state_matches(e, index)) {
        e->matched_gen = expect.gen;
        e->matched_ms = now;
    }
    if (expect.gen && e->reacted_gen != expect.gen && e->n_shares &&
        e->shares[0].slots == expect.n_live) {
        e->reacted_gen = expect.gen;
        e->reacted_ms = now;
    }
    pthread_rwlock_unlock(&expect_lock);
}

static int cmp_sid(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/* The scenarios any live executor holds, sorted, into *out (malloc'd). */
static size_t held_scenarios(int64_t **out)
{
    size_t n = 0, cap = 64;
    int64_t *sids = malloc(cap * sizeof(*sids));

    for (size_t i = 0; sids && i < opt.executors; i++) {
        struct sim_exec *e = &execs[i];

        pthread_mutex_lock(&e->lock);
        for (size_t j = 0; !e->killed && j < e->n_shares; j++) {
            int64_t sid = e->shares[j].scenario_id;
            int known = 0;

            for (size_t k = 0; k < n && !known; k++)
                known = sids[k] == sid;
            if (known)
                continue;
            if (n == cap) {
                int64_t *grown = realloc(sids, 2 * cap * sizeof(*sids));
                if (!grown)
                    break;
                sids = grown;
                cap *= 2;
            }
            sids[n++] = sid;
        }
        pthread_mutex_unlock(&e->lock);
    }
    if (sids)
        qsort(sids, n, sizeof(*sids), cmp_sid);
    *out = sids;
    return sids ? n : 0;
}

/* Installs a new expectation: every executor not killed (and not
 * `except`) is live, holding sids (taken over). Then marks the
 * executors whose current state already matches. Lock order: an
 * executor's lock before expect_lock (as in on_assign), never both the
 * other way round. */
static uint64_t expect_set(int64_t *sids, size_t n_sids, size_t except)
{
    int32_t *pos = malloc(opt.executors * sizeof(*pos));
    uint32_t live = 0;
    uint64_t gen;
    int64_t now = clock_mono_ms();

    if (!pos) {
        fprintf(stderr, "fleet_sim: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < opt.executors; i++) {
        pthread_mutex_lock(&execs[i].lock);
        pos[i] = execs[i].killed || i == except ? -1 : (int32_t)live++;
        pthread_mutex_unlock(&execs[i].lock);
    }
    pthread_rwlock_wrlock(&expect_lock);
    free(expect.pos);
    expect.pos = pos;
    free(expect.sids);
    expect.sids = sids;
    expect.n_sids = n_sids;
    expect.n_live = live;
    gen = ++expect.gen;
    pthread_rwlock_unlock(&expect_lock);

    for (size_t i = 0; i < opt.executors; i++) {
        pthread_mutex_lock(&execs[i].lock);
        note_match(&execs[i], now);
        pthread_mutex_unlock(&execs[i].lock);
    }
    return gen;
}

/* ---------------------------------------------------------- heartbeat */

/* Packs e's heartbeat into c->buf; returns its length (0: no memory).
 * Call with e->lock held. */
static size_t pack_heartbeat(struct sim_conn *c, struct sim_exec *e,
                             int64_t now)
{
    J4__Heartbeat hb = J4__HEARTBEAT__INIT;
    J4__ScenarioStatus items[e->n_shares + 1];
    J4__ScenarioStatus *ptrs[e->n_shares + 1];
    char *plugins[] = {(char *)opt.plugin};
    int64_t wall = clock_wall_ms();
    size_t len;

    for (size_t i = 0; i < e->n_shares; i++) {
        uint32_t share = share_now(&e->shares[i], wall);

        j4__scenario_status__init(&items[i]);
        items[i].scenario_id = e->shares[i].scenario_id;
        items[i].planned = share;
        items[i].running = share;
        items[i].drained = share == 0;
        ptrs[i] = &items[i];
    }
    hb.executor_id = e->id;
    hb.incarnation = e->incarnation;
    hb.capacity = opt.capacity;
    hb.seq = ++e->seq;
    hb.sent_wall_ms = wall;
    hb.sent_mono_ms = now;
    hb.applied_epoch = e->applied_epoch;
    hb.applied_version = e->applied_version;
    hb.n_scenarios = e->n_shares;
    hb.scenarios = ptrs;
    hb.n_plugins = 1;
    hb.plugins = plugins;
    len = j4__heartbeat__get_packed_size(&hb);
    if (len > c->cap) {
        uint8_t *grown = realloc(c->buf, len * 2);
        if (!grown)
            return 0;
        c->buf = grown;
        c->cap = len * 2;
    }
    return j4__heartbeat__pack(&hb, c->buf);
}

/* Sends the heartbeats due on c; returns the next deadline. */
static int64_t send_due(struct sim_conn *c, int64_t now)
{
    int64_t next = now + 100;

    for (size_t i = c->first; i < c->first + c->count; i++) {
        struct sim_exec *e = &execs[i];
        size_t len = 0;

        pthread_mutex_lock(&e->lock);
        if (!e->killed && now >= e->hb_due_ms) {
            len = pack_heartbeat(c, e, now);
            e->hb_due_ms = now + opt.heartbeat_ms;
            e->last_hb_ms = now;
        }
        if (!e->killed)
            next = min64(next, e->hb_due_ms);
        pthread_mutex_unlock(&e->lock);
        if (len && natsConnection_Publish(c->nc, e->subj_hb, c->buf,
                                          (int)len) == NATS_OK) {
            atomic_fetch_add(&hb_sent, 1);
            atomic_fetch_add(&hb_bytes, len);
        }
    }
    return next;
}

static void *sender_main(void *arg)
{
    struct sim_conn *c = arg;

    while (!atomic_load(&quitting)) {
        int64_t now = clock_mono_ms();
        int64_t next = send_due(c, now);
        int64_t wall_next;
        struct timespec ts;

        /* sleep on the wall clock until next (condvars default to it) */
        wall_next = clock_wall_ms() + (next - clock_mono_ms());
        ts.tv_sec = wall_next / 1000;
        ts.tv_nsec = (wall_next % 1000) * 1000000;
        pthread_mutex_lock(&c->lock);
        if (next > clock_mono_ms())
            pthread_cond_timedwait(&c->poke, &c->lock, &ts);
        pthread_mutex_unlock(&c->lock);
    }
    return NULL;
}

/* ------------------------------------------------------ desired state */

static int state_stale(struct sim_exec *e, const J4__DesiredState *ds)
{
    if (ds->epoch < e->epoch_seen)
        return 1;
    if (ds->epoch > e->epoch_seen) {
        e->epoch_seen = ds->epoch;
        return 0;
    }
    return e->applied_epoch == ds->epoch &&
           ds->version < e->applied_version;
}

static void share_copy(struct sim_share *out, const J4__Share *sh)
{
    const J4__Schedule *s = sh->schedule;

    memset(out, 0, sizeof(*out));
    out->scenario_id = sh->scenario_id;
    out->slot = sh->slot;
    out->slots = sh->slots ? sh->slots : 1;
    out->start_wall_ms = sh->start_wall_ms;
    if (!s)
        return;
    out->sched.target = s->target;
    out->sched.rampup_step = s->rampup_step;
    out->sched.rampup_interval_ms = s->rampup_interval_ms;
    out->sched.rampup_exponential = s->rampup_exponential;
    out->sched.hold_ms = (int64_t)s->hold_ms;
    out->sched.rampdown_step = s->rampdown_step;
    out->sched.rampdown_interval_ms = s->rampdown_interval_ms;
}

/* Applies ds to e; returns non-zero when it was a new (epoch, version),
 * which the executor confirms with a heartbeat soon. e->lock held. */
static int apply_state(struct sim_exec *e, const J4__DesiredState *ds)
{
    struct sim_share *shares = calloc(ds->n_shares + 1, sizeof(*shares));
    int changed;

    if (!shares)
        return 0;
    for (size_t i = 0; i < ds->n_shares; i++)
        share_copy(&shares[i], ds->shares[i]);
    free(e->shares);
    e->shares = shares;
    e->n_shares = ds->n_shares;
    e->lease_ms = ds->lease_ms;
    changed = ds->epoch != e->applied_epoch ||
              ds->version != e->applied_version;
    e->applied_epoch = ds->epoch;
    e->applied_version = ds->version;
    return changed;
}

static void on_assign(natsConnection *nc, natsSubscription *sub,
                      natsMsg *msg, void *closure)
{
    struct sim_exec *e = closure;
    int64_t now = clock_mono_ms();
    int len = natsMsg_GetDataLength(msg);
    J4__DesiredState *ds = j4__desired_state__unpack(
        NULL, (size_t)len, (const uint8_t *)natsMsg_GetData(msg));
    int poke = 0;

    natsMsg_Destroy(msg);
    atomic_fetch_add(&ds_recv, 1);
    atomic_fetch_add(&ds_bytes, (unsigned long long)len);
    if (!ds)
        return;
    pthread_mutex_lock(&e->lock);
    if (e->killed || ds->incarnation != e->incarnation ||
        !ds->executor_id || strcmp(ds->executor_id, e->id) ||
        state_stale(e, ds)) {
        atomic_fetch_add(&ds_ignored, 1);
    } else if (apply_state(e, ds)) {
        e->hb_due_ms = min64(e->hb_due_ms, now + HB_AFTER_CHANGE_MS);
        poke = 1;
    }
    note_match(e, now);
    pthread_mutex_unlock(&e->lock);
    j4__desired_state__free_unpacked(ds, NULL);
    if (poke) {
        pthread_mutex_lock(&e->conn->lock);
        pthread_cond_signal(&e->conn->poke);
        pthread_mutex_unlock(&e->conn->lock);
    }
}

/* --------------------------------------------------------------- setup */

static natsStatus conn_open(struct sim_conn *c, unsigned index)
{
    natsOptions *o = NULL;
    char name[96];
    natsStatus s = natsOptions_Create(&o);

    snprintf(name, sizeof(name), "%s-conn-%u", opt.prefix, index);
    if (s == NATS_OK)
        s = natsOptions_SetURL(o, opt.nats_url);
    if (s == NATS_OK)
        s = natsOptions_SetName(o, name);
    if (s == NATS_OK)
        s = natsOptions_UseGlobalMessageDelivery(o, true);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(o, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(o, 250);
    if (s == NATS_OK)
        s = natsConnection_Connect(&c->nc, o);
    natsOptions_Destroy(o);
    return s;
}

static natsStatus exec_open(size_t i, struct sim_conn *c, int width,
                            int64_t start)
{
    struct sim_exec *e = &execs[i];
    char subject[ID_MAX + 16];

    pthread_mutex_init(&e->lock, NULL);
    snprintf(e->id, sizeof(e->id), "%s-%0*zu", opt.prefix, width, i);
    snprintf(e->subj_hb, sizeof(e->subj_hb), "j4.hb.%s", e->id);
    snprintf(subject, sizeof(subject), "j4.assign.%s", e->id);
    e->incarnation = random64();
    e->conn = c;
    /* spread the first heartbeats evenly over one interval */
    e->hb_due_ms = start + (int64_t)i * opt.heartbeat_ms / opt.executors;
    return natsConnection_Subscribe(&e->sub, c->nc, subject, on_assign, e);
}

static int fleet_open(void)
{
    size_t per = (opt.executors + opt.connections - 1) / opt.connections;
    int width = snprintf(NULL, 0, "%u", opt.executors - 1);
    int64_t start = clock_mono_ms() + 100;
    natsStatus s = nats_SetMessageDeliveryPoolSize(
        (int)opt.delivery_threads);

    width = width < 4 ? 4 : width;
    execs = calloc(opt.executors, sizeof(*execs));
    conns = calloc(opt.connections, sizeof(*conns));
    expect.pos = calloc(opt.executors, sizeof(*expect.pos));
    if (!execs || !conns || !expect.pos)
        return -1;
    for (unsigned k = 0; s == NATS_OK && k < opt.connections; k++) {
        struct sim_conn *c = &conns[k];

        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->poke, NULL);
        c->first = k * per < opt.executors ? k * per : opt.executors;
        c->count = c->first + per <= opt.executors ? per
                                                   : opt.executors - c->first;
        s = conn_open(c, k);
        for (size_t i = c->first; s == NATS_OK && i < c->first + c->count;
             i++)
            s = exec_open(i, c, width, start);
    }
    if (s != NATS_OK) {
        fprintf(stderr, "fleet_sim: unable to use NATS at '%s': %s\n",
                opt.nats_url, natsStatus_GetText(s));
        return -1;
    }
    for (unsigned k = 0; k < opt.connections; k++) {
        if (pthread_create(&conns[k].sender, NULL, sender_main,
                           &conns[k]) != 0)
            return -1;
        conns[k].started = 1;
    }
    return 0;
}

static void fleet_close(void)
{
    atomic_store(&quitting, 1);
    for (unsigned k = 0; conns && k < opt.connections; k++) {
        if (!conns[k].started)
            continue;
        pthread_mutex_lock(&conns[k].lock);
        pthread_cond_signal(&conns[k].poke);
        pthread_mutex_unlock(&conns[k].lock);
        pthread_join(conns[k].sender, NULL);
    }
    for (size_t i = 0; execs && i < opt.executors; i++) {
        if (execs[i].sub)
            natsSubscription_Unsubscribe(execs[i].sub);
    }
    for (unsigned k = 0; conns && k < opt.connections; k++) {
        if (conns[k].nc)
            natsConnection_Close(conns[k].nc);
    }
    for (size_t i = 0; execs && i < opt.executors; i++)
        natsSubscription_Destroy(execs[i].sub);
    for (unsigned k = 0; conns && k < opt.connections; k++) {
        natsConnection_Destroy(conns[k].nc);
        free(conns[k].buf);
    }
    nats_CloseAndWait(2000);
    /* no cnats thread runs any more: nothing can touch execs */
    for (size_t i = 0; execs && i < opt.executors; i++)
        free(execs[i].shares);
    free(execs);
    free(conns);
    free(expect.pos);
    free(expect.sids);
}

/* ------------------------------------------------------------ commands */

/* Whether every live executor's state matched expectation gen; the
 * earliest and latest arrival of a matching state, and the earliest
 * first reaction, go to the out parameters. Returns the count still
 * missing. */
static unsigned unmatched(uint64_t gen, int64_t *first_ms, int64_t *last_ms,
                          int64_t *reacted_ms)
{
    unsigned missing = 0;

    *first_ms = INT64_MAX;
    *last_ms = 0;
    *reacted_ms = INT64_MAX;
    for (size_t i = 0; i < opt.executors; i++) {
        struct sim_exec *e = &execs[i];

        pthread_mutex_lock(&e->lock);
        if (!e->killed && e->matched_gen == gen) {
            *first_ms = min64(*first_ms, e->matched_ms);
            *last_ms = e->matched_ms > *last_ms ? e->matched_ms : *last_ms;
        } else if (!e->killed) {
            missing++;
        }
        if (!e->killed && e->reacted_gen == gen)
            *reacted_ms = min64(*reacted_ms, e->reacted_ms);
        pthread_mutex_unlock(&e->lock);
    }
    return missing;
}

static int sids_equal(const int64_t *a, size_t na, const int64_t *b,
                      size_t nb)
{
    return na == nb && (na == 0 || !memcmp(a, b, na * sizeof(*a)));
}

static void cmd_converge(size_t want, int64_t timeout_ms)
{
    int64_t start = clock_mono_ms(), first, last, reacted;
    uint64_t gen = 0;
    size_t held = 0;

    while (clock_mono_ms() - start < timeout_ms) {
        int64_t *sids;
        size_t n = held_scenarios(&sids);
        int same;

        pthread_rwlock_rdlock(&expect_lock);
        same = gen && sids_equal(sids, n, expect.sids, expect.n_sids);
        pthread_rwlock_unlock(&expect_lock);
        held = n;
        if (n >= want && !same)
            gen = expect_set(sids, n, SIZE_MAX);
        else
            free(sids);
        if (gen && n >= want && unmatched(gen, &first, &last, &reacted) == 0) {
            printf("converged ms=%lld scenarios=%zu\n",
                   (long long)(clock_mono_ms() - start), n);
            return;
        }
        sleep_ms(4 * POLL_MS);
    }
    printf("timeout ms=%lld scenarios=%zu missing=%u\n",
           (long long)timeout_ms, held,
           gen ? unmatched(gen, &first, &last, &reacted) : opt.executors);
}

/* Cluster-wide planned workers of scenario sid now, from the schedule
 * any live executor holds; 0 when nobody holds it. */
static uint32_t planned_now(int64_t sid, int64_t wall)
{
    uint32_t planned = 0;

    for (size_t i = 0; i < opt.executors; i++) {
        const struct sim_share *sh;
        int found;

        pthread_mutex_lock(&execs[i].lock);
        sh = execs[i].killed ? NULL : share_of(&execs[i], sid);
        found = sh != NULL;
        if (sh)
            planned = schedule_planned(&sh->sched, wall - sh->start_wall_ms);
        pthread_mutex_unlock(&execs[i].lock);
        if (found)
            break;
    }
    return planned;
}

/* Survivors whose share of some scenario grows when victim leaves: they
 * need the leader's confirmation round, so they are the slow ones. */
static unsigned count_increased(size_t victim, const int64_t *sids,
                                size_t n_sids)
{
    uint32_t *planned = calloc(n_sids + 1, sizeof(*planned));
    int64_t wall = clock_wall_ms();
    uint32_t n_old = 0, pos_old = 0, pos_new = 0;
    unsigned grows = 0;

    if (!planned)
        return 0;
    for (size_t k = 0; k < n_sids; k++)
        planned[k] = planned_now(sids[k], wall);
    for (size_t i = 0; i < opt.executors; i++)
        n_old += !execs[i].killed;
    for (size_t i = 0; i < opt.executors; i++) {
        int up = 0;

        if (execs[i].killed)
            continue;
        for (size_t k = 0; i != victim && k < n_sids; k++) {
            uint32_t was = split_share(planned[k], expected_slot(
                pos_old, n_old, sids[k]), n_old);
            uint32_t now = split_share(planned[k], expected_slot(
                pos_new, n_old - 1, sids[k]), n_old - 1);
            up |= now > was;
        }
        grows += up;
        pos_old++;
        pos_new += i != victim;
    }
    free(planned);
    return grows;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/* The q-quantile (0..1) of when the survivors' matching states arrived,
 * or INT64_MAX when some never did. */
static int64_t matched_quantile(uint64_t gen, double q)
{
    int64_t *at = malloc(opt.executors * sizeof(*at)), v = INT64_MAX;
    size_t n = 0, live = 0;

    for (size_t i = 0; at && i < opt.executors; i++) {
        pthread_mutex_lock(&execs[i].lock);
        if (!execs[i].killed) {
            live++;
            if (execs[i].matched_gen == gen)
                at[n++] = execs[i].matched_ms;
        }
        pthread_mutex_unlock(&execs[i].lock);
    }
    if (at && n && n == live) {
        qsort(at, n, sizeof(*at), cmp_i64);
        v = at[(size_t)(q * (double)(n - 1))];
    }
    free(at);
    return v;
}

static void report_kill(const struct sim_exec *v, uint64_t gen,
                        int64_t kill_ms, int64_t last_hb, uint32_t lease,
                        unsigned grows)
{
    int64_t first, last, reacted, expiry = last_hb + lease;
    unsigned missing = unmatched(gen, &first, &last, &reacted);

    printf("killed id=%s lease_ms=%u since_last_hb_ms=%lld survivors=%u "
           "increased=%u missing=%u", v->id, lease,
           (long long)(kill_ms - last_hb), expect.n_live, grows, missing);
    if (!missing)
        printf(" reassigned_ms=%lld after_lease_ms=%lld first_ms=%lld"
               " p50_after_lease_ms=%lld p90_after_lease_ms=%lld",
               (long long)(last - kill_ms), (long long)(last - expiry),
               (long long)(first - kill_ms),
               (long long)(matched_quantile(gen, 0.5) - expiry),
               (long long)(matched_quantile(gen, 0.9) - expiry));
    if (reacted != INT64_MAX)
        printf(" reaction_after_lease_ms=%lld",
               (long long)(reacted - expiry));
    printf("\n");
}

static void cmd_kill(size_t victim, int64_t timeout_ms)
{
    struct sim_exec *v = &execs[victim];
    int64_t *sids, kill_ms, last_hb, first, last, reacted;
    size_t n_sids = held_scenarios(&sids);
    unsigned grows;
    uint32_t lease;
    uint64_t gen;

    if (!sids || n_sids == 0 || v->killed) {
        printf("error kill %zu: %s\n", victim,
               v->killed ? "already killed" : "no scenario held");
        free(sids);
        return;
    }
    grows = count_increased(victim, sids, n_sids);
    gen = expect_set(sids, n_sids, victim);
    pthread_mutex_lock(&v->lock);
    v->killed = 1;
    kill_ms = clock_mono_ms();
    last_hb = v->last_hb_ms;
    lease = v->lease_ms;
    pthread_mutex_unlock(&v->lock);

    while (clock_mono_ms() - kill_ms < timeout_ms &&
           unmatched(gen, &first, &last, &reacted) > 0)
        sleep_ms(POLL_MS);
    report_kill(v, gen, kill_ms, last_hb, lease, grows);
}

static void cmd_stats(void)
{
    unsigned killed = 0;

    for (size_t i = 0; i < opt.executors; i++)
        killed += execs[i].killed;
    printf("stats executors=%u killed=%u hb_sent=%llu hb_bytes=%llu "
           "ds_recv=%llu ds_bytes=%llu ds_ignored=%llu mono_ms=%lld\n",
           opt.executors, killed, atomic_load(&hb_sent),
           atomic_load(&hb_bytes), atomic_load(&ds_recv),
           atomic_load(&ds_bytes), atomic_load(&ds_ignored),
           (long long)clock_mono_ms());
}

/* Runs one command line; returns 0 on quit. */
static int command(const char *line)
{
    char verb[16] = "";
    long long a = 0, b = 0;
    int n = sscanf(line, "%15s %lld %lld", verb, &a, &b);

    if (n < 1)
        return 1;
    if (!strcmp(verb, "quit"))
        return 0;
    if (!strcmp(verb, "stats"))
        cmd_stats();
    else if (!strcmp(verb, "converge") && n == 3 && a > 0 && b > 0)
        cmd_converge((size_t)a, b);
    else if (!strcmp(verb, "kill") && n == 3 && a >= 0 &&
             a < (long long)opt.executors && b > 0)
        cmd_kill((size_t)a, b);
    else
        printf("error unknown command '%s'\n", verb);
    fflush(stdout);
    return 1;
}

/* ---------------------------------------------------------------- main */

static void usage(void)
{
    fprintf(stderr,
            "usage: fleet_sim [--nats URL] [--executors N] "
            "[--connections N]\n"
            "                 [--heartbeat MS] [--plugin NAME] "
            "[--prefix ID] [--delivery-threads N]\n");
    exit(2);
}

static int loopback_url(const char *url)
{
    return !strncmp(url, "nats://127.", 11) ||
           !strncmp(url, "nats://localhost:", 17);
}

static void parse_args(int argc, char **argv)
{
    static const struct option longs[] = {
        {"nats", required_argument, NULL, 'n'},
        {"executors", required_argument, NULL, 'e'},
        {"connections", required_argument, NULL, 'c'},
        {"heartbeat", required_argument, NULL, 'h'},
        {"plugin", required_argument, NULL, 'p'},
        {"prefix", required_argument, NULL, 'x'},
        {"delivery-threads", required_argument, NULL, 'd'},
        {NULL, 0, NULL, 0}};
    int c;

    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'n': opt.nats_url = optarg; break;
        case 'e': opt.executors = (unsigned)atoi(optarg); break;
        case 'c': opt.connections = (unsigned)atoi(optarg); break;
        case 'h': opt.heartbeat_ms = atoi(optarg); break;
        case 'p': opt.plugin = optarg; break;
        case 'x': opt.prefix = optarg; break;
        case 'd': opt.delivery_threads = (unsigned)atoi(optarg); break;
        default: usage();
        }
    }
    if (optind != argc || opt.executors < 2 || opt.executors > 100000 ||
        opt.connections < 1 || opt.connections > opt.executors ||
        opt.heartbeat_ms < 10 || opt.delivery_threads < 1 ||
        strlen(opt.prefix) > 40)
        usage();
    if (!loopback_url(opt.nats_url)) {
        fprintf(stderr, "fleet_sim: '%s' is not a loopback NATS URL\n",
                opt.nats_url);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    char line[256];
    int rc = 0;

    parse_args(argc, argv);
    if (fleet_open() != 0) {
        rc = 1;
        goto out_close;
    }
    printf("ready executors=%u connections=%u heartbeat_ms=%lld\n",
           opt.executors, opt.connections, (long long)opt.heartbeat_ms);
    fflush(stdout);
    while (fgets(line, sizeof(line), stdin) && command(line))
        ;

out_close:
    fleet_close();
    return rc;
}
