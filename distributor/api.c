/*
 * api.c - REST handlers of j4-distributor.
 *
 * libmicrohttpd calls the access handler several times per request: once
 * with the headers, once per chunk of body, once at the end. The first
 * call checks the token (401 before anything else) and a declared body
 * size (413); body chunks are collected up to API_BODY_MAX, past which
 * the rest is discarded and 413 answered; the last call routes. Every
 * answer is JSON; errors are {"error": {"field", "rule", "message"}}.
 *
 * Handlers run on MHD's pool threads and take PostgreSQL sessions from
 * the shared pool for the duration of one request.
 */
#include "api.h"

#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "clock.h"
#include "datasets.h"
#include "j4.h"
#include "log.h"
#include "net.h"
#include "metrics.h"
#include "results_api.h"
#include "schedule.h"
#include "spec.h"
#include "split.h"
#include "timeline.h"

#define API_THREADS 4
#define API_LIST_MAX 1000

struct api {
    const struct config *cfg;
    struct pgpool *pool;
    struct fleet *fleet;
    struct leader *leader;
    natsConnection *nc;
    struct MHD_Daemon *daemon;
};

/* One request's state between the handler's calls. */
struct request {
    int started;
    int refused;                /* a response was already queued */
    int too_big;
    char *body;
    size_t len;
    size_t cap;
    char content_type[96];      /* for POST /datasets/{name} */
};

/* An answer being built: status and JSON body (owned). */
struct reply {
    unsigned status;
    json_t *body;
    char location[64];
};

/* ------------------------------------------------------------- answers */

static void reply_error(struct reply *r, unsigned status, const char *field,
                        const char *rule, const char *message)
{
    json_t *err = json_object();

    if (field && field[0])
        json_object_set_new(err, "field", json_string(field));
    json_object_set_new(err, "rule", json_string(rule));
    json_object_set_new(err, "message", json_string(message));
    json_decref(r->body);
    r->status = status;
    r->body = json_pack("{s:o}", "error", err);
}

static void reply_pg_down(struct reply *r)
{
    reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, "unavailable",
                "PostgreSQL is unreachable; retry later");
}

static enum MHD_Result send_reply(struct MHD_Connection *conn,
                                  struct reply *r)
{
    char *text = r->body ? json_dumps(r->body, JSON_COMPACT |
                                      JSON_REAL_PRECISION(9)) : NULL;
    size_t len = text ? strlen(text) : 2;
    struct MHD_Response *resp;
    enum MHD_Result ret;

