/*
 * prom.h - Prometheus text exposition of J4's metrics.
 *
 * Both j4-distributor (cluster-wide, merged from PostgreSQL) and
 * j4-executor (its own share) describe what they know as an array of
 * struct prom_scenario and call prom_render(), so the two endpoints
 * expose the same families with the same labels:
 *
 *   j4_requests_total{scenario,name,protocol,outcome}          counter
 *   j4_request_duration_seconds{scenario,name,protocol}        histogram
 *   j4_iterations_total{scenario}, j4_iteration_errors_total   counter
 *   j4_executor_requests_total{scenario,executor}              counter
 *   j4_workers_planned{scenario,executor}, j4_workers_running  gauge
 *   j4_stream_first_message_seconds{scenario,name,protocol}    histogram
 *   j4_stream_lifetime_seconds{...}                            histogram
 *   j4_stream_messages_total, _resets_total, _reconnects_total,
 *   j4_streams_opened_total {scenario,name,protocol}           counter
 *   j4_team_<name>_seconds{scenario} (histogram metrics),
 *   j4_team_<name>_total (counters), j4_team_<name> (gauges)
 *   j4_checks_total{scenario,check,result="passed"|"failed"}   counter
 *   j4_scenario_info{scenario,scenario_name,state}             gauge (1)
 *
 * Histograms use PROM_LE_COUNT fixed `le` bounds. Each bound is a bucket
 * boundary of common/hist.h (the first one at or above a round value:
 * 0.1 s is exposed as le="0.100352"), so the count below every bound is
 * exact, not interpolated. Label values are escaped; the executor and
 * the leader already bound how many distinct names there are.
 *
 * Worker tags (j4_tag) come as a series' canonical tag text
 * "k1=v1,k2=v2" (sorted by key) and are rendered as extra labels
 * k1="v1",k2="v2" on every family of that series (team metrics and
 * checks included). A text that fails prom_tags_ok() is not rendered.
 */
#ifndef J4_COMMON_PROM_H
#define J4_COMMON_PROM_H

#include <stddef.h>
#include <stdint.h>

#include "hist.h"
#include "j4.h"

enum prom_kind {
    PROM_REQUEST = 0,
    PROM_TEAM_HIST = 1,
    PROM_TEAM_COUNTER = 2,
    PROM_TEAM_GAUGE = 3,
    PROM_CHECK = 4,
    PROM_STREAM = 5,
};

struct prom_series {
    int kind;
    const char *name;
    const char *protocol;
    const char *tags;   /* canonical tag text; NULL or "" for none */
    uint64_t outcomes[J4_OUTCOME_COUNT_];  /* requests */
    uint64_t count;     /* counter; check passed; stream messages */
    uint64_t failed;    /* check failed */
    int64_t gauge;
    uint64_t opened, resets, reconnects;
    const struct hist *hist;    /* latency; team; time to first message */
    const struct hist *hist2;   /* stream lifetime */
};

struct prom_executor {
    const char *id;
    int has_workers;
    uint32_t planned, running;
    uint64_t requests;
};

struct prom_scenario {
    int64_t id;
    const char *name;           /* NULL: no j4_scenario_info line */
    const char *state;
    uint64_t iterations, iteration_errors;
    const struct prom_series *series;
    size_t n_series;
    const struct prom_executor *executors;
    size_t n_executors;
};

/* A growing text buffer; oom is set once an allocation failed. */
struct prom_buf {
    char *data;
    size_t len, cap;
    int oom;
};

void prom_buf_init(struct prom_buf *b);
void prom_buf_release(struct prom_buf *b);

#define PROM_LE_COUNT 23
/* The i-th bound in microseconds: samples below it are counted. */
uint64_t prom_le_us(size_t i);
/* Samples of h whose value is below bound_us (a bucket boundary). */
uint64_t prom_count_below(const struct hist *h, uint64_t bound_us);

/* Tag keys are label names [a-zA-Z_][a-zA-Z0-9_]*, at most
 * PROM_TAG_KEY_MAX characters, not starting with "__" and none of J4's
 * own labels (scenario, name, protocol, outcome, executor, le, check,
 * result, scenario_name, state). Values are 1 to PROM_TAG_VALUE_MAX
 * printable ASCII characters other than ','. Non-zero when valid. */
#define PROM_TAG_KEY_MAX 32
#define PROM_TAG_VALUE_MAX 64
int prom_tag_key_ok(const char *key);
int prom_tag_value_ok(const char *value);
/* Non-zero when tags is "" or a canonical tag text of valid pairs with
 * keys in strictly increasing order, at most J4_TAGS_MAX of them. */
int prom_tags_ok(const char *tags);

/* Appends the exposition of every scenario to b. */
void prom_render(struct prom_buf *b, const struct prom_scenario *scenarios,
                 size_t n);

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
