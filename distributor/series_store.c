/*
 * series_store.c - scenario_series and scenario_phase_metrics.
 *
 * Writes run on the leader inside metrics_apply()'s fenced transaction,
 * so a report's series count exactly once along with its totals. Every
 * merge is done in C on decoded histograms, as metrics.c does for the
 * totals.
 */
#include "series_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "metrics.h"
#include "pgstore.h"
#include "schedule.h"
#include "spec.h"

static const char *const kinds[] = {"request", "histogram", "counter",
                                    "gauge", "check", "stream"};
static const char *const protocols[] = {"http", "graphql", "grpc",
                                        "custom"};

static int index_of(const char *const *list, size_t n, const char *text)
{
    for (size_t i = 0; text && i < n; i++) {
        if (!strcmp(list[i], text))
            return (int)i;
    }
    return -1;
}

static int name_ok(int kind, const char *name)
{
    size_t len = name ? strnlen(name, 65) : 0;
    int team = kind >= PROM_TEAM_HIST && kind <= PROM_TEAM_GAUGE;

    if (len == 0 || len > 64)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];

        if (c < 0x20 || c > 0x7e)
            return 0;
        if (team && !strchr("abcdefghijklmnopqrstuvwxyz0123456789_", c))
            return 0;
    }
    return 1;
}

int series_store_hist_column(const PGresult *res, int row, int col,
                             struct hist *h)
{
    unsigned char *raw;
    size_t len;
    J4__Histogram *pb;
    int rc;

    hist_init(h);
    if (PQgetisnull(res, row, col))
        return J4_OK;
    raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, col),
                          &len);
    if (!raw)
        return J4_ERR_NOMEM;
    pb = j4__histogram__unpack(NULL, len, raw);
    PQfreemem(raw);
    if (!pb)
        return J4_ERR_INVALID;
    rc = metrics_hist_from_proto(pb, h);
    j4__histogram__free_unpacked(pb, NULL);
    return rc;
}

/* Adds outcome counts to the stored JSON object text; new text. */
static char *outcomes_add(const char *stored, J4__OutcomeCount **oc,
                          size_t n)
{
    json_t *obj = stored ? json_loads(stored, 0, NULL) : NULL;
    char *text;

    if (!json_is_object(obj)) {
        json_decref(obj);
        obj = json_object();
    }
    for (size_t i = 0; i < n; i++) {
        json_t *prev;

        if (!oc[i] || !oc[i]->kind || oc[i]->count == 0 ||
            strspn(oc[i]->kind, "abcdefghijklmnopqrstuvwxyz0123456789_") !=
                strlen(oc[i]->kind) || strlen(oc[i]->kind) > 64)
            continue;
        prev = json_object_get(obj, oc[i]->kind);
        if (!prev && json_object_size(obj) >= 64)
            continue;
        json_object_set_new(obj, oc[i]->kind, json_integer((json_int_t)(
            (uint64_t)json_integer_value(prev) + oc[i]->count)));
    }
    text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(obj);
    return text;
}

/* --------------------------------------------------------------- rows */

struct series_row {
    char *outcomes;
    struct hist hist, hist2;
    long long count, failed, gauge, opened, resets, reconnects;
};

#define SERIES_COLS "outcomes::text, histogram, lifetime, count, failed," \
    " gauge, opened, resets, reconnects"

/* Reads the locked row into *row; returns 1 found, 0 absent, -1 error. */
static int row_load(PGconn *conn, const char *const key[6],
                    struct series_row *row)
{
    PGresult *res = pgstore_query(conn,
        "SELECT " SERIES_COLS " FROM scenario_series WHERE scenario_id = $1"
        " AND executor_id = $2 AND kind = $3 AND name = $4"
        " AND protocol = $5 AND tags = $6 FOR UPDATE", 6, key);
    long long *nums[] = {&row->count, &row->failed, &row->gauge,
                         &row->opened, &row->resets, &row->reconnects};
    int found;