    if (!text)
        resp = MHD_create_response_from_buffer(2, "{}",
                                               MHD_RESPMEM_PERSISTENT);
    else
        resp = MHD_create_response_from_buffer(len, text,
                                               MHD_RESPMEM_MUST_FREE);
    json_decref(r->body);
    r->body = NULL;
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/json");
    if (r->location[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION,
                                r->location);
    ret = MHD_queue_response(conn, r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* -------------------------------------------------------------- checks */

/* Compares in time that depends only on the lengths. */
static int same_secret(const char *a, size_t alen, const char *b,
                       size_t blen)
{
    volatile unsigned char diff = alen != blen;

    for (size_t i = 0; i < alen; i++)
        diff |= (unsigned char)a[i] ^ (unsigned char)b[i % (blen ? blen : 1)];
    return diff == 0 && blen > 0;
}

static int authorized(const struct api *a, struct MHD_Connection *conn)
{
    const char *header;

    if (!a->cfg->token)
        return 1;
    header = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                         MHD_HTTP_HEADER_AUTHORIZATION);
    if (!header || strncasecmp(header, "Bearer ", 7) != 0)
        return 0;
    header += 7;
    return same_secret(header, strlen(header), a->cfg->token,
                       strlen(a->cfg->token));
}

static int declared_too_big(struct MHD_Connection *conn)
{
    const char *len = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

    return len && strtoull(len, NULL, 10) > API_BODY_MAX;
}

static void append_body(struct request *req, const char *data, size_t n)
{
    if (req->too_big || req->len + n > API_BODY_MAX) {
        req->too_big = 1;
        return;
    }
    if (req->len + n + 1 > req->cap) {
        size_t cap = req->cap ? req->cap : 4096;
        char *grown;
        while (cap < req->len + n + 1)
            cap *= 2;
        grown = realloc(req->body, cap);
        if (!grown) {
            req->too_big = 1;
            return;
        }
        req->body = grown;
        req->cap = cap;
    }
    memcpy(req->body + req->len, data, n);
    req->len += n;
    req->body[req->len] = '\0';
}

/* Parses "/scenarios/<id>[suffix]"; returns the id or 0. */
static int64_t path_id(const char *url, const char **rest)
{
    const char *p = url + strlen("/scenarios/");
    int64_t id = 0;

    if (*p < '1' || *p > '9')
        return 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (id > (INT64_MAX - 9) / 10)
            return 0;
        id = id * 10 + (*p - '0');
    }
    *rest = p;
    return id;
}

/* ----------------------------------------------------------- scenarios */

#define SCENARIO_COLUMNS \
    "id, name, plugin, spec::text, state, reason, stop_requested," \
    " start_wall_ms, (extract(epoch FROM created_at) * 1000)::bigint," \
    " (extract(epoch FROM started_at) * 1000)::bigint," \
    " (extract(epoch FROM ended_at) * 1000)::bigint"

enum { COL_ID, COL_NAME, COL_PLUGIN, COL_SPEC, COL_STATE, COL_REASON,
       COL_STOP, COL_START, COL_CREATED, COL_STARTED, COL_ENDED };

/* A timestamp column (epoch ms) as an ISO string, or null. */
static json_t *time_json(const PGresult *res, int row, int col)
{
    char buf[32];

    if (PQgetisnull(res, row, col))
        return json_null();
    clock_format_wall(strtoll(PQgetvalue(res, row, col), NULL, 10), buf,
                      sizeof(buf));
    return json_string(buf);
}

static json_t *nullable_text(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return json_null();
    return json_string(PQgetvalue(res, row, col));
}

/* What the scenario looks like now, as read from one row. */
struct scenario_view {
    int64_t id;
    const char *state;
    int running;                /* state is running */
    int stop_requested;
    int64_t t_ms;               /* since its start, leader clock */
    struct schedule sched;
    int have_sched;
    uint32_t planned;
};

static void view_from_row(struct scenario_view *v, const PGresult *res,
                          int row)
{
    const char *spec_text = PQgetvalue(res, row, COL_SPEC);
    struct spec_error err;
    struct spec spec;

    memset(v, 0, sizeof(*v));
    v->id = strtoll(PQgetvalue(res, row, COL_ID), NULL, 10);
    v->state = PQgetvalue(res, row, COL_STATE);
    v->running = !strcmp(v->state, "running");
    v->stop_requested = !strcmp(PQgetvalue(res, row, COL_STOP), "t");
    if (spec_parse_text(spec_text, strlen(spec_text), &spec, &err) ==
        J4_OK) {
        v->sched = spec.schedule;
        v->have_sched = 1;
        spec_release(&spec);
    }
    if (!PQgetisnull(res, row, COL_START))
        v->t_ms = clock_wall_ms() -
                  strtoll(PQgetvalue(res, row, COL_START), NULL, 10);
    if (v->running && !v->stop_requested && v->have_sched)
        v->planned = schedule_planned(&v->sched, v->t_ms);
}

static const char *view_phase(const struct scenario_view *v)
{
    if (!strcmp(v->state, "pending"))
        return "pending";
    if (!v->running)
        return "done";
    if (v->stop_requested)
        return "stopping";
    if (!v->have_sched)
        return "running";
    return phase_name(schedule_phase(&v->sched, v->t_ms));
}

static const struct fleet_exec *find_exec(const struct fleet_exec *execs,
                                          size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(execs[i].id, id))
            return &execs[i];
    }
    return NULL;
}

