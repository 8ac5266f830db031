/*
 * plan.c - the leader's scenario state machine and its splits.
 *
 * Scenarios pending or running are mirrored from PostgreSQL on every
 * reload. Each pass, for every scenario the leader decides its next state
 * (pending -> running -> finished / stopped / failed; every transition a
 * conditional, fenced UPDATE) and, while it runs, its split over the live
 * executors: slot k of n, executors ordered by id, slot 0 rotated by the
 * scenario id.
 *
 * Rebalancing never goes over target. A change that cannot raise an
 * executor's share over the planned counts reachable within the next two
 * leases is granted at once; one that can is granted only when every
 * other holder has confirmed its own state (its heartbeat shows the
 * version applied and running <= planned) and no executor still runs
 * the scenario without a grant. A change that both raises and lowers is
 * done as a removal first. A dead executor's slot is reused only after
 * its lease has run out on our clock. Grants are written to assignments
 * before any message carries them.
 */
#include "leader_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "j4.h"
#include "log.h"
#include "pgstore.h"
#include "plan_results.h"
#include "spec.h"
#include "split.h"

#define START_DELAY_MS 300
#define WINDOW_MAX 8192

static void scen_free(struct lscen *s)
{
    if (!s)
        return;
    free(s->params_json);
    free(s->grants);
    free(s->drains);
    free(s);
}

void plan_free_all(struct leader *l)
{
    for (size_t i = 0; i < l->n_scens; i++)
        scen_free(l->scens[i]);
    free(l->scens);
    l->scens = NULL;
    l->n_scens = 0;
}

static struct lscen *scen_find(struct leader *l, int64_t id)
{
    for (size_t i = 0; i < l->n_scens; i++) {
        if (l->scens[i]->id == id)
            return l->scens[i];
    }
    return NULL;
}

/* Marks exec's desired state changed under a new version. */
static uint64_t exec_touch(struct leader *l, const char *exec)
{
    struct lexec *e = leader_exec(l, exec);

    if (!e)
        return 0;
    e->version = ++l->version;
    e->dirty = 1;
    return e->version;
}

/* ---------------------------------------------------------- persisting */

static int exec_params(struct leader *l, const char *sql, int n,
                       const char *const *params)
{
    PGresult *res = pgstore_query(l->conn, sql, n, params);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK ||
             PQresultStatus(res) == PGRES_TUPLES_OK;

    PQclear(res);
    return ok ? J4_OK : J4_ERR_UNAVAILABLE;
}

/* Ends a fenced transaction begun by the caller; steps down when the
 * epoch moved, logs other failures. */
static int finish_tx(struct leader *l, int rc, const char *what)
{
    if (rc == J4_OK)
        rc = pgstore_commit(l->conn);
    else
        pgstore_rollback(l->conn);
    if (rc == J4_ERR_CONFLICT)
        leader_step_down(l, "another leader's epoch is in force");
    else if (rc != J4_OK && atomic_load(&l->is_leader))
        log_warn("leader: %s failed: %s", what, PQerrorMessage(l->conn));
    return rc;
}

int plan_record_exec(struct leader *l, const struct lexec *e, int live)
{
    char inc[24], cap[16], epoch[24];
    const char *params[] = {e->id, inc, cap, live ? "t" : "f", epoch};
    int rc = pgstore_begin_fenced(l->conn, l->epoch);

    snprintf(inc, sizeof(inc), "%lld", (long long)e->incarnation);
    snprintf(cap, sizeof(cap), "%u", e->capacity);
    snprintf(epoch, sizeof(epoch), "%llu", (unsigned long long)l->epoch);
    if (rc == J4_OK)
        rc = exec_params(l,
            "INSERT INTO executors (id, incarnation, capacity, live, epoch)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET"
            " incarnation = EXCLUDED.incarnation,"
            " capacity = EXCLUDED.capacity, live = EXCLUDED.live,"
            " last_seen = now(), epoch = EXCLUDED.epoch", 5, params);
    return finish_tx(l, rc, "recording an executor");
}

/* Writes the grants of s that differ from old (upserts) and deletes the
 * rows of executors no longer granted, in one fenced transaction. */
