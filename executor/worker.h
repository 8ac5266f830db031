/*
 * worker.h - the inside of a j4_worker_t, shared by the runtime and the
 * SDK implementation. Not part of the SDK: plugins only see the opaque
 * type from include/j4.h.
 *
 * Ownership: the runtime allocates a worker, starts its thread, and frees
 * it after joining. Fields marked "worker thread" are touched only by the
 * worker's own thread; the stop fields are written by the control thread
 * under lock and read anywhere.
 */
#ifndef J4_EXECUTOR_WORKER_H
#define J4_EXECUTOR_WORKER_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "j4.h"
#include "stats.h"

struct runtime;

/* What every worker of one run reads; immutable while workers live. */
struct run_ctx {
    struct runtime *rt;
    const j4_scenario_t *scenario;
    int64_t scenario_id;
    char *name;
    char *params_text; /* "{}" when none */
    json_t *params;    /* parsed once per run */
    int64_t grace_ms;

    /* j4_log budget shared by the run's workers (any worker thread). */
    _Atomic int64_t log_second;
    atomic_uint log_lines;
    _Atomic unsigned long log_dropped;
};

struct sdk_http; /* sdk_http.c */

struct j4_worker {
    struct run_ctx *ctx;
    uint64_t number; /* cluster-wide worker number */
    uint32_t index;  /* local index within the run */
    pthread_t thread;

    /* Stopping: stop is set once, with stop_us (monotonic), under lock. */
    pthread_mutex_t lock;
    pthread_cond_t wake; /* CLOCK_MONOTONIC; j4_sleep waits */
    atomic_int stop;
    _Atomic int64_t stop_us;
    atomic_int exited; /* the thread has returned */

    struct worker_stats stats;

    /* Worker thread (the multi handle inside is also woken under lock). */
    struct sdk_http *http;
    int64_t log_second;
    unsigned log_lines;
};

/* Sets the stop flag (once) and wakes the worker from j4_sleep and from a
 * request in flight. Any thread. */
void worker_request_stop(struct j4_worker *w);

/* Microseconds of grace left for requests in flight; INT64_MAX while the
 * worker is not stopping, <= 0 once the grace period has passed. */
int64_t worker_grace_left_us(const struct j4_worker *w);

/* Worker thread: frees the SDK's per-worker resources (HTTP handles). */
void sdk_worker_release(struct j4_worker *w);

/* Logs how many j4_log lines of the run were suppressed, if any. */
void sdk_log_flush(struct run_ctx *ctx);

/* Under w->lock: wakes a request in flight so it sees the stop flag. */
void sdk_http_wakeup_locked(struct j4_worker *w);

/* Process-wide libcurl setup, before any worker starts / after all end. */
int sdk_global_init(void);
void sdk_global_cleanup(void);

#endif
