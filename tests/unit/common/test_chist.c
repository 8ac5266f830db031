/*
 * test_chist.c - unit tests for common/chist.c.
 *
 * A struct chist must drain into exactly the struct hist that recording
 * the same samples with hist_record() gives, bucket for bucket, whatever
 * the values; a drain running while one or two threads record must move
 * every sample exactly once; memory must stay bounded by the chunks the
 * samples reach, with no allocation once they are reached; and a bucket
 * counter that wraps its 32 bits must carry, not lose, the count.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "check.h"
#include "chist.h"

static uint64_t next_random(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Values spread over every bucket group: a random bit length, then a
 * random value of that length, now and then past the last bucket. */
static uint64_t any_value(uint64_t *x)
{
    uint64_t r = next_random(x);
    unsigned bits = (unsigned)(r % 44);

    if (bits == 0)
        return 0;
    return (next_random(x) >> (64 - bits)) | (UINT64_C(1) << (bits - 1));
}

static int same_hist(const struct hist *a, const struct hist *b)
{
    int ok = CHECK_UINT_EQ(a->total, b->total);

    ok &= CHECK_UINT_EQ(a->sum_us, b->sum_us);
    ok &= CHECK_UINT_EQ(a->min_us, b->min_us);
    ok &= CHECK_UINT_EQ(a->max_us, b->max_us);
    ok &= CHECK_UINT_EQ(a->lo, b->lo);
    ok &= CHECK_UINT_EQ(a->hi, b->hi);
    for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
        if (!CHECK_UINT_EQ(a->counts[i], b->counts[i])) {
            fprintf(stderr, "    bucket %u\n", i);
            return 0;
        }
    }
    return ok;
}

static void test_empty(void)
{
    static struct hist dst;
    struct chist h;

    CHECK(CHIST_CHUNKS * CHIST_CHUNK >= HIST_BUCKETS);
    CHECK((CHIST_CHUNKS - 1) * CHIST_CHUNK < HIST_BUCKETS);
    chist_init(&h);
    hist_init(&dst);
    CHECK(!chist_pending(&h));
    CHECK_UINT_EQ(chist_drain(&h, &dst, NULL), 0);
    CHECK_UINT_EQ(dst.total, 0);
    CHECK_UINT_EQ(dst.min_us, UINT64_MAX);
    CHECK_UINT_EQ(dst.max_us, 0);
    CHECK_UINT_EQ(chist_heap_bytes(&h), 0);
    chist_release(&h);
}

/* Random samples, drained in a few rounds, against hist_record(). */
static void test_exact(void)
{
    static struct hist want, got, again;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    struct chist h;

    for (int seed = 0; seed < 8; seed++) {
        chist_init(&h);
        hist_init(&want);
        hist_init(&got);
        for (int round = 0; round < 4; round++) {
            uint64_t n = 1 + next_random(&x) % 20000;

            for (uint64_t i = 0; i < n; i++) {
                uint64_t v = any_value(&x);

                chist_record(&h, v);
                hist_record(&want, v);
            }
            CHECK(chist_pending(&h));
            CHECK_UINT_EQ(chist_drain(&h, &got, NULL), n);
            CHECK(!chist_pending(&h));
            hist_init(&again);
            CHECK_UINT_EQ(chist_drain(&h, &again, NULL), 0);
            CHECK_UINT_EQ(again.total, 0);
        }
        same_hist(&got, &want);
        chist_release(&h);
    }
}

/* Both destinations of one drain hold the same samples. */
static void test_two_destinations(void)
{
    static struct hist want, got, also;
    uint64_t x = 12345;
    struct chist h;

    chist_init(&h);
    hist_init(&want);
    hist_init(&got);
    hist_init(&also);
    for (int i = 0; i < 50000; i++) {
        uint64_t v = any_value(&x);

        chist_record(&h, v);
        hist_record(&want, v);
    }
    CHECK_UINT_EQ(chist_drain(&h, &got, &also), 50000);
    same_hist(&got, &want);
    same_hist(&also, &want);
    chist_release(&h);
}

/* --------------------------------------------------- drain vs. writers */

enum { WRITES = 1000000 };

static struct chist shared;
static atomic_int writers_left;

static uint64_t write_value(uint64_t i)
{
    return (i * 2654435761u) % 3000000 + (i % 1000 == 0 ? 1ull << 41 : 0);
}

/* Writer k of n records every n-th value from k on. */
struct writer {
    pthread_t thread;
    unsigned k, n;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;

    for (uint64_t i = w->k; i < WRITES; i += w->n) {
        chist_record(&shared, write_value(i));
        if (i % 4096 == w->k)
            sched_yield();
    }
    atomic_fetch_sub(&writers_left, 1);
    return NULL;
}

