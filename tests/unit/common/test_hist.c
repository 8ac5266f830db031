/*
 * test_hist.c - log-linear latency histograms (common/hist.h).
 *
 * Checks the bucket layout the header describes, the accuracy of quantiles
 * against the exact sorted samples on several scales, that merging equals
 * recording everything into one histogram, and that hist_drain() moves
 * every sample exactly once while a writer thread keeps recording.
 */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "hist.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double rnd_unit(void)
{
    return (double)(rnd() >> 11) / 9007199254740992.0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* ---------------------------------------------------------- the layout */

/* Buckets from the header: one per value below 256; then for each power
 * of two 2^b (b = 8..39), 128 buckets of width 2^(b-7). */
static void test_layout(void)
{
    uint32_t i;

    CHECK_UINT_EQ(HIST_BUCKETS, 256 + 32 * 128);
    for (i = 0; i < HIST_BUCKETS; i++) {
        uint64_t low, width;

        if (i < HIST_LINEAR) {
            low = i;
            width = 1;
        } else {
            uint32_t b = 8 + (i - HIST_LINEAR) / HIST_SUB;

            width = 1ull << (b - HIST_SUB_BITS);
            low = (1ull << b) + (i - HIST_LINEAR) % HIST_SUB * width;
        }
        if (!CHECK_UINT_EQ(hist_bucket_low(i), low) ||
            !CHECK_UINT_EQ(hist_index(low), i) ||
            !CHECK_UINT_EQ(hist_index(low + width / 2), i) ||
            (i + 1 < HIST_BUCKETS &&
             (!CHECK_UINT_EQ(hist_bucket_high(i), low + width - 1) ||
              !CHECK_UINT_EQ(hist_index(low + width - 1), i) ||
              !CHECK_UINT_EQ(hist_bucket_low(i + 1), low + width)))) {
            fprintf(stderr, "    bucket %u\n", i);
            return;
        }
        /* No bucket is wider than 1/128 of its lower bound. */
        if (i >= HIST_LINEAR && !CHECK_UINT_LE(width * HIST_SUB, low))
            return;
    }
    CHECK_UINT_EQ(hist_index(0), 0);
    CHECK_UINT_EQ(hist_index(255), 255);
    CHECK_UINT_EQ(hist_index(256), 256);
    CHECK_UINT_EQ(hist_index(257), 256);
    CHECK_UINT_EQ(hist_index(258), 257);
    CHECK_UINT_EQ(hist_index((1ull << 40) - 1), HIST_BUCKETS - 1);
    CHECK_UINT_EQ(hist_index(1ull << 40), HIST_BUCKETS - 1);
    CHECK_UINT_EQ(hist_index(UINT64_MAX), HIST_BUCKETS - 1);
}

/* -------------------------------------------------------- quantiles */

/* The sample the contract picks for q: the ceil(q * n)-th, at least the
 * first. */
static uint64_t exact_quantile(const uint64_t *sorted, size_t n, double q)
{
    size_t rank = (size_t)ceil(q * (double)n);

    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

/* Records values, then compares quantiles with the exact ones: within
 * 1/256 relative error (half a bucket), exactly for linear-range data. */
static void check_quantiles(const char *what, uint64_t *values, size_t n)
{
    static const double qs[] = {0,    0.001, 0.01, 0.1,  0.25,  0.5,
                                0.75, 0.9,   0.95, 0.99, 0.999, 1};
    static struct hist h;
    uint64_t sum = 0, prev = 0;
    size_t i;
    int linear = 1;

    hist_init(&h);
    for (i = 0; i < n; i++) {
        hist_record(&h, values[i]);
        sum += values[i];
        linear = linear && values[i] < HIST_LINEAR;
    }
    qsort(values, n, sizeof(*values), cmp_u64);
    CHECK_UINT_EQ(h.total, n);
    CHECK_UINT_EQ(h.sum_us, sum);
    CHECK_UINT_EQ(h.min_us, values[0]);
    CHECK_UINT_EQ(h.max_us, values[n - 1]);
    CHECK_NEAR(hist_mean(&h), (double)sum / (double)n,
               1e-9 * (double)sum / (double)n);

    for (i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        uint64_t want = exact_quantile(values, n, qs[i]);
        uint64_t got = hist_quantile(&h, qs[i]);
        double tol = linear ? 0 : (double)want / 256.0 + 1;

        if (!CHECK_NEAR((double)got, (double)want, tol))
            fprintf(stderr, "    %s, q = %g, n = %zu\n", what, qs[i], n);
    }
    CHECK_UINT_EQ(hist_quantile(&h, 1.0), values[n - 1]);

    /* Monotone in q, and never outside [min, max]. */
    for (i = 0; i <= 1000; i++) {
        uint64_t got = hist_quantile(&h, (double)i / 1000.0);

        if (!CHECK_UINT_LE(prev, got) || !CHECK_UINT_LE(values[0], got) ||
            !CHECK_UINT_LE(got, values[n - 1])) {
            fprintf(stderr, "    %s, q = %g\n", what, (double)i / 1000.0);
            break;
        }
        prev = got;
    }
    CHECK_UINT_LE(hist_quantile(&h, 0.50), hist_quantile(&h, 0.90));
    CHECK_UINT_LE(hist_quantile(&h, 0.90), hist_quantile(&h, 0.95));
    CHECK_UINT_LE(hist_quantile(&h, 0.95), hist_quantile(&h, 0.99));
    CHECK_UINT_LE(hist_quantile(&h, 0.99), h.max_us);
}

static void test_quantiles(void)
{
    enum { N = 100000 };
    uint64_t *v = malloc(N * sizeof(*v));
    size_t i, n;

    if (!CHECK(v != NULL))
        return;
    for (i = 0; i < N; i++)
        v[i] = rnd() % 200;
    check_quantiles("uniform 0-199 us", v, N);

    for (i = 0; i < N; i++)
        v[i] = 500 + rnd() % 1500;
    check_quantiles("uniform 0.5-2 ms", v, N);

    for (i = 0; i < N; i++)
        v[i] = (uint64_t)exp(log(1.0) + rnd_unit() * log(1e10));
    check_quantiles("log-uniform 1 us-3 h", v, N);

    for (i = 0; i < N; i++)
        v[i] = (uint64_t)(1e6 * (1.0 + 0.1 * (rnd_unit() - 0.5)) +
                          (i % 100 == 0 ? 5e7 * rnd_unit() : 0));
    check_quantiles("1 s with a slow tail", v, N);

    for (n = 1; n <= 17; n += 4) {
        for (i = 0; i < n; i++)
            v[i] = 1000 + 7919 * i;
        check_quantiles("few samples", v, n);
    }
    for (i = 0; i < 1000; i++)
        v[i] = 4242;
    check_quantiles("constant", v, 1000);
    free(v);
}

static void test_edges(void)
{
    static struct hist h;

    hist_init(&h);
    CHECK_UINT_EQ(h.total, 0);
    CHECK_UINT_EQ(h.min_us, UINT64_MAX);
    CHECK_UINT_EQ(h.max_us, 0);
    CHECK_UINT_EQ(hist_quantile(&h, 0), 0);
    CHECK_UINT_EQ(hist_quantile(&h, 0.5), 0);
    CHECK_UINT_EQ(hist_quantile(&h, 1), 0);

    /* A single 120 s response is kept exactly, not clamped. */
    hist_record(&h, 120000000);
    CHECK_UINT_EQ(h.max_us, 120000000);
    CHECK_UINT_EQ(hist_quantile(&h, 1), 120000000);
    CHECK_UINT_EQ(hist_quantile(&h, 0.99), 120000000);
    CHECK_UINT_EQ(hist_quantile(&h, 0.5), 120000000);
    CHECK_NEAR(hist_mean(&h), 120000000.0, 1e-6);

    /* Past the range: last bucket, true max. */
    hist_init(&h);
    hist_record(&h, 100);
    hist_record(&h, 1ull << 45);
    CHECK_UINT_EQ(h.counts[HIST_BUCKETS - 1], 1);
    CHECK_UINT_EQ(h.max_us, 1ull << 45);
    CHECK_UINT_EQ(hist_quantile(&h, 1), 1ull << 45);
    CHECK_UINT_EQ(hist_quantile(&h, 0.5), 100);

    hist_init(&h);
    hist_record(&h, 0);
    CHECK_UINT_EQ(h.counts[0], 1);
    CHECK_UINT_EQ(h.min_us, 0);
    CHECK_UINT_EQ(hist_quantile(&h, 1), 0);
}

/* ------------------------------------------------------------- merge */

static int same_hist(const struct hist *a, const struct hist *b)
{
    uint32_t i;

    if (!CHECK_UINT_EQ(a->total, b->total) ||
        !CHECK_UINT_EQ(a->sum_us, b->sum_us) ||
        !CHECK_UINT_EQ(a->min_us, b->min_us) ||
        !CHECK_UINT_EQ(a->max_us, b->max_us))
        return 0;
    for (i = 0; i < HIST_BUCKETS; i++)
        if (!CHECK_UINT_EQ(a->counts[i], b->counts[i])) {
            fprintf(stderr, "    bucket %u\n", i);
            return 0;
        }
    return 1;
}

/* Every non-zero bucket lies in the touched range [lo, hi). */
static int range_ok(const struct hist *h)
{
    uint32_t i;

    for (i = 0; i < HIST_BUCKETS; i++)
        if (h->counts[i] &&
            !(CHECK_UINT_LE(h->lo, i) && CHECK_UINT_LT(i, h->hi)))
            return 0;
    return 1;
}

static void test_merge(void)
{
    static struct hist a, b, all, empty;
    uint32_t i, q;

    hist_init(&a);
    hist_init(&b);
    hist_init(&all);
    hist_init(&empty);
    for (i = 0; i < 50000; i++) {
        uint64_t v = (uint64_t)exp(rnd_unit() * log(1e8));

        hist_record(i % 3 ? &a : &b, v);
        hist_record(&all, v);
    }
    /* b holds only small values so min and max come from different
     * sides of the merge. */
    for (i = 0; i < 100; i++) {
        hist_record(&b, 3);
        hist_record(&all, 3);
    }
    hist_merge(&a, &b);
    same_hist(&a, &all);
    range_ok(&a);
    for (q = 0; q <= 100; q++)
        if (!CHECK_UINT_EQ(hist_quantile(&a, q / 100.0),
                           hist_quantile(&all, q / 100.0)))
            break;

    /* Empty on either side changes nothing. */
    hist_merge(&a, &empty);
    same_hist(&a, &all);
    hist_merge(&empty, &all);
    same_hist(&empty, &all);
    range_ok(&empty);
}

/* --------------------------------------------------- drain vs. writer */

enum { WRITES = 2000000 };

static struct hist shared;
static atomic_int writer_done;

static uint64_t write_value(uint64_t i)
{
    return (i * 2654435761u) % 3000000 + (i % 1000 == 0 ? 1ull << 41 : 0);
}

static void *writer(void *arg)
{
    uint64_t i;

    for (i = 0; i < WRITES; i++) {
        hist_record(&shared, write_value(i));
        if (i % 4096 == 0)
            sched_yield();
    }
    atomic_store(&writer_done, 1);
    return NULL;
}

/* Runs the writer thread while this thread drains shared. With merge
 * set, each drain goes into a fresh delta that is merged into got, the
 * way reports travel from executor to distributor; otherwise every drain
 * goes straight into got. Either way got must equal want exactly. */
static void drain_while_writing(int merge)
{
    static struct hist delta, got, want;
    pthread_t thread;
    uint64_t i, drains = 0;
    uint32_t k;

    hist_init(&shared);
    hist_init(&got);
    hist_init(&want);
    atomic_store(&writer_done, 0);
    for (i = 0; i < WRITES; i++)
        hist_record(&want, write_value(i));

    if (!CHECK_INT_EQ(pthread_create(&thread, NULL, writer, NULL), 0))
        return;
    while (!atomic_load(&writer_done)) {
        if (merge) {
            hist_init(&delta);
            hist_drain(&shared, &delta);
            hist_merge(&got, &delta);
        } else {
            hist_drain(&shared, &got);
        }
        drains++;
    }
    pthread_join(thread, NULL);
    hist_init(&delta);
    hist_drain(&shared, &delta);
    hist_merge(&got, &delta);
    fprintf(stderr, "%s: drained %llu times while writing\n",
            merge ? "drain + merge" : "drain", (unsigned long long)drains);

    if (!same_hist(&got, &want))
        fprintf(stderr, "    %s: drained total differs from recorded\n",
                merge ? "drain + merge" : "drain");
    CHECK_UINT_EQ(shared.total, 0);
    CHECK_UINT_EQ(shared.sum_us, 0);
    for (k = 0; k < HIST_BUCKETS; k++)
        if (!CHECK_UINT_EQ(shared.counts[k], 0))
            break;

    /* A drain of a drained histogram moves nothing. */
    hist_init(&delta);
    hist_drain(&shared, &delta);
    CHECK_UINT_EQ(delta.total, 0);
    CHECK_UINT_EQ(hist_quantile(&delta, 0.5), 0);
}

static void test_drain_concurrent(void)
{
    drain_while_writing(0);
    drain_while_writing(1);
}

/* A drain racing a writer can take a sample's count in one delta and its
 * sum (or a new max) in the next, so a delta may hold sum_us or max_us
 * with no counts. Merging such a delta must still add them, or the
 * cluster's mean and max drift. This builds that delta by hand. */
static void test_merge_countless_delta(void)
{
    static struct hist dst, delta;

    hist_init(&dst);
    hist_record(&dst, 1000);
    hist_init(&delta);
    delta.sum_us = 500;
    delta.max_us = 5000;
    hist_merge(&dst, &delta);
    CHECK_UINT_EQ(dst.sum_us, 1500);
    CHECK_UINT_EQ(dst.max_us, 5000);
    CHECK_UINT_EQ(dst.total, 1);
}

int main(void)
{
    test_layout();
    test_quantiles();
    test_edges();
    test_merge();
    test_drain_concurrent();
    test_merge_countless_delta();
    return check_done();
}
