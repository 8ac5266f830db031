/*
 * stats.c - per-worker counters and the deltas the control thread ships.
 *
 * The worker adds with relaxed atomic increments; the control thread
 * exchanges each counter with zero. A request lands once, in its series;
 * the totals of a delta are made while draining, from what leaves the
 * request series. Between the two sides, a sample may be in the outcome
 * counters and not yet in the histogram (or the other way round) for one
 * drain; the next drain picks up the rest, so totals always agree.
 */
#include <stdlib.h>
#include <string.h>

#include "stats.h"

/* Totals of the requests that found no series. */
struct stats_spill {
    _Atomic uint64_t outcomes[J4_OUTCOME_COUNT_];
    struct chist latency;
};

/* The worker's current tag set (j4_tag may change it from a routine). */
static uint32_t tags_of(struct worker_stats *s)
{
    return atomic_load_explicit(&s->tags_id, memory_order_relaxed);
}

void worker_stats_init(struct worker_stats *s)
{
    atomic_init(&s->iterations, 0);
    atomic_init(&s->iteration_errors, 0);
    atomic_init(&s->spill, NULL);
    s->names = NULL;
    worker_series_table_init(&s->series);
    atomic_init(&s->tags_id, 0);
}

void worker_stats_release(struct worker_stats *s)
{
    struct stats_spill *spill = atomic_load(&s->spill);

    worker_series_table_release(&s->series);
    if (spill) {
        chist_release(&spill->latency);
        free(spill);
    }
    atomic_store_explicit(&s->spill, NULL, memory_order_relaxed);
}

/* The worker's spill, made at the first request that found no series. A
 * routine may record at the same time as the worker: the first to
 * publish wins. */
static struct stats_spill *spill_of(struct worker_stats *s)
{
    struct stats_spill *p = atomic_load_explicit(&s->spill,
                                                 memory_order_acquire);
    struct stats_spill *expected = NULL;

    if (p || !(p = calloc(1, sizeof(*p))))
        return p;
    chist_init(&p->latency);
    if (atomic_compare_exchange_strong_explicit(
            &s->spill, &expected, p, memory_order_acq_rel,
            memory_order_acquire))
        return p;
    free(p);
    return expected;
}

/* A request with no series: the totals keep it all the same. */
static void spill_record(struct worker_stats *s, j4_outcome outcome,
                         uint64_t latency_us)
{
    struct stats_spill *p = spill_of(s);

    if (!p)
        return;
    atomic_fetch_add_explicit(&p->outcomes[outcome], 1, memory_order_relaxed);
    chist_record(&p->latency, latency_us);
}

void worker_stats_record(struct worker_stats *s, j4_outcome outcome,
                         uint64_t latency_us)
{
    worker_stats_record_named(s, SERIES_CUSTOM, "custom", outcome,
                              latency_us);
}

void worker_stats_record_named(struct worker_stats *s, int protocol,
                               const char *name, j4_outcome outcome,
                               uint64_t latency_us)
{
    struct worker_series *ws;

    if ((unsigned)outcome >= J4_OUTCOME_COUNT_)
        outcome = J4_OUTCOME_OTHER;
    if ((unsigned)protocol >= SERIES_PROTOCOL_COUNT_)
        protocol = SERIES_CUSTOM;
    ws = worker_series_get(&s->series, s->names, SERIES_REQUEST,
                           (enum series_protocol)protocol, name, tags_of(s));
    if (!ws) {
        spill_record(s, outcome, latency_us);
        return;
    }
    atomic_fetch_add_explicit(&ws->counts[outcome], 1, memory_order_relaxed);
    chist_record(ws->hist, latency_us);
}

static struct worker_series *team(struct worker_stats *s,
                                  enum series_kind kind, const char *name)
{
    return worker_series_get(&s->series, s->names, kind, SERIES_CUSTOM,
                             name, tags_of(s));
}

void stats_team_observe(struct worker_stats *s, const char *name,
                        uint64_t value_us)
{
    struct worker_series *ws = team(s, SERIES_TEAM_HIST, name);

    if (ws)
        chist_record(ws->hist, value_us);
}

