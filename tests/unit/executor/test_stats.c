/*
 * test_stats.c - unit tests for executor/stats.c and the request series
 * of executor/series.c.
 *
 * A request is recorded once, into its series; the totals of a struct
 * stats_delta (requests by outcome, the latency histogram) are made while
 * draining. These tests check that the totals equal both what was
 * recorded and the sum of the request series, j4_record's unnamed
 * requests included and team metrics or streams excluded; that requests
 * with no series (no names table) still count; that draining while a
 * worker and a routine record moves every request exactly once; and that
 * a worker's recording state stays small.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "check.h"
#include "stats.h"

static uint64_t next_random(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static int same_hist(const struct hist *a, const struct hist *b)
{
    int ok = CHECK_UINT_EQ(a->total, b->total);

    ok &= CHECK_UINT_EQ(a->sum_us, b->sum_us);
    ok &= CHECK_UINT_EQ(a->min_us, b->min_us);
    ok &= CHECK_UINT_EQ(a->max_us, b->max_us);
    for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
        if (!CHECK_UINT_EQ(a->counts[i], b->counts[i])) {
            fprintf(stderr, "    bucket %u\n", i);
            return 0;
        }
    }
    return ok;
}

/* The request series of d summed: outcomes into out, latency into h. */
static void sum_request_series(const struct stats_delta *d, uint64_t *out,
                               struct hist *h)
{
    for (uint32_t i = 0; i < SERIES_RUN_MAX; i++) {
        const struct series_delta *s = d->series.items[i];

        if (!s || s->key.kind != SERIES_REQUEST)
            continue;
        for (int k = 0; k < J4_OUTCOME_COUNT_; k++)
            out[k] += s->counts[k];
        hist_merge(h, s->hist);
    }
}

/* d's totals equal want_outcomes and want, and the sum of its series. */
static void check_totals(const struct stats_delta *d,
                         const uint64_t *want_outcomes,
                         const struct hist *want)
{
    static struct hist series_latency;
    uint64_t series_outcomes[J4_OUTCOME_COUNT_] = {0};

    for (int k = 0; k < J4_OUTCOME_COUNT_; k++)
        CHECK_UINT_EQ(d->outcomes[k], want_outcomes[k]);
    same_hist(&d->latency, want);
    hist_init(&series_latency);
    sum_request_series(d, series_outcomes, &series_latency);
    for (int k = 0; k < J4_OUTCOME_COUNT_; k++)
        CHECK_UINT_EQ(series_outcomes[k], want_outcomes[k]);
    same_hist(&series_latency, want);
}

static const struct series_delta *find_series(const struct stats_delta *d,
                                              enum series_kind kind,
                                              enum series_protocol protocol,
                                              const char *name)
{
    for (uint32_t i = 0; i < SERIES_RUN_MAX; i++) {
        const struct series_delta *s = d->series.items[i];

        if (s && s->key.kind == kind && s->key.protocol == protocol &&
            !strcmp(s->key.name, name))
            return s;
    }
    return NULL;
}

/* Named requests of every protocol, j4_record's, team metrics and
 * streams, drained in rounds into one delta. */
static void test_totals_from_series(void)
{
    static const char *const names[] = {"GET", "POST", NULL, "getUser"};
    static struct stats_delta d;
    static struct hist want;
    uint64_t outcomes[J4_OUTCOME_COUNT_] = {0}, x = 42;
    struct series_names *run = series_names_new();
    struct worker_stats s;
    const struct series_delta *custom;

    worker_stats_init(&s);
    s.names = run;
    stats_delta_init(&d);
    hist_init(&want);
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 20000; i++) {
            uint64_t r = next_random(&x);
            j4_outcome outcome = (j4_outcome)(r % J4_OUTCOME_COUNT_);
            uint64_t us = 100 + (r >> 20) % 5000000;

            if (i % 7 == 0)
                worker_stats_record(&s, outcome, us);
            else
                worker_stats_record_named(&s, (int)(r % 4),
                                          names[(r >> 8) % 4], outcome, us);
            outcomes[outcome]++;
            hist_record(&want, us);
            if (i % 100 == 0) {
                stats_team_observe(&s, "queue_wait", us);
                stats_stream_first_message(&s, SERIES_GRPC, "feed", us);
                stats_stream_ended(&s, SERIES_GRPC, "feed", us, 0);
            }
        }
        stats_drain(&s, &d);
    }
    check_totals(&d, outcomes, &want);
    CHECK_UINT_EQ(stats_delta_requests(&d), 5 * 20000);
    custom = find_series(&d, SERIES_REQUEST, SERIES_CUSTOM, "custom");
    if (CHECK(custom != NULL))
        CHECK_UINT_EQ(custom->hist->total, 5 * ((20000 + 6) / 7));
    CHECK(find_series(&d, SERIES_TEAM_HIST, SERIES_CUSTOM, "queue_wait"));

    stats_delta_release(&d);
    worker_stats_release(&s);
    series_names_free(run);
}

