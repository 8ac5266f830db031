/*
 * worker.h - the inside of a j4_worker_t, shared by the runtime and the
 * SDK implementation. Not part of the SDK: plugins only see the opaque
 * type from include/j4.h.
 *
 * Ownership: the runtime allocates a worker, starts its fiber (scheduler.h),
 * and frees it once the fiber said it exited. Fields marked "worker" are
 * touched only by the worker's fibers (its own and its routines', which
 * share one loop and so never run at the same time); the stop fields are
 * atomics written by the control thread or the worker itself.
 */
#ifndef J4_EXECUTOR_WORKER_H
#define J4_EXECUTOR_WORKER_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

#include "scheduler.h"
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

    /* What the descriptor's setup() returned; set by the owning thread
     * before the run's first worker starts, read-only afterwards. */
    void *shared;
    int setup_done;
};

/* A tag added with j4_tag(); key and value are copies. */
struct worker_tag {
    char *key;
    char *value;
};

struct sdk_http;    /* sdk_http.c */

/* What the SDK keeps per fiber (fiber_local() points at it): the worker's
 * own, or one in each routine. */
struct sdk_fiber {
    int routine;            /* a routine's fiber, not the worker's */
    void *grpc_reply;       /* sdk_grpc.c's unary reply buffer */
};
struct sdk_routine; /* sdk_worker.c */
struct sdk_param;   /* sdk_worker.c */

struct j4_worker {
    struct run_ctx *ctx;
    uint64_t number; /* cluster-wide worker number */
    uint32_t index;  /* local index within the run */
    fiber_handle fiber;
    struct sdk_fiber fiber_data;

    /* Stopping: stop is set once, with stop_us (monotonic), then the
     * worker's fibers are woken. */
    atomic_int stop;
    _Atomic int64_t stop_us;
    atomic_int exited; /* the fiber has returned */

    struct worker_stats stats;

    /* Worker. */
    struct sdk_http *http;
    int64_t log_second;
    unsigned log_lines;

    /* Worker extras (sdk_worker.c). Routines are fibers on the worker's
     * loop sharing this worker; the tags lock only matters to a plugin
     * that hands its worker to a thread of its own. */
    pthread_mutex_t tags_lock;
    uint64_t rng[4];               /* worker */
    struct worker_tag tags[J4_TAGS_MAX]; /* written under tags_lock */
    unsigned ntags;
    struct sdk_routine *routines[J4_ROUTINES_MAX]; /* worker */
    unsigned nroutines;
    _Atomic fiber_handle routine_fibers[J4_ROUTINES_MAX]; /* for wakes */
    atomic_int routines_halt;      /* stop routines of a failed init */
    struct sdk_param *params_cache; /* j4_param_json() texts */
};

/* Sets the stop flag (once) and wakes the worker's fibers from j4_sleep
 * and from a request in flight. Any thread. */
void worker_request_stop(struct j4_worker *w);

/* When requests in flight must be aborted (monotonic us): the stop plus
 * the grace period; INT64_MAX while the worker is not stopping. */
int64_t worker_abort_at_us(const struct j4_worker *w);

/* Microseconds of grace left for requests in flight; INT64_MAX while the
 * worker is not stopping, <= 0 once the grace period has passed. */
int64_t worker_grace_left_us(const struct j4_worker *w);

/* Worker fiber: frees the SDK's per-worker resources (HTTP handles). */
void sdk_worker_release(struct j4_worker *w);

/* Owning thread, before the worker's fiber starts: seeds its random
 * generator and sets up its tags lock. */
void sdk_worker_init(struct j4_worker *w);

/* Worker fiber: tells the worker's routines to stop (they see
 * j4_should_stop()), wakes them and waits until they returned. Called
 * before fini and after a failed init. */
void sdk_routines_join(struct j4_worker *w);

/* The worker's tags (j4_tag); *count gets their number. Read them under
 * w->tags_lock when a routine may be adding some. */
const struct worker_tag *worker_tags(const struct j4_worker *w,
                                     unsigned *count);


/* Fills the W3C trace context of one outgoing request: a traceparent
 * "00-<trace id>-<span id>-01" with fresh random ids, and the baggage
 * "j4.scenario=<name>" (percent-encoded). Any thread. */
#define SDK_TRACEPARENT_LEN 56
void sdk_trace_context(const struct j4_worker *w,
                       char traceparent[SDK_TRACEPARENT_LEN],
                       char *baggage, size_t baggage_size);

/* Worker fiber, from sdk_worker_release(): frees tags, cached params
 * and the fiber's gRPC reply buffer, once the routines ended. */
void sdk_extras_release(struct j4_worker *w);

/* Non-zero on the fiber of one of the worker's routines. */
int sdk_in_routine(void);

/* One HTTP exchange recorded as one sample. With graphql set, a 200
 * response whose JSON carries a non-empty "errors" array is recorded as
 * J4_OUTCOME_GRAPHQL (sdk_http.c). */
int sdk_http_exchange(struct j4_worker *w, const j4_http_request_t *req,
                      j4_http_response_t *resp, int graphql);

/* gRPC core setup and the executor's shared channels (sdk_grpc.c). */
void sdk_grpc_cleanup(void);

/* Frees a fiber's gRPC reply buffer (worker or routine). */
void sdk_grpc_fiber_release(struct sdk_fiber *f);

/* The scheduler the runtime's workers run on (runtime.c). */
struct sched *worker_sched(const struct j4_worker *w);

/* A latency or team metric value a plugin hands the SDK, capped at 2^40
 * us (about 12.7 days): a larger one is the caller's bug (a negative
 * difference, say) and would only wreck the sums and means. */
#define SDK_VALUE_MAX_US (UINT64_C(1) << 40)

static inline uint64_t sdk_value_us(uint64_t us)
{
    return us > SDK_VALUE_MAX_US ? SDK_VALUE_MAX_US : us;
}

/* Logs how many j4_log lines of the run were suppressed, if any. */
void sdk_log_flush(struct run_ctx *ctx);

/* Process-wide libcurl setup, before any worker starts / after all end. */
int sdk_global_init(void);
void sdk_global_cleanup(void);

#endif