void stats_team_count(struct worker_stats *s, const char *name, uint64_t n)
{
    struct worker_series *ws = team(s, SERIES_TEAM_COUNTER, name);

    if (ws)
        atomic_fetch_add_explicit(&ws->counts[0], n, memory_order_relaxed);
}

void stats_team_gauge(struct worker_stats *s, const char *name,
                      int64_t value)
{
    struct worker_series *ws = team(s, SERIES_TEAM_GAUGE, name);

    if (ws)
        atomic_store_explicit(&ws->gauge, value, memory_order_relaxed);
}

void stats_check(struct worker_stats *s, const char *name, int ok)
{
    struct worker_series *ws = team(s, SERIES_CHECK, name);

    if (ws)
        atomic_fetch_add_explicit(&ws->counts[ok ? 0 : 1], 1,
                                  memory_order_relaxed);
}

/* ------------------------------------------------------------- streams */

static struct worker_series *stream(struct worker_stats *s, int protocol,
                                    const char *name)
{
    if ((unsigned)protocol >= SERIES_PROTOCOL_COUNT_)
        protocol = SERIES_CUSTOM;
    return worker_series_get(&s->series, s->names, SERIES_STREAM,
                             (enum series_protocol)protocol, name,
                             tags_of(s));
}

static void stream_add(struct worker_stats *s, int protocol,
                       const char *name, int slot, uint64_t n)
{
    struct worker_series *ws = stream(s, protocol, name);

    if (ws)
        atomic_fetch_add_explicit(&ws->counts[slot], n, memory_order_relaxed);
}

void stats_stream_opened(struct worker_stats *s, int protocol,
                         const char *name)
{
    stream_add(s, protocol, name, SERIES_STREAM_OPENED, 1);
}

void stats_stream_first_message(struct worker_stats *s, int protocol,
                                const char *name, uint64_t us)
{
    struct worker_series *ws = stream(s, protocol, name);

    if (ws)
        chist_record(ws->hist, us);
}

void stats_stream_messages(struct worker_stats *s, int protocol,
                           const char *name, uint64_t n)
{
    stream_add(s, protocol, name, SERIES_STREAM_MESSAGES, n);
}

void stats_stream_ended(struct worker_stats *s, int protocol,
                        const char *name, uint64_t lifetime_us, int reset)
{
    struct worker_series *ws = stream(s, protocol, name);

    if (!ws)
        return;
    chist_record(ws->hist2, lifetime_us);
    if (reset)
        atomic_fetch_add_explicit(&ws->counts[SERIES_STREAM_RESETS], 1,
                                  memory_order_relaxed);
}

void stats_stream_reconnect(struct worker_stats *s, int protocol,
                            const char *name)
{
    stream_add(s, protocol, name, SERIES_STREAM_RECONNECTS, 1);
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
    struct stats_spill *spill = atomic_load_explicit(&s->spill,
                                                     memory_order_acquire);

    d->iterations += take(&s->iterations);
    d->iteration_errors += take(&s->iteration_errors);
    series_drain(&s->series, &d->series, d->outcomes, &d->latency);
    if (!spill)
        return;
    for (int i = 0; i < J4_OUTCOME_COUNT_; i++)
        d->outcomes[i] += take(&spill->outcomes[i]);
    chist_drain(&spill->latency, &d->latency, NULL);
}

void stats_delta_init(struct stats_delta *d)
{
    memset(d->outcomes, 0, sizeof(d->outcomes));
    d->iterations = 0;
    d->iteration_errors = 0;
    hist_init(&d->latency);
    series_set_init(&d->series);
}

void stats_delta_release(struct stats_delta *d)
{
    series_set_release(&d->series);
}

int stats_delta_empty(const struct stats_delta *d)
{
    return stats_delta_requests(d) == 0 && d->iterations == 0 &&
           d->iteration_errors == 0 && d->latency.total == 0 &&
           series_set_empty(&d->series);
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
    series_set_merge(&dst->series, &src->series);
}
