/*
 * stats.h - what one worker measured, and the deltas shipped in reports.
 *
 * Each worker owns a struct worker_stats and is its only writer: outcome
 * counters and iteration counters are relaxed atomics, latencies go into a
 * struct hist (common/hist.h). The control thread takes what was recorded
 * so far with stats_drain(), which swaps every counter to zero atomically,
 * so the worker path takes no lock and every sample lands in exactly one
 * struct stats_delta.
 */
#ifndef J4_EXECUTOR_STATS_H
#define J4_EXECUTOR_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "hist.h"
#include "j4.h"

struct worker_stats {
    _Atomic uint64_t outcomes[J4_OUTCOME_COUNT_];
    _Atomic uint64_t iterations;
    _Atomic uint64_t iteration_errors;
    struct hist latency;
};

/* Plain counters, owned by one thread (the control thread). */
struct stats_delta {
    uint64_t outcomes[J4_OUTCOME_COUNT_];
    uint64_t iterations;
    uint64_t iteration_errors;
    struct hist latency;
};

void worker_stats_init(struct worker_stats *s);

/* Worker side. */
void worker_stats_record(struct worker_stats *s, j4_outcome outcome,
                         uint64_t latency_us);
void worker_stats_iteration(struct worker_stats *s, int failed);

/* Control side: moves everything s recorded so far into d (d += s). */
void stats_drain(struct worker_stats *s, struct stats_delta *d);

void stats_delta_init(struct stats_delta *d);
int stats_delta_empty(const struct stats_delta *d);
uint64_t stats_delta_requests(const struct stats_delta *d);

/* dst += src. */
void stats_delta_merge(struct stats_delta *dst, const struct stats_delta *src);

#endif
