/*
 * report.c - building, storing and exporting scenario reports, and
 * evaluating thresholds on cluster-wide figures.
 *
 * Every figure comes from merged data: the totals from the merge of the
 * per-executor histograms in scenario_metrics, each request name from
 * the merge of its scenario_series rows. No percentile is computed per
 * executor, so none can be averaged.
 */
#include "report.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"
#include "hist_json.h"
#include "j4.h"
#include "log.h"
#include "metrics.h"
#include "pgstore.h"
#include "series_store.h"
#include "spec.h"
#include "threshold.h"

/* Everything thresholds and reports are computed from. */
struct figures {
    uint64_t requests, errors, iterations, iteration_errors;
    uint64_t outcomes[J4_OUTCOME_COUNT_];
    double seconds;
    struct hist *latency;
    struct cluster_series *series;
    size_t n_series;
    struct spec spec;
    int have_spec;
};

static void figures_release(struct figures *f)
{
    free(f->latency);
    series_store_free(f->series, f->n_series);
    if (f->have_spec)
        spec_release(&f->spec);
}

static int load_totals(PGconn *conn, const char *sid, struct figures *f)
{
    const char *params[] = {sid};
    PGresult *res = pgstore_query(conn,
        "SELECT requests, outcomes::text, histogram, iterations,"
        " iteration_errors FROM scenario_metrics WHERE scenario_id = $1",
        1, params);
    struct hist *row = malloc(sizeof(*row));

    if (PQresultStatus(res) != PGRES_TUPLES_OK || !row) {
        free(row);
        PQclear(res);
        return J4_ERR_UNAVAILABLE;
    }
    for (int r = 0; r < PQntuples(res); r++) {
        f->requests += strtoull(PQgetvalue(res, r, 0), NULL, 10);
        series_store_outcomes_add(f->outcomes, PQgetvalue(res, r, 1));
        if (series_store_hist_column(res, r, 2, row) == J4_OK)
            hist_merge(f->latency, row);
        f->iterations += strtoull(PQgetvalue(res, r, 3), NULL, 10);
        f->iteration_errors += strtoull(PQgetvalue(res, r, 4), NULL, 10);
    }
    f->errors = f->requests - f->outcomes[J4_OUTCOME_OK];
    if (f->errors > f->requests)
        f->errors = 0;
    free(row);
    PQclear(res);
    return J4_OK;
}

/* Loads the figures of scenario id; the scenario row is res's row 0. */
static int figures_load(PGconn *conn, int64_t id, const PGresult *scen,
                        struct figures *f)
{
    char sid[24];
    struct spec_error err;

    memset(f, 0, sizeof(*f));
    snprintf(sid, sizeof(sid), "%lld", (long long)id);
    f->latency = malloc(sizeof(*f->latency));
    if (!f->latency)
        return J4_ERR_NOMEM;
    hist_init(f->latency);
    f->seconds = strtod(PQgetvalue(scen, 0, 7), NULL);
    f->have_spec = spec_parse_text(PQgetvalue(scen, 0, 4),
                                   (size_t)PQgetlength(scen, 0, 4), &f->spec,
                                   &err) == J4_OK;
    if (load_totals(conn, sid, f) != J4_OK)
        return J4_ERR_UNAVAILABLE;
    return series_store_load(conn, id, &f->series, &f->n_series);
}

#define SCENARIO_COLS "id, name, plugin, state, spec::text, reason," \
    " to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')," \
    " COALESCE(EXTRACT(EPOCH FROM (COALESCE(ended_at, now()) - started_at))," \
    " 0)::float8," \
    " to_char(ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

static PGresult *scenario_row(PGconn *conn, int64_t id)
{
    char sid[24];
    const char *params[] = {sid};

    snprintf(sid, sizeof(sid), "%lld", (long long)id);
    return pgstore_query(conn,
        "SELECT " SCENARIO_COLS " FROM scenarios WHERE id = $1", 1, params);
}

/* ---------------------------------------------------------- thresholds */

