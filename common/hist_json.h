/*
 * hist_json.h - a latency histogram as the JSON that reports, the REST API
 * and the j4 command show: milliseconds, percentiles from the histogram
 * itself (never averaged across histograms).
 */
#ifndef J4_COMMON_HIST_JSON_H
#define J4_COMMON_HIST_JSON_H

#include <jansson.h>

#include "hist.h"

/* {"p50", "p90", "p95", "p99", "max", "min", "mean"} in ms, all 0 when
 * empty. A new reference. */
json_t *hist_latency_json(const struct hist *h);

#endif
