/*
 * sdk_metrics.c - a team's own metrics and checks (include/j4.h).
 *
 * Each call lands in the worker's named series (series.h): the first call
 * with a name interns it for the run (at most 64 team metric names and 64
 * checks per scenario; more fold into "other"), every later one is a few
 * relaxed atomic operations. Bad names (not [a-z0-9_]{1,64}) also count
 * as "other" rather than being dropped, so nothing recorded is lost.
 */
#include "stats.h"
#include "worker.h"

J4_EXPORT void j4_metric_observe(j4_worker_t *w, const char *name,
                                 uint64_t value_us)
{
    if (w)
        stats_team_observe(&w->stats, name, sdk_value_us(value_us));
}

J4_EXPORT void j4_metric_count(j4_worker_t *w, const char *name, uint64_t n)
{
    if (w)
        stats_team_count(&w->stats, name, n);
}

J4_EXPORT void j4_metric_gauge(j4_worker_t *w, const char *name,
                               int64_t value)
{
    if (w)
        stats_team_gauge(&w->stats, name, value);
}

J4_EXPORT int j4_check(j4_worker_t *w, const char *name, int ok)
{
    if (w)
        stats_check(&w->stats, name, ok != 0);
    return ok;
}