static int persist_grants(struct leader *l, const struct lscen *s,
                          const struct grant *grants, size_t n)
{
    char sid[24], epoch[24], inc[24], slot[16], slots[16];
    int rc = pgstore_begin_fenced(l->conn, l->epoch);
    const char *del[] = {sid};

    snprintf(sid, sizeof(sid), "%lld", (long long)s->id);
    snprintf(epoch, sizeof(epoch), "%llu", (unsigned long long)l->epoch);
    if (rc == J4_OK)
        rc = exec_params(l, "DELETE FROM assignments WHERE scenario_id = $1",
                         1, del);
    for (size_t i = 0; rc == J4_OK && i < n; i++) {
        const char *params[] = {sid, grants[i].exec, inc, slot, slots,
                                epoch};
        snprintf(inc, sizeof(inc), "%lld",
                 (long long)grants[i].incarnation);
        snprintf(slot, sizeof(slot), "%u", grants[i].slot);
        snprintf(slots, sizeof(slots), "%u", grants[i].slots);
        rc = exec_params(l,
            "INSERT INTO assignments (scenario_id, executor_id,"
            " incarnation, slot, slots, epoch)"
            " VALUES ($1, $2, $3, $4, $5, $6)", 6, params);
    }
    return finish_tx(l, rc, "writing assignments");
}

/* Conditional state change of s, fenced. Returns 1 when it happened, 0
 * when the row was not in state from, -1 on failure. */
static int set_state(struct leader *l, const struct lscen *s,
                     const char *from, const char *to, const char *reason)
{
    char sid[24], epoch[24];
    const char *params[] = {sid, from, to, reason, epoch};
    int rc = pgstore_begin_fenced(l->conn, l->epoch);
    PGresult *res = NULL;
    int changed = 0;

    snprintf(sid, sizeof(sid), "%lld", (long long)s->id);
    snprintf(epoch, sizeof(epoch), "%llu", (unsigned long long)l->epoch);
    if (rc == J4_OK) {
        res = pgstore_query(l->conn,
            "UPDATE scenarios SET state = $3,"
            " reason = COALESCE($4, reason), ended_at = now(), epoch = $5"
            " WHERE id = $1 AND state = $2", 5, params);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            rc = J4_ERR_UNAVAILABLE;
        else
            changed = atoi(PQcmdTuples(res)) == 1;
        PQclear(res);
    }
    if (rc == J4_OK)
        rc = exec_params(l, "DELETE FROM assignments WHERE scenario_id = $1",
                         1, params);
    if (finish_tx(l, rc, "changing a scenario's state") != J4_OK)
        return -1;
    if (changed)
        plan_results_ended(l, s);
    return changed;
}

static int set_running(struct leader *l, struct lscen *s, int64_t start)
{
    char sid[24], epoch[24], start_text[24];
    const char *params[] = {sid, start_text, epoch};
    int rc = pgstore_begin_fenced(l->conn, l->epoch);
    PGresult *res;
    int changed = 0;

    snprintf(sid, sizeof(sid), "%lld", (long long)s->id);
    snprintf(epoch, sizeof(epoch), "%llu", (unsigned long long)l->epoch);
    snprintf(start_text, sizeof(start_text), "%lld", (long long)start);
    if (rc == J4_OK) {
        res = pgstore_query(l->conn,
            "UPDATE scenarios SET state = 'running', start_wall_ms = $2,"
            " started_at = to_timestamp($2::bigint / 1000.0), epoch = $3"
            " WHERE id = $1 AND state = 'pending'"
            " AND NOT stop_requested", 3, params);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            rc = J4_ERR_UNAVAILABLE;
        else
            changed = atoi(PQcmdTuples(res)) == 1;
        PQclear(res);
    }
    if (finish_tx(l, rc, "starting a scenario") != J4_OK)
        return -1;
    return changed;
}

/* ------------------------------------------------------------- loading */

/* Builds the in-memory scenario for one row of plan_reload's query. */
static struct lscen *scen_from_row(const PGresult *res, int row)
{
    const char *text = PQgetvalue(res, row, 3);
    struct lscen *s = calloc(1, sizeof(*s));
    struct spec_error err;
    struct spec spec;

    if (!s)
        return NULL;
    s->id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
    if (spec_parse_text(text, strlen(text), &spec, &err) != J4_OK) {
        log_error("scenario %lld: stored document refused: %s: %s",
                  (long long)s->id, err.field, err.rule);
        free(s);
        return NULL;
    }
    snprintf(s->name, sizeof(s->name), "%s", spec.name);
    snprintf(s->plugin, sizeof(s->plugin), "%s", spec.scenario);
    s->params_json = spec.params_json;
    spec.params_json = NULL;
    s->sched = spec.schedule;
    s->grace_ms = spec.grace_ms;
    spec_release(&spec);
    return s;
}

static int scen_add(struct leader *l, struct lscen *s)
{
    struct lscen **grown = realloc(l->scens,
                                   (l->n_scens + 1) * sizeof(*grown));

    if (!grown)
        return J4_ERR_NOMEM;
    l->scens = grown;
    l->scens[l->n_scens++] = s;
    return J4_OK;
}

