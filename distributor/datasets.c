/*
 * datasets.c - data sets for user pools: storage in PostgreSQL, the
 * /datasets routes and the --datasets DIR loader (the parsers are in
 * common/dataset.c).
 *
 * Parsing builds the whole list in memory before anything is written, so
 * a bad file is refused whole with the line at fault. A data set that a
 * pending or running scenario names is never replaced: its items are
 * leased by index, and changing them under the workers would hand out a
 * different account under the same index.
 */
#include "datasets.h"

#include <dirent.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "j4.h"
#include "log.h"

/* ------------------------------------------------------------ storing */

static json_t *error_json(const char *field, const char *rule,
                          const char *message)
{
    json_t *err = json_object();

    if (field)
        json_object_set_new(err, "field", json_string(field));
    json_object_set_new(err, "rule", json_string(rule));
    json_object_set_new(err, "message", json_string(message));
    return json_pack("{s:o}", "error", err);
}

static void set_error(unsigned *status, json_t **reply, unsigned code,
                      const char *field, const char *rule,
                      const char *message)
{
    *status = code;
    json_decref(*reply);
    *reply = error_json(field, rule, message);
}

static void set_pg_down(unsigned *status, json_t **reply)
{
    set_error(status, reply, MHD_HTTP_SERVICE_UNAVAILABLE, NULL,
              "unavailable", "PostgreSQL is unreachable; retry later");
}

/* The id of a pending or running scenario whose params name the data
 * set, 0 when none, -1 on failure. */
static long long used_by(PGconn *conn, const char *name)
{
    const char *params[] = {name};
    PGresult *res = pgstore_query(conn,
        "SELECT id FROM scenarios WHERE state IN ('pending', 'running')"
        " AND spec->'params'->>'pool' = $1 ORDER BY id LIMIT 1 FOR SHARE",
        1, params);
    long long id = -1;

    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        id = PQntuples(res) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    return id;
}

/* Inserts or replaces; returns 1 when created, 0 when replaced, -1 on
 * failure, -2 when in use (*scenario set). */
static int store(PGconn *conn, const char *name, enum dataset_format format,
                 const json_t *items, size_t bytes, const char *source,
                 long long *scenario)
{
    char *text = json_dumps(items, JSON_COMPACT);
    char count[24], size[24];
    const char *params[] = {name, format == DATASET_CSV ? "csv" : "jsonl",
                            count, size, source, text};
    PGresult *res = NULL;
    int rc = -1;

    snprintf(count, sizeof(count), "%zu", json_array_size(items));
    snprintf(size, sizeof(size), "%zu", bytes);
    if (!text || !pgstore_exec_ok(conn, "BEGIN", PGRES_COMMAND_OK))
        goto out_free;
    *scenario = used_by(conn, name);
    if (*scenario != 0) {
        rc = *scenario > 0 ? -2 : -1;
        goto out_rollback;
    }
    res = pgstore_query(conn,
        "INSERT INTO datasets (name, format, item_count, bytes, source,"
        " items) VALUES ($1, $2, $3, $4, $5, $6::jsonb)"
        " ON CONFLICT (name) DO UPDATE SET format = $2, item_count = $3,"
        " bytes = $4, source = $5, items = $6::jsonb, updated_at = now()"
        " RETURNING (xmax = 0)", 6, params);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
        pgstore_commit(conn) == J4_OK)
        rc = !strcmp(PQgetvalue(res, 0, 0), "t");
out_rollback:
    pgstore_rollback(conn);
out_free:
    PQclear(res);
    free(text);
    return rc;
}

/* ------------------------------------------------------------- routes */

#define DATASET_COLUMNS_SQL \
    "d.name, d.format, d.item_count, d.bytes, d.source," \
    " to_char(d.created_at AT TIME ZONE 'UTC'," \
    " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')," \
    " to_char(d.updated_at AT TIME ZONE 'UTC'," \
    " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')," \
    " (SELECT count(*) FROM pool_leases l WHERE l.pool = d.name)"

static json_t *dataset_json(const PGresult *res, int row)
{
    return json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:I}",
        "name", PQgetvalue(res, row, 0),
        "format", PQgetvalue(res, row, 1),
        "items", (json_int_t)strtoll(PQgetvalue(res, row, 2), NULL, 10),
        "bytes", (json_int_t)strtoll(PQgetvalue(res, row, 3), NULL, 10),
        "source", PQgetvalue(res, row, 4),
        "created_at", PQgetvalue(res, row, 5),
        "updated_at", PQgetvalue(res, row, 6),
        "held", (json_int_t)strtoll(PQgetvalue(res, row, 7), NULL, 10));
}