/* Workers of the scenario alive on e now, per its last heartbeat. */
static uint32_t exec_running(const struct api *a, const struct fleet_exec *e,
                             int64_t sid)
{
    const struct fleet_status *st;

    if (!e || clock_mono_ms() - e->recv_mono_ms >= a->cfg->lease_ms)
        return 0;
    st = fleet_exec_status(e, sid);
    return st ? st->running : 0;
}

/* The per-executor split: every granted executor, plus any executor that
 * still runs workers of the scenario without a grant. */
static json_t *split_json(const struct api *a, PGconn *conn,
                          const struct scenario_view *v,
                          const struct fleet_exec *execs, size_t n,
                          uint32_t *running)
{
    char sid[24];
    const char *params[] = {sid};
    json_t *list = json_array();
    PGresult *res;

    snprintf(sid, sizeof(sid), "%lld", (long long)v->id);
    res = pgstore_query(conn, "SELECT executor_id, slot, slots FROM"
                        " assignments WHERE scenario_id = $1"
                        " ORDER BY executor_id", 1, params);
    *running = 0;
    for (int r = 0; PQresultStatus(res) == PGRES_TUPLES_OK &&
                    r < PQntuples(res); r++) {
        const char *id = PQgetvalue(res, r, 0);
        uint32_t slot = (uint32_t)strtoul(PQgetvalue(res, r, 1), NULL, 10);
        uint32_t slots = (uint32_t)strtoul(PQgetvalue(res, r, 2), NULL, 10);
        uint32_t run = exec_running(a, find_exec(execs, n, id), v->id);

        *running += run;
        json_array_append_new(list, json_pack("{s:s, s:i, s:i, s:i, s:i}",
            "id", id, "slot", (int)slot, "slots", (int)slots,
            "planned", slots ? (int)split_share(v->planned, slot, slots) : 0,
            "running", (int)run));
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t run = exec_running(a, &execs[i], v->id);
        int granted = 0;
        for (int r = 0; PQresultStatus(res) == PGRES_TUPLES_OK &&
                        r < PQntuples(res); r++)
            granted |= !strcmp(PQgetvalue(res, r, 0), execs[i].id);
        if (granted || run == 0)
            continue;
        *running += run;
        json_array_append_new(list, json_pack("{s:s, s:n, s:n, s:i, s:i}",
            "id", execs[i].id, "slot", "slots", "planned", 0,
            "running", (int)run));
    }
    PQclear(res);
    return list;
}

static double run_seconds(const PGresult *res, int row)
{
    int64_t start, end;

    if (PQgetisnull(res, row, COL_STARTED))
        return 0;
    start = strtoll(PQgetvalue(res, row, COL_STARTED), NULL, 10);
    end = PQgetisnull(res, row, COL_ENDED)
              ? clock_wall_ms()
              : strtoll(PQgetvalue(res, row, COL_ENDED), NULL, 10);
    return end > start ? (double)(end - start) / 1000.0 : 0;
}

/* The full scenario document of one row. NULL on PostgreSQL failure. */
static json_t *scenario_json(const struct api *a, PGconn *conn,
                             const PGresult *res, int row,
                             const struct fleet_exec *execs, size_t n)
{
    struct scenario_view v;
    json_t *split, *metrics, *spec;
    uint32_t running;

    view_from_row(&v, res, row);
    metrics = metrics_scenario_json(conn, v.id, v.running,
                                    run_seconds(res, row));
    if (!metrics)
        return NULL;
    split = split_json(a, conn, &v, execs, n, &running);
    spec = json_loads(PQgetvalue(res, row, COL_SPEC), 0, NULL);
    return json_pack("{s:I, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o,"
                     " s:i, s:i, s:b, s:o, s:o, s:o}",
        "id", (json_int_t)v.id,
        "name", PQgetvalue(res, row, COL_NAME),
        "scenario", PQgetvalue(res, row, COL_PLUGIN),
        "state", v.state,
        "phase", view_phase(&v),
        "reason", nullable_text(res, row, COL_REASON),
        "created_at", time_json(res, row, COL_CREATED),
        "started_at", time_json(res, row, COL_STARTED),
        "ended_at", time_json(res, row, COL_ENDED),
        "planned", (int)v.planned,
        "running", (int)running,
        "stop_requested", v.stop_requested,
        "executors", split,
        "metrics", metrics,
        "spec", spec ? spec : json_object());
}