    memset(row, 0, sizeof(*row));
    hist_init(&row->hist);
    hist_init(&row->hist2);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return -1;
    }
    found = PQntuples(res) == 1;
    if (found) {
        row->outcomes = strdup(PQgetvalue(res, 0, 0));
        series_store_hist_column(res, 0, 1, &row->hist);
        series_store_hist_column(res, 0, 2, &row->hist2);
        for (int i = 0; i < 6; i++)
            *nums[i] = strtoll(PQgetvalue(res, 0, 3 + i), NULL, 10);
    }
    PQclear(res);
    return found;
}

static int row_store(PGconn *conn, const char *const key[6],
                     const struct series_row *row)
{
    char nums[6][24];
    const long long vals[] = {row->count, row->failed, row->gauge,
                              row->opened, row->resets, row->reconnects};
    const char *params[15];
    int lengths[15] = {0}, formats[15] = {0};
    size_t hlen = 0, h2len = 0;
    uint8_t *h = metrics_hist_pack(&row->hist, &hlen);
    uint8_t *h2 = metrics_hist_pack(&row->hist2, &h2len);
    PGresult *res;
    int rc = J4_ERR_NOMEM;

    if (!h || !h2)
        goto out_free;
    for (int i = 0; i < 5; i++)
        params[i] = key[i];
    params[5] = row->outcomes ? row->outcomes : "{}";
    params[6] = (const char *)h;
    params[7] = (const char *)h2;
    lengths[6] = (int)hlen;
    lengths[7] = (int)h2len;
    formats[6] = formats[7] = 1;
    for (int i = 0; i < 6; i++) {
        snprintf(nums[i], sizeof(nums[i]), "%lld", vals[i]);
        params[8 + i] = nums[i];
    }
    params[14] = key[5];
    res = PQexecParams(conn,
        "INSERT INTO scenario_series (scenario_id, executor_id, kind, name,"
        " protocol, outcomes, histogram, lifetime, count, failed, gauge,"
        " opened, resets, reconnects, tags) VALUES ($1, $2, $3, $4, $5, $6,"
        " $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        " ON CONFLICT (scenario_id, executor_id, kind, name, protocol, tags)"
        " DO UPDATE SET outcomes = EXCLUDED.outcomes,"
        " histogram = EXCLUDED.histogram, lifetime = EXCLUDED.lifetime,"
        " count = EXCLUDED.count, failed = EXCLUDED.failed,"
        " gauge = EXCLUDED.gauge, opened = EXCLUDED.opened,"
        " resets = EXCLUDED.resets, reconnects = EXCLUDED.reconnects",
        15, NULL, params, lengths, formats, 0);
    rc = PQresultStatus(res) == PGRES_COMMAND_OK ? J4_OK
                                                 : J4_ERR_UNAVAILABLE;
    PQclear(res);
out_free:
    free(h);
    free(h2);
    return rc;
}

/* Rows this (scenario, executor) holds already; -1 on error. */
static long row_count(PGconn *conn, const char *sid, const char *exec)
{
    const char *params[] = {sid, exec};
    PGresult *res = pgstore_query(conn,
        "SELECT count(*) FROM scenario_series WHERE scenario_id = $1"
        " AND executor_id = $2", 2, params);
    long n = -1;

    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return n;
}

static void row_add(struct series_row *row, const J4__Series *s)
{
    struct hist delta;
    char *merged = outcomes_add(row->outcomes, s->outcomes, s->n_outcomes);

    free(row->outcomes);
    row->outcomes = merged;
    if (metrics_hist_from_proto(s->histogram, &delta) == J4_OK)
        hist_merge(&row->hist, &delta);
    if (metrics_hist_from_proto(s->lifetime, &delta) == J4_OK)
        hist_merge(&row->hist2, &delta);
    row->count += (long long)s->count;
    row->failed += (long long)s->failed;
    row->gauge += s->gauge_delta;
    row->opened += (long long)s->opened;
    row->resets += (long long)s->resets;
    row->reconnects += (long long)s->reconnects;
}

/* The kinds sharing kind's cluster-wide bound, as a text[] literal. */
static const char *group_kinds(int kind)
{
    switch (kind) {
    case PROM_REQUEST:
        return "{request}";
    case PROM_CHECK:
        return "{check}";
    case PROM_STREAM:
        return "{stream}";
    default:
        return "{histogram,counter,gauge}";
    }
}

