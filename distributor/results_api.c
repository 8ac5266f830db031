/*
 * results_api.c - GET /metrics and GET /scenarios/{id}/report.
 *
 * /metrics merges every scenario's rows (scenario_series for requests,
 * streams, team metrics and checks; scenario_metrics for iterations and
 * per-executor requests) and renders them with common/prom.c. The text is
 * cached for a second so that several scrapers cost one set of queries.
 */
#include "results_api.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "j4.h"
#include "prom.h"
#include "report.h"
#include "series_store.h"

#define RESULTS_STR_(x) #x
#define RESULTS_STR(x) RESULTS_STR_(x)

static struct {
    pthread_mutex_t lock;
    int64_t built_ms;
    char *text;
    size_t len;
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status,
                              const char *type, char *text, size_t len)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    if (!text)
        return MHD_NO;
    resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result answer_error(struct MHD_Connection *conn,
                                    unsigned status, const char *rule,
                                    const char *message)
{
    json_t *body = json_pack("{s:{s:s, s:s}}", "error", "rule", rule,
                             "message", message);
    char *text = json_dumps(body, JSON_COMPACT);

    json_decref(body);
    return answer(conn, status, "application/json", text,
                  text ? strlen(text) : 0);
}

/* ------------------------------------------------------------- /metrics */

struct scenario_data {
    struct cluster_series *series;
    size_t n_series;
    struct prom_series *views;
    struct prom_executor *execs;
    char (*exec_ids)[72];
};

/* Iterations and per-executor requests of one scenario into sc. */
static void load_executors(PGconn *conn, struct prom_scenario *sc,
                           struct scenario_data *d,
                           const struct fleet_exec *fleet, size_t n_fleet)
{
    char sid[24];
    const char *params[] = {sid};
    PGresult *res;
    int rows;

    snprintf(sid, sizeof(sid), "%lld", (long long)sc->id);
    res = pgstore_query(conn,
        "SELECT executor_id, requests, iterations, iteration_errors"
        " FROM scenario_metrics WHERE scenario_id = $1 ORDER BY executor_id",
        1, params);
    rows = PQresultStatus(res) == PGRES_TUPLES_OK ? PQntuples(res) : 0;
    d->execs = calloc((size_t)rows + 1, sizeof(*d->execs));
    d->exec_ids = calloc((size_t)rows + 1, sizeof(*d->exec_ids));
    if (!d->execs || !d->exec_ids)
        rows = 0;
    for (int r = 0; r < rows; r++) {
        struct prom_executor *x = &d->execs[r];

        snprintf(d->exec_ids[r], sizeof(d->exec_ids[r]), "%s",
                 PQgetvalue(res, r, 0));
        x->id = d->exec_ids[r];
        x->requests = strtoull(PQgetvalue(res, r, 1), NULL, 10);
        sc->iterations += strtoull(PQgetvalue(res, r, 2), NULL, 10);
        sc->iteration_errors += strtoull(PQgetvalue(res, r, 3), NULL, 10);
        for (size_t e = 0; e < n_fleet; e++) {
            const struct fleet_status *st;

            if (strcmp(fleet[e].id, x->id) != 0)
                continue;
            st = fleet_exec_status(&fleet[e], sc->id);
            x->has_workers = st != NULL;
            x->planned = st ? st->planned : 0;
            x->running = st ? st->running : 0;
        }
    }
    sc->executors = d->execs;
    sc->n_executors = (size_t)rows;
    PQclear(res);
}

static void load_scenario(PGconn *conn, struct prom_scenario *sc,
                          struct scenario_data *d,
                          const struct fleet_exec *fleet, size_t n_fleet)
{
    if (series_store_load(conn, sc->id, &d->series, &d->n_series) != J4_OK)
        d->n_series = 0;
    d->views = calloc(d->n_series + 1, sizeof(*d->views));
    if (!d->views)
        d->n_series = 0;
    for (size_t i = 0; i < d->n_series; i++)
        series_store_prom(&d->series[i], &d->views[i]);
    sc->series = d->views;
    sc->n_series = d->n_series;
    load_executors(conn, sc, d, fleet, n_fleet);
}

/* Renders every recent scenario; NULL when PostgreSQL failed. */
static char *render(PGconn *conn, struct fleet *fleet, size_t *len)
{
    PGresult *res = pgstore_query(conn,
        "SELECT id, name, state FROM scenarios WHERE state IN ('pending',"
        " 'running') OR ended_at > now() - interval '"
        RESULTS_STR(RESULTS_RECENT_MIN) " minutes' ORDER BY id DESC LIMIT "
        RESULTS_STR(RESULTS_SCENARIOS_MAX), 0, NULL);
    struct prom_scenario scs[RESULTS_SCENARIOS_MAX];
    struct scenario_data data[RESULTS_SCENARIOS_MAX];
    struct fleet_exec *execs = NULL;
    size_t n_execs = 0, n;
    struct prom_buf b;

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return NULL;
    }
    if (fleet_snapshot(fleet, &execs, &n_execs) != J4_OK)
        n_execs = 0;
    n = (size_t)PQntuples(res);
    memset(scs, 0, sizeof(scs));
    memset(data, 0, sizeof(data));
    for (size_t i = 0; i < n; i++) {
        scs[i].id = strtoll(PQgetvalue(res, (int)i, 0), NULL, 10);
        scs[i].name = PQgetvalue(res, (int)i, 1);
        scs[i].state = PQgetvalue(res, (int)i, 2);
        load_scenario(conn, &scs[i], &data[i], execs, n_execs);
    }
    prom_buf_init(&b);
    prom_render(&b, scs, n);
    for (size_t i = 0; i < n; i++) {
        series_store_free(data[i].series, data[i].n_series);
        free(data[i].views);
        free(data[i].execs);
        free(data[i].exec_ids);
    }
    fleet_snapshot_free(execs, n_execs);
    PQclear(res);
    if (b.oom) {
        prom_buf_release(&b);
        return NULL;
    }
    *len = b.len;
    return b.data ? b.data : strdup("");
}