/* Sums every tagged variant of t's team metric into *out (its hist set
 * to scratch); 0 when the metric has no series. */
static int team_series(const struct figures *f, const struct threshold *t,
                       struct cluster_series *out, struct hist *scratch)
{
    int want = t->agg == AGG_VALUE                      ? PROM_TEAM_GAUGE
               : (t->agg == AGG_COUNT || t->agg == AGG_RATE) ? PROM_TEAM_COUNTER
                                                        : PROM_TEAM_HIST;
    int found = 0;

    out->count = 0;
    out->gauge = 0;
    out->hist = scratch;
    hist_init(scratch);
    for (size_t i = 0; i < f->n_series; i++) {
        const struct cluster_series *s = &f->series[i];

        if (s->kind != want || strcmp(s->name, t->metric))
            continue;
        found = 1;
        out->count += s->count;
        out->gauge += s->gauge;
        if (s->hist)
            hist_merge(scratch, s->hist);
    }
    return found;
}

/* A duration aggregate of h in ms; NAN when h is empty. */
static double hist_agg_ms(const struct hist *h, const struct threshold *t)
{
    if (!h || h->total == 0)
        return NAN;
    switch (t->agg) {
    case AGG_P:
        return hist_quantile(h, t->percentile / 100.0) / 1000.0;
    case AGG_MED:
        return hist_quantile(h, 0.5) / 1000.0;
    case AGG_AVG:
        return hist_mean(h) / 1000.0;
    case AGG_MIN:
        return h->min_us / 1000.0;
    default:
        return h->max_us / 1000.0;
    }
}

static void checks_sum(const struct figures *f, uint64_t *passed,
                       uint64_t *failed)
{
    *passed = *failed = 0;
    for (size_t i = 0; i < f->n_series; i++) {
        if (f->series[i].kind == PROM_CHECK) {
            *passed += f->series[i].count;
            *failed += f->series[i].failed;
        }
    }
}

static double per_second(uint64_t n, double seconds)
{
    return seconds > 0 ? (double)n / seconds : NAN;
}

/* A team metric threshold's value, over every tagged variant. */
static double team_value(const struct figures *f, const struct threshold *t)
{
    struct cluster_series sum;
    struct hist *scratch = malloc(sizeof(*scratch));
    double value = NAN;

    if (!scratch)
        return NAN;
    if (!team_series(f, t, &sum, scratch))
        goto out_free;
    if (t->agg == AGG_VALUE)
        value = (double)sum.gauge;
    else if (t->agg == AGG_COUNT)
        value = (double)sum.count;
    else if (t->agg == AGG_RATE)
        value = per_second(sum.count, f->seconds);
    else
        value = hist_agg_ms(sum.hist, t);
out_free:
    free(scratch);
    return value;
}

/* The value t is compared with; NAN when there is no data yet. */
static double threshold_value(const struct figures *f,
                              const struct threshold *t)
{
    uint64_t passed, failed;

    switch (t->kind) {
    case METRIC_DURATION:
        return hist_agg_ms(f->latency, t);
    case METRIC_ERRORS:
        if (t->agg == AGG_COUNT)
            return (double)f->errors;
        return f->requests ? (double)f->errors / (double)f->requests : 0.0;
    case METRIC_REQUESTS:
        return t->agg == AGG_COUNT ? (double)f->requests
                                   : per_second(f->requests, f->seconds);
    case METRIC_ITERATIONS:
        return t->agg == AGG_COUNT ? (double)f->iterations
                                   : per_second(f->iterations, f->seconds);
    case METRIC_CHECKS:
        checks_sum(f, &passed, &failed);
        if (t->agg == AGG_COUNT)
            return (double)failed;
        return passed + failed ? (double)passed / (double)(passed + failed)
                               : NAN;
    default:
        break;
    }
    return team_value(f, t);
}

