/*
 * metrics.c - metrics reports into scenario_metrics, and back out.
 *
 * Each report is applied in one transaction that first checks the leader
 * epoch and the highest seq applied for (executor, incarnation); so a
 * report resent after a lost ack, or replayed to a new leader, counts
 * once. Histograms are merged bucket by bucket in C and stored as
 * serialized j4.Histogram messages (bytea).
 */
#include "metrics.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "hist_json.h"
#include "j4.h"
#include "log.h"
#include "pgstore.h"
#include "series_store.h"

/* Bounds what one (scenario, executor) row can accumulate. */
#define OUTCOME_KINDS_MAX 64
#define OUTCOME_KIND_MAX 64

int metrics_hist_from_proto(const J4__Histogram *pb, struct hist *h)
{
    uint64_t total = 0;

    hist_init(h);
    if (!pb)
        return J4_OK;
    if (pb->n_index != pb->n_count)
        return J4_ERR_INVALID;
    for (size_t i = 0; i < pb->n_index; i++) {
        uint32_t idx = pb->index[i];
        if (idx >= HIST_BUCKETS || total + pb->count[i] < total)
            return J4_ERR_INVALID;
        if (pb->count[i] == 0)
            continue;
        h->counts[idx] += pb->count[i];
        total += pb->count[i];
        if (idx < h->lo)
            h->lo = idx;
        if (idx + 1 > h->hi)
            h->hi = idx + 1;
    }
    if (total == 0) {
        hist_init(h);
        return J4_OK;
    }
    h->total = total;
    h->sum_us = pb->sum_us;
    h->min_us = pb->min_us;
    h->max_us = pb->max_us;
    if (h->min_us > h->max_us)
        h->min_us = h->max_us;
    return J4_OK;
}

uint8_t *metrics_hist_pack(const struct hist *h, size_t *len)
{
    J4__Histogram pb = J4__HISTOGRAM__INIT;
    uint32_t *index = NULL;
    uint64_t *count = NULL;
    uint8_t *buf = NULL;
    size_t n = 0;

    if (h->hi > h->lo) {
        index = malloc((h->hi - h->lo) * sizeof(*index));
        count = malloc((h->hi - h->lo) * sizeof(*count));
        if (!index || !count)
            goto out_free;
    }
    for (uint32_t i = h->lo; i < h->hi; i++) {
        if (h->counts[i] == 0)
            continue;
        index[n] = i;
        count[n++] = h->counts[i];
    }
    pb.n_index = pb.n_count = n;
    pb.index = index;
    pb.count = count;
    pb.total = h->total;
    pb.sum_us = h->sum_us;
    pb.min_us = h->total ? h->min_us : 0;
    pb.max_us = h->max_us;
    *len = j4__histogram__get_packed_size(&pb);
    buf = malloc(*len ? *len : 1);
    if (buf)
        j4__histogram__pack(&pb, buf);

out_free:
    free(index);
    free(count);
    return buf;
}


/* ------------------------------------------------------------ applying */