/* Removes s from the table, marking its holders' states changed. */
static void scen_remove(struct leader *l, struct lscen *s)
{
    for (size_t i = 0; i < s->n_grants; i++)
        exec_touch(l, s->grants[i].exec);
    for (size_t i = 0; i < l->n_scens; i++) {
        if (l->scens[i] != s)
            continue;
        memmove(&l->scens[i], &l->scens[i + 1],
                (l->n_scens - i - 1) * sizeof(l->scens[0]));
        l->n_scens--;
        break;
    }
    scen_free(s);
}

static void update_from_row(struct lscen *s, const PGresult *res, int row)
{
    s->seen = 1;
    s->running = !strcmp(PQgetvalue(res, row, 4), "running");
    s->stop_requested = !strcmp(PQgetvalue(res, row, 5), "t");
    if (!PQgetisnull(res, row, 6))
        s->start_wall_ms = strtoll(PQgetvalue(res, row, 6), NULL, 10);
}

int plan_reload(struct leader *l)
{
    PGresult *res = PQexec(l->conn,
        "SELECT id, name, plugin, spec::text, state, stop_requested,"
        " start_wall_ms FROM scenarios"
        " WHERE state IN ('pending', 'running') ORDER BY id LIMIT 10000");

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return J4_ERR_UNAVAILABLE;
    }
    for (size_t i = 0; i < l->n_scens; i++)
        l->scens[i]->seen = 0;
    for (int r = 0; r < PQntuples(res); r++) {
        int64_t id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
        struct lscen *s = scen_find(l, id);

        if (!s) {
            s = scen_from_row(res, r);
            if (!s || scen_add(l, s) != J4_OK) {
                scen_free(s);
                continue;
            }
        }
        update_from_row(s, res, r);
    }
    PQclear(res);
    for (size_t i = l->n_scens; i-- > 0;) {
        if (!l->scens[i]->seen)
            scen_remove(l, l->scens[i]);
    }
    return J4_OK;
}

static int grant_add(struct lscen *s, const char *exec, uint64_t inc,
                     uint32_t slot, uint32_t slots)
{
    struct grant *grown = realloc(s->grants,
                                  (s->n_grants + 1) * sizeof(*grown));
    struct grant *g;

    if (!grown)
        return J4_ERR_NOMEM;
    s->grants = grown;
    g = &s->grants[s->n_grants++];
    memset(g, 0, sizeof(*g));
    snprintf(g->exec, sizeof(g->exec), "%s", exec);
    g->incarnation = inc;
    g->slot = slot;
    g->slots = slots;
    return J4_OK;
}

/* Takes over one assignments row after a failover. */
static void adopt_row(struct leader *l, const PGresult *res, int r)
{
    struct lscen *s = scen_find(l, strtoll(PQgetvalue(res, r, 0), NULL,
                                           10));
    const char *exec = PQgetvalue(res, r, 1);
    uint64_t inc = (uint64_t)strtoll(PQgetvalue(res, r, 2), NULL, 10);
    uint32_t slot = (uint32_t)strtoul(PQgetvalue(res, r, 3), NULL, 10);
    uint32_t slots = (uint32_t)strtoul(PQgetvalue(res, r, 4), NULL, 10);
    int64_t floor = l->won_ms + l->cfg->lease_ms;
    struct lexec *e;

    if (!s || !s->running || slot >= slots || !config_id_valid(exec))
        return;
    e = leader_exec(l, exec);
    if (!e && (e = leader_exec_add(l, exec)) != NULL)
        e->incarnation = inc;
    if (!e || e->incarnation != inc)
        return;
    e->live_recorded = 1;
    e->lease_floor_ms = floor;
    if (e->lease_end_ms < floor)
        e->lease_end_ms = floor;
    grant_add(s, exec, inc, slot, slots);
}

int plan_adopt(struct leader *l)
{
    PGresult *res = PQexec(l->conn,
        "SELECT a.scenario_id, a.executor_id, a.incarnation, a.slot,"
        " a.slots FROM assignments a JOIN scenarios s"
        " ON s.id = a.scenario_id WHERE s.state = 'running'");
    size_t adopted = 0;

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return J4_ERR_UNAVAILABLE;
    }
    for (int r = 0; r < PQntuples(res); r++)
        adopt_row(l, res, r);
    PQclear(res);
    for (size_t i = 0; i < l->n_scens; i++) {
        struct lscen *s = l->scens[i];
        for (size_t j = 0; j < s->n_grants; j++) {
            s->grants[j].version = exec_touch(l, s->grants[j].exec);
            adopted++;
        }
    }
    if (adopted > 0)
        log_info("leader: adopted %zu grant(s) of %zu scenario(s)",
                 adopted, l->n_scens);
    return J4_OK;
}