/* "p(95) = 312.4 ms" or "rate = 0.55" */
static void describe(const struct threshold *t, double value, char *buf,
                     size_t size)
{
    char agg[24];

    threshold_agg_text(t, agg, sizeof(agg));
    if (isnan(value))
        snprintf(buf, size, "%s has no data", agg);
    else
        snprintf(buf, size, "%s = %.6g%s", agg, value,
                 threshold_is_duration(t) ? " ms" : "");
}

/* Verdicts of every threshold; *passed is 0 when one failed. final: no
 * data counts as a failure. */
static json_t *verdicts(const struct figures *f, int final, int *passed)
{
    json_t *list = json_array();

    *passed = 1;
    for (size_t i = 0; f->have_spec && i < f->spec.n_thresholds; i++) {
        const struct threshold *t = &f->spec.thresholds[i];
        double v = threshold_value(f, t);
        int ok = isnan(v) ? !final : threshold_holds(t, v);
        char message[160];

        describe(t, v, message, sizeof(message));
        *passed &= ok;
        json_array_append_new(list, json_pack(
            "{s:s, s:s, s:b, s:o, s:s, s:b, s:s}",
            "metric", t->metric, "threshold", t->expr,
            "abort_on_fail", t->abort_on_fail,
            "value", isnan(v) ? json_null() : json_real(v),
            "unit", threshold_is_duration(t) ? "ms" : "",
            "passed", ok, "message", message));
    }
    return list;
}

/* Non-zero when the scenario of row 0 has an abort_on_fail threshold. */
static int has_abort(const PGresult *scen)
{
    struct spec_error err;
    struct spec spec;
    int found = 0;

    if (spec_parse_text(PQgetvalue(scen, 0, 4),
                        (size_t)PQgetlength(scen, 0, 4), &spec,
                        &err) != J4_OK)
        return 0;
    for (size_t i = 0; i < spec.n_thresholds; i++)
        found |= spec.thresholds[i].abort_on_fail;
    spec_release(&spec);
    return found;
}

int report_check_abort(PGconn *conn, int64_t id, int64_t elapsed_ms,
                       char *reason, size_t size)
{
    PGresult *scen = scenario_row(conn, id);
    struct figures f;
    int abort_now = 0;

    if (PQresultStatus(scen) != PGRES_TUPLES_OK || PQntuples(scen) != 1 ||
        !has_abort(scen))
        goto out_clear;
    if (figures_load(conn, id, scen, &f) == J4_OK) {
        for (size_t i = 0; f.have_spec && i < f.spec.n_thresholds; i++) {
            const struct threshold *t = &f.spec.thresholds[i];
            double v;
            char message[160];

            if (!t->abort_on_fail || elapsed_ms < t->delay_abort_ms)
                continue;
            v = threshold_value(&f, t);
            if (isnan(v) || threshold_holds(t, v))
                continue;
            describe(t, v, message, sizeof(message));
            snprintf(reason, size, "threshold '%s: %s' failed (%s); "
                     "aborted by abort_on_fail", t->metric, t->expr, message);
            abort_now = 1;
            break;
        }
    }
    figures_release(&f);
out_clear:
    PQclear(scen);
    return abort_now;
}

/* ------------------------------------------------------------- building */

static json_t *outcomes_json(const uint64_t *outcomes)
{
    json_t *obj = json_object();

    for (int o = 0; o < J4_OUTCOME_COUNT_; o++) {
        if (outcomes[o])
            json_object_set_new(obj, j4_outcome_name((j4_outcome)o),
                                json_integer((json_int_t)outcomes[o]));
    }
    return obj;
}

/* requests, errors, error_rate, outcomes, latency_ms of one block. */
static json_t *block_json(uint64_t requests, const uint64_t *outcomes,
                          const struct hist *h)
{
    uint64_t errors = requests - outcomes[J4_OUTCOME_OK];

    if (errors > requests)
        errors = 0;
    return json_pack("{s:I, s:I, s:f, s:o, s:o}",
        "requests", (json_int_t)requests, "errors", (json_int_t)errors,
        "error_rate", requests ? (double)errors / (double)requests : 0.0,
        "outcomes", outcomes_json(outcomes), "latency_ms", hist_latency_json(h));
}

