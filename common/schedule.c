/*
 * schedule.c - Planned(t) for rampup, hold and rampdown.
 *
 * Everything here is arithmetic on the schedule and a time since start,
 * so the leader and every executor agree on the count without talking.
 * See schedule.h for the exact semantics.
 */
#include "schedule.h"

const char *phase_name(enum phase phase)
{
    switch (phase) {
    case PHASE_PENDING: return "pending";
    case PHASE_RAMPUP: return "rampup";
    case PHASE_HOLD: return "hold";
    case PHASE_RAMPDOWN: return "rampdown";
    case PHASE_DONE: return "done";
    }
    return "unknown";
}

static uint32_t step_of(uint32_t step)
{
    return step == 0 ? 1 : step;
}

/* Validation refuses zero intervals; this keeps a bad caller from
 * dividing by zero all the same. */
static int64_t interval_of(int64_t ms)
{
    return ms <= 0 ? 1 : ms;
}

/* Count after rampup step k (0-based). */
static uint32_t rampup_count(const struct schedule *s, uint64_t k)
{
    uint64_t step = step_of(s->rampup_step);
    uint64_t n;

    if (!s->rampup_exponential) {
        n = step * (k + 1);
    } else if (k >= 40) {
        n = s->target;
    } else {
        n = step * ((UINT64_C(1) << (k + 1)) - 1);
    }
    return n >= s->target ? s->target : (uint32_t)n;
}

uint32_t schedule_rampup_steps(const struct schedule *s)
{
    uint32_t k = 0;

    if (!s->rampup_exponential)
        return (s->target + step_of(s->rampup_step) - 1) /
               step_of(s->rampup_step);
    while (rampup_count(s, k) < s->target)
        k++;
    return k + 1;
}

static uint32_t rampdown_steps(const struct schedule *s)
{
    return (s->target + step_of(s->rampdown_step) - 1) /
           step_of(s->rampdown_step);
}

int64_t schedule_hold_start_ms(const struct schedule *s)
{
    return (int64_t)(schedule_rampup_steps(s) - 1) * s->rampup_interval_ms;
}

int64_t schedule_hold_end_ms(const struct schedule *s)
{
    return schedule_hold_start_ms(s) + s->hold_ms;
}

int64_t schedule_end_ms(const struct schedule *s)
{
    return schedule_hold_end_ms(s) +
           (int64_t)(rampdown_steps(s) - 1) * s->rampdown_interval_ms;
}

uint32_t schedule_planned(const struct schedule *s, int64_t t_ms)
{
    int64_t hold_start = schedule_hold_start_ms(s);
    int64_t hold_end = hold_start + s->hold_ms;
    uint64_t j, removed;

    if (t_ms < 0 || s->target == 0)
        return 0;
    if (t_ms < hold_start)
        return rampup_count(s, (uint64_t)(t_ms / interval_of(s->rampup_interval_ms)));
    if (t_ms < hold_end)
        return s->target;

    j = (uint64_t)((t_ms - hold_end) / interval_of(s->rampdown_interval_ms));
    if (j >= rampdown_steps(s))
        return 0;
    removed = (uint64_t)step_of(s->rampdown_step) * (j + 1);
    return removed >= s->target ? 0 : s->target - (uint32_t)removed;
}

enum phase schedule_phase(const struct schedule *s, int64_t t_ms)
{
    if (t_ms < 0)
        return PHASE_PENDING;
    if (t_ms < schedule_hold_start_ms(s))
        return PHASE_RAMPUP;
    if (t_ms < schedule_hold_end_ms(s))
        return PHASE_HOLD;
    if (schedule_planned(s, t_ms) > 0)
        return PHASE_RAMPDOWN;
    return PHASE_DONE;
}

/* The next step boundary after t_ms, whether or not the count moves. */
static int64_t next_boundary(const struct schedule *s, int64_t t_ms)
{
    int64_t hold_start = schedule_hold_start_ms(s);
    int64_t hold_end = hold_start + s->hold_ms;
    int64_t end = schedule_end_ms(s);

    if (s->target == 0)
        return INT64_MAX;
    if (t_ms < 0)
        return 0;
    if (t_ms < hold_start) {
        int64_t up = interval_of(s->rampup_interval_ms);

        return (t_ms / up + 1) * up;
    }
    if (t_ms < hold_end)
        return hold_end;
    if (t_ms < end) {
        int64_t down = interval_of(s->rampdown_interval_ms);

        return hold_end + ((t_ms - hold_end) / down + 1) * down;
    }
    return INT64_MAX;
}

int64_t schedule_next_change_ms(const struct schedule *s, int64_t t_ms)
{
    uint32_t now = schedule_planned(s, t_ms);
    int64_t t = next_boundary(s, t_ms);

    /* With hold 0 the first rampdown step can land on the count the last
     * rampup step left; skip boundaries where nothing moves. */
    while (t != INT64_MAX && schedule_planned(s, t) == now)
        t = next_boundary(s, t);
    return t;
}