void plan_drop_exec_grants(struct leader *l, const char *exec)
{
    int touched = 0;

    for (size_t i = 0; i < l->n_scens; i++) {
        struct lscen *s = l->scens[i];
        size_t kept = 0;

        for (size_t j = 0; j < s->n_grants; j++) {
            if (!strcmp(s->grants[j].exec, exec)) {
                s->persist = 1;
                touched = 1;
                continue;
            }
            s->grants[kept++] = s->grants[j];
        }
        s->n_grants = kept;
    }
    if (touched)
        exec_touch(l, exec);
}

/* ----------------------------------------------------------- the split */

enum change { CHANGE_DOWN, CHANGE_UP, CHANGE_MIXED };

/* How moving from g (NULL: nothing) to slot b of bn changes the share
 * over the planned counts in w. Equal counts as down: it cannot raise. */
static enum change classify(const struct grant *g, uint32_t b, uint32_t bn,
                            const uint32_t *w, size_t nw)
{
    int up = 0, down = 0;

    for (size_t i = 0; i < nw; i++) {
        uint32_t was = g ? split_share(w[i], g->slot, g->slots) : 0;
        uint32_t now = split_share(w[i], b, bn);
        up |= now > was;
        down |= now < was;
    }
    if (up && down)
        return CHANGE_MIXED;
    return up ? CHANGE_UP : CHANGE_DOWN;
}

/* The planned counts s can reach from one second ago to two leases and
 * a second ahead: what executors may play while a change is in flight. */
static size_t window_planned(const struct leader *l, const struct lscen *s,
                             int64_t wall, uint32_t *w)
{
    int64_t t = wall - s->start_wall_ms - 1000;
    int64_t end = wall - s->start_wall_ms + 2LL * l->cfg->lease_ms + 1000;
    size_t n = 0;

    w[n++] = schedule_planned(&s->sched, t);
    while (n < WINDOW_MAX) {
        t = schedule_next_change_ms(&s->sched, t);
        if (t == INT64_MAX || t > end)
            break;
        w[n++] = schedule_planned(&s->sched, t);
    }
    return n;
}

/* A fresh distributor has heard every live executor once it has listened
 * for a little over one heartbeat interval (the executors' default 1 s). */
#define LIVE_SET_SETTLE_MS 1500

static int live_set_known(const struct leader *l, int64_t now)
{
    return now - l->started_ms >= LIVE_SET_SETTLE_MS;
}

static int increases_allowed(const struct leader *l, int64_t now)
{
    /* executors may still run an earlier leader's grants until a lease
     * after we won, unless we have heard every live one for a lease */
    return now - l->won_ms >= l->cfg->lease_ms ||
           now - l->started_ms >= (int64_t)l->cfg->lease_ms + 1000;
}

static int cmp_exec_ptr(const void *a, const void *b)
{
    const struct lexec *const *x = a, *const *y = b;

    return strcmp((*x)->id, (*y)->id);
}

/* Whether e can play plugin. An executor adopted from an earlier leader
 * and not heard from yet is given the benefit of the doubt. */
static int lexec_offers(const struct lexec *e, const char *plugin)
{
    return !e->heard || fleet_offers(e->plugins, plugin);
}

/* The live executors that offer plugin, ordered by id; the caller frees
 * the array. */
static struct lexec **live_set(struct leader *l, int64_t now,
                               const char *plugin, size_t *n)
{
    struct lexec **set = calloc(l->n_execs ? l->n_execs : 1, sizeof(*set));

    *n = 0;
    if (!set)
        return NULL;
    for (size_t i = 0; i < l->n_execs; i++) {
        if (l->execs[i].incarnation && lexec_holding(&l->execs[i], now) &&
            lexec_offers(&l->execs[i], plugin))
            set[(*n)++] = &l->execs[i];
    }
    qsort(set, *n, sizeof(*set), cmp_exec_ptr);
    return set;
}

static struct grant *grant_in(struct grant *grants, size_t n,
                              const char *exec)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(grants[i].exec, exec))
            return &grants[i];
    }
    return NULL;
}

/* Non-zero when e has applied version (in our epoch) and runs no more
 * than its share of s. */
static int exec_confirmed(const struct leader *l, const struct lexec *e,
                          int64_t sid, uint64_t version)
{
    const struct fleet_status *st = lexec_status(e, sid);

    return e->applied_epoch == l->epoch && e->applied_version >= version &&
           (!st || st->running <= st->planned);
}

/* Whether the increases in cand (execs without a confirmed-safe state
 * yet) may be granted given the other grants in grants. */
