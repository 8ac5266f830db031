/*
 * results_api.h - the REST routes of results: GET /metrics (Prometheus,
 * cluster-wide) and GET /scenarios/{id}/report[?format=json|junit|csv].
 *
 * Both read PostgreSQL only (plus this process's heartbeat table for
 * the workers gauges), so every distributor serves them. /metrics is
 * cached for RESULTS_CACHE_MS; it covers scenarios pending, running or
 * ended in the last RESULTS_RECENT_MIN minutes, RESULTS_SCENARIOS_MAX
 * at most, newest first.
 */
#ifndef J4_DIST_RESULTS_API_H
#define J4_DIST_RESULTS_API_H

#include <microhttpd.h>

#include "fleet.h"
#include "pgstore.h"

#define RESULTS_CACHE_MS 1000
#define RESULTS_RECENT_MIN 10
#define RESULTS_SCENARIOS_MAX 20

/* Answers the request when it is one of these routes: returns 1 with
 * *ret set, else 0 (the caller routes it). Called on MHD pool threads
 * after authorization. */
int results_route(struct pgpool *pool, struct fleet *fleet,
                  struct MHD_Connection *conn, const char *method,
                  const char *url, enum MHD_Result *ret);

#endif
