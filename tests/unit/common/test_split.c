/*
 * test_split.c - dividing workers among executor slots (common/split.h).
 *
 * Shares must add up to planned exactly and differ by at most one, the
 * extra workers go to the first slots, worker numbers partition
 * [0, planned), and split_may_increase must agree with a brute-force
 * search over every planned count up to the target.
 */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "split.h"

static void test_ten_over_three(void)
{
    uint32_t shares[3] = {99, 99, 99};

    split_even(10, 3, shares);
    CHECK_UINT_EQ(shares[0], 4);
    CHECK_UINT_EQ(shares[1], 3);
    CHECK_UINT_EQ(shares[2], 3);
    CHECK_UINT_EQ(split_share(10, 0, 3), 4);
    CHECK_UINT_EQ(split_share(10, 1, 3), 3);
    CHECK_UINT_EQ(split_share(10, 2, 3), 3);
}

static void test_small_cases(void)
{
    uint32_t shares[4] = {99, 99, 99, 99};

    split_even(0, 4, shares);
    CHECK_UINT_EQ(shares[0] + shares[1] + shares[2] + shares[3], 0);
    split_even(2, 4, shares);
    CHECK_UINT_EQ(shares[0], 1);
    CHECK_UINT_EQ(shares[1], 1);
    CHECK_UINT_EQ(shares[2], 0);
    CHECK_UINT_EQ(shares[3], 0);
    split_even(7, 1, shares);
    CHECK_UINT_EQ(shares[0], 7);
    CHECK_UINT_EQ(split_share(1000000, 0, 1), 1000000);
    CHECK_UINT_EQ(split_share(1000000, 6, 7), 142857);
    CHECK_UINT_EQ(split_share(1000000, 0, 7), 142858);
}

/* One (planned, n): shares add up, differ by at most one, match
 * split_share, and the larger ones come first. */
static int check_combo(uint32_t planned, uint32_t n, uint32_t *shares)
{
    uint64_t sum = 0;
    uint32_t lo = UINT32_MAX, hi = 0, k;

    for (k = 0; k < n; k++)
        shares[k] = 0xdeadbeef;
    split_even(planned, n, shares);
    for (k = 0; k < n; k++) {
        sum += shares[k];
        lo = shares[k] < lo ? shares[k] : lo;
        hi = shares[k] > hi ? shares[k] : hi;
        if (!CHECK_UINT_EQ(shares[k], split_share(planned, k, n)) ||
            !CHECK_UINT_EQ(shares[k], planned / n + (k < planned % n)))
            goto out_report;
    }
    if (CHECK_UINT_EQ(sum, planned) && CHECK_UINT_LE(hi - lo, 1))
        return 1;

out_report:
    fprintf(stderr, "    at planned %u over %u slots\n", planned, n);
    return 0;
}

static void test_many_combos(void)
{
    uint32_t *shares = calloc(300, sizeof(*shares));
    uint32_t planned, n;
    int ok = 1;

    if (!CHECK(shares != NULL))
        return;
    for (planned = 0; planned <= 1200 && ok; planned++)
        for (n = 1; n <= 64 && ok; n++)
            ok = check_combo(planned, n, shares);
    for (n = 200; n <= 300 && ok; n += 7)
        ok = check_combo(999999, n, shares) &&
             check_combo(1000000, n, shares) && check_combo(n - 1, n, shares);
    free(shares);
}

/* Slot k's workers are k, k + n, k + 2n, ...: over all slots, the first
 * share(k) numbers of each slot are exactly 0..planned-1, once each. */
static void test_worker_numbers(void)
{
    uint32_t planned, n, k, i;
    unsigned char seen[200];

    CHECK_UINT_EQ(split_worker_number(0, 3, 0), 0);
    CHECK_UINT_EQ(split_worker_number(2, 3, 0), 2);
    CHECK_UINT_EQ(split_worker_number(1, 3, 2), 7);
    CHECK_UINT_EQ(split_worker_number(4, 5, 999999), 4999999);
    CHECK_UINT_EQ(split_worker_number(UINT32_MAX - 1, UINT32_MAX, UINT32_MAX),
                  (uint64_t)(UINT32_MAX - 1) +
                      (uint64_t)UINT32_MAX * UINT32_MAX);

    for (planned = 0; planned <= 200; planned += 13) {
        for (n = 1; n <= 17; n++) {
            memset(seen, 0, sizeof(seen));
            for (k = 0; k < n; k++) {
                for (i = 0; i < split_share(planned, k, n); i++) {
                    uint64_t w = split_worker_number(k, n, i);

                    if (!CHECK_UINT_LT(w, planned) || !CHECK(!seen[w]))
                        return;
                    seen[w] = 1;
                }
            }
            for (i = 0; i < planned; i++)
                if (!CHECK(seen[i]))
                    return;
        }
    }
}

/* Reference: some planned in [0, target] gives slot b of bn more than
 * slot a of an. */
static int model_may_increase(uint32_t target, uint32_t a, uint32_t an,
                              uint32_t b, uint32_t bn)
{
    uint32_t p;

    for (p = 0; p <= target; p++)
        if (p / bn + (b < p % bn) > p / an + (a < p % an))
            return 1;
    return 0;
}

static void test_may_increase_cases(void)
{
    /* Same slot: never. Fewer slots: yes once target >= 2. */
    CHECK(!split_may_increase(10, 0, 3, 0, 3));
    CHECK(!split_may_increase(10, 2, 3, 2, 3));
    CHECK(split_may_increase(10, 0, 3, 0, 2));
    CHECK(split_may_increase(10, 2, 3, 0, 3));
    /* More slots, same place: never more. */
    CHECK(!split_may_increase(10, 0, 2, 0, 3));
    CHECK(!split_may_increase(1000000, 0, 4, 0, 5));
    /* Moving to an earlier slot of the same count gains the extra one. */
    CHECK(split_may_increase(10, 1, 2, 0, 2));
    CHECK(!split_may_increase(10, 0, 2, 1, 2));
    /* Slot 1 of 2 to slot 0 of 3: at planned = 1 the share goes 0 -> 1,
     * even though 0 of 3 is smaller for large counts. */
    CHECK(split_may_increase(10, 1, 2, 0, 3));
    CHECK(split_may_increase(1, 1, 2, 0, 3));
    /* ...but not when the target rules that count out. */
    CHECK(!split_may_increase(0, 1, 2, 0, 3));
    /* Target 0 never raises anything. */
    CHECK(!split_may_increase(0, 3, 4, 0, 1));
    /* Target 1: only slot 0 can ever hold the worker. */
    CHECK(split_may_increase(1, 1, 4, 0, 4));
    CHECK(!split_may_increase(1, 0, 4, 1, 4));
    CHECK(!split_may_increase(1, 0, 4, 2, 5));
}

static void test_may_increase_model(void)
{
    uint32_t target, an, bn, a, b;

    for (target = 0; target <= 25; target++)
        for (an = 1; an <= 6; an++)
            for (a = 0; a < an; a++)
                for (bn = 1; bn <= 6; bn++)
                    for (b = 0; b < bn; b++)
                        if (!CHECK_INT_EQ(
                                split_may_increase(target, a, an, b, bn) != 0,
                                model_may_increase(target, a, an, b, bn))) {
                            fprintf(stderr,
                                    "    target %u: slot %u of %u -> %u of "
                                    "%u\n",
                                    target, a, an, b, bn);
                            return;
                        }
}

int main(void)
{
    test_ten_over_three();
    test_small_cases();
    test_many_combos();
    test_worker_numbers();
    test_may_increase_cases();
    test_may_increase_model();
    return check_done();
}