static int others_confirmed(struct leader *l, const struct lscen *s,
                            const struct grant *grants, size_t n,
                            struct lexec **cand, size_t n_cand, int64_t now)
{
    for (size_t i = 0; i < l->n_execs; i++) {
        const struct lexec *e = &l->execs[i];
        const struct grant *g = grant_in((struct grant *)grants, n, e->id);
        const struct fleet_status *st = lexec_status(e, s->id);
        int is_cand = 0;

        if (!lexec_holding(e, now) || !e->incarnation)
            continue;
        for (size_t c = 0; c < n_cand; c++)
            is_cand |= cand[c] == e;
        if (g && is_cand)
            continue;   /* its current share only grows */
        if (!g && st && st->running > 0)
            return 0;   /* runs it without a grant: wait for it to stop */
        if (g && !exec_confirmed(l, e, s->id, g->version))
            return 0;
    }
    return 1;
}

static void log_split(const struct lscen *s, const struct grant *grants,
                      size_t n)
{
    char shares[512] = "", names[1024] = "";
    size_t ls = 0, ln = 0;

    for (size_t i = 0; i < n; i++) {
        uint32_t share = split_share(s->sched.target, grants[i].slot,
                                     grants[i].slots);
        ls += snprintf(shares + ls, ls < sizeof(shares) ?
                       sizeof(shares) - ls : 0, "%s%u", i ? "/" : "",
                       share);
        ln += snprintf(names + ln, ln < sizeof(names) ?
                       sizeof(names) - ln : 0, "%s%s", i ? "," : "",
                       grants[i].exec);
        if (ls >= sizeof(shares) || ln >= sizeof(names))
            break;
    }
    log_info("scenario %lld '%s': split %s over %s", (long long)s->id,
             s->name, n ? shares : "0", n ? names : "no executor");
}

static int cmp_grant(const void *a, const void *b)
{
    return strcmp(((const struct grant *)a)->exec,
                  ((const struct grant *)b)->exec);
}

struct rebalance {
    struct lexec **live;
    size_t n_live;
    struct grant *next;         /* the grants after this pass */
    size_t n_next;
    struct lexec **cand;        /* waiting for an increase */
    uint32_t *cand_slot;
    size_t n_cand;
    char (*touched)[DIST_ID_MAX + 1];
    size_t n_touched;
    uint32_t *window;
    size_t n_window;
    int lowered;
    int changed;
};

static void touch(struct rebalance *rb, const char *exec)
{
    snprintf(rb->touched[rb->n_touched++], DIST_ID_MAX + 1, "%s", exec);
}

static void rebalance_release(struct rebalance *rb)
{
    free(rb->live);
    free(rb->next);
    free(rb->cand);
    free(rb->cand_slot);
    free(rb->touched);
    free(rb->window);
}

static int rebalance_init(struct rebalance *rb, struct leader *l,
                          const struct lscen *s, int64_t now, int64_t wall)
{
    size_t room;

    memset(rb, 0, sizeof(*rb));
    rb->live = live_set(l, now, s->plugin, &rb->n_live);
    room = s->n_grants + rb->n_live + 1;
    rb->next = calloc(room, sizeof(*rb->next));
    rb->cand = calloc(room, sizeof(*rb->cand));
    rb->cand_slot = calloc(room, sizeof(*rb->cand_slot));
    rb->touched = calloc(2 * room, sizeof(*rb->touched));
    rb->window = malloc(WINDOW_MAX * sizeof(*rb->window));
    if (!rb->live || !rb->next || !rb->cand || !rb->cand_slot ||
        !rb->touched || !rb->window)
        return J4_ERR_NOMEM;
    rb->n_window = window_planned(l, s, wall, rb->window);
    rb->changed = s->persist;
    return J4_OK;
}

/* Keeps the grants of executors still live under the same process. */
static void keep_live_grants(struct rebalance *rb, const struct lscen *s)
{
    for (size_t i = 0; i < s->n_grants; i++) {
        const struct grant *g = &s->grants[i];
        int live = 0;

        for (size_t j = 0; j < rb->n_live; j++) {
            live |= !strcmp(rb->live[j]->id, g->exec) &&
                    rb->live[j]->incarnation == g->incarnation;
        }
        if (live) {
            rb->next[rb->n_next++] = *g;
            continue;
        }
        touch(rb, g->exec);
        rb->lowered = rb->changed = 1;
    }
}

static void remove_grant(struct rebalance *rb, struct grant *g)
{
    size_t i = (size_t)(g - rb->next);

    memmove(&rb->next[i], &rb->next[i + 1],
            (rb->n_next - i - 1) * sizeof(rb->next[0]));
    rb->n_next--;
}