static void get_datasets(PGconn *conn, const char *name, unsigned *status,
                         json_t **reply)
{
    const char *params[] = {name};
    PGresult *res = pgstore_query(conn, name
        ? "SELECT " DATASET_COLUMNS_SQL " FROM datasets d WHERE d.name = $1"
        : "SELECT " DATASET_COLUMNS_SQL " FROM datasets d ORDER BY d.name"
          " LIMIT 1000", name ? 1 : 0, name ? params : NULL);
    json_t *list;
    char message[128];

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        set_pg_down(status, reply);
    } else if (name && PQntuples(res) == 0) {
        snprintf(message, sizeof(message), "no data set '%s'", name);
        set_error(status, reply, MHD_HTTP_NOT_FOUND, NULL, "not_found",
                  message);
    } else if (name) {
        *status = MHD_HTTP_OK;
        *reply = dataset_json(res, 0);
    } else {
        list = json_array();
        for (int r = 0; r < PQntuples(res); r++)
            json_array_append_new(list, dataset_json(res, r));
        *status = MHD_HTTP_OK;
        *reply = json_pack("{s:o}", "datasets", list);
    }
    PQclear(res);
}

/* The format a Content-Type names; -1 when it names none we take. */
static int format_of(const char *ctype)
{
    static const char *const jsonl[] = {
        "application/x-ndjson", "application/jsonl",
        "application/x-jsonlines", NULL};
    size_t n;

    if (!ctype)
        return -1;
    n = strcspn(ctype, "; \t");
    if (n == 8 && !strncasecmp(ctype, "text/csv", n))
        return DATASET_CSV;
    for (int i = 0; jsonl[i]; i++) {
        if (n == strlen(jsonl[i]) && !strncasecmp(ctype, jsonl[i], n))
            return DATASET_JSONL;
    }
    return -1;
}

static void post_dataset(PGconn *conn, const char *name, const char *ctype,
                         const char *body, size_t len, unsigned *status,
                         json_t **reply)
{
    int format = format_of(ctype);
    char err[256], message[320];
    long long scenario = 0;
    json_t *items;
    int rc;

    if (format < 0) {
        set_error(status, reply, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, NULL,
                  "content_type", "send the data set with Content-Type "
                  "text/csv (header row first) or application/x-ndjson "
                  "(one JSON object per line)");
        return;
    }
    rc = dataset_parse(body ? body : "", len, (enum dataset_format)format,
                        &items, err, sizeof(err));
    if (rc != J4_OK) {
        snprintf(message, sizeof(message), "data set '%s': %s", name, err);
        set_error(status, reply, rc == J4_ERR_TOOBIG
                  ? MHD_HTTP_CONTENT_TOO_LARGE : MHD_HTTP_BAD_REQUEST,
                  NULL, rc == J4_ERR_TOOBIG ? "too_large" : "format",
                  message);
        return;
    }
    rc = store(conn, name, (enum dataset_format)format, items, len, "api",
               &scenario);
    json_decref(items);
    if (rc == -2) {
        snprintf(message, sizeof(message), "data set '%s' is used by "
                 "scenario %lld, which has not ended; stop it first",
                 name, scenario);
        set_error(status, reply, MHD_HTTP_CONFLICT, NULL, "in_use",
                  message);
        return;
    }
    if (rc < 0) {
        set_pg_down(status, reply);
        return;
    }
    get_datasets(conn, name, status, reply);
    if (*status == MHD_HTTP_OK && rc == 1)
        *status = MHD_HTTP_CREATED;
}

void datasets_route(struct pgpool *pool, const char *method, const char *url,
                    const char *ctype, const char *body, size_t len,
                    unsigned *status, json_t **reply)
{
    const char *name = url[9] == '/' ? url + 10 : NULL;
    int is_get = !strcmp(method, "GET");
    PGconn *conn;

    *reply = NULL;
    if (name && !dataset_name_ok(name)) {
        set_error(status, reply, MHD_HTTP_NOT_FOUND, NULL, "not_found",
                  "no such resource (data set names are 1-64 of "
                  "[a-z0-9_-])");
        return;
    }
    if ((!name && !is_get) || (name && !is_get && strcmp(method, "POST"))) {
        set_error(status, reply, MHD_HTTP_METHOD_NOT_ALLOWED, NULL,
                  "method", name ? "use GET or POST" : "use GET");
        return;
    }
    conn = pgpool_get(pool);
    if (!conn) {
        set_pg_down(status, reply);
        return;
    }
    if (is_get)
        get_datasets(conn, name, status, reply);
    else
        post_dataset(conn, name, ctype, body, len, status, reply);
    pgpool_put(pool, conn);
}

