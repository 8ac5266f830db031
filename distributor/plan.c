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
 * its lease has run out on our clock. Grants are written to PostgreSQL
 * (scenario_grants, one row per scenario) before any message carries
 * them.
 *
 * Scale: with a thousand executors a pass must not walk every executor
 * for every scenario. The live set of each plugin is built once per
 * change of the fleet (live_gen) and reused; a scenario whose split was
 * complete for the current live set is not rebalanced again; its running
 * count is summed again only when a holder's status changed (gen); and
 * grants are found by binary search (they are kept sorted by exec).
 */
#include "leader_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "desired.h"
#include "grants_store.h"
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
    desired_scen_release(s);
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

/* Where id is, or would be inserted, in the table (sorted by id). */
static size_t scen_pos(const struct leader *l, int64_t id)
{
    size_t lo = 0, hi = l->n_scens;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (l->scens[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct lscen *scen_find(struct leader *l, int64_t id)
{
    size_t at = scen_pos(l, id);

    return at < l->n_scens && l->scens[at]->id == id ? l->scens[at] : NULL;
}

void plan_status_changed(struct leader *l, int64_t sid)
{
    struct lscen *s = scen_find(l, sid);

    if (s)
        s->gen++;
}

const struct grant *plan_grant_of(const struct lscen *s, const char *exec)
{
    size_t lo = 0, hi = s->n_grants;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->grants[mid].exec, exec);

        if (c == 0)
            return &s->grants[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
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

/* Stores grants (sorted by exec) as those of s, in one fenced
 * transaction (grants_store.h). */
static int persist_grants(struct leader *l, const struct lscen *s,
                          const struct grant *grants, size_t n)
{
    int rc = pgstore_begin_fenced(l->conn, l->epoch);

    if (rc == J4_OK)
        rc = grants_store_write(l->conn, l->epoch, s->id, grants, n);
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
        rc = grants_store_delete(l->conn, s->id);
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
    for (size_t i = 0; i < spec.n_thresholds; i++)
        s->has_abort |= spec.thresholds[i].abort_on_fail;
    s->gen = 1;
    spec_release(&spec);
    return s;
}

/* Inserts s in the table at its place by id. */
static int scen_add(struct leader *l, struct lscen *s)
{
    struct lscen **grown = realloc(l->scens,
                                   (l->n_scens + 1) * sizeof(*grown));
    size_t at;

    if (!grown)
        return J4_ERR_NOMEM;
    l->scens = grown;
    at = scen_pos(l, s->id);
    memmove(&l->scens[at + 1], &l->scens[at],
            (l->n_scens - at) * sizeof(l->scens[0]));
    l->scens[at] = s;
    l->n_scens++;
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
    int stop = !strcmp(PQgetvalue(res, row, 5), "t");

    s->seen = 1;
    s->running = !strcmp(PQgetvalue(res, row, 4), "running");
    if (stop != s->stop_requested)
        s->gen++;
    s->stop_requested = stop;
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

static int cmp_grant(const void *a, const void *b)
{
    return strcmp(((const struct grant *)a)->exec,
                  ((const struct grant *)b)->exec);
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
    l->live_gen++;
    for (size_t i = 0; i < l->n_scens; i++) {
        struct lscen *s = l->scens[i];

        qsort(s->grants, s->n_grants, sizeof(*s->grants), cmp_grant);
        s->persist = 1;         /* rows not adopted are rewritten away */
        s->gen++;
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
        if (kept != s->n_grants)
            s->gen++;
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

/* The live executors offering one plugin, ordered by id, and each
 * executor's position among them (pos[index in l->execs], -1: not in
 * it). Valid while l->live_gen equals gen. */
struct live_set {
    char plugin[DIST_ID_MAX + 1];
    uint64_t gen;
    struct lexec **execs;
    size_t n;
    int32_t *pos;
};

void plan_live_release(struct leader *l)
{
    for (size_t i = 0; i < l->n_live_sets; i++) {
        free(l->live_sets[i]->execs);
        free(l->live_sets[i]->pos);
        free(l->live_sets[i]);
    }
    free(l->live_sets);
    l->live_sets = NULL;
    l->n_live_sets = 0;
}

static int live_set_build(struct leader *l, struct live_set *ls,
                          int64_t now)
{
    free(ls->execs);
    free(ls->pos);
    ls->n = 0;
    ls->execs = calloc(l->n_execs + 1, sizeof(*ls->execs));
    ls->pos = malloc((l->n_execs + 1) * sizeof(*ls->pos));
    if (!ls->execs || !ls->pos)
        return J4_ERR_NOMEM;
    for (size_t i = 0; i < l->n_execs; i++) {
        ls->pos[i] = -1;
        if (l->execs[i].incarnation && lexec_holding(&l->execs[i], now) &&
            lexec_offers(&l->execs[i], ls->plugin))
            ls->execs[ls->n++] = &l->execs[i];
    }
    qsort(ls->execs, ls->n, sizeof(*ls->execs), cmp_exec_ptr);
    for (size_t k = 0; k < ls->n; k++)
        ls->pos[ls->execs[k] - l->execs] = (int32_t)k;
    ls->gen = l->live_gen;
    return J4_OK;
}

/* The live set of plugin for the current live_gen, built when missing
 * or stale; NULL when out of memory. The pointer stays valid until the
 * executor table goes (plan_live_release). */
static struct live_set *live_set(struct leader *l, int64_t now,
                                 const char *plugin)
{
    struct live_set *ls = NULL, **grown;

    for (size_t i = 0; i < l->n_live_sets && !ls; i++) {
        if (!strcmp(l->live_sets[i]->plugin, plugin))
            ls = l->live_sets[i];
    }
    if (!ls) {
        grown = realloc(l->live_sets,
                        (l->n_live_sets + 1) * sizeof(*grown));
        if (!grown)
            return NULL;
        l->live_sets = grown;
        ls = calloc(1, sizeof(*ls));
        if (!ls)
            return NULL;
        l->live_sets[l->n_live_sets++] = ls;
        snprintf(ls->plugin, sizeof(ls->plugin), "%s", plugin);
    }
    if ((ls->gen != l->live_gen || !ls->pos) &&
        live_set_build(l, ls, now) != J4_OK) {
        ls->gen = 0;
        return NULL;
    }
    return ls;
}

struct tick_writes;

/* What one plan_tick() shares among its scenarios: its clock, whether
 * any executor reported an error, the executors that may not have
 * confirmed what they were sent (unsettled; listed at the first need),
 * and the grant writes queued for the end of the tick. */
struct tick {
    int64_t now;
    int any_error;
    int listed;
    struct lexec **unsettled;
    size_t n_unsettled;
    struct tick_writes *writes;
};

/* Non-zero when e has applied its newest desired state (in our epoch)
 * and runs no more than it plans of every scenario: then it is
 * confirmed for every grant it holds, since a grant's version is never
 * above the executor's, and runs nothing without a grant. */
static int exec_settled(const struct leader *l, const struct lexec *e)
{
    if (e->applied_epoch != l->epoch || e->applied_version < e->version)
        return 0;
    for (size_t i = 0; i < e->n_status; i++) {
        if (e->status[i].running > e->status[i].planned)
            return 0;
    }
    return 1;
}

/* The holding executors that are not settled, for t, once per tick. */
static void find_unsettled(struct leader *l, struct tick *t)
{
    if (t->listed)
        return;
    t->listed = 1;
    t->n_unsettled = 0;
    t->unsettled = malloc((l->n_execs + 1) * sizeof(*t->unsettled));
    for (size_t i = 0; t->unsettled && i < l->n_execs; i++) {
        struct lexec *e = &l->execs[i];

        if (e->incarnation && lexec_holding(e, t->now) &&
            !exec_settled(l, e))
            t->unsettled[t->n_unsettled++] = e;
    }
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

/* One rebalance of one scenario. Per live position i (the live set's
 * order): have[i] is its grant after this pass when has[i], cand[i]
 * marks an increase waiting for confirmations, touched[i] a changed
 * desired state. Holders no longer live are listed in gone. */
struct rebalance {
    struct live_set *live;
    struct grant *have;
    unsigned char *has;
    unsigned char *cand;
    unsigned char *touched;
    uint32_t *cand_slot;
    size_t n_cand;
    const char **gone;
    size_t n_gone;
    uint32_t *window;
    size_t n_window;
    int lowered;
    int changed;
};

static void rebalance_release(struct rebalance *rb)
{
    free(rb->have);
    free(rb->has);
    free(rb->cand);
    free(rb->touched);
    free(rb->cand_slot);
    free(rb->gone);
    free(rb->window);
}

static int rebalance_init(struct rebalance *rb, struct leader *l,
                          const struct lscen *s, int64_t now)
{
    size_t n;

    memset(rb, 0, sizeof(*rb));
    rb->live = live_set(l, now, s->plugin);
    if (!rb->live)
        return J4_ERR_NOMEM;
    n = rb->live->n + 1;
    rb->have = calloc(n, sizeof(*rb->have));
    rb->has = calloc(n, 1);
    rb->cand = calloc(n, 1);
    rb->touched = calloc(n, 1);
    rb->cand_slot = calloc(n, sizeof(*rb->cand_slot));
    rb->gone = calloc(s->n_grants + 1, sizeof(*rb->gone));
    if (!rb->have || !rb->has || !rb->cand || !rb->touched ||
        !rb->cand_slot || !rb->gone)
        return J4_ERR_NOMEM;
    rb->changed = s->persist;
    return J4_OK;
}

/* The planned counts that classify() compares, made at the first need:
 * a scenario whose split holds needs none. */
static int need_window(struct rebalance *rb, const struct leader *l,
                       const struct lscen *s)
{
    if (rb->window)
        return J4_OK;
    rb->window = malloc(WINDOW_MAX * sizeof(*rb->window));
    if (!rb->window)
        return J4_ERR_NOMEM;
    rb->n_window = window_planned(l, s, clock_wall_ms(), rb->window);
    return J4_OK;
}

/* Keeps the grants of executors still live under the same process. */
static void keep_live_grants(struct rebalance *rb, struct leader *l,
                             const struct lscen *s)
{
    for (size_t i = 0; i < s->n_grants; i++) {
        const struct grant *g = &s->grants[i];
        const struct lexec *e = leader_exec(l, g->exec);
        int32_t p = e ? rb->live->pos[e - l->execs] : -1;

        if (p >= 0 && e->incarnation == g->incarnation) {
            rb->have[p] = *g;
            rb->has[p] = 1;
            continue;
        }
        rb->gone[rb->n_gone++] = g->exec;
        rb->lowered = rb->changed = 1;
    }
}

static void set_grant(struct rebalance *rb, size_t i, uint32_t slot,
                      uint32_t slots)
{
    struct grant *g = &rb->have[i];
    const struct lexec *e = rb->live->execs[i];

    if (!rb->has[i]) {
        memset(g, 0, sizeof(*g));
        snprintf(g->exec, sizeof(g->exec), "%s", e->id);
        g->incarnation = e->incarnation;
        rb->has[i] = 1;
    }
    g->slot = slot;
    g->slots = slots;
    rb->touched[i] = 1;
    rb->changed = 1;
}

/* Lowers at once what cannot rise; queues the rest as candidates. */
static int plan_changes(struct rebalance *rb, const struct leader *l,
                        const struct lscen *s)
{
    uint32_t n = (uint32_t)rb->live->n;
    uint32_t rotation = n ? (uint32_t)(s->id % n) : 0;

    for (uint32_t i = 0; i < n; i++) {
        uint32_t slot = (i + n - rotation) % n;
        const struct grant *g = rb->has[i] ? &rb->have[i] : NULL;
        enum change change;

        if (g && g->slot == slot && g->slots == n)
            continue;
        if (need_window(rb, l, s) != J4_OK)
            return J4_ERR_NOMEM;
        change = classify(g, slot, n, rb->window, rb->n_window);
        if (change == CHANGE_DOWN) {
            set_grant(rb, i, slot, n);
            rb->lowered = 1;
            continue;
        }
        if (change == CHANGE_MIXED && g) {
            /* remove first, grant again once it has stopped */
            rb->has[i] = 0;
            rb->touched[i] = 1;
            rb->lowered = rb->changed = 1;
        }
        rb->cand[i] = 1;
        rb->cand_slot[i] = slot;
        rb->n_cand++;
    }
    return J4_OK;
}

/* Whether the increases waiting in rb may be granted: every other
 * holder of s has confirmed its own state, and no live executor runs s
 * without a grant. Settled executors pass both, so only the unsettled
 * ones are looked at (all of them when that list could not be made). */
static int others_confirmed(struct leader *l, struct lscen *s,
                            const struct rebalance *rb, struct tick *t)
{
    size_t n;

    find_unsettled(l, t);
    n = t->unsettled ? t->n_unsettled : l->n_execs;

    for (size_t u = 0; u < n; u++) {
        const struct lexec *e = t->unsettled ? t->unsettled[u]
                                             : &l->execs[u];
        int32_t p = rb->live->pos[e - l->execs];
        const struct grant *g = p >= 0 && rb->has[p] ? &rb->have[p] : NULL;
        const struct fleet_status *st;

        if (!lexec_holding(e, t->now) || !e->incarnation)
            continue;
        if (g && rb->cand[p])
            continue;   /* its current share only grows */
        st = lexec_status(e, s->id);
        if ((!g && st && st->running > 0) ||
            (g && !exec_confirmed(l, e, s->id, g->version))) {
            /* it runs s without a grant, or has not confirmed its own
             * state: wait for it (see still_blocked) */
            s->blocked_gen = l->live_gen;
            s->blocked_by = (size_t)(e - l->execs);
            return 0;
        }
    }
    return 1;
}

/* Non-zero while the executor s's increases last waited for has not
 * settled and the live set is the same: re-examining s before then
 * would only find the same wait, at the cost of a pass over every
 * executor (a thousand confirmations arrive one by one after a loss). */
static int still_blocked(struct leader *l, const struct lscen *s,
                         const struct tick *t)
{
    const struct lexec *e;

    if (s->blocked_gen != l->live_gen || s->persist ||
        s->blocked_by >= l->n_execs)
        return 0;
    e = &l->execs[s->blocked_by];
    return e->incarnation && lexec_holding(e, t->now) &&
           !exec_settled(l, e);
}

/* The grants after this pass, in live order (so sorted by exec); *at
 * gets each live position's index in it. */
static struct grant *next_grants(const struct rebalance *rb, size_t *n,
                                 size_t *at)
{
    struct grant *next = calloc(rb->live->n + 1, sizeof(*next));

    *n = 0;
    for (size_t i = 0; next && i < rb->live->n; i++) {
        if (!rb->has[i])
            continue;
        at[i] = *n;
        next[(*n)++] = rb->have[i];
    }
    return next;
}

/* Stores next as the grants of s and marks every changed desired state
 * with a new version. */
static void commit_grants(struct leader *l, struct lscen *s,
                          const struct rebalance *rb, struct grant *next,
                          size_t n, const size_t *at)
{
    free(s->grants);
    s->grants = next;
    s->n_grants = n;
    s->persist = 0;
    s->gen++;
    for (size_t i = 0; i < rb->live->n; i++) {
        uint64_t v;

        if (!rb->touched[i])
            continue;
        v = exec_touch(l, rb->live->execs[i]->id);
        if (rb->has[i])
            next[at[i]].version = v;
    }
    for (size_t j = 0; j < rb->n_gone; j++)
        exec_touch(l, rb->gone[j]);
}

/* Grants the waiting increases when nothing was lowered in this pass
 * and every other holder confirmed. Returns non-zero when some stay
 * pending. */
static int grant_increases(struct leader *l, struct lscen *s,
                           struct rebalance *rb, struct tick *t)
{
    if (rb->n_cand == 0)
        return 0;
    if (rb->lowered || !(s->started_here || increases_allowed(l, t->now)) ||
        !others_confirmed(l, s, rb, t))
        return 1;
    for (size_t i = 0; i < rb->live->n; i++) {
        if (rb->cand[i])
            set_grant(rb, i, rb->cand_slot[i], (uint32_t)rb->live->n);
    }
    return 0;
}

/* A rebalance whose new grants wait to be written together with the
 * others of the same tick: one transaction and one statement for all,
 * rather than one per scenario (a lost executor changes every one). */
struct grant_write {
    struct lscen *s;
    struct rebalance rb;
    struct grant *next;
    size_t n;
    size_t *at;
    int pending;
};

struct tick_writes {
    struct grant_write *v;
    size_t n;
    size_t cap;
};

static void grant_write_release(struct grant_write *w)
{
    free(w->next);
    free(w->at);
    rebalance_release(&w->rb);
}

/* Queues rb's outcome for s; on failure s is simply rebalanced again at
 * the next tick. */
static void queue_write(struct tick_writes *tw, struct lscen *s,
                        struct rebalance *rb, int pending)
{
    struct grant_write w = {.s = s, .rb = *rb, .pending = pending};

    memset(rb, 0, sizeof(*rb));
    w.at = calloc(w.rb.live->n + 1, sizeof(*w.at));
    w.next = w.at ? next_grants(&w.rb, &w.n, w.at) : NULL;
    if (w.next && tw->n == tw->cap) {
        size_t cap = tw->cap ? 2 * tw->cap : 16;
        struct grant_write *grown = realloc(tw->v, cap * sizeof(*grown));

        if (grown) {
            tw->v = grown;
            tw->cap = cap;
        }
    }
    if (!w.next || tw->n == tw->cap) {
        grant_write_release(&w);
        return;
    }
    tw->v[tw->n++] = w;
}

static void rebalance(struct leader *l, struct lscen *s, struct tick *t)
{
    struct rebalance rb;
    int pending;

    if (s->balanced_gen == l->live_gen && !s->persist)
        return;         /* the split holds for this live set */
    if (still_blocked(l, s, t))
        return;
    if (rebalance_init(&rb, l, s, t->now) != J4_OK)
        goto out_release;
    keep_live_grants(&rb, l, s);
    if (plan_changes(&rb, l, s) != J4_OK)
        goto out_release;
    pending = grant_increases(l, s, &rb, t);
    if (rb.changed) {
        queue_write(t->writes, s, &rb, pending);
        return;
    }
    if (!pending)
        s->balanced_gen = l->live_gen;

out_release:
    rebalance_release(&rb);
}

/* Writes every queued grant change of this tick in one fenced
 * transaction, and only then makes them the plan's (so no message
 * carries a grant PostgreSQL does not hold). */
static void flush_writes(struct leader *l, struct tick_writes *tw)
{
    const struct grant **grants = calloc(tw->n + 1, sizeof(*grants));
    int64_t *ids = calloc(tw->n + 1, sizeof(*ids));
    size_t *counts = calloc(tw->n + 1, sizeof(*counts));
    int rc = J4_ERR_NOMEM;

    if (tw->n && grants && ids && counts && atomic_load(&l->is_leader)) {
        for (size_t i = 0; i < tw->n; i++) {
            ids[i] = tw->v[i].s->id;
            grants[i] = tw->v[i].next;
            counts[i] = tw->v[i].n;
        }
        rc = pgstore_begin_fenced(l->conn, l->epoch);
        if (rc == J4_OK)
            rc = grants_store_write_many(l->conn, l->epoch, ids, grants,
                                         counts, tw->n);
        rc = finish_tx(l, rc, "writing assignments");
    }
    for (size_t i = 0; i < tw->n; i++) {
        struct grant_write *w = &tw->v[i];

        if (rc == J4_OK && atomic_load(&l->is_leader)) {
            commit_grants(l, w->s, &w->rb, w->next, w->n, w->at);
            w->next = NULL;
            if (!w->pending) {
                w->s->balanced_gen = l->live_gen;
                log_split(w->s, w->s->grants, w->s->n_grants);
            }
        }
        grant_write_release(w);
    }
    free(tw->v);
    free(grants);
    free(ids);
    free(counts);
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

/* Workers the live executors report running for s, counted again only
 * when a holder's status (or the grants) changed since the last count. */
uint32_t plan_running(struct leader *l, struct lscen *s, int64_t now)
{
    uint32_t running = 0;

    if (s->summed_gen == s->gen)
        return s->running_sum;
    for (size_t i = 0; i < l->n_execs; i++) {
        const struct lexec *e = &l->execs[i];
        const struct fleet_status *st = lexec_status(e, s->id);

        if (lexec_holding(e, now) && st)
            running += st->running;
    }
    s->running_sum = running;
    s->summed_gen = s->gen;
    return running;
}

/* Notes the most workers the executors have reported running for s at
 * once, so a run that never reached its target can say so at the end. */
static void track_peak(struct leader *l, struct lscen *s, int64_t now,
                       int64_t wall)
{
    uint32_t running = plan_running(l, s, now);
    int64_t t = wall - s->start_wall_ms;

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
    s->gen++;
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

/* Returns 1 when s is gone from the table. A grant change is queued in
 * t->writes. */
static int scen_tick(struct leader *l, struct lscen *s, struct tick *t)
{
    int64_t now = t->now;
    int64_t wall = clock_wall_ms();
    const struct lexec *e;
    const char *error = NULL;

    if (!s->running && tick_pending(l, s, now))
        return 1;
    if (!s->running || !atomic_load(&l->is_leader))
        return 0;
    if (s->fail_reason[0])
        return try_end(l, s, "failed", now);
    if (t->any_error && (e = refusing_holder(l, s, &error)) != NULL)
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
    rebalance(l, s, t);
    return 0;
}

void plan_tick(struct leader *l)
{
    struct tick_writes tw = {0};
    struct tick t = {.now = clock_mono_ms(), .writes = &tw};

    for (size_t i = 0; i < l->n_execs && !t.any_error; i++)
        t.any_error = l->execs[i].has_error;
    for (size_t i = 0; i < l->n_scens && atomic_load(&l->is_leader);) {
        if (!scen_tick(l, l->scens[i], &t))
            i++;
    }
    free(t.unsettled);
    flush_writes(l, &tw);
}
