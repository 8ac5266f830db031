/*
 * split.h - dividing a scenario's workers among executors.
 *
 * Executor slot k of n runs the global worker numbers i < planned with
 * i % n == k. Its share is therefore planned / n, plus one for the first
 * planned % n slots: shares differ by at most one and add up exactly.
 * 10 over 3 is 4/3/3.
 */
#ifndef J4_COMMON_SPLIT_H
#define J4_COMMON_SPLIT_H

#include <stdint.h>

/* Share of slot k (0 <= k < n) when planned workers run cluster-wide. */
uint32_t split_share(uint32_t planned, uint32_t slot, uint32_t slots);

/* Fills shares[0..n-1] for planned workers over n slots. */
void split_even(uint32_t planned, uint32_t n, uint32_t *shares);

/* The local index-th worker number of slot k of n: k + index * n. */
uint64_t split_worker_number(uint32_t slot, uint32_t slots, uint32_t index);

/* Non-zero when moving from slot a of an to slot b of bn can raise the
 * share for some planned count in [0, target]. Used by the leader to grant
 * increases only after every decrease is confirmed. */
int split_may_increase(uint32_t target, uint32_t a, uint32_t an,
                       uint32_t b, uint32_t bn);

#endif
