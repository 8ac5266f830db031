/*
 * schedule.h - Planned(t): how many workers a scenario wants, cluster-wide,
 * t milliseconds after it started.
 *
 * Rampup: step k (k = 0, 1, ...) fires at t = k * rampup_interval. Linear
 * mode adds rampup_step workers per step; exponential mode adds
 * rampup_step * 2^k. Either way the count is capped at target, so the last
 * step reaches exactly target. Hold begins when the last rampup step fires
 * and lasts hold_ms. Rampdown: step j fires at hold_end + j *
 * rampdown_interval and removes rampdown_step workers; the scenario's
 * schedule ends when the count reaches zero.
 *
 * Example: target 10, rampup 2 every 1 s, hold 10 s, rampdown 5 every 1 s:
 * 2 at 0 s, 4 at 1 s, ... 10 at 4 s, 5 at 14 s, 0 at 15 s.
 *
 * Pure functions of the schedule and t; every process computes the same
 * answer, which is how executors keep ramping without a message per step.
 */
#ifndef J4_COMMON_SCHEDULE_H
#define J4_COMMON_SCHEDULE_H

#include <stdint.h>

struct schedule {
    uint32_t target;
    uint32_t rampup_step;
    int64_t rampup_interval_ms;
    int rampup_exponential;
    int64_t hold_ms;
    uint32_t rampdown_step;
    int64_t rampdown_interval_ms;
};

enum phase {
    PHASE_PENDING = 0,  /* t < 0 */
    PHASE_RAMPUP = 1,
    PHASE_HOLD = 2,
    PHASE_RAMPDOWN = 3,
    PHASE_DONE = 4      /* the count reached zero after rampdown */
};

const char *phase_name(enum phase phase);

/* Number of rampup steps until target is reached (>= 1). */
uint32_t schedule_rampup_steps(const struct schedule *s);

/* Time of the last rampup step; hold starts there. */
int64_t schedule_hold_start_ms(const struct schedule *s);
int64_t schedule_hold_end_ms(const struct schedule *s);

/* Time of the last rampdown step, when Planned becomes 0. */
int64_t schedule_end_ms(const struct schedule *s);

uint32_t schedule_planned(const struct schedule *s, int64_t t_ms);
enum phase schedule_phase(const struct schedule *s, int64_t t_ms);

/* The first time > t_ms at which Planned changes, or INT64_MAX when it
 * never does again. Lets a caller sleep exactly until the next step. */
int64_t schedule_next_change_ms(const struct schedule *s, int64_t t_ms);

#endif
