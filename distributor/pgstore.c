/*
 * pgstore.c - libpq sessions, the REST handlers' pool, and migrations.
 *
 * The pool hands out at most PGSTORE_POOL_MAX sessions and opens them
 * lazily, so a distributor started before PostgreSQL still serves
 * /healthz. A session that comes back broken or inside a transaction is
 * closed rather than reused.
 *
 * Migrations are the files of migrations/ applied in name order. Two
 * distributors starting at once serialize on pg_advisory_lock(0x4a33);
 * each file runs in its own transaction together with the row that
 * records it in schema_migrations, so a file is applied exactly once.
 */
#include "pgstore.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "j4.h"
#include "log.h"

#define MIGRATION_MAX_BYTES (16 * 1024 * 1024)

/* Server notices (a WARNING from a rolled-back fenced transaction, the
 * NOTICE of an idempotent migration) are routine here: they go to the
 * debug log instead of libpq's default of stderr. */
static void on_notice(void *arg, const char *message)
{
    size_t len = strlen(message);

    (void)arg;
    while (len > 0 && message[len - 1] == '\n')
        len--;
    log_debug("postgresql: %.*s", (int)len, message);
}

PGconn *pgstore_connect(const char *conninfo)
{
    const char *const keys[] = {"connect_timeout", "application_name",
                                "dbname", NULL};
    const char *const values[] = {"5", "j4-distributor", conninfo, NULL};
    PGconn *conn;

    /* dbname comes last and is expanded, so conninfo's own settings win */
    conn = PQconnectdbParams(keys, values, 1);
    if (conn)
        PQsetNoticeProcessor(conn, on_notice, NULL);
    return conn;
}

int pgstore_exec_ok(PGconn *conn, const char *sql, ExecStatusType want)
{
    PGresult *res = PQexec(conn, sql);
    int ok = res && PQresultStatus(res) == want;

    PQclear(res);
    return ok;
}

PGresult *pgstore_query(PGconn *conn, const char *sql, int n_params,
                        const char *const *params)
{
    return PQexecParams(conn, sql, n_params, NULL, params, NULL, NULL, 0);
}

int pgstore_begin_fenced(PGconn *conn, uint64_t epoch)
{
    PGresult *res;
    int rc = J4_ERR_UNAVAILABLE;

    if (!pgstore_exec_ok(conn, "BEGIN", PGRES_COMMAND_OK))
        goto out_rollback;
    res = PQexec(conn, "SELECT epoch FROM cluster WHERE id = 1 FOR SHARE");
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        uint64_t current = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
        rc = current == epoch ? J4_OK : J4_ERR_CONFLICT;
    }
    PQclear(res);
    if (rc == J4_OK)
        return J4_OK;

out_rollback:
    pgstore_rollback(conn);
    return rc;
}

int pgstore_commit(PGconn *conn)
{
    PGresult *res = PQexec(conn, "COMMIT");
    /* COMMIT of an aborted transaction "succeeds" as ROLLBACK */
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK &&
             strcmp(PQcmdStatus(res), "COMMIT") == 0;

    PQclear(res);
    if (ok)
        return J4_OK;
    pgstore_rollback(conn);
    return J4_ERR_UNAVAILABLE;
}

void pgstore_rollback(PGconn *conn)
{
    if (PQtransactionStatus(conn) != PQTRANS_IDLE)
        pgstore_exec_ok(conn, "ROLLBACK", PGRES_COMMAND_OK);
}

/* ---------------------------------------------------------------- pool */

int pgpool_init(struct pgpool *pool, const char *conninfo)
{
    memset(pool, 0, sizeof(*pool));
    pool->conninfo = strdup(conninfo);
    if (!pool->conninfo)
        return J4_ERR_NOMEM;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->freed, NULL);
    return J4_OK;
}

void pgpool_release(struct pgpool *pool)
{
    for (int i = 0; i < pool->n_idle; i++)
        PQfinish(pool->idle[i]);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->freed);
    free(pool->conninfo);
    memset(pool, 0, sizeof(*pool));
}