/* Reads scenario id and builds its document into r (200 or 404). */
static void load_scenario(struct api *a, PGconn *conn, int64_t id,
                          unsigned status, struct reply *r)
{
    char sid[24];
    const char *params[] = {sid};
    struct fleet_exec *execs = NULL;
    size_t n = 0;
    PGresult *res;
    json_t *doc = NULL;

    snprintf(sid, sizeof(sid), "%lld", (long long)id);
    res = pgstore_query(conn, "SELECT " SCENARIO_COLUMNS
                        " FROM scenarios WHERE id = $1", 1, params);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        reply_pg_down(r);
    } else if (PQntuples(res) == 0) {
        reply_error(r, MHD_HTTP_NOT_FOUND, NULL, "not_found",
                    "no such scenario");
    } else {
        fleet_snapshot(a->fleet, &execs, &n);
        doc = scenario_json(a, conn, res, 0, execs, n);
        if (doc) {
            r->status = status;
            r->body = doc;
        } else {
            reply_pg_down(r);
        }
    }
    fleet_snapshot_free(execs, n);
    PQclear(res);
}

static void list_scenarios(struct api *a, PGconn *conn, struct reply *r)
{
    struct fleet_exec *execs = NULL;
    size_t n = 0;
    json_t *list = json_array();
    PGresult *res = PQexec(conn, "SELECT " SCENARIO_COLUMNS
                           " FROM scenarios ORDER BY id DESC LIMIT 1000");

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        json_decref(list);
        PQclear(res);
        reply_pg_down(r);
        return;
    }
    fleet_snapshot(a->fleet, &execs, &n);
    for (int row = 0; row < PQntuples(res); row++) {
        json_t *doc = scenario_json(a, conn, res, row, execs, n);
        if (doc)
            json_array_append_new(list, doc);
    }
    fleet_snapshot_free(execs, n);
    PQclear(res);
    r->status = MHD_HTTP_OK;
    r->body = json_pack("{s:o}", "scenarios", list);
}

/* Inserts the normalized document and announces it, in one transaction.
 * Returns the new id, or 0 on failure. */
static int64_t insert_scenario(PGconn *conn, const struct spec *spec)
{
    json_t *doc = spec_to_json(spec);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    const char *params[] = {spec->name, spec->scenario, text};
    PGresult *res;
    int64_t id = 0;

    json_decref(doc);
    if (!text || !pgstore_exec_ok(conn, "BEGIN", PGRES_COMMAND_OK))
        goto out_free;
    res = pgstore_query(conn, "INSERT INTO scenarios (name, plugin, spec)"
                        " VALUES ($1, $2, $3::jsonb) RETURNING id",
                        3, params);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if (id && (!pgstore_exec_ok(conn, "NOTIFY j4_scenarios",
                                PGRES_COMMAND_OK) ||
               pgstore_commit(conn) != J4_OK))
        id = 0;

out_free:
    pgstore_rollback(conn);
    free(text);
    return id;
}

static void post_scenario(struct api *a, PGconn *conn,
                          const struct request *req, struct reply *r)
{
    struct spec_error err;
    struct spec spec;
    char message[320];
    int64_t id;

    /* A browser may POST text/plain across origins without asking
     * first; a JSON content type cannot be sent that way. */
    if (strncasecmp(req->content_type, "application/json", 16) != 0 ||
        (req->content_type[16] && req->content_type[16] != ';' &&
         req->content_type[16] != ' ')) {
        reply_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, NULL,
                    "unsupported_media_type",
                    "a scenario must be sent as Content-Type: "
                    "application/json");
        return;
    }
    if (spec_parse_text(req->body ? req->body : "", req->len, &spec,
                        &err) != J4_OK) {
        if (err.field[0])
            snprintf(message, sizeof(message), "%s: %s", err.field,
                     err.rule);
        else
            snprintf(message, sizeof(message), "%s", err.rule);
        reply_error(r, MHD_HTTP_BAD_REQUEST, err.field, err.rule, message);
        return;
    }
    if (datasets_check_pool(conn, spec.params_json, &r->status,
                            &r->body) != J4_OK) {
        spec_release(&spec);
        return;
    }
    id = insert_scenario(conn, &spec);
    spec_release(&spec);
    if (!id) {
        reply_pg_down(r);
        return;
    }
    snprintf(r->location, sizeof(r->location), "/scenarios/%lld",
             (long long)id);
    load_scenario(a, conn, id, MHD_HTTP_CREATED, r);
}