static void set_grant(struct rebalance *rb, const struct lexec *e,
                      uint32_t slot, uint32_t slots)
{
    struct grant *g = grant_in(rb->next, rb->n_next, e->id);

    if (!g) {
        g = &rb->next[rb->n_next++];
        memset(g, 0, sizeof(*g));
        snprintf(g->exec, sizeof(g->exec), "%s", e->id);
        g->incarnation = e->incarnation;
    }
    g->slot = slot;
    g->slots = slots;
    touch(rb, e->id);
    rb->changed = 1;
}

/* Lowers at once what cannot rise; queues the rest as candidates. */
static void plan_changes(struct rebalance *rb, const struct lscen *s)
{
    uint32_t n = (uint32_t)rb->n_live;
    uint32_t rotation = n ? (uint32_t)(s->id % n) : 0;

    for (uint32_t i = 0; i < n; i++) {
        struct lexec *e = rb->live[i];
        uint32_t slot = (i + n - rotation) % n;
        struct grant *g = grant_in(rb->next, rb->n_next, e->id);
        enum change change;

        if (g && g->slot == slot && g->slots == n)
            continue;
        change = classify(g, slot, n, rb->window, rb->n_window);
        if (change == CHANGE_DOWN) {
            set_grant(rb, e, slot, n);
            rb->lowered = 1;
            continue;
        }
        if (change == CHANGE_MIXED && g) {
            /* remove first, grant again once it has stopped */
            touch(rb, e->id);
            remove_grant(rb, g);
            rb->lowered = rb->changed = 1;
        }
        rb->cand[rb->n_cand] = e;
        rb->cand_slot[rb->n_cand++] = slot;
    }
}

static void rebalance(struct leader *l, struct lscen *s, int64_t now,
                      int64_t wall)
{
    struct rebalance rb;
    int pending;

    if (rebalance_init(&rb, l, s, now, wall) != J4_OK)
        goto out_release;
    keep_live_grants(&rb, s);
    plan_changes(&rb, s);
    pending = rb.n_cand > 0;
    if (pending && !rb.lowered &&
        (s->started_here || increases_allowed(l, now)) &&
        others_confirmed(l, s, rb.next, rb.n_next, rb.cand, rb.n_cand,
                         now)) {
        for (size_t c = 0; c < rb.n_cand; c++)
            set_grant(&rb, rb.cand[c], rb.cand_slot[c],
                      (uint32_t)rb.n_live);
        pending = 0;
    }
    if (!rb.changed)
        goto out_release;
    qsort(rb.next, rb.n_next, sizeof(*rb.next), cmp_grant);
    if (persist_grants(l, s, rb.next, rb.n_next) != J4_OK)
        goto out_release;
    free(s->grants);
    s->grants = rb.next;
    s->n_grants = rb.n_next;
    rb.next = NULL;
    s->persist = 0;
    for (size_t t = 0; t < rb.n_touched; t++) {
        uint64_t v = exec_touch(l, rb.touched[t]);
        for (size_t j = 0; j < s->n_grants; j++) {
            if (!strcmp(s->grants[j].exec, rb.touched[t]))
                s->grants[j].version = v;
        }
    }
    if (!pending)
        log_split(s, s->grants, s->n_grants);

out_release:
    rebalance_release(&rb);
}

/* ------------------------------------------------------- state machine */

static size_t live_count(struct leader *l, int64_t now)
{
    size_t n = 0;

    for (size_t i = 0; i < l->n_execs; i++)
        n += l->execs[i].incarnation && l->execs[i].heard &&
             lexec_holding(&l->execs[i], now);
    return n;
}

/* The first holder that refused its share, or NULL. */
static const struct lexec *refusing_holder(struct leader *l,
                                           const struct lscen *s,
                                           const char **error)
{
    for (size_t i = 0; i < s->n_grants; i++) {
        const struct lexec *e = leader_exec(l, s->grants[i].exec);
        const struct fleet_status *st;

        if (!e || e->incarnation != s->grants[i].incarnation)
            continue;
        st = lexec_status(e, s->id);
        if (st && st->error[0]) {
            *error = st->error;
            return e;
        }
    }
    return NULL;
}

/* Non-zero when e is gone or has applied version and holds no live
 * worker of s. */
static int exec_drained(const struct leader *l, const struct lexec *e,
                        uint64_t inc, uint64_t version, int64_t sid,
                        int64_t now)
{
    const struct fleet_status *st;

    if (!e || e->incarnation != inc || !lexec_holding(e, now))
        return 1;
    if (e->applied_epoch != l->epoch || e->applied_version < version)
        return 0;
    st = lexec_status(e, sid);
    return !st || st->drained;
}

/* Every holder (granted or removed) of s drained, and nobody else still
 * running it. */
