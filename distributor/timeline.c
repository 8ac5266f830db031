/*
 * timeline.c - recording and serving each scenario's timeline.
 *
 * Recording runs on the leader thread, after the plan's pass, from what
 * the leader already knows: the grants (what each executor may run, so
 * its share of Planned(t)) and the newest heartbeat of each executor
 * (what it runs). A point is a group of rows with one t_ms, one row per
 * executor holding or running the scenario. A point is taken when a count
 * changed or TIMELINE_EVERY_MS passed since the last one; points are
 * buffered and written together in one fenced INSERT once a second. A
 * write that fails keeps the buffer for the next try up to TIMELINE_BUF
 * rows, beyond which the oldest are dropped: the timeline is an account
 * of the run, not part of its results.
 *
 * Scale: a scenario whose grants, holders' statuses (its gen) and
 * planned count are as at its last point is not sampled again before
 * TIMELINE_EVERY_MS, and points of one scenario are at least
 * TIMELINE_MIN_GAP_MS apart (a change waits for the gap to pass), so a
 * pass does not walk every executor of every scenario. A point of a
 * scenario granted to more than TIMELINE_CELLS_MAX executors keeps only
 * the totals, as one row for executor "*" (not a valid executor id): a
 * thousand executors would otherwise make a thousand rows a second per
 * scenario, more than PostgreSQL here could take.
 */
#include "timeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "j4.h"
#include "leader_int.h"
#include "log.h"
#include "pgstore.h"
#include "split.h"

#define TIMELINE_BUF 20000
#define TIMELINE_ROWS_MAX 400000     /* read back at most */
#define TIMELINE_MIN_GAP_MS 100
#define TIMELINE_CELLS_MAX 64

struct tl_cell {
    char exec[DIST_ID_MAX + 1];
    uint32_t planned;
    uint32_t running;
};

struct tl_scen {
    int64_t id;
    int64_t last_ms;            /* mono ms of the last point, 0: none */
    size_t points;              /* stored so far (valid once counted) */
    int counted;
    int seen;
    uint64_t gen;               /* the scenario's gen at the last point */
    uint32_t planned;           /* and its planned count */
    struct tl_cell *last;
    size_t n_last;
};

struct tl_row {
    int64_t scenario_id;
    int64_t t_ms;
    struct tl_cell cell;
};

struct timeline {
    uint64_t epoch;
    struct tl_scen *scens;
    size_t n_scens;
    struct tl_row *rows;
    size_t n_rows;
    int64_t flushed_ms;
};

struct timeline *timeline_new(void)
{
    return calloc(1, sizeof(struct timeline));
}

static void forget_all(struct timeline *tl)
{
    for (size_t i = 0; i < tl->n_scens; i++)
        free(tl->scens[i].last);
    free(tl->scens);
    tl->scens = NULL;
    tl->n_scens = 0;
    tl->n_rows = 0;
}

void timeline_free(struct timeline *tl)
{
    if (!tl)
        return;
    forget_all(tl);
    free(tl->rows);
    free(tl);
}

/* ------------------------------------------------------------ sampling */

static struct tl_scen *tl_scen_get(struct timeline *tl, int64_t id)
{
    struct tl_scen *grown;

    for (size_t i = 0; i < tl->n_scens; i++) {
        if (tl->scens[i].id == id)
            return &tl->scens[i];
    }
    grown = realloc(tl->scens, (tl->n_scens + 1) * sizeof(*grown));
    if (!grown)
        return NULL;
    tl->scens = grown;
    memset(&grown[tl->n_scens], 0, sizeof(*grown));
    grown[tl->n_scens].id = id;
    return &grown[tl->n_scens++];
}

/* Points already stored for id (a new leader continues the count). */
static int count_points(struct leader *l, struct tl_scen *ts)
{
    char sid[24];
    const char *params[] = {sid};
    PGresult *res;
    int ok;

    snprintf(sid, sizeof(sid), "%lld", (long long)ts->id);
    res = pgstore_query(l->conn, "SELECT count(DISTINCT t_ms) FROM"
                        " scenario_timeline WHERE scenario_id = $1", 1,
                        params);
    ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    if (ok) {
        ts->points = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
        ts->counted = 1;
    }
    PQclear(res);
    return ok;
}

