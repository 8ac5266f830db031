/*
 * plan_results.c - abort_on_fail thresholds and final reports, for the
 * leader.
 *
 * Only scenarios with an abort_on_fail threshold are checked, each at
 * most once a second (the next check time lives in the scenario), so
 * that thresholds are read from PostgreSQL once a second per such
 * running scenario, not once per pass.
 */
#include "plan_results.h"

#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "j4.h"
#include "log.h"
#include "pgstore.h"
#include "report.h"

#define CHECK_EVERY_MS 1000

/* Non-zero when s is due for a check (and books the next). */
static int check_due(struct lscen *s, int64_t now)
{
    if (!s->has_abort || now < s->abort_check_ms)
        return 0;
    s->abort_check_ms = now + CHECK_EVERY_MS;
    return 1;
}

static int request_abort(struct leader *l, const struct lscen *s,
                         const char *reason)
{
    char sid[24];
    const char *params[] = {sid, reason};
    int rc = pgstore_begin_fenced(l->conn, l->epoch);
    PGresult *res;

    snprintf(sid, sizeof(sid), "%lld", (long long)s->id);
    if (rc != J4_OK)
        return rc;
    res = pgstore_query(l->conn,
        "UPDATE scenarios SET stop_requested = true, reason = $2"
        " WHERE id = $1 AND state = 'running'", 2, params);
    rc = PQresultStatus(res) == PGRES_COMMAND_OK ? J4_OK
                                                 : J4_ERR_UNAVAILABLE;
    PQclear(res);
    if (rc != J4_OK) {
        pgstore_rollback(l->conn);
        return rc;
    }
    return pgstore_commit(l->conn);
}

void plan_results_tick(struct leader *l, struct lscen *s, int64_t now_ms)
{
    char reason[512];
    int64_t elapsed = clock_wall_ms() - s->start_wall_ms;

    if (s->stop_requested || elapsed < 0 || !check_due(s, now_ms))
        return;
    if (!report_check_abort(l->conn, s->id, elapsed, reason, sizeof(reason)))
        return;
    if (request_abort(l, s, reason) != J4_OK)
        return;
    s->stop_requested = 1;
    log_warn("scenario %lld '%s': %s", (long long)s->id, s->name, reason);
}

void plan_results_ended(struct leader *l, const struct lscen *s)
{
    int rc = report_store(l->conn, s->id);

    if (rc != J4_OK && rc != J4_ERR_CONFLICT)
        log_warn("scenario %lld '%s': unable to store its report (%s); it "
                 "is built again when asked for", (long long)s->id, s->name,
                 j4_strerror(rc));
}
