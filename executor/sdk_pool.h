/*
 * sdk_pool.h - j4_pool_take() and what the runtime needs to give items
 * back.
 *
 * On the cluster, j4-executor installs a backend that asks the leader
 * (executor/pool_link.c). Without one (j4 run, tests of the runtime) the
 * SDK falls back to an in-process pool read from the file that the
 * scenario's params name in "pool_file" (CSV or JSON lines, by
 * extension), shared by every worker of the process.
 */
#ifndef J4_EXECUTOR_SDK_POOL_H
#define J4_EXECUTOR_SDK_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "j4.h"

struct sdk_pool_backend {
    void *ctx;

    /* Takes one item of pool for worker w, on w's thread. Blocks at most
     * a few seconds, and returns J4_ERR_STOPPED soon after w must stop.
     * On J4_OK sets *request_id (what release names) and *item (malloc'd,
     * the caller frees it). Otherwise fills err with why. */
    int (*take)(void *ctx, j4_worker_t *w, const char *pool,
                uint64_t *request_id, char **item, char *err,
                size_t err_size);

    /* Gives back the items of these takes of scenario_id; may block
     * briefly. Any worker thread. */
    void (*release)(void *ctx, int64_t scenario_id,
                    const uint64_t *request_ids, size_t count);
};

/* Installs (or with NULL removes) the cluster backend. Call only while
 * no worker runs; b must outlive its use. */
void sdk_pool_set_backend(const struct sdk_pool_backend *b);

/* Worker thread, when the worker stops or its init failed: gives back
 * every item it holds and frees their texts. */
void sdk_pool_worker_release(j4_worker_t *w);

#endif