static uint32_t exec_running(struct leader *l, const char *exec,
                             int64_t sid, int64_t now)
{
    const struct lexec *e = leader_exec(l, exec);
    const struct fleet_status *st;

    if (!e || !e->incarnation || !lexec_holding(e, now))
        return 0;
    st = lexec_status(e, sid);
    return st ? st->running : 0;
}

/* The one cell of a point that keeps only the totals. */
static size_t total_cell(struct leader *l, struct lscen *s, int64_t now,
                         uint32_t planned, struct tl_cell **out)
{
    struct tl_cell *cell = calloc(1, sizeof(*cell));

    *out = cell;
    if (!cell)
        return 0;
    snprintf(cell->exec, sizeof(cell->exec), "*");
    for (size_t i = 0; i < s->n_grants; i++)
        cell->planned += split_share(planned, s->grants[i].slot,
                                     s->grants[i].slots);
    cell->running = plan_running(l, s, now);
    return 1;
}

/* The cells of s now: every grant, then every live executor running it
 * without one (or only the totals, for many grants). Returns the count;
 * *out is malloc'd. */
static size_t take_cells(struct leader *l, struct lscen *s, int64_t now,
                         uint32_t planned, struct tl_cell **out)
{
    struct tl_cell *cells;
    size_t n = 0;

    if (s->n_grants > TIMELINE_CELLS_MAX)
        return total_cell(l, s, now, planned, out);
    cells = calloc(s->n_grants + l->n_execs + 1, sizeof(*cells));
    *out = cells;
    if (!cells)
        return 0;
    for (size_t i = 0; i < s->n_grants; i++) {
        const struct grant *g = &s->grants[i];
        snprintf(cells[n].exec, sizeof(cells[n].exec), "%s", g->exec);
        cells[n].planned = split_share(planned, g->slot, g->slots);
        cells[n++].running = exec_running(l, g->exec, s->id, now);
    }
    for (size_t i = 0; i < l->n_execs; i++) {
        const struct lexec *e = &l->execs[i];
        uint32_t run = exec_running(l, e->id, s->id, now);

        if (run == 0 || plan_grant_of(s, e->id))
            continue;
        snprintf(cells[n].exec, sizeof(cells[n].exec), "%s", e->id);
        cells[n++].running = run;
    }
    return n;
}

static int cells_equal(const struct tl_cell *a, size_t na,
                       const struct tl_cell *b, size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++) {
        if (strcmp(a[i].exec, b[i].exec) || a[i].planned != b[i].planned ||
            a[i].running != b[i].running)
            return 0;
    }
    return 1;
}

static void append_rows(struct timeline *tl, int64_t sid, int64_t t,
                        const struct tl_cell *cells, size_t n)
{
    if (!tl->rows) {
        tl->rows = calloc(TIMELINE_BUF, sizeof(*tl->rows));
        if (!tl->rows)
            return;
    }
    if (tl->n_rows + n > TIMELINE_BUF) {
        size_t drop = tl->n_rows + n - TIMELINE_BUF;
        drop = drop > tl->n_rows ? tl->n_rows : drop;
        memmove(tl->rows, tl->rows + drop,
                (tl->n_rows - drop) * sizeof(*tl->rows));
        tl->n_rows -= drop;
    }
    for (size_t i = 0; i < n && tl->n_rows < TIMELINE_BUF; i++) {
        struct tl_row *r = &tl->rows[tl->n_rows++];
        r->scenario_id = sid;
        r->t_ms = t;
        r->cell = cells[i];
    }
}

static void sample_scen(struct leader *l, struct timeline *tl,
                        struct lscen *s, int64_t now, int64_t wall)
{
    struct tl_scen *ts = tl_scen_get(tl, s->id);
    struct tl_cell *cells;
    int64_t t = wall - s->start_wall_ms;
    uint32_t planned;
    size_t n;

