/*
 * test_schedule.c - Planned(t) as common/schedule.h and the schedule
 * section of docs/architecture.md define it.
 *
 * Besides fixed cases (the example from the header, uneven steps, a step
 * larger than the target, exponential rampup, hold 0), a brute-force model
 * written from the contract is compared with the implementation over many
 * random schedules, millisecond by millisecond around every step.
 */
#include <stdint.h>

#include "check.h"
#include "schedule.h"

static struct schedule make(uint32_t target, uint32_t up_step, int64_t up_ms,
                            int exponential, int64_t hold_ms,
                            uint32_t down_step, int64_t down_ms)
{
    struct schedule s = {
        .target = target,
        .rampup_step = up_step,
        .rampup_interval_ms = up_ms,
        .rampup_exponential = exponential,
        .hold_ms = hold_ms,
        .rampdown_step = down_step,
        .rampdown_interval_ms = down_ms,
    };
    return s;
}

/* ---------------------------------------------------------------- model */

/* Count after rampup step k: min(target, step*(k+1)) or, exponential,
 * min(target, step*(2^(k+1)-1)). */
static uint64_t model_up_count(const struct schedule *s, uint64_t k)
{
    uint64_t n;

    if (s->rampup_exponential)
        n = k >= 40 ? UINT64_MAX / 2 : s->rampup_step * ((2ull << k) - 1);
    else
        n = (uint64_t)s->rampup_step * (k + 1);
    return n < s->target ? n : s->target;
}

static uint64_t model_up_steps(const struct schedule *s)
{
    uint64_t k = 0;

    while (model_up_count(s, k) < s->target)
        k++;
    return k + 1;
}

static int64_t model_hold_start(const struct schedule *s)
{
    return (int64_t)(model_up_steps(s) - 1) * s->rampup_interval_ms;
}

static int64_t model_hold_end(const struct schedule *s)
{
    return model_hold_start(s) + s->hold_ms;
}

static uint64_t model_down_steps(const struct schedule *s)
{
    return (s->target + s->rampdown_step - 1) / s->rampdown_step;
}

static int64_t model_end(const struct schedule *s)
{
    return model_hold_end(s) +
           (int64_t)(model_down_steps(s) - 1) * s->rampdown_interval_ms;
}

static uint32_t model_planned(const struct schedule *s, int64_t t)
{
    int64_t hold_end = model_hold_end(s);

    if (t < 0)
        return 0;
    if (t >= hold_end) {
        uint64_t j = (uint64_t)((t - hold_end) / s->rampdown_interval_ms);
        uint64_t gone = (uint64_t)s->rampdown_step * (j + 1);

        return gone >= s->target ? 0 : (uint32_t)(s->target - gone);
    }
    return (uint32_t)model_up_count(s, (uint64_t)(t / s->rampup_interval_ms));
}

/* Planned only changes at step times, so the next change is the first
 * step time after t whose count differs from now (with hold 0 the first
 * rampdown step may leave the count where the last rampup step put it). */
static int64_t model_next_change(const struct schedule *s, int64_t t)
{
    uint32_t now = model_planned(s, t);
    uint64_t k;

    for (k = 0; k < model_up_steps(s); k++) {
        int64_t edge = (int64_t)k * s->rampup_interval_ms;

        if (edge > t && model_planned(s, edge) != now)
            return edge;
    }
    for (k = 0; k < model_down_steps(s); k++) {
        int64_t edge =
            model_hold_end(s) + (int64_t)k * s->rampdown_interval_ms;

        if (edge > t && model_planned(s, edge) != now)
            return edge;
    }
    return INT64_MAX;
}

static enum phase model_phase(const struct schedule *s, int64_t t)
{
    if (t < 0)
        return PHASE_PENDING;
    if (t >= model_end(s))
        return PHASE_DONE;
    if (t >= model_hold_end(s))
        return PHASE_RAMPDOWN;
    if (t >= model_hold_start(s))
        return PHASE_HOLD;
    return PHASE_RAMPUP;
}

/* ---------------------------------------------------------- fixed cases */

/* The example of schedule.h: 10 workers, 2 every 1 s, hold 10 s, 5 every
 * 1 s down. */
