/*
 * plan_results.h - the leader's part in results: thresholds that abort a
 * running scenario, and the report stored when a scenario ends.
 *
 * Leader thread only (plan.c calls these from its scenario tick).
 */
#ifndef J4_DIST_PLAN_RESULTS_H
#define J4_DIST_PLAN_RESULTS_H

#include "leader_int.h"

/* Evaluates s's abort_on_fail thresholds at most once a second. When
 * one failed, records the reason and the stop request (fenced) and sets
 * s->stop_requested: the scenario then stops as if a person stopped it,
 * ending in state "stopped" with that reason. */
void plan_results_tick(struct leader *l, struct lscen *s, int64_t now_ms);

/* After s reached a final state: stores its report. */
void plan_results_ended(struct leader *l, const struct lscen *s);

#endif
