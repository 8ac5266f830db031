/*
 * report.h - results of a scenario: the report, thresholds and exports.
 *
 * A report is built from PostgreSQL alone (scenario_metrics,
 * scenario_series, scenario_phase_metrics), so any distributor can serve
 * it. The leader stores it in scenario_reports when the scenario reaches
 * its final state; a stored report is served as it was stored, so past
 * runs keep their reports. The shape is in docs/architecture.md
 * ("Results").
 *
 * Thresholds (common/threshold.h) are evaluated on the merged,
 * cluster-wide figures: by the leader every second for entries with
 * abort_on_fail, and once more for the report.
 */
#ifndef J4_DIST_REPORT_H
#define J4_DIST_REPORT_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdint.h>

/* The report of scenario id: the stored one, or else built now (with
 * "final": false while the scenario has not ended). *found is 0 for an
 * unknown id. NULL with *found set on a PostgreSQL failure. */
json_t *report_get(PGconn *conn, int64_t id, int *found);

/* Leader, once the scenario reached its final state: builds and stores
 * its report (a second call changes nothing). Returns J4_OK or an error. */
int report_store(PGconn *conn, int64_t id);

/* Leader, for a running scenario elapsed_ms after its start: evaluates
 * its abort_on_fail thresholds. Returns 1 with reason filled when one
 * failed past its delay, 0 otherwise. */
int report_check_abort(PGconn *conn, int64_t id, int64_t elapsed_ms,
                       char *reason, size_t size);

/* Exports of a report; malloc'd text. */
char *report_junit(json_t *report);
char *report_csv(json_t *report);

#endif
