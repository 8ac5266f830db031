/*
 * chist.h - the worker side of a histogram: hist.h's buckets, in chunks.
 *
 * A struct hist (hist.h) holds all HIST_BUCKETS counters, 35 KiB, however
 * few buckets it was fed. The requests of one worker mostly fall in a band
 * of a few hundred buckets, so a worker records into a struct chist: a
 * table of CHIST_CHUNKS pointers to chunks of CHIST_CHUNK consecutive
 * buckets, each chunk allocated by the first sample that lands in it. A
 * worker whose requests take 200 us to 20 ms fills about 14 chunks, under
 * 5 KiB in all. The bucket layout is hist.h's, so draining into a struct
 * hist is exact.
 *
 * Bucket counters are 32 bits. The add that wraps one carries 2^32 into
 * the chunk's 64-bit carry array, allocated at the first wrap (4 billion
 * samples in one bucket between two drains), so counts stay exact.
 *
 * Threads: any number of writers at once (a worker and its routines), all
 * lock-free: relaxed atomic adds, and a compare-and-swap that publishes a
 * new chunk (a writer that loses the race frees its own). Only the first
 * sample in a chunk allocates. One thread at a time drains, concurrently
 * with the writers: chist_drain() takes every counter with an atomic
 * exchange, so each count is moved exactly once. As with hist_drain(), a
 * drain racing a writer may take a sample's count now and its sum or
 * extreme at the next drain; every part arrives exactly once.
 */
#ifndef J4_COMMON_CHIST_H
#define J4_COMMON_CHIST_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "hist.h"

#define CHIST_CHUNK_BITS 6
#define CHIST_CHUNK (1u << CHIST_CHUNK_BITS)                   /* 64 */
#define CHIST_CHUNKS ((HIST_BUCKETS + CHIST_CHUNK - 1) / CHIST_CHUNK)

struct chist_chunk {
    _Atomic uint32_t counts[CHIST_CHUNK];
    _Atomic uint64_t *_Atomic carry;    /* NULL until a counter wraps */
};

struct chist {
    /* Samples ever recorded, added last by each writer (release): a drain
     * that sees it changed also sees every part of those samples. */
    _Atomic uint64_t recorded;
    uint64_t drained_at;        /* recorded at the last drain; drainer only */
    _Atomic uint64_t sum_us;
    _Atomic uint64_t min_us;    /* UINT64_MAX when nothing is pending */
    _Atomic uint64_t max_us;
    struct chist_chunk *_Atomic chunks[CHIST_CHUNKS];
};

void chist_init(struct chist *h);

/* Frees the chunks; no writer or drainer may run. h is empty after. */
void chist_release(struct chist *h);

/* Writer side: lock-free; allocates only the first sample of a chunk.
 * Out of memory for that chunk, the sample is dropped. */
void chist_record(struct chist *h, uint64_t value_us);

/* Whether h recorded anything since the last drain. Drainer only. */
int chist_pending(const struct chist *h);

/* Moves everything h recorded so far into dst, and into also as well when
 * it is not NULL (one pass feeds a series and the totals). Safe against
 * concurrent writers; one drainer at a time. Returns the count of samples
 * moved (their buckets). */
uint64_t chist_drain(struct chist *h, struct hist *dst, struct hist *also);

/* Heap bytes h holds (chunks and carries, without struct chist itself and
 * without malloc's overhead). Drainer only, or quiescent. */
size_t chist_heap_bytes(const struct chist *h);

#endif