/* Whether the series key[2..5], new for its executor, must fold into
 * "other": it is new to the whole scenario and its group already holds
 * SERIES_STORE_GROUP_MAX series. 1 fold, 0 keep, -1 error. */
static int group_full(PGconn *conn, const char *const key[6], int kind)
{
    const char *params[] = {key[0], key[2], key[3], key[4], key[5],
                            group_kinds(kind)};
    PGresult *res = pgstore_query(conn,
        "SELECT EXISTS (SELECT 1 FROM scenario_series WHERE scenario_id = $1"
        " AND kind = $2 AND name = $3 AND protocol = $4 AND tags = $5),"
        " (SELECT count(*) FROM (SELECT DISTINCT kind, name, protocol, tags"
        " FROM scenario_series WHERE scenario_id = $1"
        " AND kind = ANY ($6::text[]) AND name <> 'other') AS g)", 6, params);
    int full = -1;

    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        full = strcmp(PQgetvalue(res, 0, 0), "t") != 0 &&
               strtol(PQgetvalue(res, 0, 1), NULL, 10) >=
                   SERIES_STORE_GROUP_MAX;
    PQclear(res);
    return full;
}

/* Whether a series not yet stored for (scenario, executor) folds into
 * "other": the executor's or the scenario's bound is reached. */
static int must_fold(PGconn *conn, const char *const key[6], int kind)
{
    if (!strcmp(key[3], "other"))
        return 0;
    if (row_count(conn, key[0], key[1]) >= SERIES_STORE_MAX)
        return 1;
    return group_full(conn, key, kind);
}

static int apply_one(PGconn *conn, const char *sid, const char *exec,
                     const J4__Series *s)
{
    int kind = index_of(kinds, 6, s->kind);
    int proto = index_of(protocols, 4, s->protocol);
    const char *key[6] = {sid, exec, NULL, NULL, NULL, ""};
    struct series_row *row;
    int found, fold, rc;

    if (kind < 0)
        return J4_OK; /* a kind this leader does not know: skipped */
    key[2] = kinds[kind];
    key[3] = name_ok(kind, s->name) ? s->name : "other";
    key[4] = protocols[proto < 0 ? 3 : proto];
    if (s->tags && strcmp(key[3], "other") != 0 &&
        strlen(s->tags) <= SERIES_STORE_TAGS_LEN && prom_tags_ok(s->tags))
        key[5] = s->tags;
    row = malloc(sizeof(*row));
    if (!row)
        return J4_ERR_NOMEM;
    found = row_load(conn, key, row);
    fold = found == 0 ? must_fold(conn, key, kind) : 0;
    if (fold < 0)
        found = -1;
    if (fold > 0) {
        key[3] = "other";
        key[5] = "";
        free(row->outcomes);
        found = row_load(conn, key, row);
    }
    rc = J4_ERR_UNAVAILABLE;
    if (found >= 0) {
        row_add(row, s);
        rc = row_store(conn, key, row);
    }
    free(row->outcomes);
    free(row);
    return rc;
}

/* -------------------------------------------------------------- phases */

const char *series_store_phase(PGconn *conn, const char *sid,
                               int64_t mid_wall_ms)
{
    const char *params[] = {sid};
    PGresult *res = pgstore_query(conn,
        "SELECT start_wall_ms, spec::text FROM scenarios WHERE id = $1"
        " AND start_wall_ms IS NOT NULL", 1, params);
    const char *phase = NULL;
    struct spec_error err;
    struct spec spec;

    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
        spec_parse_text(PQgetvalue(res, 0, 1),
                        (size_t)PQgetlength(res, 0, 1), &spec,
                        &err) == J4_OK) {
        int64_t t = mid_wall_ms - strtoll(PQgetvalue(res, 0, 0), NULL, 10);

        switch (schedule_phase(&spec.schedule, t)) {
        case PHASE_PENDING:
        case PHASE_RAMPUP:
            phase = "rampup";
            break;
        case PHASE_HOLD:
            phase = "hold";
            break;
        default:
            phase = "rampdown";
            break;
        }
        spec_release(&spec);
    }
    PQclear(res);
    return phase;
}