static int outcome_kind_valid(const char *kind)
{
    size_t len = kind ? strlen(kind) : 0;

    if (len == 0 || len > OUTCOME_KIND_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = kind[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    return 1;
}

/* Adds the report's outcome counts into the stored JSON object. */
static char *merge_outcomes(const char *stored, const J4__ScenarioMetrics *m)
{
    json_t *obj = stored ? json_loads(stored, 0, NULL) : NULL;
    char *text;

    if (!json_is_object(obj)) {
        json_decref(obj);
        obj = json_object();
    }
    for (size_t i = 0; i < m->n_outcomes; i++) {
        const J4__OutcomeCount *o = m->outcomes[i];
        json_t *prev;

        if (!o || !outcome_kind_valid(o->kind) || o->count == 0)
            continue;
        prev = json_object_get(obj, o->kind);
        if (!prev && json_object_size(obj) >= OUTCOME_KINDS_MAX)
            continue;
        json_object_set_new(obj, o->kind, json_integer(
            (json_int_t)((uint64_t)json_integer_value(prev) + o->count)));
    }
    text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(obj);
    return text;
}

struct metrics_row {
    uint64_t requests;
    uint64_t iterations;
    uint64_t iteration_errors;
    char *outcomes;             /* JSON text, owned */
    struct hist hist;
};

/* Reads and locks the stored row; an absent row reads as zeros. */
static int load_row(PGconn *conn, const char *sid, const char *exec,
                    struct metrics_row *row)
{
    const char *params[] = {sid, exec};
    PGresult *res = pgstore_query(conn,
        "SELECT requests, outcomes::text, histogram, iterations,"
        " iteration_errors FROM scenario_metrics"
        " WHERE scenario_id = $1 AND executor_id = $2 FOR UPDATE",
        2, params);
    int rc = J4_OK;

    memset(row, 0, offsetof(struct metrics_row, hist));
    hist_init(&row->hist);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = J4_ERR_UNAVAILABLE;
    } else if (PQntuples(res) == 1) {
        row->requests = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
        row->outcomes = strdup(PQgetvalue(res, 0, 1));
        if (series_store_hist_column(res, 0, 2, &row->hist) != J4_OK)
            hist_init(&row->hist);
        row->iterations = strtoull(PQgetvalue(res, 0, 3), NULL, 10);
        row->iteration_errors = strtoull(PQgetvalue(res, 0, 4), NULL, 10);
    }
    PQclear(res);
    return rc;
}

static int store_row(PGconn *conn, const char *sid, const char *exec,
                     const struct metrics_row *row, double rps)
{
    char requests[24], iterations[24], iteration_errors[24], rate[32];
    const char *params[8];
    int formats[8] = {0, 0, 0, 0, 1, 0, 0, 0};
    int lengths[8] = {0};
    size_t hist_len = 0;
    uint8_t *hist = metrics_hist_pack(&row->hist, &hist_len);
    PGresult *res;
    int rc;

    if (!hist)
        return J4_ERR_NOMEM;
    snprintf(requests, sizeof(requests), "%lld", (long long)row->requests);
    snprintf(iterations, sizeof(iterations), "%lld",
             (long long)row->iterations);
    snprintf(iteration_errors, sizeof(iteration_errors), "%lld",
             (long long)row->iteration_errors);
    snprintf(rate, sizeof(rate), "%.3f", rps);
    params[0] = sid;
    params[1] = exec;
    params[2] = requests;
    params[3] = row->outcomes ? row->outcomes : "{}";
    params[4] = (const char *)hist;
    lengths[4] = (int)hist_len;
    params[5] = iterations;
    params[6] = iteration_errors;
    params[7] = rate;
    res = PQexecParams(conn,
        "INSERT INTO scenario_metrics (scenario_id, executor_id, requests,"
        " outcomes, histogram, iterations, iteration_errors, last_rps,"
        " last_report_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now())"
        " ON CONFLICT (scenario_id, executor_id) DO UPDATE SET"
        " requests = EXCLUDED.requests, outcomes = EXCLUDED.outcomes,"
        " histogram = EXCLUDED.histogram, iterations = EXCLUDED.iterations,"
        " iteration_errors = EXCLUDED.iteration_errors,"
        " last_rps = EXCLUDED.last_rps, last_report_at = now()",
        8, NULL, params, lengths, formats, 0);
    rc = PQresultStatus(res) == PGRES_COMMAND_OK ? J4_OK
                                                 : J4_ERR_UNAVAILABLE;
    PQclear(res);
    free(hist);
    return rc;
}

static int scenario_exists(PGconn *conn, const char *sid)
{
    const char *params[] = {sid};
    PGresult *res = pgstore_query(conn,
        "SELECT 1 FROM scenarios WHERE id = $1", 1, params);
    int rc;

    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = -1;
    else
        rc = PQntuples(res) == 1;
    PQclear(res);
    return rc;
}

/* Adds one scenario's delta into its row. Unknown scenarios are
 * skipped: nothing can be attributed to them. */
static int apply_scenario(PGconn *conn, const char *exec,
                          const J4__ScenarioMetrics *m, double seconds,
                          int64_t mid_wall_ms)
{
    struct metrics_row row;
    struct hist *delta;
    char sid[24];
    char *merged;
    int exists;
    int rc;

    snprintf(sid, sizeof(sid), "%lld", (long long)m->scenario_id);
    exists = scenario_exists(conn, sid);
    if (exists <= 0)
        return exists < 0 ? J4_ERR_UNAVAILABLE : J4_OK;
    delta = malloc(sizeof(*delta));
    if (!delta)
        return J4_ERR_NOMEM;
    rc = metrics_hist_from_proto(m->latency, delta);
    if (rc != J4_OK)
        hist_init(delta);   /* keep the counts, drop a bad histogram */
    rc = load_row(conn, sid, exec, &row);
    if (rc == J4_OK) {
        row.requests += m->requests;
        row.iterations += m->iterations;
        row.iteration_errors += m->iteration_errors;
        hist_merge(&row.hist, delta);
        merged = merge_outcomes(row.outcomes, m);
        free(row.outcomes);
        row.outcomes = merged;
        rc = store_row(conn, sid, exec, &row,
                       seconds > 0 ? (double)m->requests / seconds : 0);
    }
    if (rc == J4_OK)
        rc = series_store_apply(conn, sid, exec, m,
                                series_store_phase(conn, sid, mid_wall_ms));
    free(row.outcomes);
    free(delta);
    return rc;
}

/* The highest seq applied for (executor, incarnation), locked; 0 when
 * none. Returns J4_OK or J4_ERR_UNAVAILABLE. */
static int applied_seq(PGconn *conn, const char *exec, const char *inc,
                       uint64_t *seq)
{
    const char *params[] = {exec, inc};
    PGresult *res = pgstore_query(conn,
        "SELECT seq FROM applied_reports"
        " WHERE executor_id = $1 AND incarnation = $2 FOR UPDATE",
        2, params);
    int rc = J4_ERR_UNAVAILABLE;

    *seq = 0;
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        if (PQntuples(res) == 1)
            *seq = (uint64_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        rc = J4_OK;
    }
    PQclear(res);
    return rc;
}

static int record_seq(PGconn *conn, const char *exec, const char *inc,
                      uint64_t seq)
{
    char seq_text[24];
    const char *params[] = {exec, inc, seq_text};
    PGresult *res;
    int rc;

    snprintf(seq_text, sizeof(seq_text), "%lld", (long long)seq);
    res = pgstore_query(conn,
        "INSERT INTO applied_reports (executor_id, incarnation, seq)"
        " VALUES ($1, $2, $3) ON CONFLICT (executor_id, incarnation)"
        " DO UPDATE SET seq = EXCLUDED.seq, applied_at = now()",
        3, params);
    rc = PQresultStatus(res) == PGRES_COMMAND_OK ? J4_OK
                                                 : J4_ERR_UNAVAILABLE;
    PQclear(res);
    return rc;
}

static int report_valid(const J4__MetricsReport *report)
{
    if (!report->executor_id || !config_id_valid(report->executor_id))
        return 0;
    if (report->seq == 0 || report->seq > INT64_MAX)
        return 0;
    for (size_t i = 0; i < report->n_scenarios; i++) {
        if (!report->scenarios[i])
            return 0;
    }
    return 1;
}

int metrics_apply(PGconn *conn, uint64_t epoch,
                  const J4__MetricsReport *report, int *duplicate)
{
    const char *exec = report->executor_id;
    char inc[24];
    uint64_t seq;
    double seconds;
    int rc;

    *duplicate = 0;
    if (!report_valid(report))
        return J4_ERR_INVALID;
    snprintf(inc, sizeof(inc), "%lld", (long long)report->incarnation);
    seconds = (double)(report->interval_end_wall_ms -
                       report->interval_start_wall_ms) / 1000.0;
    rc = pgstore_begin_fenced(conn, epoch);
    if (rc != J4_OK)
        return rc;
    rc = applied_seq(conn, exec, inc, &seq);
    if (rc == J4_OK && seq >= report->seq) {
        *duplicate = 1;
        pgstore_rollback(conn);
        return J4_OK;
    }
    for (size_t i = 0; rc == J4_OK && i < report->n_scenarios; i++)
        rc = apply_scenario(conn, exec, report->scenarios[i], seconds,
                            report->interval_start_wall_ms / 2 +
                                report->interval_end_wall_ms / 2);
    if (rc == J4_OK)
        rc = record_seq(conn, exec, inc, report->seq);
    if (rc == J4_OK)
        return pgstore_commit(conn);
    pgstore_rollback(conn);
    return rc;
}

/* ------------------------------------------------------------- reading */

/* Adds one row's outcome counts into the total object. */
static void add_outcomes(json_t *total, const char *text)
{
    json_t *obj = json_loads(text, 0, NULL);
    const char *kind;
    json_t *count;

    json_object_foreach(obj, kind, count) {
        json_int_t prev = json_integer_value(json_object_get(total, kind));
        json_object_set_new(total, kind, json_integer(
            prev + json_integer_value(count)));
    }
    json_decref(obj);
}

struct metrics_sum {
    uint64_t requests, iterations, iteration_errors;
    double recent_rps;
    json_t *outcomes;
    struct hist hist;
};

/* Adds every row of res (see metrics_scenario_json) into sum. */
static void sum_rows(const PGresult *res, struct metrics_sum *sum)
{
    struct hist *row_hist = malloc(sizeof(*row_hist));

    for (int r = 0; r < PQntuples(res); r++) {
        sum->requests += strtoull(PQgetvalue(res, r, 0), NULL, 10);
        add_outcomes(sum->outcomes, PQgetvalue(res, r, 1));
        if (row_hist && series_store_hist_column(res, r, 2, row_hist) == J4_OK)
            hist_merge(&sum->hist, row_hist);
        sum->iterations += strtoull(PQgetvalue(res, r, 3), NULL, 10);
        sum->iteration_errors += strtoull(PQgetvalue(res, r, 4), NULL, 10);
        if (!strcmp(PQgetvalue(res, r, 6), "t"))
            sum->recent_rps += strtod(PQgetvalue(res, r, 5), NULL);
    }
    free(row_hist);
}

json_t *metrics_scenario_json(PGconn *conn, int64_t scenario_id,
                              int current_rate, double run_seconds)
{
    char sid[24];
    const char *params[] = {sid};
    struct metrics_sum *sum;
    PGresult *res;
    json_t *out = NULL;
    uint64_t errors;

    snprintf(sid, sizeof(sid), "%lld", (long long)scenario_id);
    res = pgstore_query(conn,
        "SELECT requests, outcomes::text, histogram, iterations,"
        " iteration_errors, last_rps,"
        " last_report_at > now() - interval '5 seconds'"
        " FROM scenario_metrics WHERE scenario_id = $1", 1, params);
    sum = calloc(1, sizeof(*sum));
    if (PQresultStatus(res) != PGRES_TUPLES_OK || !sum)
        goto out_clear;
    hist_init(&sum->hist);
    sum->outcomes = json_object();
    sum_rows(res, sum);
    errors = sum->requests - (uint64_t)json_integer_value(
        json_object_get(sum->outcomes, "ok"));
    if (errors > sum->requests)
        errors = 0;
    out = json_pack("{s:I, s:I, s:f, s:O, s:f, s:I, s:I, s:o}",
        "requests", (json_int_t)sum->requests,
        "errors", (json_int_t)errors,
        "error_rate", sum->requests ? (double)errors / sum->requests : 0.0,
        "outcomes", sum->outcomes,
        "rps", current_rate ? sum->recent_rps
               : (run_seconds > 0 ? sum->requests / run_seconds : 0.0),
        "iterations", (json_int_t)sum->iterations,
        "iteration_errors", (json_int_t)sum->iteration_errors,
        "latency_ms", hist_latency_json(&sum->hist));
    json_decref(sum->outcomes);

out_clear:
    free(sum);
    PQclear(res);
    return out;
}