    if (!ts)
        return;
    ts->seen = 1;
    if (t < 0 || (!ts->counted && !count_points(l, ts)) ||
        ts->points >= TIMELINE_MAX_POINTS)
        return;
    planned = s->stop_requested ? 0 : schedule_planned(&s->sched, t);
    if (ts->last_ms && (now - ts->last_ms < TIMELINE_MIN_GAP_MS ||
                        (now - ts->last_ms < TIMELINE_EVERY_MS &&
                         ts->gen == s->gen && ts->planned == planned)))
        return;                 /* too soon, or nothing it shows changed */
    ts->gen = s->gen;
    ts->planned = planned;
    n = take_cells(l, s, now, planned, &cells);
    if (!cells)
        return;
    if (ts->last_ms && now - ts->last_ms < TIMELINE_EVERY_MS &&
        cells_equal(cells, n, ts->last, ts->n_last)) {
        free(cells);
        return;
    }
    append_rows(tl, s->id, t, cells, n);
    ts->points++;
    ts->last_ms = now;
    free(ts->last);
    ts->last = cells;
    ts->n_last = n;
    if (ts->points == TIMELINE_MAX_POINTS)
        log_warn("scenario %lld: timeline full (%d points), no more "
                 "recorded", (long long)s->id, TIMELINE_MAX_POINTS);
}

/* Drops the records of scenarios the plan no longer has. */
static void forget_gone(struct timeline *tl)
{
    size_t kept = 0;

    for (size_t i = 0; i < tl->n_scens; i++) {
        if (!tl->scens[i].seen) {
            free(tl->scens[i].last);
            continue;
        }
        tl->scens[i].seen = 0;
        tl->scens[kept++] = tl->scens[i];
    }
    tl->n_scens = kept;
}

/* ------------------------------------------------------------- writing */

/* Appends "v," to an array literal in buf; ids need no quoting. */
static void lit_add(char **buf, size_t *len, size_t *cap, const char *v)
{
    size_t n = strlen(v);

    if (*len + n + 3 > *cap) {
        size_t grown_cap = (*cap + n + 3) * 2;
        char *grown = realloc(*buf, grown_cap);
        if (!grown)
            return;
        *buf = grown;
        *cap = grown_cap;
    }
    (*buf)[*len] = *len == 0 ? '{' : ',';
    (*len)++;
    memcpy(*buf + *len, v, n);
    *len += n;
    (*buf)[*len] = '}';
    (*buf)[*len + 1] = '\0';
}

static int insert_rows(struct leader *l, struct timeline *tl)
{
    char *lit[5] = {0}, v[32], epoch[24];
    size_t len[5] = {0}, cap[5] = {0};
    const char *params[6];
    PGresult *res;
    int ok;

    for (size_t i = 0; i < tl->n_rows; i++) {
        const struct tl_row *r = &tl->rows[i];
        snprintf(v, sizeof(v), "%lld", (long long)r->scenario_id);
        lit_add(&lit[0], &len[0], &cap[0], v);
        snprintf(v, sizeof(v), "%lld", (long long)r->t_ms);
        lit_add(&lit[1], &len[1], &cap[1], v);
        lit_add(&lit[2], &len[2], &cap[2], r->cell.exec);
        snprintf(v, sizeof(v), "%u", r->cell.planned);
        lit_add(&lit[3], &len[3], &cap[3], v);
        snprintf(v, sizeof(v), "%u", r->cell.running);
        lit_add(&lit[4], &len[4], &cap[4], v);
    }
    snprintf(epoch, sizeof(epoch), "%llu", (unsigned long long)l->epoch);
    for (int k = 0; k < 5; k++)
        params[k] = lit[k];
    params[5] = epoch;
    ok = lit[0] && lit[1] && lit[2] && lit[3] && lit[4];
    if (ok) {
        res = pgstore_query(l->conn,
            "INSERT INTO scenario_timeline (scenario_id, t_ms, executor_id,"
            " planned, running, epoch) SELECT u.*, $6::bigint FROM"
            " unnest($1::bigint[], $2::bigint[], $3::text[], $4::int[],"
            " $5::int[]) AS u ON CONFLICT DO NOTHING", 6, params);
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
    }
    for (int k = 0; k < 5; k++)
        free(lit[k]);
    return ok ? J4_OK : J4_ERR_UNAVAILABLE;
}

