/*
 * j4.h - the J4 scenario SDK.
 *
 * This is the one header a scenario author includes. A scenario is a
 * shared object (a "plugin") that exports one descriptor, J4_SCENARIO(),
 * and is loaded by j4-executor from its plugin directory. The executor
 * plays the scenario's schedule with many concurrent workers; the plugin
 * only says what one worker does.
 *
 * Lifecycle, as seen by a scenario author:
 *
 *   once per worker    init(w, &state)   build the worker's own state (its
 *                                        closure): pick a user, open a
 *                                        connection, start a routine.
 *   every iteration    step(w, state)    one unit of work, usually one or
 *                                        a few requests. Loops until the
 *                                        worker is told to stop.
 *   when it stops      fini(w, state)    free what init built.
 *
 * Threads: each worker runs on its own thread; init, step and fini of one
 * worker always run on that worker's thread, one at a time. Different
 * workers run at the same time, so shared state needs its own locking.
 *
 * Stopping: when the schedule lowers the worker count, the scenario is
 * stopped, or the executor loses its lease, the worker's stop flag is set.
 * j4_sleep() returns early, requests in flight are given the scenario's
 * grace period and then aborted (counted as "interrupted"), and the loop
 * ends after the current step. A step should check j4_should_stop() between
 * long operations.
 *
 * Errors: SDK calls return J4_OK (0) or a negative j4_status; j4_strerror()
 * names it. The SDK never prints: use j4_log(), which the executor routes.
 *
 * docs/writing-scenarios.md walks through a complete plugin.
 */
#ifndef J4_H
#define J4_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this header. A plugin built for another major version is
 * refused at load; a newer minor version only adds. */
#define J4_VERSION_MAJOR 0
#define J4_VERSION_MINOR 1
#define J4_ABI_VERSION ((J4_VERSION_MAJOR << 16) | J4_VERSION_MINOR)

#if defined(__GNUC__)
#define J4_EXPORT __attribute__((visibility("default")))
#define J4_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define J4_EXPORT
#define J4_PRINTF(f, a)
#endif

/* ---------------------------------------------------------------- status */

/* Fixed numbers: a value is never reused for another meaning. */
typedef enum j4_status {
    J4_OK = 0,
    J4_ERR_NOMEM = -1,      /* out of memory */
    J4_ERR_INVALID = -2,    /* bad argument or input */
    J4_ERR_NOTFOUND = -3,   /* no such thing */
    J4_ERR_IO = -4,         /* system call or file failed */
    J4_ERR_TIMEOUT = -5,    /* deadline passed */
    J4_ERR_STOPPED = -6,    /* the worker was told to stop */
    J4_ERR_PROTOCOL = -7,   /* peer sent something unexpected */
    J4_ERR_CONNECT = -8,    /* connection refused or reset */
    J4_ERR_DNS = -9,        /* name did not resolve */
    J4_ERR_TLS = -10,       /* TLS handshake or verification failed */
    J4_ERR_ABI = -11,       /* plugin built for another SDK major */
    J4_ERR_CONFLICT = -12,  /* state changed under us (stale epoch...) */
    J4_ERR_UNAVAILABLE = -13, /* service not reachable now */
    J4_ERR_TOOBIG = -14,    /* input over a size limit */
    J4_ERR_REDIRECTS = -15, /* too many redirects */
    J4_ERR_HTTP = -16,      /* HTTP status >= 400 */
} j4_status;

J4_EXPORT const char *j4_strerror(int status);

/* ------------------------------------------------------------- outcomes */

/* What became of one request. Every request a worker starts is recorded
 * exactly once with one of these. Fixed numbers, never reused. */
typedef enum j4_outcome {
    J4_OUTCOME_OK = 0,          /* completed as expected */
    J4_OUTCOME_HTTP_4XX = 1,    /* HTTP status 400-499 */
    J4_OUTCOME_HTTP_5XX = 2,    /* HTTP status 500-599 */
    J4_OUTCOME_TIMEOUT = 3,     /* the request's timeout passed */
    J4_OUTCOME_CONNECT = 4,     /* connection refused or reset */
    J4_OUTCOME_DNS = 5,         /* name did not resolve */
    J4_OUTCOME_TLS = 6,         /* TLS failure */
    J4_OUTCOME_REDIRECTS = 7,   /* redirect limit reached */
    J4_OUTCOME_GRAPHQL = 8,     /* GraphQL response carried errors */
    J4_OUTCOME_GRPC = 9,        /* gRPC status other than OK */
    J4_OUTCOME_INTERRUPTED = 10, /* aborted because the worker stopped */
    J4_OUTCOME_OTHER = 11,      /* any other failure */
    J4_OUTCOME_COUNT_ = 12      /* number of outcomes, not an outcome */
} j4_outcome;

/* Short stable name used in reports and metrics: "ok", "http_5xx"... */
J4_EXPORT const char *j4_outcome_name(j4_outcome outcome);

/* -------------------------------------------------------------- workers */

/* One worker, owned by the executor. Valid from init until fini returns;
 * use it only from the worker's own thread. */
typedef struct j4_worker j4_worker_t;

/* Worker number unique across the cluster for this scenario. */
J4_EXPORT uint64_t j4_worker_id(const j4_worker_t *w);

