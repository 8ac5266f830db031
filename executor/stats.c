/*
 * stats.c - per-worker counters and the deltas the control thread ships.
 *
 * The worker adds with relaxed atomic increments; the control thread
 * exchanges each counter with zero. Between the two, a sample may be in
 * the counters and not yet in the histogram (or the other way round) for
 * one drain; the next drain picks up the rest, so totals always agree.
 */
#include <string.h>

#include "stats.h"

void worker_stats_init(struct worker_stats *s)
{
    for (int i = 0; i < J4_OUTCOME_COUNT_; i++)
        atomic_init(&s->outcomes[i], 0);
    atomic_init(&s->iterations, 0);
    atomic_init(&s->iteration_errors, 0);
    hist_init(&s->latency);
}

void worker_stats_record(struct worker_stats *s, j4_outcome outcome,
                         uint64_t latency_us)
{
    if ((unsigned)outcome >= J4_OUTCOME_COUNT_)
        outcome = J4_OUTCOME_OTHER;
    atomic_fetch_add_explicit(&s->outcomes[outcome], 1, memory_order_relaxed);
    hist_record(&s->latency, latency_us);
}

void worker_stats_iteration(struct worker_stats *s, int failed)
{
    atomic_fetch_add_explicit(&s->iterations, 1, memory_order_relaxed);
    if (failed)
        atomic_fetch_add_explicit(&s->iteration_errors, 1,
                                  memory_order_relaxed);
}

static uint64_t take(_Atomic uint64_t *counter)
{
    if (atomic_load_explicit(counter, memory_order_relaxed) == 0)
        return 0;
    return atomic_exchange_explicit(counter, 0, memory_order_relaxed);
}

void stats_drain(struct worker_stats *s, struct stats_delta *d)
{
    for (int i = 0; i < J4_OUTCOME_COUNT_; i++)
        d->outcomes[i] += take(&s->outcomes[i]);
    d->iterations += take(&s->iterations);
    d->iteration_errors += take(&s->iteration_errors);
    hist_drain(&s->latency, &d->latency);
}

void stats_delta_init(struct stats_delta *d)
{
    memset(d->outcomes, 0, sizeof(d->outcomes));
    d->iterations = 0;
    d->iteration_errors = 0;
    hist_init(&d->latency);
}

int stats_delta_empty(const struct stats_delta *d)
{
    return stats_delta_requests(d) == 0 && d->iterations == 0 &&
           d->iteration_errors == 0 && d->latency.total == 0;
}

uint64_t stats_delta_requests(const struct stats_delta *d)
{
    uint64_t n = 0;

    for (int i = 0; i < J4_OUTCOME_COUNT_; i++)
        n += d->outcomes[i];
    return n;
}

void stats_delta_merge(struct stats_delta *dst, const struct stats_delta *src)
{
    for (int i = 0; i < J4_OUTCOME_COUNT_; i++)
        dst->outcomes[i] += src->outcomes[i];
    dst->iterations += src->iterations;
    dst->iteration_errors += src->iteration_errors;
    hist_merge(&dst->latency, &src->latency);
}
