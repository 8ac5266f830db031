/*
 * blocking.c - a test plugin whose step makes a blocking call, either
 * wrapped in j4_blocking() (params.mode "wrap") or straight on the
 * worker's thread ("raw"). With one worker thread, wrapped calls of
 * several workers overlap while raw ones queue up and stall the loop,
 * which the runtime reports in its log (test_cli_run.py).
 *
 * Params: mode ("wrap", default, or "raw"), ms (the call's length, 100).
 */
#include <string.h>
#include <unistd.h>

#include "j4.h"

static int nap(void *arg)
{
    const int64_t *ms = arg;

    usleep((useconds_t)(*ms * 1000));
    return 7;
}

static int blocking_step(j4_worker_t *w, void *state)
{
    int64_t ms = j4_param_int(w, "ms", 100);
    const char *mode = j4_param_str(w, "mode", "wrap");

    (void)state;
    if (strcmp(mode, "raw") == 0)
        return nap(&ms) == 7 ? 0 : 1;
    return j4_blocking(w, nap, &ms) == 7 ? 0 : 1;
}

J4_SCENARIO(blocking) = {
    .abi_version = J4_ABI_VERSION,
    .name = "blocking",
    .description = "a step that blocks, wrapped or not (tests only)",
    .step = blocking_step,
};
