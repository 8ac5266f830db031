/*
 * chist.c - chunked, lock-free histograms for the worker's hot path.
 *
 * The layout and the threading rules are in chist.h. A sample costs one
 * atomic add on its bucket, one on the sum, one on the recorded count and
 * a load of each extreme; a chunk pointer is published once, with a
 * compare-and-swap, by whichever writer needed it first. The drainer reads
 * the recorded count before anything else (acquire), so every sample
 * counted there has its chunk, bucket, sum and extremes visible to the
 * exchanges that follow.
 */
#include "chist.h"

#include <stdlib.h>
#include <string.h>

#define RELAXED memory_order_relaxed
#define ACQUIRE memory_order_acquire

void chist_init(struct chist *h)
{
    atomic_init(&h->recorded, 0);
    h->drained_at = 0;
    atomic_init(&h->sum_us, 0);
    atomic_init(&h->min_us, UINT64_MAX);
    atomic_init(&h->max_us, 0);
    for (uint32_t k = 0; k < CHIST_CHUNKS; k++)
        atomic_init(&h->chunks[k], NULL);
}

void chist_release(struct chist *h)
{
    for (uint32_t k = 0; k < CHIST_CHUNKS; k++) {
        struct chist_chunk *c = atomic_load(&h->chunks[k]);

        if (!c)
            continue;
        free((void *)atomic_load(&c->carry));
        free(c);
    }
    chist_init(h);
}

/* Chunk k of h, allocated and published unless another writer did it
 * first (then the loser frees its copy). NULL: no memory. */
static struct chist_chunk *chunk_publish(struct chist *h, uint32_t k)
{
    struct chist_chunk *mine = calloc(1, sizeof(*mine));
    struct chist_chunk *expected = NULL;

    if (!mine)
        return NULL;
    if (atomic_compare_exchange_strong_explicit(
            &h->chunks[k], &expected, mine, memory_order_acq_rel, ACQUIRE))
        return mine;
    free(mine);
    return expected;
}

/* The carry array of c, published as chunk_publish() does. */
static _Atomic uint64_t *carry_publish(struct chist_chunk *c)
{
    _Atomic uint64_t *mine = calloc(CHIST_CHUNK, sizeof(*mine));
    _Atomic uint64_t *expected = NULL;

    if (!mine)
        return NULL;
    if (atomic_compare_exchange_strong_explicit(
            &c->carry, &expected, mine, memory_order_acq_rel, ACQUIRE))
        return mine;
    free((void *)mine);
    return expected;
}

/* The add on bucket j wrapped its 32-bit counter: carry 2^32. Out of
 * memory, those 2^32 are lost. */
static void carry_wrap(struct chist_chunk *c, uint32_t j)
{
    _Atomic uint64_t *carry = atomic_load_explicit(&c->carry, ACQUIRE);

    if (!carry)
        carry = carry_publish(c);
    if (carry)
        atomic_fetch_add_explicit(&carry[j], UINT64_C(1) << 32, RELAXED);
}

/* A new extreme is rare; a loop retries only against another writer or
 * a drain. */
static void extremes_update(struct chist *h, uint64_t v)
{
    uint64_t seen = atomic_load_explicit(&h->max_us, RELAXED);

    while (v > seen && !atomic_compare_exchange_weak_explicit(
                           &h->max_us, &seen, v, RELAXED, RELAXED))
        ;
    seen = atomic_load_explicit(&h->min_us, RELAXED);
    while (v < seen && !atomic_compare_exchange_weak_explicit(
                           &h->min_us, &seen, v, RELAXED, RELAXED))
        ;
}

void chist_record(struct chist *h, uint64_t v)
{
    uint32_t i = hist_index(v);
    uint32_t j = i % CHIST_CHUNK;
    struct chist_chunk *c;

    c = atomic_load_explicit(&h->chunks[i / CHIST_CHUNK], ACQUIRE);
    if (!c && !(c = chunk_publish(h, i / CHIST_CHUNK)))
        return;
    if (atomic_fetch_add_explicit(&c->counts[j], 1, RELAXED) == UINT32_MAX)
        carry_wrap(c, j);
    atomic_fetch_add_explicit(&h->sum_us, v, RELAXED);
    extremes_update(h, v);
    atomic_fetch_add_explicit(&h->recorded, 1, memory_order_release);
}

int chist_pending(const struct chist *h)
{
    return atomic_load_explicit(&h->recorded, ACQUIRE) != h->drained_at;
}

static void bucket_add(struct hist *h, uint32_t i, uint64_t n)
{
    h->counts[i] += n;
    h->total += n;
    if (i < h->lo)
        h->lo = i;
    if (i >= h->hi)
        h->hi = i + 1;
}

static uint64_t take(_Atomic uint64_t *p, uint64_t empty)
{
    if (atomic_load_explicit(p, RELAXED) == empty)
        return empty;
    return atomic_exchange_explicit(p, empty, RELAXED);
}

/* Moves chunk c, which holds buckets from base on, into dst (and also). */
static uint64_t chunk_drain(struct chist_chunk *c, uint32_t base,
                            struct hist *dst, struct hist *also)
{
    _Atomic uint64_t *carry = atomic_load_explicit(&c->carry, ACQUIRE);
    uint64_t moved = 0;

    for (uint32_t j = 0; j < CHIST_CHUNK; j++) {
        uint64_t n = 0;

        if (atomic_load_explicit(&c->counts[j], RELAXED))
            n = atomic_exchange_explicit(&c->counts[j], 0, RELAXED);
        if (carry)
            n += take(&carry[j], 0);
        if (n == 0)
            continue;
        bucket_add(dst, base + j, n);
        if (also)
            bucket_add(also, base + j, n);
        moved += n;
    }
    return moved;
}

static void extras_add(struct hist *h, uint64_t sum, uint64_t min,
                       uint64_t max)
{
    h->sum_us += sum;
    if (min < h->min_us)
        h->min_us = min;
    if (max > h->max_us)
        h->max_us = max;
}

uint64_t chist_drain(struct chist *h, struct hist *dst, struct hist *also)
{
    uint64_t recorded = atomic_load_explicit(&h->recorded, ACQUIRE);
    uint64_t moved = 0, sum, min, max;

    if (recorded == h->drained_at)
        return 0;
    h->drained_at = recorded;
    for (uint32_t k = 0; k < CHIST_CHUNKS; k++) {
        struct chist_chunk *c = atomic_load_explicit(&h->chunks[k], ACQUIRE);

        if (c)
            moved += chunk_drain(c, k * CHIST_CHUNK, dst, also);
    }
    sum = take(&h->sum_us, 0);
    min = take(&h->min_us, UINT64_MAX);
    max = take(&h->max_us, 0);
    extras_add(dst, sum, min, max);
    if (also)
        extras_add(also, sum, min, max);
    return moved;
}

size_t chist_heap_bytes(const struct chist *h)
{
    size_t bytes = 0;

    for (uint32_t k = 0; k < CHIST_CHUNKS; k++) {
        struct chist_chunk *c = atomic_load_explicit(&h->chunks[k], ACQUIRE);

        if (!c)
            continue;
        bytes += sizeof(*c);
        if (atomic_load_explicit(&c->carry, ACQUIRE))
            bytes += CHIST_CHUNK * sizeof(uint64_t);
    }
    return bytes;
}