/* Drains shared into fresh deltas merged into got while writers record,
 * the way a worker's series travel to the control thread. */
static void drain_while_writing(unsigned writers)
{
    static struct hist want, got, delta;
    struct writer w[2];
    uint64_t drains = 0, moved = 0;

    chist_init(&shared);
    hist_init(&want);
    hist_init(&got);
    for (uint64_t i = 0; i < WRITES; i++)
        hist_record(&want, write_value(i));
    atomic_store(&writers_left, (int)writers);
    for (unsigned k = 0; k < writers; k++) {
        w[k] = (struct writer){.k = k, .n = writers};
        if (!CHECK_INT_EQ(
                pthread_create(&w[k].thread, NULL, writer_main, &w[k]), 0))
            return;
    }
    while (atomic_load(&writers_left) > 0) {
        hist_init(&delta);
        moved += chist_drain(&shared, &delta, NULL);
        hist_merge(&got, &delta);
        drains++;
    }
    for (unsigned k = 0; k < writers; k++)
        pthread_join(w[k].thread, NULL);
    hist_init(&delta);
    moved += chist_drain(&shared, &delta, NULL);
    hist_merge(&got, &delta);
    fprintf(stderr, "%u writer(s): drained %llu times while writing\n",
            writers, (unsigned long long)drains);

    CHECK_UINT_EQ(moved, WRITES);
    same_hist(&got, &want);
    CHECK(!chist_pending(&shared));
    hist_init(&delta);
    CHECK_UINT_EQ(chist_drain(&shared, &delta, NULL), 0);
    CHECK_UINT_EQ(delta.total, 0);
    CHECK_UINT_EQ(delta.sum_us, 0);
    chist_release(&shared);
}

static void test_concurrent(void)
{
    drain_while_writing(1);
    drain_while_writing(2);
}

/* ------------------------------------------------------------- memory */

/* Samples in 200 us - 20 ms take the chunks of that band and no more; more
 * samples and drains allocate nothing; the whole range is bounded. */
static void test_bounded(void)
{
    static struct hist dst;
    uint32_t first = hist_index(200) / CHIST_CHUNK;
    uint32_t last = hist_index(20000) / CHIST_CHUNK;
    size_t chunk = sizeof(struct chist_chunk), band;
    uint64_t x = 777;
    struct chist h;

    chist_init(&h);
    hist_init(&dst);
    for (int i = 0; i < 100000; i++)
        chist_record(&h, 200 + next_random(&x) % 19801);
    band = chist_heap_bytes(&h);
    CHECK_UINT_EQ(band, (last - first + 1) * chunk);
    CHECK_UINT_LE(band, 8 * 1024);
    for (int round = 0; round < 3; round++) {
        chist_drain(&h, &dst, NULL);
        for (int i = 0; i < 100000; i++)
            chist_record(&h, 200 + next_random(&x) % 19801);
        CHECK_UINT_EQ(chist_heap_bytes(&h), band);
    }
    for (int i = 0; i < 200000; i++)
        chist_record(&h, any_value(&x));
    CHECK_UINT_EQ(chist_heap_bytes(&h), CHIST_CHUNKS * chunk);
    chist_release(&h);
    CHECK_UINT_EQ(chist_heap_bytes(&h), 0);
}

/* A 32-bit bucket counter that wraps carries 2^32: set one just below
 * the wrap by hand, record past it, and drain the full count. */
static void test_wrap(void)
{
    static struct hist dst;
    uint32_t i = hist_index(5000);
    struct chist_chunk *c;
    struct chist h;

    chist_init(&h);
    hist_init(&dst);
    chist_record(&h, 5000);
    c = atomic_load(&h.chunks[i / CHIST_CHUNK]);
    if (!CHECK(c != NULL))
        return;
    atomic_store(&c->counts[i % CHIST_CHUNK], UINT32_MAX - 1);
    for (int k = 0; k < 5; k++)
        chist_record(&h, 5000);
    CHECK(atomic_load(&c->carry) != NULL);
    chist_drain(&h, &dst, NULL);
    CHECK_UINT_EQ(dst.counts[i], (uint64_t)UINT32_MAX - 1 + 5);
    CHECK_UINT_EQ(dst.total, (uint64_t)UINT32_MAX - 1 + 5);
    chist_record(&h, 5000);
    chist_drain(&h, &dst, NULL);
    CHECK_UINT_EQ(dst.counts[i], (uint64_t)UINT32_MAX - 1 + 6);
    CHECK_UINT_EQ(dst.sum_us, 7 * 5000);
    chist_release(&h);
}

int main(void)
{
    test_empty();
    test_exact();
    test_two_destinations();
    test_concurrent();
    test_bounded();
    test_wrap();
    return check_done();
}