/* Without a names table no series can be made: the totals keep every
 * request all the same. */
static void test_spill(void)
{
    static struct stats_delta d;
    static struct hist want;
    uint64_t outcomes[J4_OUTCOME_COUNT_] = {0};
    struct worker_stats s;

    worker_stats_init(&s);
    stats_delta_init(&d);
    hist_init(&want);
    for (uint64_t i = 0; i < 1000; i++) {
        j4_outcome outcome = i % 3 ? J4_OUTCOME_OK : J4_OUTCOME_TIMEOUT;

        worker_stats_record_named(&s, SERIES_HTTP, "GET", outcome,
                                  i * 37);
        outcomes[outcome]++;
        hist_record(&want, i * 37);
    }
    stats_drain(&s, &d);
    for (int k = 0; k < J4_OUTCOME_COUNT_; k++)
        CHECK_UINT_EQ(d.outcomes[k], outcomes[k]);
    same_hist(&d.latency, &want);
    CHECK(series_set_empty(&d.series));
    stats_delta_release(&d);
    worker_stats_release(&s);
}

/* ------------------------------------------- drain vs. worker + routine */

enum { WRITES = 400000 };

static struct worker_stats shared;
static atomic_int writers_left;

static uint64_t write_value(uint64_t i)
{
    return (i * 2654435761u) % 30000 + 150;
}

static void *writer_main(void *arg)
{
    uintptr_t k = (uintptr_t)arg;

    for (uint64_t i = k; i < WRITES; i += 2) {
        j4_outcome outcome = i % 5 ? J4_OUTCOME_OK : J4_OUTCOME_HTTP_5XX;

        if (i % 3 == 0)
            worker_stats_record(&shared, outcome, write_value(i));
        else
            worker_stats_record_named(&shared, SERIES_HTTP,
                                      i % 2 ? "GET" : "PUT", outcome,
                                      write_value(i));
        if (i % 4096 < 2)
            sched_yield();
    }
    atomic_fetch_sub(&writers_left, 1);
    return NULL;
}

/* The control thread drains into fresh deltas it merges, as reports go,
 * while the worker and one routine record. */
static void test_concurrent(void)
{
    static struct stats_delta got, delta;
    static struct hist want;
    uint64_t outcomes[J4_OUTCOME_COUNT_] = {0}, drains = 0;
    struct series_names *run = series_names_new();
    pthread_t thread[2];

    worker_stats_init(&shared);
    shared.names = run;
    stats_delta_init(&got);
    hist_init(&want);
    for (uint64_t i = 0; i < WRITES; i++) {
        outcomes[i % 5 ? J4_OUTCOME_OK : J4_OUTCOME_HTTP_5XX]++;
        hist_record(&want, write_value(i));
    }
    atomic_store(&writers_left, 2);
    for (uintptr_t k = 0; k < 2; k++)
        if (!CHECK_INT_EQ(pthread_create(&thread[k], NULL, writer_main,
                                         (void *)k), 0))
            return;
    while (atomic_load(&writers_left) > 0) {
        stats_delta_init(&delta);
        stats_drain(&shared, &delta);
        stats_delta_merge(&got, &delta);
        stats_delta_release(&delta);
        drains++;
    }
    pthread_join(thread[0], NULL);
    pthread_join(thread[1], NULL);
    stats_delta_init(&delta);
    stats_drain(&shared, &delta);
    stats_delta_merge(&got, &delta);
    stats_delta_release(&delta);
    fprintf(stderr, "drained %llu times while recording\n",
            (unsigned long long)drains);

    check_totals(&got, outcomes, &want);
    stats_delta_init(&delta);
    stats_drain(&shared, &delta);
    CHECK(stats_delta_empty(&delta));
    stats_delta_release(&delta);
    stats_delta_release(&got);
    worker_stats_release(&shared);
    series_names_free(run);
}

/* One name, 10000 requests in 200 us - 20 ms: the worker's series and
 * its histogram chunks stay within a few KiB (a struct hist is 35). */
static void test_small(void)
{
    struct series_names *run = series_names_new();
    struct worker_stats s;
    struct worker_series *ws;
    uint64_t x = 9;

    worker_stats_init(&s);
    s.names = run;
    for (int i = 0; i < 10000; i++)
        worker_stats_record_named(&s, SERIES_HTTP, "GET", J4_OUTCOME_OK,
                                  200 + next_random(&x) % 19801);
    CHECK_UINT_EQ(atomic_load(&s.series.count), 1);
    ws = s.series.blocks[0][0];
    CHECK_UINT_LE(sizeof(s) + sizeof(*ws) + sizeof(*ws->hist) +
                      SERIES_BLOCK * sizeof(ws) + chist_heap_bytes(ws->hist),
                  8 * 1024);
    CHECK(atomic_load(&s.spill) == NULL);
    worker_stats_release(&s);
    series_names_free(run);
}

int main(void)
{
    test_totals_from_series();
    test_spill();
    test_concurrent();
    test_small();
    return check_done();
}