PGconn *pgpool_get(struct pgpool *pool)
{
    PGconn *conn = NULL;

    pthread_mutex_lock(&pool->lock);
    while (pool->n_idle == 0 && pool->n_open >= PGSTORE_POOL_MAX)
        pthread_cond_wait(&pool->freed, &pool->lock);
    if (pool->n_idle > 0)
        conn = pool->idle[--pool->n_idle];
    else
        pool->n_open++;
    pthread_mutex_unlock(&pool->lock);

    if (conn && PQstatus(conn) != CONNECTION_OK)
        PQreset(conn);
    if (!conn)
        conn = pgstore_connect(pool->conninfo);
    if (conn && PQstatus(conn) == CONNECTION_OK)
        return conn;

    PQfinish(conn);
    pthread_mutex_lock(&pool->lock);
    pool->n_open--;
    pthread_cond_signal(&pool->freed);
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

void pgpool_put(struct pgpool *pool, PGconn *conn)
{
    int reusable = PQstatus(conn) == CONNECTION_OK &&
                   PQtransactionStatus(conn) == PQTRANS_IDLE;

    pthread_mutex_lock(&pool->lock);
    if (reusable && pool->n_idle < PGSTORE_POOL_MAX) {
        pool->idle[pool->n_idle++] = conn;
        conn = NULL;
    } else {
        pool->n_open--;
    }
    pthread_cond_signal(&pool->freed);
    pthread_mutex_unlock(&pool->lock);
    PQfinish(conn);
}

/* ---------------------------------------------------------- migrations */

static int is_sql_file(const struct dirent *entry)
{
    size_t len = strlen(entry->d_name);

    return entry->d_name[0] != '.' && len > 4 &&
           strcmp(entry->d_name + len - 4, ".sql") == 0;
}

/* Reads a whole file into a NUL-terminated buffer the caller frees. */
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    size_t len = 0;
    size_t cap = 0;
    size_t got;

    if (!f)
        return NULL;
    do {
        if (len + 4096 + 1 > cap) {
            char *grown;
            if (cap >= MIGRATION_MAX_BYTES)
                goto out_free;
            cap = cap ? cap * 2 : 8192;
            grown = realloc(text, cap);
            if (!grown)
                goto out_free;
            text = grown;
        }
        got = fread(text + len, 1, cap - len - 1, f);
        len += got;
    } while (got > 0);
    if (ferror(f))
        goto out_free;
    fclose(f);
    text[len] = '\0';
    return text;

out_free:
    free(text);
    fclose(f);
    return NULL;
}

static int migration_applied(PGconn *conn, const char *name)
{
    const char *params[] = {name};
    PGresult *res = PQexecParams(conn,
        "SELECT 1 FROM schema_migrations WHERE name = $1",
        1, NULL, params, NULL, NULL, 0);
    int applied = -1;

    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        applied = PQntuples(res) > 0;
    else
        log_error("pg: unable to read schema_migrations: %s",
                  PQerrorMessage(conn));
    PQclear(res);
    return applied;
}

/* Runs one migration file and records it, in one transaction. */
static int apply_migration(PGconn *conn, const char *dir, const char *name)
{
    const char *params[] = {name};
    char path[4096];
    PGresult *res;
    char *sql;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    sql = read_file(path);
    if (!sql) {
        log_error("migrations: unable to read '%s': %s", path,
                  strerror(errno ? errno : EIO));
        return J4_ERR_IO;
    }
    if (!pgstore_exec_ok(conn, "BEGIN", PGRES_COMMAND_OK))
        goto out_error;
    res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK &&
        PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        goto out_error;
    }
    PQclear(res);
    res = PQexecParams(conn, "INSERT INTO schema_migrations (name) "
                       "VALUES ($1)", 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        PQclear(res);
        goto out_error;
    }
    PQclear(res);
    if (!pgstore_exec_ok(conn, "COMMIT", PGRES_COMMAND_OK))
        goto out_error;
    free(sql);
    log_info("migrations: applied '%s'", name);
    return J4_OK;

out_error:
    log_error("migrations: '%s' failed: %s", path, PQerrorMessage(conn));
    pgstore_exec_ok(conn, "ROLLBACK", PGRES_COMMAND_OK);
    free(sql);
    return J4_ERR_INVALID;
}

static int apply_all(PGconn *conn, const char *dir)
{
    struct dirent **entries = NULL;
    int n = scandir(dir, &entries, is_sql_file, alphasort);
    int rc = J4_OK;

    if (n < 0) {
        log_error("migrations: unable to list '%s': %s", dir,
                  strerror(errno));
        return J4_ERR_IO;
    }
    for (int i = 0; i < n; i++) {
        int applied = rc == J4_OK ? migration_applied(conn,
                                                      entries[i]->d_name)
                                  : 1;
        if (applied < 0)
            rc = J4_ERR_INVALID;
        else if (!applied)
            rc = apply_migration(conn, dir, entries[i]->d_name);
        free(entries[i]);
    }
    free(entries);
    return rc;
}

/* Calls fn (pg_advisory_lock or _unlock) on the migrations key. */
static int advisory(PGconn *conn, const char *fn)
{
    char sql[96];

    snprintf(sql, sizeof(sql), "SELECT %s(%d)", fn,
             PGSTORE_LOCK_MIGRATIONS);
    return pgstore_exec_ok(conn, sql, PGRES_TUPLES_OK);
}

int pgstore_migrate(const char *conninfo, const char *dir)
{
    PGconn *conn = pgstore_connect(conninfo);
    int rc;

    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        PQfinish(conn);
        return J4_ERR_UNAVAILABLE;
    }
    if (!pgstore_exec_ok(conn, "SET client_min_messages = warning",
                         PGRES_COMMAND_OK) ||
        !advisory(conn, "pg_advisory_lock")) {
        log_error("migrations: unable to take the migrations lock: %s",
                  PQerrorMessage(conn));
        PQfinish(conn);
        return J4_ERR_UNAVAILABLE;
    }
    rc = pgstore_exec_ok(conn,
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())",
            PGRES_COMMAND_OK) ? J4_OK : J4_ERR_INVALID;
    if (rc != J4_OK)
        log_error("migrations: unable to create schema_migrations: %s",
                  PQerrorMessage(conn));
    else
        rc = apply_all(conn, dir);
    advisory(conn, "pg_advisory_unlock");
    PQfinish(conn);
    return rc;
}