static int all_drained(struct leader *l, const struct lscen *s, int64_t now)
{
    for (size_t i = 0; i < s->n_grants; i++) {
        const struct grant *g = &s->grants[i];
        if (!exec_drained(l, leader_exec(l, g->exec), g->incarnation,
                          g->version, s->id, now))
            return 0;
    }
    for (size_t i = 0; i < s->n_drains; i++) {
        const struct drain *d = &s->drains[i];
        if (!exec_drained(l, leader_exec(l, d->exec), d->incarnation,
                          d->version, s->id, now))
            return 0;
    }
    for (size_t i = 0; i < l->n_execs; i++) {
        const struct lexec *e = &l->execs[i];
        const struct fleet_status *st = lexec_status(e, s->id);
        if (lexec_holding(e, now) && st && st->running > 0)
            return 0;
    }
    return 1;
}

/* Notes the most workers the executors have reported running for s at
 * once, so a run that never reached its target can say so at the end. */
static void track_peak(struct leader *l, struct lscen *s, int64_t now,
                       int64_t wall)
{
    uint32_t running = 0;
    int64_t t = wall - s->start_wall_ms;

    for (size_t i = 0; i < l->n_execs; i++) {
        const struct lexec *e = &l->execs[i];
        const struct fleet_status *st = lexec_status(e, s->id);

        if (lexec_holding(e, now) && st)
            running += st->running;
    }
    if (running > s->peak_running)
        s->peak_running = running;
    /* Time in hold below target: what a lost executor or a crashing
     * plugin cost, when nobody could take its share. */
    if (s->tracked_ms && schedule_phase(&s->sched, t) == PHASE_HOLD &&
        running < s->sched.target) {
        s->short_ms += now - s->tracked_ms;
        if (s->short_low == 0 || running < s->short_low)
            s->short_low = running;
    }
    s->tracked_ms = now;
}

/* Why a finished run did not play its plan, in s->shortfall (or ""). A
 * new leader only knows what it saw itself, so it judges only scenarios
 * it started. Short dips (a rebalance, one lease) are not counted. */
static void judge_shortfall(const struct leader *l, struct lscen *s)
{
    if (!s->started_here || s->fail_reason[0])
        return;
    /* (a hold under a second may pass between two heartbeats) */
    if (s->sched.hold_ms >= 1000 && s->peak_running < s->sched.target)
        snprintf(s->shortfall, sizeof(s->shortfall),
                 "reached at most %u of %u workers", s->peak_running,
                 s->sched.target);
    else if (s->short_ms > 2LL * l->cfg->lease_ms)
        snprintf(s->shortfall, sizeof(s->shortfall),
                 "ran below target for %.1f s of its hold (as few as %u of "
                 "%u workers)", s->short_ms / 1000.0, s->short_low,
                 s->sched.target);
}

/* Moves every grant of s to its drain list (stop requested). */
static void revoke_all(struct leader *l, struct lscen *s)
{
    struct drain *grown;

    if (s->n_grants == 0)
        return;
    if (persist_grants(l, s, NULL, 0) != J4_OK)
        return;
    grown = realloc(s->drains, (s->n_drains + s->n_grants) *
                               sizeof(*grown));
    if (grown)
        s->drains = grown;
    for (size_t i = 0; i < s->n_grants; i++) {
        uint64_t v = exec_touch(l, s->grants[i].exec);
        struct drain *d;
        if (!grown)
            continue;
        d = &s->drains[s->n_drains++];
        snprintf(d->exec, sizeof(d->exec), "%s", s->grants[i].exec);
        d->incarnation = s->grants[i].incarnation;
        d->version = v;
    }
    s->n_grants = 0;
    log_info("scenario %lld '%s': stopping", (long long)s->id, s->name);
}

/* Grace for holders that never report drained: nothing waits forever. */
static int ending_overdue(const struct leader *l, const struct lscen *s,
                          int64_t now)
{
    return now - s->ending_since_ms > s->grace_ms +
                                      3LL * l->cfg->lease_ms + 5000;
}

/* Ends s in state to once its holders drained. Returns 1 when s is
 * gone from the table. */
static int try_end(struct leader *l, struct lscen *s, const char *to,
                   int64_t now)
{
    int overdue;
    int changed;

    if (!s->ending_since_ms)
        s->ending_since_ms = now;
    overdue = ending_overdue(l, s, now);
    if (!all_drained(l, s, now) && !overdue)
        return 0;
    changed = set_state(l, s, "running", to,
                        s->fail_reason[0]  ? s->fail_reason
                        : s->shortfall[0] ? s->shortfall
                                          : NULL);
    if (changed < 0)
        return 0;
    if (changed)
        log_info("scenario %lld '%s': %s%s", (long long)s->id, s->name,
                 to, overdue ? " (not every executor reported drained)"
                             : "");
    scen_remove(l, s);
    return 1;
}

