/*
 * stuck.c - a misbehaving test plugin: its init never returns and ignores
 * the stop flag, as a plugin blocked in a call without a timeout would.
 * The local runner and the executors must give up on such workers after
 * the grace period instead of waiting forever (test_cli_run.py).
 */
#include <unistd.h>

#include "j4.h"

static int stuck_init(j4_worker_t *w, void **state)
{
    (void)w;
    (void)state;
    for (;;)
        pause();
    return J4_OK;
}

static int stuck_step(j4_worker_t *w, void *state)
{
    (void)w;
    (void)state;
    return J4_OK;
}

J4_SCENARIO(stuck) = {
    .abi_version = J4_ABI_VERSION,
    .name = "stuck",
    .description = "init blocks forever (tests only)",
    .init = stuck_init,
    .step = stuck_step,
};