static json_t *totals_json(const struct figures *f)
{
    json_t *t = block_json(f->requests, f->outcomes, f->latency);

    json_object_set_new(t, "rps", json_real(f->seconds > 0
        ? (double)f->requests / f->seconds : 0.0));
    json_object_set_new(t, "iterations",
                        json_integer((json_int_t)f->iterations));
    json_object_set_new(t, "iteration_errors",
                        json_integer((json_int_t)f->iteration_errors));
    return t;
}

static json_t *phases_json(PGconn *conn, const char *sid)
{
    const char *params[] = {sid};
    PGresult *res = pgstore_query(conn,
        "SELECT phase, requests, outcomes::text, histogram"
        " FROM scenario_phase_metrics WHERE scenario_id = $1", 1, params);
    json_t *out = json_object();
    struct hist *h = malloc(sizeof(*h));

    for (int r = 0; h && PQresultStatus(res) == PGRES_TUPLES_OK &&
                    r < PQntuples(res); r++) {
        uint64_t outcomes[J4_OUTCOME_COUNT_] = {0};

        series_store_outcomes_add(outcomes, PQgetvalue(res, r, 2));
        if (series_store_hist_column(res, r, 3, h) != J4_OK)
            hist_init(h);
        json_object_set_new(out, PQgetvalue(res, r, 0), block_json(
            strtoull(PQgetvalue(res, r, 1), NULL, 10), outcomes, h));
    }
    free(h);
    PQclear(res);
    return out;
}

static json_t *executors_json(PGconn *conn, const char *sid)
{
    const char *params[] = {sid};
    PGresult *res = pgstore_query(conn,
        "SELECT executor_id, requests, outcomes::text, iterations"
        " FROM scenario_metrics WHERE scenario_id = $1 ORDER BY executor_id",
        1, params);
    json_t *out = json_array();

    for (int r = 0; PQresultStatus(res) == PGRES_TUPLES_OK &&
                    r < PQntuples(res); r++) {
        uint64_t outcomes[J4_OUTCOME_COUNT_] = {0};
        uint64_t requests = strtoull(PQgetvalue(res, r, 1), NULL, 10);

        series_store_outcomes_add(outcomes, PQgetvalue(res, r, 2));
        json_array_append_new(out, json_pack("{s:s, s:I, s:I, s:I}",
            "id", PQgetvalue(res, r, 0), "requests", (json_int_t)requests,
            "errors", (json_int_t)(requests - outcomes[J4_OUTCOME_OK]),
            "iterations",
            (json_int_t)strtoull(PQgetvalue(res, r, 3), NULL, 10)));
    }
    PQclear(res);
    return out;
}

/* The canonical tag text "k1=v1,k2=v2" as {"k1": "v1", "k2": "v2"}. */
static json_t *tags_json(const char *tags)
{
    json_t *obj = json_object();

    for (const char *p = tags; p && *p;) {
        size_t len = strcspn(p, ",");
        const char *eq = memchr(p, '=', len);

        if (eq) {
            char *key = strndup(p, (size_t)(eq - p));

            if (key)
                json_object_set_new(obj, key, json_stringn(eq + 1,
                                    len - (size_t)(eq - p) - 1));
            free(key);
        }
        p += len + (p[len] == ',');
    }
    return obj;
}

/* series_json() plus, for a tagged series, its "tags" object. */
static json_t *series_tagged_json(const struct cluster_series *s);