static void flush(struct leader *l, struct timeline *tl, int64_t now)
{
    int rc;

    if (tl->n_rows == 0 || now - tl->flushed_ms < TIMELINE_EVERY_MS)
        return;
    tl->flushed_ms = now;
    rc = pgstore_begin_fenced(l->conn, l->epoch);
    if (rc == J4_OK) {
        rc = insert_rows(l, tl);
        if (rc == J4_OK)
            rc = pgstore_commit(l->conn);
        else
            pgstore_rollback(l->conn);
    }
    if (rc == J4_OK)
        tl->n_rows = 0;
    else if (rc == J4_ERR_CONFLICT)
        leader_step_down(l, "another leader's epoch is in force");
    else
        log_debug("timeline: %zu rows not written yet: %s", tl->n_rows,
                  PQerrorMessage(l->conn));
}

void timeline_tick(struct leader *l, struct timeline *tl, int64_t now_ms)
{
    int64_t wall = clock_wall_ms();

    if (!tl)
        return;
    if (tl->epoch != l->epoch) {
        forget_all(tl);         /* a new leadership starts afresh */
        tl->epoch = l->epoch;
    }
    for (size_t i = 0; i < l->n_scens; i++) {
        struct lscen *s = l->scens[i];
        if (s->running && s->start_wall_ms)
            sample_scen(l, tl, s, now_ms, wall);
    }
    forget_gone(tl);
    flush(l, tl, now_ms);
}

/* ------------------------------------------------------------- reading */

static json_t *point_new(int64_t t)
{
    return json_pack("{s:I, s:i, s:i, s:[]}", "t_ms", (json_int_t)t,
                     "planned", 0, "running", 0, "executors");
}

static void point_add(json_t *pt, const char *exec, int planned,
                      int running)
{
    json_object_set_new(pt, "planned", json_integer(
        json_integer_value(json_object_get(pt, "planned")) + planned));
    json_object_set_new(pt, "running", json_integer(
        json_integer_value(json_object_get(pt, "running")) + running));
    json_array_append_new(json_object_get(pt, "executors"),
                          json_pack("{s:s, s:i, s:i}", "id", exec,
                                    "planned", planned,
                                    "running", running));
}

static json_t *points_json(const PGresult *res)
{
    json_t *points = json_array(), *pt = NULL;
    int64_t cur = 0;

    for (int r = 0; r < PQntuples(res); r++) {
        int64_t t = strtoll(PQgetvalue(res, r, 0), NULL, 10);
        if (!pt || t != cur) {
            pt = point_new(t);
            json_array_append_new(points, pt);
            cur = t;
        }
        point_add(pt, PQgetvalue(res, r, 1),
                  atoi(PQgetvalue(res, r, 2)), atoi(PQgetvalue(res, r, 3)));
    }
    return points;
}

json_t *timeline_json(PGconn *conn, int64_t id, int *found)
{
    char sid[24], limit[24];
    const char *params[] = {sid, limit};
    PGresult *res;
    json_t *doc = NULL;

    snprintf(sid, sizeof(sid), "%lld", (long long)id);
    snprintf(limit, sizeof(limit), "%d", TIMELINE_ROWS_MAX);
    *found = 0;
    res = pgstore_query(conn, "SELECT 1 FROM scenarios WHERE id = $1", 1,
                        params);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return NULL;
    }
    *found = PQntuples(res) == 1;
    PQclear(res);
    if (!*found)
        return json_null();
    res = pgstore_query(conn, "SELECT t_ms, executor_id, planned, running"
                        " FROM scenario_timeline WHERE scenario_id = $1"
                        " ORDER BY t_ms, executor_id LIMIT $2::int", 2,
                        params);
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        doc = json_pack("{s:I, s:i, s:i, s:o}", "id", (json_int_t)id,
                        "every_ms", TIMELINE_EVERY_MS,
                        "max_points", TIMELINE_MAX_POINTS,
                        "points", points_json(res));
    PQclear(res);
    return doc;
}