/* Sets stop_requested (a pending scenario stops at once). Returns 1 when
 * it was set, 0 when the scenario is not active, -1 on failure. */
static int request_stop(PGconn *conn, const char *sid)
{
    const char *params[] = {sid};
    PGresult *res;
    int changed = -1;

    if (!pgstore_exec_ok(conn, "BEGIN", PGRES_COMMAND_OK))
        return -1;
    res = pgstore_query(conn,
        "UPDATE scenarios SET stop_requested = true,"
        " state = CASE WHEN state = 'pending' THEN 'stopped' ELSE state END,"
        " reason = CASE WHEN state = 'pending'"
        "   THEN 'stopped before it started' ELSE reason END,"
        " ended_at = CASE WHEN state = 'pending' THEN now()"
        "   ELSE ended_at END"
        " WHERE id = $1 AND state IN ('pending', 'running')", 1, params);
    if (PQresultStatus(res) == PGRES_COMMAND_OK)
        changed = atoi(PQcmdTuples(res)) == 1;
    PQclear(res);
    if (changed == 1 && (!pgstore_exec_ok(conn, "NOTIFY j4_scenarios",
                                          PGRES_COMMAND_OK) ||
                         pgstore_commit(conn) != J4_OK))
        changed = -1;
    pgstore_rollback(conn);
    return changed;
}

static void stop_scenario(struct api *a, PGconn *conn, int64_t id,
                          struct reply *r)
{
    char sid[24];
    int changed;

    snprintf(sid, sizeof(sid), "%lld", (long long)id);
    changed = request_stop(conn, sid);
    if (changed < 0) {
        reply_pg_down(r);
        return;
    }
    load_scenario(a, conn, id, changed ? MHD_HTTP_ACCEPTED
                                       : MHD_HTTP_CONFLICT, r);
    if (!changed && r->status == MHD_HTTP_CONFLICT) {
        char message[128];
        snprintf(message, sizeof(message), "scenario %lld has already "
                 "ended", (long long)id);
        reply_error(r, MHD_HTTP_CONFLICT, NULL, "already_ended", message);
    }
}

static json_t *exec_json(const struct api *a, const struct fleet_exec *e)
{
    int64_t age = clock_mono_ms() - e->recv_mono_ms;
    json_t *scenarios = json_array();
    uint64_t running = 0;
    char inc[24];

    for (size_t i = 0; i < e->n_status; i++) {
        const struct fleet_status *st = &e->status[i];
        running += st->running;
        json_array_append_new(scenarios, json_pack(
            "{s:I, s:i, s:i, s:b, s:s?}", "id", (json_int_t)st->scenario_id,
            "planned", (int)st->planned, "running", (int)st->running,
            "drained", st->drained, "error",
            st->error[0] ? st->error : NULL));
    }
    snprintf(inc, sizeof(inc), "%016llx",
             (unsigned long long)e->incarnation);
    return json_pack("{s:s, s:s, s:i, s:b, s:I, s:I, s:I, s:I, s:o}",
        "id", e->id, "incarnation", inc, "capacity", (int)e->capacity,
        "live", age < (int64_t)a->cfg->lease_ms,
        "last_heartbeat_age_ms", (json_int_t)age,
        "running", (json_int_t)running,
        "applied_epoch", (json_int_t)e->applied_epoch,
        "applied_version", (json_int_t)e->applied_version,
        "scenarios", scenarios);
}

static int cmp_fleet_exec(const void *x, const void *y)
{
    return strcmp(((const struct fleet_exec *)x)->id,
                  ((const struct fleet_exec *)y)->id);
}