int datasets_check_pool(PGconn *conn, const char *params_json,
                        unsigned *status, json_t **reply)
{
    json_t *params = json_loads(params_json ? params_json : "{}", 0, NULL);
    json_t *pool = json_object_get(params, "pool");
    const char *name = json_string_value(pool);
    const char *args[] = {name};
    char message[160];
    PGresult *res;
    int rc = J4_OK;

    if (!pool) {
        json_decref(params);
        return J4_OK;
    }
    if (!dataset_name_ok(name)) {
        set_error(status, reply, MHD_HTTP_BAD_REQUEST, "params.pool",
                  "name", "params.pool must name a data set: 1-64 of "
                  "[a-z0-9_-]");
        json_decref(params);
        return J4_ERR_INVALID;
    }
    res = pgstore_query(conn, "SELECT 1 FROM datasets WHERE name = $1", 1,
                        args);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        set_pg_down(status, reply);
        rc = J4_ERR_UNAVAILABLE;
    } else if (PQntuples(res) == 0) {
        snprintf(message, sizeof(message), "params.pool: no data set "
                 "'%s'; upload it with POST /datasets/%s first", name, name);
        set_error(status, reply, MHD_HTTP_BAD_REQUEST, "params.pool",
                  "unknown_dataset", message);
        rc = J4_ERR_NOTFOUND;
    }
    PQclear(res);
    json_decref(params);
    return rc;
}

/* ------------------------------------------------------ the directory */

/* Reads a whole regular file of at most DATASET_FILE_MAX bytes. */
static char *read_file(const char *path, size_t *len, char *err,
                       size_t err_size)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    char *buf = NULL;

    if (!f || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, err_size, "unable to read: %s", strerror(errno));
        goto out_close;
    }
    if (st.st_size > DATASET_FILE_MAX) {
        snprintf(err, err_size, "%lld bytes, over the %d byte limit",
                 (long long)st.st_size, DATASET_FILE_MAX);
        goto out_close;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf && fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        snprintf(err, err_size, "short read");
        free(buf);
        buf = NULL;
    }
    *len = (size_t)st.st_size;
out_close:
    if (f)
        fclose(f);
    return buf;
}

/* Splits "accounts.csv" into name and format; 0 when it is not ours. */
static int file_name(const char *file, char *name, size_t size, int *format)
{
    const char *dot = strrchr(file, '.');
    size_t n = dot ? (size_t)(dot - file) : 0;

    if (!dot || n == 0 || n >= size)
        return 0;
    if (!strcmp(dot, ".csv"))
        *format = DATASET_CSV;
    else if (!strcmp(dot, ".jsonl") || !strcmp(dot, ".ndjson"))
        *format = DATASET_JSONL;
    else
        return 0;
    memcpy(name, file, n);
    name[n] = '\0';
    return dataset_name_ok(name);
}

/* Loads one file; returns 0, 1 when refused, -1 when PostgreSQL failed. */
static int load_file(PGconn *conn, const char *dir, const char *file)
{
    char name[DATASET_NAME_MAX + 1], path[4096], err[256] = "";
    long long scenario = 0;
    json_t *items = NULL;
    size_t len = 0;
    char *text;
    int format, rc;

    if (!file_name(file, name, sizeof(name), &format))
        return 0;
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    text = read_file(path, &len, err, sizeof(err));
    if (text && dataset_parse(text, len, (enum dataset_format)format,
                               &items, err, sizeof(err)) != J4_OK) {
        free(text);
        text = NULL;
    }
    if (!text) {
        log_error("datasets: '%s' refused: %s", path, err);
        return 1;
    }
    free(text);
    rc = store(conn, name, (enum dataset_format)format, items, len, path,
               &scenario);
    if (rc >= 0)
        log_info("datasets: '%s' loaded from '%s' (%zu items)", name, path,
                 json_array_size(items));
    else if (rc == -2)
        log_warn("datasets: '%s' not replaced from '%s': scenario %lld "
                 "uses it", name, path, scenario);
    json_decref(items);
    return rc == -1 ? -1 : rc == -2;
}

int datasets_load_dir(const char *conninfo, const char *dir)
{
    PGconn *conn = pgstore_connect(conninfo);
    struct dirent **files = NULL;
    int n, refused = 0;

    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        PQfinish(conn);
        return -1;
    }
    n = scandir(dir, &files, NULL, alphasort);
    if (n < 0)
        log_error("datasets: unable to read directory '%s': %s", dir,
                  strerror(errno));
    for (int i = 0; i < n; i++) {
        int rc = refused >= 0 ? load_file(conn, dir, files[i]->d_name) : 0;
        refused = rc < 0 ? -1 : refused + rc;
        free(files[i]);
    }
    free(files);
    PQfinish(conn);
    return n < 0 ? 1 : refused;
}