static void test_header_example(void)
{
    struct schedule s = make(10, 2, 1000, 0, 10000, 5, 1000);
    static const struct {
        int64_t t;
        uint32_t planned;
        enum phase phase;
    } want[] = {
        {-1000, 0, PHASE_PENDING},  {-1, 0, PHASE_PENDING},
        {0, 2, PHASE_RAMPUP},       {999, 2, PHASE_RAMPUP},
        {1000, 4, PHASE_RAMPUP},    {2000, 6, PHASE_RAMPUP},
        {3000, 8, PHASE_RAMPUP},    {3999, 8, PHASE_RAMPUP},
        {4000, 10, PHASE_HOLD},     {9000, 10, PHASE_HOLD},
        {13999, 10, PHASE_HOLD},    {14000, 5, PHASE_RAMPDOWN},
        {14999, 5, PHASE_RAMPDOWN}, {15000, 0, PHASE_DONE},
        {3600000, 0, PHASE_DONE},
    };
    size_t i;

    CHECK_UINT_EQ(schedule_rampup_steps(&s), 5);
    CHECK_INT_EQ(schedule_hold_start_ms(&s), 4000);
    CHECK_INT_EQ(schedule_hold_end_ms(&s), 14000);
    CHECK_INT_EQ(schedule_end_ms(&s), 15000);
    for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        if (!CHECK_UINT_EQ(schedule_planned(&s, want[i].t), want[i].planned))
            fprintf(stderr, "    t = %lld\n", (long long)want[i].t);
        if (!CHECK_INT_EQ(schedule_phase(&s, want[i].t), want[i].phase))
            fprintf(stderr, "    t = %lld\n", (long long)want[i].t);
    }

    CHECK_INT_EQ(schedule_next_change_ms(&s, -5000), 0);
    CHECK_INT_EQ(schedule_next_change_ms(&s, -1), 0);
    CHECK_INT_EQ(schedule_next_change_ms(&s, 0), 1000);
    CHECK_INT_EQ(schedule_next_change_ms(&s, 999), 1000);
    CHECK_INT_EQ(schedule_next_change_ms(&s, 1000), 2000);
    CHECK_INT_EQ(schedule_next_change_ms(&s, 3999), 4000);
    CHECK_INT_EQ(schedule_next_change_ms(&s, 4000), 14000);
    CHECK_INT_EQ(schedule_next_change_ms(&s, 13999), 14000);
    CHECK_INT_EQ(schedule_next_change_ms(&s, 14000), 15000);
    CHECK_INT_EQ(schedule_next_change_ms(&s, 15000), INT64_MAX);
    CHECK_INT_EQ(schedule_next_change_ms(&s, 1000000), INT64_MAX);
}

/* A step that does not divide the target: the last step tops up. */
static void test_uneven_step(void)
{
    struct schedule s = make(10, 3, 500, 0, 2000, 4, 250);

    CHECK_UINT_EQ(schedule_rampup_steps(&s), 4);
    CHECK_UINT_EQ(schedule_planned(&s, 0), 3);
    CHECK_UINT_EQ(schedule_planned(&s, 500), 6);
    CHECK_UINT_EQ(schedule_planned(&s, 1000), 9);
    CHECK_UINT_EQ(schedule_planned(&s, 1500), 10);
    CHECK_INT_EQ(schedule_hold_start_ms(&s), 1500);
    CHECK_INT_EQ(schedule_hold_end_ms(&s), 3500);
    /* Down by 4: 6, 2, then 0 (never below zero). */
    CHECK_UINT_EQ(schedule_planned(&s, 3500), 6);
    CHECK_UINT_EQ(schedule_planned(&s, 3750), 2);
    CHECK_UINT_EQ(schedule_planned(&s, 4000), 0);
    CHECK_INT_EQ(schedule_end_ms(&s), 4000);
    CHECK_INT_EQ(schedule_phase(&s, 3999), PHASE_RAMPDOWN);
    CHECK_INT_EQ(schedule_phase(&s, 4000), PHASE_DONE);
}

/* A target smaller than the step: one step, straight to target. */
static void test_target_below_step(void)
{
    struct schedule s = make(3, 10, 1000, 0, 5000, 10, 1000);

    CHECK_UINT_EQ(schedule_rampup_steps(&s), 1);
    CHECK_INT_EQ(schedule_hold_start_ms(&s), 0);
    CHECK_UINT_EQ(schedule_planned(&s, 0), 3);
    CHECK_INT_EQ(schedule_phase(&s, 0), PHASE_HOLD);
    CHECK_UINT_EQ(schedule_planned(&s, 4999), 3);
    CHECK_UINT_EQ(schedule_planned(&s, 5000), 0);
    CHECK_INT_EQ(schedule_end_ms(&s), 5000);
    CHECK_INT_EQ(schedule_next_change_ms(&s, 0), 5000);
    CHECK_INT_EQ(schedule_next_change_ms(&s, -1), 0);
}