/* A copy of the cached text, rebuilt when older than RESULTS_CACHE_MS. */
static char *metrics_text(struct pgpool *pool, struct fleet *fleet,
                          size_t *len)
{
    int64_t now = clock_mono_ms();
    char *copy = NULL;

    pthread_mutex_lock(&cache.lock);
    if (!cache.text || now - cache.built_ms >= RESULTS_CACHE_MS) {
        PGconn *conn = pgpool_get(pool);
        size_t n = 0;
        char *text = conn ? render(conn, fleet, &n) : NULL;

        if (conn)
            pgpool_put(pool, conn);
        if (text) {
            free(cache.text);
            cache.text = text;
            cache.len = n;
            cache.built_ms = now;
        }
    }
    if (cache.text && (copy = malloc(cache.len + 1)) != NULL) {
        memcpy(copy, cache.text, cache.len + 1);
        *len = cache.len;
    }
    pthread_mutex_unlock(&cache.lock);
    return copy;
}

static enum MHD_Result get_metrics(struct pgpool *pool, struct fleet *fleet,
                                   struct MHD_Connection *conn)
{
    size_t len = 0;
    char *text = metrics_text(pool, fleet, &len);

    if (!text)
        return answer_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                            "unavailable",
                            "PostgreSQL is unreachable; retry later");
    return answer(conn, MHD_HTTP_OK, PROM_CONTENT_TYPE, text, len);
}

/* -------------------------------------------------------------- reports */

static enum MHD_Result send_report(struct MHD_Connection *conn,
                                   json_t *report, const char *format)
{
    char *text;

    if (!strcmp(format, "junit")) {
        text = report_junit(report);
        return answer(conn, MHD_HTTP_OK, "application/xml", text,
                      text ? strlen(text) : 0);
    }
    if (!strcmp(format, "csv")) {
        text = report_csv(report);
        return answer(conn, MHD_HTTP_OK, "text/csv", text,
                      text ? strlen(text) : 0);
    }
    text = json_dumps(report, JSON_COMPACT);
    return answer(conn, MHD_HTTP_OK, "application/json", text,
                  text ? strlen(text) : 0);
}

static enum MHD_Result get_report(struct pgpool *pool,
                                  struct MHD_Connection *conn, int64_t id)
{
    const char *format = MHD_lookup_connection_value(
        conn, MHD_GET_ARGUMENT_KIND, "format");
    PGconn *pg;
    json_t *report;
    enum MHD_Result ret;
    int found = 0;

    if (!format)
        format = "json";
    if (strcmp(format, "json") && strcmp(format, "junit") &&
        strcmp(format, "csv"))
        return answer_error(conn, MHD_HTTP_BAD_REQUEST, "format",
                            "format must be json, junit or csv");
    pg = pgpool_get(pool);
    if (!pg)
        return answer_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                            "unavailable",
                            "PostgreSQL is unreachable; retry later");
    report = report_get(pg, id, &found);
    pgpool_put(pool, pg);
    if (!report && !found)
        return answer_error(conn, MHD_HTTP_NOT_FOUND, "not_found",
                            "no such scenario");
    if (!report)
        return answer_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                            "unavailable", "unable to build the report");
    ret = send_report(conn, report, format);
    json_decref(report);
    return ret;
}

/* The id of "/scenarios/ID/report", or 0. */
static int64_t report_id(const char *url)
{
    char *end;
    long long id;

    if (strncmp(url, "/scenarios/", 11) != 0)
        return 0;
    id = strtoll(url + 11, &end, 10);
    if (end == url + 11 || id <= 0 || strcmp(end, "/report") != 0)
        return 0;
    return id;
}

int results_route(struct pgpool *pool, struct fleet *fleet,
                  struct MHD_Connection *conn, const char *method,
                  const char *url, enum MHD_Result *ret)
{
    int64_t id = report_id(url);

    if (strcmp(url, "/metrics") != 0 && !id)
        return 0;
    if (strcmp(method, "GET") != 0)
        *ret = answer_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method",
                            "use GET");
    else if (id)
        *ret = get_report(pool, conn, id);
    else
        *ret = get_metrics(pool, fleet, conn);
    return 1;
}