static void list_executors(struct api *a, struct reply *r)
{
    struct fleet_exec *execs = NULL;
    size_t n = 0;
    json_t *list = json_array();

    fleet_snapshot(a->fleet, &execs, &n);
    if (n > 1)
        qsort(execs, n, sizeof(*execs), cmp_fleet_exec);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, exec_json(a, &execs[i]));
    fleet_snapshot_free(execs, n);
    r->status = MHD_HTTP_OK;
    r->body = json_pack("{s:o}", "executors", list);
}

static void healthz(struct api *a, struct reply *r)
{
    PGconn *conn = pgpool_get(a->pool);
    int pg = conn && pgstore_exec_ok(conn, "SELECT 1", PGRES_TUPLES_OK);
    int nats = natsConnection_Status(a->nc) == NATS_CONN_STATUS_CONNECTED;
    uint64_t epoch = 0;
    int leading = leader_is_leader(a->leader, &epoch);

    if (conn)
        pgpool_put(a->pool, conn);
    r->status = pg && nats ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
    r->body = json_pack("{s:b, s:b, s:I, s:b, s:b, s:s}",
        "ok", pg && nats, "leader", leading, "epoch", (json_int_t)epoch,
        "pg", pg, "nats", nats, "id", a->cfg->id);
}

/* ------------------------------------------------------------- routing */

static void method_not_allowed(struct reply *r, const char *allowed)
{
    char message[96];

    snprintf(message, sizeof(message), "use %s", allowed);
    reply_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, NULL, "method", message);
}

/* GET /scenarios/{id}/timeline (timeline.c builds the document). */
static void route_timeline(struct api *a, const char *method, int64_t id,
                           struct reply *r)
{
    PGconn *conn;
    json_t *doc;
    int found;

    if (strcmp(method, "GET") != 0) {
        method_not_allowed(r, "GET");
        return;
    }
    conn = pgpool_get(a->pool);
    if (!conn) {
        reply_pg_down(r);
        return;
    }
    doc = timeline_json(conn, id, &found);
    pgpool_put(a->pool, conn);
    if (!doc) {
        reply_pg_down(r);
    } else if (!found) {
        json_decref(doc);
        reply_error(r, MHD_HTTP_NOT_FOUND, NULL, "not_found",
                    "no such scenario");
    } else {
        r->status = MHD_HTTP_OK;
        r->body = doc;
    }
}

/* Routes that need PostgreSQL; runs with a pooled session. */
static void route_scenarios(struct api *a, const char *method,
                            const char *url, const struct request *req,
                            struct reply *r)
{
    int is_get = !strcmp(method, "GET"), is_post = !strcmp(method, "POST");
    const char *rest = "";
    int64_t id = 0;
    PGconn *conn;

    if (strcmp(url, "/scenarios") != 0) {
        id = path_id(url, &rest);
        if (id && !strcmp(rest, "/timeline")) {
            route_timeline(a, method, id, r);
            return;
        }
        if (!id || (rest[0] && strcmp(rest, "/stop") != 0)) {
            reply_error(r, MHD_HTTP_NOT_FOUND, NULL, "not_found",
                        "no such resource");
            return;
        }
    }
    if ((!id && !is_get && !is_post) || (id && !rest[0] && !is_get)) {
        method_not_allowed(r, id ? "GET" : "GET or POST");
        return;
    }
    if (id && rest[0] && !is_post) {
        method_not_allowed(r, "POST");
        return;
    }
    conn = pgpool_get(a->pool);
    if (!conn) {
        reply_pg_down(r);
        return;
    }
    if (!id && is_get)
        list_scenarios(a, conn, r);
    else if (!id)
        post_scenario(a, conn, req, r);
    else if (!rest[0])
        load_scenario(a, conn, id, MHD_HTTP_OK, r);
    else
        stop_scenario(a, conn, id, r);
    pgpool_put(a->pool, conn);
}