static json_t *series_json(const struct cluster_series *s)
{
    uint64_t requests = 0;

    switch (s->kind) {
    case PROM_REQUEST:
        for (int o = 0; o < J4_OUTCOME_COUNT_; o++)
            requests += s->outcomes[o];
        return json_pack("{s:s, s:s, s:o}", "name", s->name, "protocol",
                         s->protocol, "stats",
                         block_json(requests, s->outcomes, s->hist));
    case PROM_TEAM_HIST:
        return json_pack("{s:s, s:s, s:I, s:o}", "name", s->name, "kind",
                         "histogram", "count", (json_int_t)s->hist->total,
                         "value_ms", hist_latency_json(s->hist));
    case PROM_TEAM_COUNTER:
        return json_pack("{s:s, s:s, s:I}", "name", s->name, "kind",
                         "counter", "count", (json_int_t)s->count);
    case PROM_TEAM_GAUGE:
        return json_pack("{s:s, s:s, s:I}", "name", s->name, "kind", "gauge",
                         "value", (json_int_t)s->gauge);
    case PROM_CHECK:
        return json_pack("{s:s, s:I, s:I, s:f}", "name", s->name, "passed",
                         (json_int_t)s->count, "failed",
                         (json_int_t)s->failed, "rate",
                         s->count + s->failed
                             ? (double)s->count / (double)(s->count + s->failed)
                             : 0.0);
    default:
        return json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:o, s:o}",
                         "name", s->name, "protocol", s->protocol,
                         "opened", (json_int_t)s->opened,
                         "messages", (json_int_t)s->count,
                         "resets", (json_int_t)s->resets,
                         "reconnects", (json_int_t)s->reconnects,
                         "first_message_ms", hist_latency_json(s->hist),
                         "lifetime_ms", hist_latency_json(s->hist2));
    }
}

static json_t *series_tagged_json(const struct cluster_series *s)
{
    json_t *out = series_json(s);

    if (out && s->tags[0])
        json_object_set_new(out, "tags", tags_json(s->tags));
    return out;
}

/* requests, team, checks and streams lists from the series. */
static void add_series(json_t *report, const struct figures *f)
{
    json_t *requests = json_array(), *team = json_array();
    json_t *checks = json_array(), *streams = json_array();

    for (size_t i = 0; i < f->n_series; i++) {
        const struct cluster_series *s = &f->series[i];
        json_t *into = s->kind == PROM_REQUEST  ? requests
                       : s->kind == PROM_CHECK  ? checks
                       : s->kind == PROM_STREAM ? streams
                                                : team;

        json_array_append_new(into, series_tagged_json(s));
    }
    json_object_set_new(report, "requests", requests);
    json_object_set_new(report, "team", team);
    json_object_set_new(report, "checks", checks);
    json_object_set_new(report, "streams", streams);
}

static json_t *nullable(const PGresult *res, int col)
{
    return PQgetisnull(res, 0, col) ? json_null()
                                    : json_string(PQgetvalue(res, 0, col));
}

static int state_ended(const char *state)
{
    return strcmp(state, "pending") != 0 && strcmp(state, "running") != 0;
}

/* Builds the report from the scenario row res and its figures. */
static json_t *report_build(PGconn *conn, const PGresult *scen,
                            const struct figures *f)
{
    const char *state = PQgetvalue(scen, 0, 3);
    int final = state_ended(state), passed;
    json_t *thresholds = verdicts(f, final, &passed);
    json_t *errors = outcomes_json(f->outcomes);
    json_t *report;

    json_object_del(errors, "ok");
    report = json_pack("{s:I, s:s, s:s, s:s, s:o, s:b, s:o, s:o, s:f}",
        "scenario_id", (json_int_t)strtoll(PQgetvalue(scen, 0, 0), NULL, 10),
        "name", PQgetvalue(scen, 0, 1), "scenario", PQgetvalue(scen, 0, 2),
        "state", state, "reason", nullable(scen, 5), "final", final,
        "started_at", nullable(scen, 6), "ended_at", nullable(scen, 8),
        "duration_s", f->seconds);
    json_object_set_new(report, "totals", totals_json(f));
    json_object_set_new(report, "phases",
                        phases_json(conn, PQgetvalue(scen, 0, 0)));
    add_series(report, f);
    json_object_set_new(report, "errors", errors);
    json_object_set_new(report, "executors",
                        executors_json(conn, PQgetvalue(scen, 0, 0)));
    json_object_set_new(report, "thresholds", thresholds);
    /* A run passes when its thresholds hold and it was not cut short. */
    json_object_set_new(report, "thresholds_passed", json_boolean(passed));
    json_object_set_new(report, "passed", json_boolean(
        passed && (!final || !strcmp(state, "finished"))));
    return report;
}