/* Exponential: 1, 3, 7, 15 (+1, +2, +4, +8), capped at the target. */
static void test_exponential(void)
{
    struct schedule s = make(10, 1, 1000, 1, 1000, 10, 1000);
    struct schedule big = make(100, 3, 200, 1, 0, 100, 1000);

    CHECK_UINT_EQ(schedule_rampup_steps(&s), 4);
    CHECK_UINT_EQ(schedule_planned(&s, 0), 1);
    CHECK_UINT_EQ(schedule_planned(&s, 1000), 3);
    CHECK_UINT_EQ(schedule_planned(&s, 2000), 7);
    CHECK_UINT_EQ(schedule_planned(&s, 3000), 10);
    CHECK_INT_EQ(schedule_hold_start_ms(&s), 3000);
    CHECK_INT_EQ(schedule_end_ms(&s), 4000);
    CHECK_INT_EQ(schedule_next_change_ms(&s, 2500), 3000);

    /* 3, 9, 21, 45, 93, then 100. */
    CHECK_UINT_EQ(schedule_rampup_steps(&big), 6);
    CHECK_UINT_EQ(schedule_planned(&big, 0), 3);
    CHECK_UINT_EQ(schedule_planned(&big, 200), 9);
    CHECK_UINT_EQ(schedule_planned(&big, 400), 21);
    CHECK_UINT_EQ(schedule_planned(&big, 600), 45);
    CHECK_UINT_EQ(schedule_planned(&big, 999), 93);
    CHECK_UINT_EQ(schedule_planned(&big, 1000), 0);
    CHECK_INT_EQ(schedule_hold_start_ms(&big), 1000);

    /* The same numbers in linear mode take 34 steps. */
    big.rampup_exponential = 0;
    CHECK_UINT_EQ(schedule_rampup_steps(&big), 34);
}

/* Hold 0: rampdown step 0 fires together with the last rampup step. */
static void test_hold_zero(void)
{
    struct schedule s = make(10, 2, 1000, 0, 0, 5, 1000);

    CHECK_INT_EQ(schedule_hold_start_ms(&s), 4000);
    CHECK_INT_EQ(schedule_hold_end_ms(&s), 4000);
    CHECK_INT_EQ(schedule_end_ms(&s), 5000);
    CHECK_UINT_EQ(schedule_planned(&s, 3999), 8);
    CHECK_UINT_EQ(schedule_planned(&s, 4000), 5);
    CHECK_UINT_EQ(schedule_planned(&s, 5000), 0);
    CHECK_INT_EQ(schedule_phase(&s, 3999), PHASE_RAMPUP);
    CHECK_INT_EQ(schedule_phase(&s, 4000), PHASE_RAMPDOWN);
    CHECK_INT_EQ(schedule_phase(&s, 5000), PHASE_DONE);
    CHECK_INT_EQ(schedule_next_change_ms(&s, 3999), 4000);
    CHECK_INT_EQ(schedule_next_change_ms(&s, 4000), 5000);

    /* Down by 2 from 10 at the moment 8 would become 10: still 8, so
     * nothing changes at 4 s and the next change is at 5 s. */
    s.rampdown_step = 2;
    CHECK_UINT_EQ(schedule_planned(&s, 4000), 8);
    CHECK_UINT_EQ(schedule_planned(&s, 5000), 6);
    CHECK_INT_EQ(schedule_next_change_ms(&s, 3999), 5000);
    CHECK_INT_EQ(schedule_end_ms(&s), 8000);
}

/* What a document without rampup and rampdown gets: everyone at t = 0,
 * everyone gone at hold end. */
static void test_all_at_once(void)
{
    struct schedule s = make(50, 50, 1000, 0, 30000, 50, 1000);

    CHECK_UINT_EQ(schedule_planned(&s, 0), 50);
    CHECK_INT_EQ(schedule_phase(&s, 0), PHASE_HOLD);
    CHECK_UINT_EQ(schedule_planned(&s, 29999), 50);
    CHECK_UINT_EQ(schedule_planned(&s, 30000), 0);
    CHECK_INT_EQ(schedule_end_ms(&s), 30000);
    CHECK_INT_EQ(schedule_phase(&s, 30000), PHASE_DONE);
}

static void test_phase_names(void)
{
    CHECK_STR_EQ(phase_name(PHASE_PENDING), "pending");
    CHECK_STR_EQ(phase_name(PHASE_RAMPUP), "rampup");
    CHECK_STR_EQ(phase_name(PHASE_HOLD), "hold");
    CHECK_STR_EQ(phase_name(PHASE_RAMPDOWN), "rampdown");
    CHECK_STR_EQ(phase_name(PHASE_DONE), "done");
}

/* ------------------------------------------------- model vs. the code */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

/* Checks one schedule at every step edge (t - 1, t, t + 1) and at random
 * times; next_change must land exactly on the model's next change. */
