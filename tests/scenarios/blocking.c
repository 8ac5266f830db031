/*
 * blocking.c - a test plugin whose step makes a blocking call, either
 * wrapped in j4_blocking() (params.mode "wrap") or straight on the
 * worker's thread ("raw"). With one worker thread, wrapped calls of
 * several workers overlap while raw ones queue up and stall the loop,
 * which the runtime reports in its log (test_cli_run.py).
 *
 * Mode "overflow" recurses with a 1 KiB frame until the worker's stack
 * runs out: the executor must stop with a message saying so.
 *
 * Params: mode ("wrap", default, "raw" or "overflow"), ms (the call's
 * length, 100).
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

/* Recurses until limit (far past any stack): each frame holds 1 KiB the
 * compiler must keep. */
static int deeper(volatile char *up, int depth, int limit)
{
    volatile char frame[1024];

    frame[0] = up ? up[0] : 1;
    frame[sizeof(frame) - 1] = (char)depth;
    if (depth >= limit)
        return frame[0];
    return deeper(frame, depth + 1, limit) + frame[0];
}

static int blocking_step(j4_worker_t *w, void *state)
{
    int64_t ms = j4_param_int(w, "ms", 100);
    const char *mode = j4_param_str(w, "mode", "wrap");

    (void)state;
    if (strcmp(mode, "overflow") == 0)
        return deeper(NULL, 0, (int)j4_param_int(w, "depth", 1000000));
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