static json_t *stored_report(PGconn *conn, const char *sid, int *failed)
{
    const char *params[] = {sid};
    PGresult *res = pgstore_query(conn,
        "SELECT report::text FROM scenario_reports WHERE scenario_id = $1",
        1, params);
    json_t *report = NULL;

    *failed = PQresultStatus(res) != PGRES_TUPLES_OK;
    if (!*failed && PQntuples(res) == 1)
        report = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    PQclear(res);
    return report;
}

/* Builds the report of id now; *found 0 when the id is unknown. */
static json_t *report_fresh(PGconn *conn, int64_t id, int *found)
{
    PGresult *scen = scenario_row(conn, id);
    struct figures f;
    json_t *report = NULL;

    *found = PQresultStatus(scen) == PGRES_TUPLES_OK && PQntuples(scen) == 1;
    if (*found && figures_load(conn, id, scen, &f) == J4_OK)
        report = report_build(conn, scen, &f);
    if (*found)
        figures_release(&f);
    PQclear(scen);
    return report;
}

json_t *report_get(PGconn *conn, int64_t id, int *found)
{
    char sid[24];
    int failed;
    json_t *report;

    snprintf(sid, sizeof(sid), "%lld", (long long)id);
    report = stored_report(conn, sid, &failed);
    *found = report != NULL || !failed;
    if (report || failed)
        return report;
    return report_fresh(conn, id, found);
}

int report_store(PGconn *conn, int64_t id)
{
    char sid[24];
    int found;
    json_t *report = report_fresh(conn, id, &found);
    char *text;
    const char *params[3];
    PGresult *res;
    int rc;

    if (!report)
        return found ? J4_ERR_UNAVAILABLE : J4_ERR_NOTFOUND;
    if (!json_is_true(json_object_get(report, "final"))) {
        json_decref(report);
        return J4_ERR_CONFLICT; /* not ended: nothing to keep yet */
    }
    snprintf(sid, sizeof(sid), "%lld", (long long)id);
    text = json_dumps(report, JSON_COMPACT);
    params[0] = sid;
    params[1] = json_is_true(json_object_get(report, "passed")) ? "t" : "f";
    params[2] = text;
    res = pgstore_query(conn,
        "INSERT INTO scenario_reports (scenario_id, passed, report)"
        " VALUES ($1, $2, $3) ON CONFLICT (scenario_id) DO NOTHING",
        3, params);
    rc = PQresultStatus(res) == PGRES_COMMAND_OK ? J4_OK : J4_ERR_UNAVAILABLE;
    PQclear(res);
    free(text);
    json_decref(report);
    return rc;
}

/* -------------------------------------------------------------- exports */

struct text {
    char *data;
    size_t len, cap;
};

static void text_add(struct text *t, const char *fmt, ...) J4_PRINTF(2, 3);

