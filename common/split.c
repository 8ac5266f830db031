/*
 * split.c - shares of a scenario's workers per executor slot.
 *
 * Slot k of n owns the global worker numbers congruent to k modulo n; see
 * split.h for why that gives shares that differ by at most one.
 */
#include "split.h"

uint32_t split_share(uint32_t planned, uint32_t slot, uint32_t slots)
{
    if (slots == 0 || slot >= slots)
        return 0;
    return planned / slots + (slot < planned % slots ? 1 : 0);
}

void split_even(uint32_t planned, uint32_t n, uint32_t *shares)
{
    for (uint32_t k = 0; k < n; k++)
        shares[k] = split_share(planned, k, n);
}

uint64_t split_worker_number(uint32_t slot, uint32_t slots, uint32_t index)
{
    return (uint64_t)slot + (uint64_t)index * slots;
}

int split_may_increase(uint32_t target, uint32_t a, uint32_t an,
                       uint32_t b, uint32_t bn)
{
    /* The shares are step functions of planned; comparing them at every
     * count is exact and cheap next to a rebalance's other costs. */
    for (uint32_t p = 0; p <= target; p++) {
        if (split_share(p, b, bn) > split_share(p, a, an))
            return 1;
    }
    return 0;
}
