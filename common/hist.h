/*
 * hist.h - latency histograms that merge exactly.
 *
 * Values are microseconds. Buckets are log-linear: values below 256 have a
 * bucket each; above, every power of two is cut into 128 equal buckets,
 * so a bucket is at most 1/128 of its lower bound wide and the value
 * reported for it (its midpoint) is within 0.4% of any value in it. The
 * range ends at 2^40 us (about 12.7 days); larger values land in the last
 * bucket, and max keeps the true value. Merging two histograms adds their
 * buckets, so percentiles of a merge are exact to bucket precision;
 * percentiles are never averaged.
 *
 * Memory is fixed (HIST_BUCKETS counters) whatever the number of samples.
 * One writer per histogram; hist_record() takes no lock. A reader on
 * another thread takes deltas with hist_drain(), which swaps counters to
 * zero atomically so each sample is shipped exactly once.
 */
#ifndef J4_COMMON_HIST_H
#define J4_COMMON_HIST_H

#include <stddef.h>
#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)          /* 128 */
#define HIST_LINEAR (2u * HIST_SUB)             /* 256 */
#define HIST_MAX_BITS 40
#define HIST_BUCKETS (HIST_LINEAR + (HIST_MAX_BITS - HIST_SUB_BITS - 1) \
                      * HIST_SUB)

struct hist {
    uint64_t total;
    uint64_t sum_us;
    uint64_t min_us;            /* UINT64_MAX when empty */
    uint64_t max_us;
    uint32_t lo, hi;            /* touched bucket range, hi exclusive */
    uint64_t counts[HIST_BUCKETS];
};

void hist_init(struct hist *h);

uint32_t hist_index(uint64_t value_us);
uint64_t hist_bucket_low(uint32_t index);   /* smallest value in bucket */
uint64_t hist_bucket_high(uint32_t index);  /* largest value in bucket */

/* Writer side: lock-free, relaxed atomics. */
void hist_record(struct hist *h, uint64_t value_us);

/* Moves everything recorded in src so far into dst and zeroes it in src,
 * safely against one concurrent hist_record() writer on src. */
void hist_drain(struct hist *src, struct hist *dst);

/* dst += src (both quiescent). */
void hist_merge(struct hist *dst, const struct hist *src);

/* Value at quantile q in [0, 1]: the midpoint of the bucket holding the
 * ceil(q * total)-th sample, clamped to [min, max]. q = 1 gives max
 * exactly. 0 when empty. Monotone in q. */
uint64_t hist_quantile(const struct hist *h, double q);

double hist_mean(const struct hist *h);

#endif