static int phase_add(PGconn *conn, const char *sid, const char *phase,
                     const J4__ScenarioMetrics *m)
{
    const char *key[] = {sid, phase};
    PGresult *res = pgstore_query(conn,
        "SELECT requests, outcomes::text, histogram, iterations,"
        " iteration_errors FROM scenario_phase_metrics"
        " WHERE scenario_id = $1 AND phase = $2 FOR UPDATE", 2, key);
    struct hist *h = malloc(2 * sizeof(*h));
    long long requests = 0, iterations = 0, iteration_errors = 0;
    char *outcomes = NULL;
    int rc = J4_ERR_UNAVAILABLE;

    if (!h || PQresultStatus(res) != PGRES_TUPLES_OK)
        goto out_clear;
    hist_init(&h[0]);
    if (PQntuples(res) == 1) {
        requests = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        outcomes = strdup(PQgetvalue(res, 0, 1));
        series_store_hist_column(res, 0, 2, &h[0]);
        iterations = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
        iteration_errors = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
    }
    if (metrics_hist_from_proto(m->latency, &h[1]) == J4_OK)
        hist_merge(&h[0], &h[1]);
    {
        char *merged = outcomes_add(outcomes, m->outcomes, m->n_outcomes);
        char nums[3][24];
        size_t hlen = 0;
        uint8_t *packed = metrics_hist_pack(&h[0], &hlen);
        const char *params[7];
        int lengths[7] = {0}, formats[7] = {0, 0, 0, 0, 1, 0, 0};
        PGresult *up;

        snprintf(nums[0], 24, "%lld", requests + (long long)m->requests);
        snprintf(nums[1], 24, "%lld", iterations + (long long)m->iterations);
        snprintf(nums[2], 24, "%lld",
                 iteration_errors + (long long)m->iteration_errors);
        params[0] = sid;
        params[1] = phase;
        params[2] = nums[0];
        params[3] = merged ? merged : "{}";
        params[4] = (const char *)packed;
        lengths[4] = (int)hlen;
        params[5] = nums[1];
        params[6] = nums[2];
        up = packed ? PQexecParams(conn,
            "INSERT INTO scenario_phase_metrics (scenario_id, phase,"
            " requests, outcomes, histogram, iterations, iteration_errors)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (scenario_id,"
            " phase) DO UPDATE SET requests = EXCLUDED.requests,"
            " outcomes = EXCLUDED.outcomes, histogram = EXCLUDED.histogram,"
            " iterations = EXCLUDED.iterations,"
            " iteration_errors = EXCLUDED.iteration_errors",
            7, NULL, params, lengths, formats, 0) : NULL;
        rc = PQresultStatus(up) == PGRES_COMMAND_OK ? J4_OK
                                                    : J4_ERR_UNAVAILABLE;
        PQclear(up);
        free(packed);
        free(merged);
    }
out_clear:
    free(outcomes);
    free(h);
    PQclear(res);
    return rc;
}

int series_store_apply(PGconn *conn, const char *sid, const char *exec,
                       const J4__ScenarioMetrics *m, const char *phase)
{
    int rc = J4_OK;

    for (size_t i = 0; rc == J4_OK && i < m->n_series; i++) {
        if (m->series[i])
            rc = apply_one(conn, sid, exec, m->series[i]);
    }
    if (rc == J4_OK && phase)
        rc = phase_add(conn, sid, phase, m);
    return rc;
}

/* ------------------------------------------------------------- reading */