static void text_add(struct text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (t->len + (size_t)n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;

        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        t->data = realloc(t->data, cap);
        if (!t->data)
            abort(); /* a service may abort on out-of-memory */
        t->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(t->data + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

/* XML-escapes text into a static-size buffer. */
static const char *xml(const char *in, char *out, size_t size)
{
    size_t o = 0;

    for (const char *p = in ? in : ""; *p && o + 7 < size; p++) {
        const char *rep = *p == '&'   ? "&amp;"
                          : *p == '<' ? "&lt;"
                          : *p == '>' ? "&gt;"
                          : *p == '"' ? "&quot;"
                                      : NULL;

        if (rep) {
            memcpy(out + o, rep, strlen(rep));
            o += strlen(rep);
        } else if ((unsigned char)*p >= 0x20) {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
    return out;
}

static const char *str_of(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));

    return s ? s : "";
}

char *report_junit(json_t *report)
{
    json_t *thresholds = json_object_get(report, "thresholds"), *t;
    const char *state = str_of(report, "state");
    int finished = !strcmp(state, "finished");
    size_t failures = !finished, i;
    char a[512], b[512];
    struct text out = {0};

    json_array_foreach(thresholds, i, t)
        failures += !json_is_true(json_object_get(t, "passed"));
    text_add(&out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
             "<testsuites name=\"j4\" tests=\"%zu\" failures=\"%zu\">\n",
             json_array_size(thresholds) + 1, failures);
    text_add(&out, "  <testsuite name=\"j4.scenario.%lld %s\" tests=\"%zu\" "
             "failures=\"%zu\" time=\"%.3f\">\n",
             (long long)json_integer_value(json_object_get(report,
                                                           "scenario_id")),
             xml(str_of(report, "name"), a, sizeof(a)),
             json_array_size(thresholds) + 1, failures,
             json_real_value(json_object_get(report, "duration_s")));
    text_add(&out, "    <testcase classname=\"j4.run\" name=\"state\">\n");
    if (!finished)
        text_add(&out, "      <failure message=\"scenario ended %s: %s\"/>\n",
                 xml(state, a, sizeof(a)),
                 xml(str_of(report, "reason"), b, sizeof(b)));
    text_add(&out, "    </testcase>\n");
    json_array_foreach(thresholds, i, t) {
        snprintf(b, sizeof(b), "%s: %s", str_of(t, "metric"),
                 str_of(t, "threshold"));
        text_add(&out, "    <testcase classname=\"j4.thresholds\" "
                 "name=\"%s\">\n", xml(b, a, sizeof(a)));
        if (!json_is_true(json_object_get(t, "passed")))
            text_add(&out, "      <failure message=\"%s\"/>\n",
                     xml(str_of(t, "message"), a, sizeof(a)));
        text_add(&out, "    </testcase>\n");
    }
    text_add(&out, "  </testsuite>\n</testsuites>\n");
    return out.data;
}

/* Quotes a CSV field when it needs it. */
static const char *csv(const char *in, char *out, size_t size)
{
    size_t o = 0;

    if (!strpbrk(in, ",\"\n")) {
        snprintf(out, size, "%s", in);
        return out;
    }
    out[o++] = '"';
    for (const char *p = in; *p && o + 3 < size; p++) {
        if (*p == '"')
            out[o++] = '"';
        out[o++] = *p;
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

static void csv_block(struct text *out, const char *section, const char *name,
                      const char *protocol, json_t *block)
{
    json_t *lat = json_object_get(block, "latency_ms");
    char a[160], b[160];

    text_add(out, "%s,%s,%s,%lld,%lld,%.6f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,,"
             ",,,,,,\n",
             section, csv(name, a, sizeof(a)), csv(protocol, b, sizeof(b)),
             (long long)json_integer_value(json_object_get(block, "requests")),
             (long long)json_integer_value(json_object_get(block, "errors")),
             json_real_value(json_object_get(block, "error_rate")),
             json_real_value(json_object_get(lat, "p50")),
             json_real_value(json_object_get(lat, "p90")),
             json_real_value(json_object_get(lat, "p95")),
             json_real_value(json_object_get(lat, "p99")),
             json_real_value(json_object_get(lat, "max")),
             json_real_value(json_object_get(lat, "mean")));
}

/* The latency columns p50_ms..mean_ms from a latency object, or empty
 * ones. */
static void csv_latency(char *buf, size_t size, json_t *lat)
{
    if (!json_is_object(lat)) {
        snprintf(buf, size, ",,,,,");
        return;
    }
    snprintf(buf, size, "%.3f,%.3f,%.3f,%.3f,%.3f,%.3f",
             json_number_value(json_object_get(lat, "p50")),
             json_number_value(json_object_get(lat, "p90")),
             json_number_value(json_object_get(lat, "p95")),
             json_number_value(json_object_get(lat, "p99")),
             json_number_value(json_object_get(lat, "max")),
             json_number_value(json_object_get(lat, "mean")));
}

static long long int_of(json_t *obj, const char *key)
{
    return (long long)json_number_value(json_object_get(obj, key));
}

/* team, check and stream rows: the kind column says which metric a row
 * is; latency columns hold a histogram's values (a stream's time to its
 * first message), value a counter's count, a gauge's value or a check's
 * pass rate. */
static void csv_series(struct text *out, json_t *report)
{
    char a[160], b[160], lat[160];
    json_t *v;
    size_t i;

    json_array_foreach(json_object_get(report, "team"), i, v) {
        const char *kind = str_of(v, "kind");
        int hist = !strcmp(kind, "histogram");

        csv_latency(lat, sizeof(lat),
                    hist ? json_object_get(v, "value_ms") : NULL);
        text_add(out, "team,%s,,,,,%s,", csv(str_of(v, "name"), a, sizeof(a)),
                 lat);
        if (!hist)
            text_add(out, "%lld",
                     int_of(v, strcmp(kind, "gauge") ? "count" : "value"));
        text_add(out, ",,%s,%lld,,,,\n", csv(kind, b, sizeof(b)),
                 int_of(v, strcmp(kind, "gauge") ? "count" : "value"));
    }
    json_array_foreach(json_object_get(report, "checks"), i, v)
        text_add(out, "check,%s,,,,,,,,,,,%.6g,%s,check,%lld,%lld,,,\n",
                 csv(str_of(v, "name"), a, sizeof(a)),
                 json_number_value(json_object_get(v, "rate")),
                 int_of(v, "failed") ? "false" : "true", int_of(v, "passed"),
                 int_of(v, "failed"));
    json_array_foreach(json_object_get(report, "streams"), i, v) {
        csv_latency(lat, sizeof(lat), json_object_get(v, "first_message_ms"));
        text_add(out, "stream,%s,%s,,,,%s,,,stream,%lld,,%lld,%lld,%lld\n",
                 csv(str_of(v, "name"), a, sizeof(a)),
                 csv(str_of(v, "protocol"), b, sizeof(b)), lat,
                 int_of(v, "messages"), int_of(v, "opened"),
                 int_of(v, "resets"), int_of(v, "reconnects"));
    }
}

char *report_csv(json_t *report)
{
    struct text out = {0};
    const char *key;
    json_t *v;
    size_t i;
    char a[160], b[160];

    text_add(&out, "section,name,protocol,requests,errors,error_rate,p50_ms,"
             "p90_ms,p95_ms,p99_ms,max_ms,mean_ms,value,passed,kind,count,"
             "failed,opened,resets,reconnects\n");
    csv_block(&out, "total", str_of(report, "name"), "",
              json_object_get(report, "totals"));
    json_object_foreach(json_object_get(report, "phases"), key, v)
        csv_block(&out, "phase", key, "", v);
    json_array_foreach(json_object_get(report, "requests"), i, v)
        csv_block(&out, "request", str_of(v, "name"), str_of(v, "protocol"),
                  json_object_get(v, "stats"));
    json_object_foreach(json_object_get(report, "errors"), key, v)
        text_add(&out, "error,%s,,%lld,,,,,,,,,,,,,,,,\n",
                 csv(key, a, sizeof(a)),
                 (long long)json_integer_value(v));
    json_array_foreach(json_object_get(report, "thresholds"), i, v) {
        snprintf(b, sizeof(b), "%s: %s", str_of(v, "metric"),
                 str_of(v, "threshold"));
        text_add(&out, "threshold,%s,,,,,,,,,,,%.6g,%s,,,,,,\n",
                 csv(b, a, sizeof(a)),
                 json_number_value(json_object_get(v, "value")),
                 json_is_true(json_object_get(v, "passed")) ? "true"
                                                            : "false");
    }
    csv_series(&out, report);
    if (!out.data)
        text_add(&out, "%s", "");
    return out.data;
}