/* Starts failing s because executor e refused its share: every grant is
 * revoked and the scenario ends "failed" once the others have drained, so
 * its results are complete when the state changes. */
static int fail(struct leader *l, struct lscen *s, const struct lexec *e,
                const char *error, int64_t now)
{
    snprintf(s->fail_reason, sizeof(s->fail_reason), "executor %s: %s",
             e->id, error);
    log_warn("scenario %lld '%s': failing: %s", (long long)s->id, s->name,
             s->fail_reason);
    revoke_all(l, s);
    return try_end(l, s, "failed", now);
}

/* A pending scenario: stop it or start it. Returns 1 when it is gone. */
/* 1 when a live executor offers s's plugin. Otherwise fails the pending
 * scenario, naming what the live executors do offer, and returns 0 (it
 * was removed from the table), or -1 when that write must be retried. */
static int offered(struct leader *l, struct lscen *s, int64_t now)
{
    char have[192] = "";
    size_t used = 0;
    int changed;

    for (size_t i = 0; i < l->n_execs; i++) {
        const struct lexec *e = &l->execs[i];

        if (!e->incarnation || !e->heard || !lexec_holding(e, now))
            continue;
        if (lexec_offers(e, s->plugin))
            return 1;
        if (used < sizeof(have))
            used += snprintf(have + used, sizeof(have) - used, "%s%s has %.*s",
                             used ? "; " : "", e->id,
                             (int)(strlen(e->plugins) > 2
                                   ? strlen(e->plugins) - 2 : 0),
                             e->plugins + 1);
    }
    snprintf(s->fail_reason, sizeof(s->fail_reason),
             "no live executor offers scenario plugin '%s' (%s)", s->plugin,
             have);
    changed = set_state(l, s, "pending", "failed", s->fail_reason);
    if (changed < 0) {
        s->fail_reason[0] = '\0';
        return -1;
    }
    if (changed)
        log_warn("scenario %lld '%s': failed: %s", (long long)s->id, s->name,
                 s->fail_reason);
    scen_remove(l, s);
    return 0;
}

static int tick_pending(struct leader *l, struct lscen *s, int64_t now)
{
    int64_t start;
    int changed;

    if (s->stop_requested) {
        changed = set_state(l, s, "pending", "stopped",
                            "stopped before it started");
        if (changed < 0)
            return 0;
        if (changed)
            log_info("scenario %lld '%s': stopped before it started",
                     (long long)s->id, s->name);
        scen_remove(l, s);
        return 1;
    }
    /* A pending scenario was never granted to anyone, so only the live
     * set has to be known before it starts, not an earlier leader's
     * leases. */
    if (!live_set_known(l, now) || live_count(l, now) == 0)
        return 0;
    switch (offered(l, s, now)) {
    case 0: return 1;
    case -1: return 0;
    }
    start = clock_wall_ms() + START_DELAY_MS;
    changed = set_running(l, s, start);
    if (changed == 0)
        l->reload = 1;
    if (changed != 1)
        return 0;
    s->running = 1;
    s->started_here = 1;
    s->start_wall_ms = start;
    log_info("scenario %lld '%s': running (plugin '%s', target %u)",
             (long long)s->id, s->name, s->plugin, s->sched.target);
    return 0;
}

/* Returns 1 when s is gone from the table. */
static int scen_tick(struct leader *l, struct lscen *s, int64_t now)
{
    int64_t wall = clock_wall_ms();
    const struct lexec *e;
    const char *error = NULL;

    if (!s->running && tick_pending(l, s, now))
        return 1;
    if (!s->running || !atomic_load(&l->is_leader))
        return 0;
    if (s->fail_reason[0])
        return try_end(l, s, "failed", now);
    if ((e = refusing_holder(l, s, &error)) != NULL)
        return fail(l, s, e, error, now);
    plan_results_tick(l, s, now);
    track_peak(l, s, now, wall);
    /* A schedule that has run out finishes, even when a stop arrives
     * while its last workers drain; one that fell short says so. */
    if (wall - s->start_wall_ms >= schedule_end_ms(&s->sched)) {
        if (!s->shortfall[0])
            judge_shortfall(l, s);
        return try_end(l, s, "finished", now);
    }
    if (s->stop_requested) {
        revoke_all(l, s);
        return try_end(l, s, "stopped", now);
    }
    rebalance(l, s, now, wall);
    return 0;
}

void plan_tick(struct leader *l)
{
    int64_t now = clock_mono_ms();

    for (size_t i = 0; i < l->n_scens && atomic_load(&l->is_leader);) {
        if (!scen_tick(l, l->scens[i], now))
            i++;
    }
}