static int compare_at(const struct schedule *s, int64_t t)
{
    int ok =
        CHECK_INT_EQ(schedule_next_change_ms(s, t), model_next_change(s, t)) &&
        CHECK_UINT_EQ(schedule_planned(s, t), model_planned(s, t)) &&
        CHECK_INT_EQ(schedule_phase(s, t), model_phase(s, t));

    if (!ok)
        fprintf(stderr, "    at t = %lld\n", (long long)t);
    return ok;
}

static int compare_one(const struct schedule *s)
{
    int64_t t, end = model_end(s);
    uint64_t k;

    if (!CHECK_UINT_EQ(schedule_rampup_steps(s), model_up_steps(s)) ||
        !CHECK_INT_EQ(schedule_hold_start_ms(s), model_hold_start(s)) ||
        !CHECK_INT_EQ(schedule_hold_end_ms(s), model_hold_end(s)) ||
        !CHECK_INT_EQ(schedule_end_ms(s), end))
        return 0;
    /* The last rampup step reaches exactly target (with hold 0, rampdown
     * step 0 fires at the same instant, so look just before the end). */
    if (s->hold_ms > 0 &&
        !CHECK_UINT_EQ(schedule_planned(s, model_hold_start(s)), s->target))
        return 0;
    for (k = 0; k < model_up_steps(s) + model_down_steps(s); k++) {
        int64_t edge =
            k < model_up_steps(s)
                ? (int64_t)k * s->rampup_interval_ms
                : model_hold_end(s) + (int64_t)(k - model_up_steps(s)) *
                                          s->rampdown_interval_ms;

        for (t = edge - 1; t <= edge + 1; t++)
            if (!compare_at(s, t))
                return 0;
    }
    for (k = 0; k < 20; k++)
        if (!compare_at(s, (int64_t)rnd((uint32_t)end + 2) - 1))
            return 0;
    return 1;
}

/* compare_one without the noise, for counting failures. */
static int model_agrees_quietly(const struct schedule *s)
{
    int64_t t;

    if (schedule_end_ms(s) != model_end(s))
        return 0;
    for (t = -1; t <= model_end(s) + 1; t++)
        if (schedule_planned(s, t) != model_planned(s, t) ||
            schedule_phase(s, t) != model_phase(s, t) ||
            schedule_next_change_ms(s, t) != model_next_change(s, t))
            return 0;
    return 1;
}

/* Random schedules against the model; reports the first few that differ
 * and how many did. */
static void test_against_model(void)
{
    int i, failed = 0;

    for (i = 0; i < 3000; i++) {
        struct schedule s =
            make(1 + rnd(60), 1 + rnd(12), 1 + rnd(40), (int)rnd(2),
                 rnd(4) ? rnd(100) : 0, 1 + rnd(15), 1 + rnd(40));

        if (failed >= 3) {
            failed += !model_agrees_quietly(&s);
            continue;
        }
        if (!compare_one(&s)) {
            failed++;
            fprintf(stderr,
                    "    schedule: target %u, up %u/%lldms%s, hold %lldms, "
                    "down %u/%lldms\n",
                    s.target, s.rampup_step, (long long)s.rampup_interval_ms,
                    s.rampup_exponential ? " exp" : "", (long long)s.hold_ms,
                    s.rampdown_step, (long long)s.rampdown_interval_ms);
        }
    }
    if (failed)
        fprintf(stderr,
                "    %d of 3000 random schedules differ from the "
                "model\n",
                failed);
}

/* The largest schedule a document may hold must not overflow. */
static void test_large(void)
{
    struct schedule s =
        make(1000000, 1, 3600000, 0, 7LL * 24 * 3600000, 1, 3600000);

    CHECK_UINT_EQ(schedule_rampup_steps(&s), 1000000);
    CHECK_INT_EQ(schedule_hold_start_ms(&s), 999999LL * 3600000);
    CHECK_INT_EQ(schedule_end_ms(&s), model_end(&s));
    CHECK_UINT_EQ(schedule_planned(&s, 3600000LL * 500000), 500001);
    CHECK_UINT_EQ(schedule_planned(&s, model_end(&s) - 1), 1);
    CHECK_UINT_EQ(schedule_planned(&s, model_end(&s)), 0);

    s.rampup_exponential = 1;
    CHECK_UINT_EQ(schedule_rampup_steps(&s), 20);
    CHECK_UINT_EQ(schedule_planned(&s, 19 * 3600000LL - 1), 524287);
    CHECK_UINT_EQ(schedule_planned(&s, 19 * 3600000LL), 1000000);
}

int main(void)
{
    test_header_example();
    test_uneven_step();
    test_target_below_step();
    test_exponential();
    test_hold_zero();
    test_all_at_once();
    test_phase_names();
    test_against_model();
    test_large();
    return check_done();
}
