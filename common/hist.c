/*
 * hist.c - log-linear latency histograms with lock-free recording.
 *
 * The bucket layout is in hist.h. The writer (a worker) uses relaxed
 * atomic adds on counters only it increments; the reader (the executor's
 * control thread) takes them with atomic exchanges, so a sample is either
 * in this drain or in a later one, never in both and never lost. The
 * touched range [lo, hi) only grows, which lets a drain skip the thousands
 * of buckets a typical run never uses.
 */
#include "hist.h"

#include <math.h>
#include <string.h>

#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define ADD(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
#define XCHG(p, v) __atomic_exchange_n((p), (v), __ATOMIC_RELAXED)

void hist_init(struct hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min_us = UINT64_MAX;
    h->lo = HIST_BUCKETS;
    h->hi = 0;
}

uint32_t hist_index(uint64_t v)
{
    unsigned bit, shift;

    if (v < HIST_LINEAR)
        return (uint32_t)v;
    bit = 63 - (unsigned)__builtin_clzll(v);
    if (bit >= HIST_MAX_BITS)
        return HIST_BUCKETS - 1;
    shift = bit - HIST_SUB_BITS;
    return HIST_LINEAR + (bit - HIST_SUB_BITS - 1) * HIST_SUB +
           (uint32_t)((v >> shift) - HIST_SUB);
}

uint64_t hist_bucket_low(uint32_t index)
{
    uint32_t group, sub;

    if (index < HIST_LINEAR)
        return index;
    group = (index - HIST_LINEAR) / HIST_SUB;
    sub = HIST_SUB + (index - HIST_LINEAR) % HIST_SUB;
    return (uint64_t)sub << (group + 1);
}

uint64_t hist_bucket_high(uint32_t index)
{
    uint32_t group;

    if (index < HIST_LINEAR)
        return index;
    group = (index - HIST_LINEAR) / HIST_SUB;
    return hist_bucket_low(index) + (UINT64_C(1) << (group + 1)) - 1;
}

void hist_record(struct hist *h, uint64_t v)
{
    uint32_t i = hist_index(v);
    uint64_t seen;

    if (i < LOAD(&h->lo))
        STORE(&h->lo, i);
    if (i >= LOAD(&h->hi))
        STORE(&h->hi, i + 1);
    ADD(&h->counts[i], 1);
    ADD(&h->total, 1);
    ADD(&h->sum_us, v);

    /* A new extreme is rare; the loop only retries against a drain. */
    seen = LOAD(&h->max_us);
    while (v > seen &&
           !__atomic_compare_exchange_n(&h->max_us, &seen, v, 1,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
    seen = LOAD(&h->min_us);
    while (v < seen &&
           !__atomic_compare_exchange_n(&h->min_us, &seen, v, 1,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

void hist_drain(struct hist *src, struct hist *dst)
{
    uint32_t lo = LOAD(&src->lo);
    uint32_t hi = LOAD(&src->hi);
    uint64_t min, max;

    for (uint32_t i = lo; i < hi; i++) {
        uint64_t n;

        if (LOAD(&src->counts[i]) == 0)
            continue;
        n = XCHG(&src->counts[i], 0);
        dst->counts[i] += n;
        dst->total += n;
        if (i < dst->lo)
            dst->lo = i;
        if (i >= dst->hi)
            dst->hi = i + 1;
    }
    /* dst->total counts what was moved; src->total is only a hint while
     * a writer runs, so it is reset rather than trusted. */
    XCHG(&src->total, 0);
    dst->sum_us += XCHG(&src->sum_us, 0);
    min = XCHG(&src->min_us, UINT64_MAX);
    max = XCHG(&src->max_us, 0);
    if (min < dst->min_us)
        dst->min_us = min;
    if (max > dst->max_us)
        dst->max_us = max;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
    /* A delta drained beside a writer may carry a sample's sum or extreme
     * without its count (or the reverse); every part is merged on its
     * own so the totals still come out exact. */
    for (uint32_t i = src->lo; i < src->hi; i++)
        dst->counts[i] += src->counts[i];
    if (src->lo < src->hi) {
        if (src->lo < dst->lo)
            dst->lo = src->lo;
        if (src->hi > dst->hi)
            dst->hi = src->hi;
    }
    dst->total += src->total;
    dst->sum_us += src->sum_us;
    if (src->min_us < dst->min_us)
        dst->min_us = src->min_us;
    if (src->max_us > dst->max_us)
        dst->max_us = src->max_us;
}

static uint64_t clamp(uint64_t v, uint64_t lo, uint64_t hi)
{
    if (v < lo)
        return lo;
    return v > hi ? hi : v;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
    uint64_t rank, total = 0, seen = 0;

    /* Rank against the buckets themselves, not h->total, so the answer
     * stays consistent even for a histogram still being written. */
    for (uint32_t i = h->lo; i < h->hi; i++)
        total += h->counts[i];
    if (total == 0)
        return 0;
    if (q >= 1.0)
        return h->max_us;
    if (q < 0.0)
        q = 0.0;

    rank = (uint64_t)ceil(q * (double)total);
    if (rank == 0)
        rank = 1;
    for (uint32_t i = h->lo; i < h->hi; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t low = hist_bucket_low(i);
            uint64_t mid = low + (hist_bucket_high(i) - low) / 2;

            return clamp(mid, h->min_us, h->max_us);
        }
    }
    return h->max_us;
}

double hist_mean(const struct hist *h)
{
    return h->total ? (double)h->sum_us / (double)h->total : 0.0;
}
