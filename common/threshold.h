/*
 * threshold.h - pass/fail criteria of a scenario ("thresholds").
 *
 * A scenario document may carry
 *
 *   "thresholds": {"http_req_duration": ["p(95)<250ms"],
 *                  "errors": [{"threshold": "rate<0.01",
 *                              "abort_on_fail": true,
 *                              "delay_abort_eval": "10s"}]}
 *
 * Each key is a metric, each entry "AGGREGATE OP VALUE". Metrics and the
 * aggregates they take (docs/scenario-format.md):
 *
 *   http_req_duration, req_duration  p(N) avg min max med   (durations)
 *   errors, http_req_failed          rate (errors / requests), count
 *   requests, http_reqs              count, rate (per second)
 *   iterations                       count, rate (per second)
 *   checks                           rate (passed / all), count (failed)
 *   any other [a-z0-9_] name         a team metric (j4_metric_*):
 *                                    p(N) avg min max med (histogram),
 *                                    count rate (counter), value (gauge)
 *
 * Durations take a unit (us, ms, s, m, h); a bare number means ms. OP is
 * one of < <= > >= == !=. The leader evaluates thresholds on cluster-wide
 * merged data; an entry with abort_on_fail stops the scenario as soon as
 * it fails, but not before delay_abort_eval has passed since the start.
 */
#ifndef J4_COMMON_THRESHOLD_H
#define J4_COMMON_THRESHOLD_H

#include <stddef.h>
#include <stdint.h>

#define THRESHOLDS_MAX 32           /* entries per scenario */
#define THRESHOLD_EXPR_MAX 64
#define THRESHOLD_DURATION_MAX_MS (30.0 * 24 * 3600 * 1000) /* 30 days */

enum threshold_agg {
    AGG_P, AGG_AVG, AGG_MIN, AGG_MAX, AGG_MED, AGG_RATE, AGG_COUNT,
    AGG_VALUE
};

enum threshold_op { OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ, OP_NE };

enum threshold_metric {
    METRIC_DURATION,    /* latency of every request */
    METRIC_ERRORS,
    METRIC_REQUESTS,
    METRIC_ITERATIONS,
    METRIC_CHECKS,
    METRIC_TEAM
};

struct threshold {
    char metric[65];            /* as written: "http_req_duration" */
    char expr[THRESHOLD_EXPR_MAX + 1];  /* as written: "p(95)<250ms" */
    enum threshold_metric kind;
    enum threshold_agg agg;
    double percentile;          /* p(N): N in (0, 100] */
    enum threshold_op op;
    double value;               /* durations in ms */
    int abort_on_fail;
    int64_t delay_abort_ms;
};

/* Parses expr for metric into *t (metric, expr, kind, agg, op, value).
 * Returns 0, or -1 with a rule for people in rule. */
int threshold_parse(const char *metric, const char *expr, struct threshold *t,
                    char *rule, size_t rule_size);

/* Non-zero when value passes t. */
int threshold_holds(const struct threshold *t, double value);

/* "p(95)", "rate"... for messages. */
const char *threshold_agg_text(const struct threshold *t, char *buf,
                               size_t size);

/* Non-zero when the aggregate is a duration (compared in ms). */
int threshold_is_duration(const struct threshold *t);

#endif