/* Scenario id and name as submitted. Owned by the executor. */
J4_EXPORT int64_t j4_scenario_id(const j4_worker_t *w);
J4_EXPORT const char *j4_scenario_name(const j4_worker_t *w);

/* The scenario's "params" object as a JSON text; "{}" when none was
 * given. Owned by the executor, valid for the worker's lifetime. */
J4_EXPORT const char *j4_params_json(const j4_worker_t *w);

/* String, integer or duration value of a top-level key of "params".
 * Durations accept "250ms", "10s", "5m", "1h" and return milliseconds.
 * They return def when the key is missing or of another type. The
 * returned string is owned by the executor. */
J4_EXPORT const char *j4_param_str(const j4_worker_t *w, const char *key,
                                   const char *def);
J4_EXPORT int64_t j4_param_int(const j4_worker_t *w, const char *key,
                               int64_t def);
J4_EXPORT int64_t j4_param_duration_ms(const j4_worker_t *w,
                                       const char *key, int64_t def);

/* Non-zero once the worker must stop. Cheap: call it often. */
J4_EXPORT int j4_should_stop(const j4_worker_t *w);

/* Sleeps for ms milliseconds, or less when the worker must stop.
 * Returns J4_OK after the full sleep, J4_ERR_STOPPED when cut short. */
J4_EXPORT int j4_sleep(j4_worker_t *w, int64_t ms);

/* Log levels; the executor decides where lines go and which show. */
typedef enum j4_log_level {
    J4_LOG_ERROR = 0,
    J4_LOG_WARN = 1,
    J4_LOG_INFO = 2,
    J4_LOG_DEBUG = 3
} j4_log_level;

/* Logs one line tagged with the scenario and worker. Rate-limited per
 * worker so a step that logs every iteration cannot flood the executor. */
J4_EXPORT void j4_log(j4_worker_t *w, j4_log_level level, const char *fmt,
                      ...) J4_PRINTF(3, 4);

/* Records one request the scenario made by its own means: its outcome and
 * how long it took in microseconds. The SDK's protocol helpers call this
 * themselves; never record a request twice. */
J4_EXPORT void j4_record(j4_worker_t *w, j4_outcome outcome,
                         uint64_t latency_us);

/* Monotonic clock in microseconds, for timing your own operations. */
J4_EXPORT uint64_t j4_now_us(void);

/* ----------------------------------------------------------------- HTTP */

/* One HTTP request. Zero-initialise, then set what you need. All strings
 * are owned by the caller and only read during j4_http_request(). */
typedef struct j4_http_request {
    const char *method;         /* NULL means "GET" */
    const char *url;            /* required */
    const char *const *headers; /* NULL-terminated "Name: value" list */
    const char *body;           /* NULL for none */
    size_t body_len;            /* 0 with a body means strlen(body) */
    int64_t timeout_ms;         /* whole exchange; 0 means 30 s */
    int max_redirects;          /* 0: do not follow; -1: default 10 */
} j4_http_request_t;

/* The response, owned by the worker and valid until its next request. */
typedef struct j4_http_response {
    long status;                /* 0 when no response arrived */
    const char *body;           /* NUL-terminated; may be "" */
    size_t body_len;
    j4_outcome outcome;         /* as recorded */
    uint64_t latency_us;        /* as recorded */
} j4_http_response_t;

/* Performs one request on the worker's own connection, which is reused
 * across iterations, and records it as one sample. Returns J4_OK when a
 * response with status < 400 arrived, J4_ERR_HTTP for a status >= 400,
 * or the transport error (J4_ERR_TIMEOUT, J4_ERR_CONNECT, J4_ERR_DNS,
 * J4_ERR_TLS, J4_ERR_REDIRECTS, J4_ERR_STOPPED). resp may be NULL. */
J4_EXPORT int j4_http_request(j4_worker_t *w, const j4_http_request_t *req,
                              j4_http_response_t *resp);

/* ------------------------------------------------------------- plugins */

typedef struct j4_scenario {
    uint32_t abi_version;       /* J4_ABI_VERSION: always first */
    const char *name;           /* plain name: [a-z0-9_]{1,64} */
    const char *description;

    /* Once per worker: build the worker's state into *state. A non-zero
     * return fails the worker; it is counted and retried by the schedule. */
    int (*init)(j4_worker_t *w, void **state);

    /* Every iteration until the worker must stop. A non-zero return is
     * counted as a failed iteration; the loop goes on. */
    int (*step)(j4_worker_t *w, void *state);

    /* When the worker stops, after its last step; may be NULL. */
    void (*fini)(j4_worker_t *w, void *state);
} j4_scenario_t;

/* Declares the plugin's descriptor. Use once per shared object:
 *
 *   J4_SCENARIO(http) = {
 *       .abi_version = J4_ABI_VERSION, .name = "http",
 *       .init = http_init, .step = http_step, .fini = http_fini,
 *   };
 */
#define J4_SCENARIO_SYMBOL "j4_scenario_descriptor"
#define J4_SCENARIO(name_) \
    J4_EXPORT const j4_scenario_t j4_scenario_descriptor

#ifdef __cplusplus
}
#endif

#endif /* J4_H */