static void route(struct api *a, const char *method, const char *url,
                  const struct request *req, struct reply *r)
{
    if (!strcmp(url, "/healthz") || !strcmp(url, "/executors")) {
        if (strcmp(method, "GET") != 0)
            method_not_allowed(r, "GET");
        else if (url[1] == 'h')
            healthz(a, r);
        else
            list_executors(a, r);
        return;
    }
    if (!strcmp(url, "/scenarios") || !strncmp(url, "/scenarios/", 11)) {
        route_scenarios(a, method, url, req, r);
        return;
    }
    if (!strcmp(url, "/datasets") || !strncmp(url, "/datasets/", 10)) {
        datasets_route(a->pool, method, url, req->content_type, req->body,
                       req->len, &r->status, &r->body);
        return;
    }
    reply_error(r, MHD_HTTP_NOT_FOUND, NULL, "not_found",
                "no such resource");
}

/* First call of a request: headers only. Answers 401 or 413 at once. */
static enum MHD_Result begin_request(struct api *a,
                                     struct MHD_Connection *conn,
                                     struct request *req)
{
    struct reply r = {0};
    const char *ctype = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);

    req->started = 1;
    snprintf(req->content_type, sizeof(req->content_type), "%s",
             ctype ? ctype : "");
    if (!authorized(a, conn))
        reply_error(&r, MHD_HTTP_UNAUTHORIZED, NULL, "unauthorized",
                    "missing or wrong bearer token");
    else if (declared_too_big(conn))
        reply_error(&r, MHD_HTTP_CONTENT_TOO_LARGE, NULL, "too_large",
                    "the body is larger than 1 MiB");
    else
        return MHD_YES;
    req->refused = 1;
    return send_reply(conn, &r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version,
                                  const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct api *a = cls;
    struct request *req = *con_cls;
    struct reply r = {0};
    enum MHD_Result result;

    if (!req) {
        req = calloc(1, sizeof(*req));
        if (!req)
            return MHD_NO;
        *con_cls = req;
        return begin_request(a, conn, req);
    }
    if (*upload_data_size > 0) {
        if (!req->refused)
            append_body(req, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (req->refused)
        return MHD_YES;
    /* GET /metrics and /scenarios/{id}/report answer in other formats. */
    if (!req->too_big &&
        results_route(a->pool, a->fleet, conn, method, url, &result)) {
        req->refused = 1;
        return result;
    }
    if (req->too_big)
        reply_error(&r, MHD_HTTP_CONTENT_TOO_LARGE, NULL, "too_large",
                    "the body is larger than 1 MiB");
    else
        route(a, method, url, req, &r);
    req->refused = 1;
    return send_reply(conn, &r);
}

static void on_completed(void *cls, struct MHD_Connection *conn,
                         void **con_cls, enum MHD_RequestTerminationCode why)
{
    struct request *req = *con_cls;

    if (req) {
        free(req->body);
        free(req);
        *con_cls = NULL;
    }
}

/* ------------------------------------------------------------- daemon */

/* Resolves "HOST:PORT" ("[v6]:PORT" too) into one address. */
struct api *api_start(const struct config *cfg, struct pgpool *pool,
                      struct fleet *fleet, struct leader *leader,
                      natsConnection *nc)
{
    struct api *a = calloc(1, sizeof(*a));
    struct addrinfo *addr = net_resolve_listen(cfg->listen);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;

    if (!a || !addr) {
        log_error("api: unable to resolve listen address '%s'",
                  cfg->listen);
        goto out_free;
    }
    *a = (struct api){cfg, pool, fleet, leader, nc, NULL};
    if (addr->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    a->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, a,
        MHD_OPTION_SOCK_ADDR, addr->ai_addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)API_THREADS,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)512,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_END);
    if (!a->daemon) {
        log_error("api: unable to listen on '%s' (address in use?)",
                  cfg->listen);
        goto out_free;
    }
    freeaddrinfo(addr);
    log_info("api: listening on %s", cfg->listen);
    return a;

out_free:
    if (addr)
        freeaddrinfo(addr);
    free(a);
    return NULL;
}

void api_stop(struct api *a)
{
    if (!a)
        return;
    MHD_stop_daemon(a->daemon);
    free(a);
}
