/*
 * grants_store.c - a scenario's grants as one row (grants_store.h).
 *
 * A scenario's grants travel as one text parameter, "exec:inc:slot:slots"
 * per grant joined by ";" (migration 006; executor ids are
 * [A-Za-z0-9_-], so neither separator can occur in one), and several
 * scenarios go in one multi-row INSERT, three parameters per row.
 * Numbers are formatted by hand: a lost executor makes a hundred
 * thousand of them.
 */
#include "grants_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "j4.h"
#include "pgstore.h"

/* Up to this many scenarios per statement (3 parameters each). */
#define MANY_MAX 1000
/* One grant's text at most: id, three numbers, separators. */
#define GRANT_TEXT_MAX (DIST_ID_MAX + 20 + 10 + 10 + 4)

static const char upsert_tail[] =
    " ON CONFLICT (scenario_id) DO UPDATE SET grants = EXCLUDED.grants,"
    " epoch = EXCLUDED.epoch, granted_at = now()";

/* Writes v in decimal at out; returns the length. */
static size_t put_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* The grants column of one scenario, malloc'd. Incarnations are stored
 * as signed 64-bit numbers, as the old bigint column had them. */
static char *grants_text(const struct grant *grants, size_t n)
{
    char *text = malloc(n * GRANT_TEXT_MAX + 1);
    size_t len = 0;

    if (!text)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const struct grant *g = &grants[i];
        int64_t inc = (int64_t)g->incarnation;
        size_t id_len = strlen(g->exec);

        if (i)
            text[len++] = ';';
        memcpy(text + len, g->exec, id_len);
        len += id_len;
        text[len++] = ':';
        if (inc < 0)
            text[len++] = '-';
        len += put_u64(text + len, inc < 0 ? 0 - (uint64_t)inc
                                           : (uint64_t)inc);
        text[len++] = ':';
        len += put_u64(text + len, g->slot);
        text[len++] = ':';
        len += put_u64(text + len, g->slots);
    }
    text[len] = '\0';
    return text;
}

/* "INSERT ... VALUES ($1, $2, $E), ($3, $4, $E) ... ON CONFLICT ..." for
 * n rows, the epoch as the last parameter; malloc'd. */
static char *upsert_sql(size_t n)
{
    size_t cap = 128 + n * 48 + sizeof(upsert_tail);
    char *sql = malloc(cap);
    size_t len;

    if (!sql)
        return NULL;
    len = (size_t)snprintf(sql, cap, "INSERT INTO scenario_grants"
                           " (scenario_id, grants, epoch) VALUES ");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(sql + len, cap - len,
                                "%s($%zu::bigint, $%zu, $%zu::bigint)",
                                i ? ", " : "", 2 * i + 1, 2 * i + 2,
                                2 * n + 1);
    snprintf(sql + len, cap - len, "%s", upsert_tail);
    return sql;
}

static int run(PGconn *conn, const char *sql, int n,
               const char *const *params)
{
    PGresult *res = pgstore_query(conn, sql, n, params);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;

    PQclear(res);
    return ok ? J4_OK : J4_ERR_UNAVAILABLE;
}

/* One statement for n <= MANY_MAX scenarios. */
static int write_chunk(PGconn *conn, const char *epoch, const int64_t *ids,
                       const struct grant *const *grants,
                       const size_t *counts, size_t n)
{
    char **texts = calloc(n, sizeof(*texts));
    char (*sid)[24] = calloc(n, sizeof(*sid));
    const char **params = calloc(2 * n + 1, sizeof(*params));
    char *sql = upsert_sql(n);
    int rc = texts && sid && params && sql ? J4_OK : J4_ERR_UNAVAILABLE;

    for (size_t i = 0; rc == J4_OK && i < n; i++) {
        snprintf(sid[i], sizeof(sid[i]), "%lld", (long long)ids[i]);
        texts[i] = grants_text(grants[i], counts[i]);
        params[2 * i] = sid[i];
        params[2 * i + 1] = texts[i];
        if (!texts[i])
            rc = J4_ERR_UNAVAILABLE;
    }
    if (rc == J4_OK) {
        params[2 * n] = epoch;
        rc = run(conn, sql, (int)(2 * n + 1), params);
    }
    for (size_t i = 0; texts && i < n; i++)
        free(texts[i]);
    free(texts);
    free(sid);
    free(params);
    free(sql);
    return rc;
}

int grants_store_write_many(PGconn *conn, uint64_t epoch,
                            const int64_t *ids,
                            const struct grant *const *grants,
                            const size_t *counts, size_t n)
{
    char ep[24];
    int rc = J4_OK;

    snprintf(ep, sizeof(ep), "%llu", (unsigned long long)epoch);
    for (size_t i = 0; rc == J4_OK && i < n; i += MANY_MAX) {
        size_t chunk = n - i < MANY_MAX ? n - i : MANY_MAX;

        rc = write_chunk(conn, ep, ids + i, grants + i, counts + i, chunk);
    }
    return rc;
}

int grants_store_write(PGconn *conn, uint64_t epoch, int64_t scenario_id,
                       const struct grant *grants, size_t n)
{
    if (n == 0)
        return grants_store_delete(conn, scenario_id);
    return grants_store_write_many(conn, epoch, &scenario_id, &grants, &n,
                                   1);
}

int grants_store_delete(PGconn *conn, int64_t scenario_id)
{
    char sid[24];
    const char *params[] = {sid};

    snprintf(sid, sizeof(sid), "%lld", (long long)scenario_id);
    return run(conn, "DELETE FROM scenario_grants WHERE scenario_id = $1",
               1, params);
}
