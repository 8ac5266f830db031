/*
 * sleeper.c - a benchmark scenario whose step does nothing but sleep.
 *
 * Used by scripts/bench to measure how many workers one executor holds
 * and how fast it starts them: with no request in the step, what is left
 * is the cost of a worker itself (its stack, its statistics, its share of
 * the scheduler). The sleep goes through j4_sleep(), so stop and rampdown
 * interrupt it like any scenario's.
 *
 * Params: ms, the length of one sleep (default 1000).
 */
#include <stdlib.h>

#include "j4.h"

static int sleeper_init(j4_worker_t *w, void **state)
{
    int64_t *ms = malloc(sizeof(*ms));

    if (!ms)
        return J4_ERR_NOMEM;
    *ms = j4_param_int(w, "ms", 1000);
    if (*ms < 1)
        *ms = 1;
    *state = ms;
    return J4_OK;
}

static int sleeper_step(j4_worker_t *w, void *state)
{
    const int64_t *ms = state;
    int rc = j4_sleep(w, *ms);

    return rc == J4_OK || rc == J4_ERR_STOPPED ? 0 : 1;
}

static void sleeper_fini(j4_worker_t *w, void *state)
{
    (void)w;
    free(state);
}

J4_SCENARIO(sleeper) = {
    .abi_version = J4_ABI_VERSION,
    .name = "sleeper",
    .description = "sleeps in every step; for density benchmarks",
    .init = sleeper_init,
    .step = sleeper_step,
    .fini = sleeper_fini,
};