static struct cluster_series *find_or_add(struct cluster_series *all,
                                          size_t *n, int kind,
                                          const char *name,
                                          const char *protocol,
                                          const char *tags)
{
    struct cluster_series *s;

    for (size_t i = 0; i < *n; i++) {
        if (all[i].kind == kind && !strcmp(all[i].name, name) &&
            !strcmp(all[i].protocol, protocol) && !strcmp(all[i].tags, tags))
            return &all[i];
    }
    s = &all[(*n)++];
    memset(s, 0, sizeof(*s));
    s->kind = kind;
    snprintf(s->name, sizeof(s->name), "%s", name);
    snprintf(s->protocol, sizeof(s->protocol), "%s", protocol);
    snprintf(s->tags, sizeof(s->tags), "%s", tags);
    s->hist = malloc(sizeof(*s->hist));
    s->hist2 = malloc(sizeof(*s->hist2));
    if (!s->hist || !s->hist2)
        abort(); /* a service may abort on out-of-memory */
    hist_init(s->hist);
    hist_init(s->hist2);
    return s;
}

void series_store_outcomes_add(uint64_t *out, const char *text)
{
    json_t *obj = json_loads(text, 0, NULL);
    const char *kind;
    json_t *count;

    json_object_foreach(obj, kind, count) {
        for (int o = 0; o < J4_OUTCOME_COUNT_; o++) {
            if (!strcmp(kind, j4_outcome_name((j4_outcome)o)))
                out[o] += (uint64_t)json_integer_value(count);
        }
    }
    json_decref(obj);
}

static void row_into(struct cluster_series *s, const PGresult *res, int r,
                     struct hist *scratch)
{
    series_store_outcomes_add(s->outcomes, PQgetvalue(res, r, 3));
    if (series_store_hist_column(res, r, 4, scratch) == J4_OK)
        hist_merge(s->hist, scratch);
    if (series_store_hist_column(res, r, 5, scratch) == J4_OK)
        hist_merge(s->hist2, scratch);
    s->count += strtoull(PQgetvalue(res, r, 6), NULL, 10);
    s->failed += strtoull(PQgetvalue(res, r, 7), NULL, 10);
    s->gauge += strtoll(PQgetvalue(res, r, 8), NULL, 10);
    s->opened += strtoull(PQgetvalue(res, r, 9), NULL, 10);
    s->resets += strtoull(PQgetvalue(res, r, 10), NULL, 10);
    s->reconnects += strtoull(PQgetvalue(res, r, 11), NULL, 10);
}

int series_store_load(PGconn *conn, int64_t scenario_id,
                      struct cluster_series **out, size_t *n)
{
    char sid[24];
    const char *params[] = {sid};
    PGresult *res;
    struct hist *scratch;
    int rows;

    *out = NULL;
    *n = 0;
    snprintf(sid, sizeof(sid), "%lld", (long long)scenario_id);
    res = pgstore_query(conn,
        "SELECT kind, name, protocol, " SERIES_COLS ", tags"
        " FROM scenario_series WHERE scenario_id = $1"
        " ORDER BY kind, name, protocol, tags", 1, params);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return J4_ERR_UNAVAILABLE;
    }
    rows = PQntuples(res);
    *out = calloc((size_t)rows + 1, sizeof(**out));
    scratch = malloc(sizeof(*scratch));
    if (!*out || !scratch)
        abort();
    for (int r = 0; r < rows; r++) {
        int kind = index_of(kinds, 6, PQgetvalue(res, r, 0));
        struct cluster_series *s;

        if (kind < 0)
            continue;
        s = find_or_add(*out, n, kind, PQgetvalue(res, r, 1),
                        PQgetvalue(res, r, 2), PQgetvalue(res, r, 12));
        row_into(s, res, r, scratch);
    }
    free(scratch);
    PQclear(res);
    return J4_OK;
}

void series_store_free(struct cluster_series *series, size_t n)
{
    for (size_t i = 0; series && i < n; i++) {
        free(series[i].hist);
        free(series[i].hist2);
    }
    free(series);
}

void series_store_prom(const struct cluster_series *s, struct prom_series *p)
{
    memset(p, 0, sizeof(*p));
    p->kind = s->kind;
    p->name = s->name;
    p->protocol = s->protocol;
    p->tags = s->tags;
    memcpy(p->outcomes, s->outcomes, sizeof(p->outcomes));
    p->count = s->count;
    p->failed = s->failed;
    p->gauge = s->gauge;
    p->opened = s->opened;
    p->resets = s->resets;
    p->reconnects = s->reconnects;
    p->hist = s->hist;
    p->hist2 = s->hist2;
}
