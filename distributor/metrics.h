/*
 * metrics.h - applying executors' metrics reports and reading them back.
 *
 * Reports carry per-scenario deltas: request counts by outcome, a sparse
 * latency histogram, iterations. The leader adds each delta into the
 * (scenario, executor) row of scenario_metrics, whose histogram column is
 * the serialized merge of every delta so far. Cluster percentiles are
 * taken from the merge of those rows, never averaged.
 */
#ifndef J4_DIST_METRICS_H
#define J4_DIST_METRICS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "hist.h"
#include "j4.pb-c.h"

/* Fills *h from a wire histogram. Returns J4_OK, or J4_ERR_INVALID for
 * an index out of range, mismatched arrays or counts that overflow. */
int metrics_hist_from_proto(const J4__Histogram *pb, struct hist *h);

/* Serializes h as a j4.Histogram; the caller frees the buffer. */
uint8_t *metrics_hist_pack(const struct hist *h, size_t *len);

/* Applies report in one transaction fenced by epoch, recording
 * (executor, incarnation, seq). Sets *duplicate when that seq was already
 * applied (nothing written). Returns J4_OK, J4_ERR_CONFLICT when fenced,
 * J4_ERR_INVALID for a malformed report, J4_ERR_UNAVAILABLE on a
 * PostgreSQL failure. Runs on the leader thread only. */
int metrics_apply(PGconn *conn, uint64_t epoch,
                  const J4__MetricsReport *report, int *duplicate);

/* The "metrics" object of GET /scenarios/{id}. current_rate: use the sum
 * of each executor's last rate (running scenario); otherwise the mean
 * rate over run_seconds. Returns NULL on a PostgreSQL failure. */
json_t *metrics_scenario_json(PGconn *conn, int64_t scenario_id,
                              int current_rate, double run_seconds);

#endif
