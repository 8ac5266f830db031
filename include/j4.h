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
 * Threads: each worker is a fiber, a lightweight thread of its own with a
 * small stack; an executor runs thousands of them on a few OS threads
 * (one per core by default). init, step and fini of one worker always run
 * on that worker's fiber, one at a time. While a worker waits in an SDK
 * call (j4_sleep, HTTP, GraphQL, gRPC, j4_pool_take, j4_blocking) other
 * workers run on its thread; so a step must not block the thread by other
 * means (sleep(), a blocking socket, a library's own wait): wrap such a
 * call in j4_blocking(). Workers on different threads run at the same
 * time, so state shared between workers needs its own locking.
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
#define J4_VERSION_MINOR 2
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
 * use it only from the worker's own fiber and its routines. */
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

/* The value of a top-level key of "params" as a jansson-free JSON text
 * ("{\"a\":1}", "[1,2]", "\"x\"", "3"), or NULL when missing. Owned by
 * the worker, valid until the worker stops. */
J4_EXPORT const char *j4_param_json(j4_worker_t *w, const char *key);

/* Non-zero once the worker must stop. Cheap: call it often. */
J4_EXPORT int j4_should_stop(const j4_worker_t *w);

/* Sleeps for ms milliseconds, or less when the worker must stop; from
 * 2^40 ms on (INT64_MAX, say) it sleeps until the stop. Returns J4_OK
 * after the full sleep, J4_ERR_STOPPED when cut short. */
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
 * how long it took in microseconds (values above 2^40 us, about 12.7
 * days, are recorded as 2^40). The SDK's protocol helpers call this
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
    const char *name;           /* request name for metrics, e.g. "login";
                                   NULL: the method. Keep names few: they
                                   become labels (never put ids in them) */
    /* Appended in 0.1: TLS for https:// URLs. */
    int tls_no_verify;          /* non-zero: accept any certificate and
                                   host name (test servers only) */
    const char *tls_ca_file;    /* PEM file of trusted CAs; NULL: the
                                   system's */
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

/* ----------------------------------------------------- worker extras */

/* Per-worker random numbers (xoshiro256**, seeded from the worker id and
 * the scenario id, so runs are reproducible per worker). */
J4_EXPORT uint64_t j4_random(j4_worker_t *w);
/* Uniform in [0, 1). */
J4_EXPORT double j4_random_double(j4_worker_t *w);

/* Adds a tag that every sample this worker records from now on carries
 * (for example "region" = "eu"). At most J4_TAGS_MAX per worker; key and
 * value are copied. Tags become labels, so keep their values few. A key
 * is a label name ([a-zA-Z_][a-zA-Z0-9_]*, at most 32 characters) other
 * than J4's own labels (scenario, name, protocol, outcome, executor, le,
 * check, result, scenario_name, state); a value is 1-64 printable ASCII
 * characters but ','. Else J4_ERR_INVALID. */
#define J4_TAGS_MAX 8
J4_EXPORT int j4_tag(j4_worker_t *w, const char *key, const char *value);

/* Starts a background routine for this worker (a keep-alive pinger, a
 * stream reader). It runs on a fiber of its own, beside the worker's on
 * the same OS thread (so never at the same moment), with the same
 * j4_worker_t;
 * it must return once j4_should_stop(w) is true (j4_sleep and the SDK's
 * blocking calls return early then). The framework joins it before fini.
 * At most J4_ROUTINES_MAX per worker. */
#define J4_ROUTINES_MAX 4
J4_EXPORT int j4_routine_start(j4_worker_t *w,
                               void (*fn)(j4_worker_t *w, void *arg),
                               void *arg);

/* Appended in 0.2: runs fn(arg) on a helper thread of the executor while
 * the worker waits, so a call that blocks its thread (a library without a
 * non-blocking API, a file read, getaddrinfo) does not hold up the other
 * workers. Returns fn's result. A stop does not interrupt it: fn should
 * itself give up within the scenario's grace period (it may read
 * j4_should_stop(w)). Helper threads are few (64 at most), so keep such
 * calls short. */
J4_EXPORT int j4_blocking(j4_worker_t *w, int (*fn)(void *arg), void *arg);

/* What the scenario's setup() returned for this executor, or NULL. */
J4_EXPORT void *j4_shared(const j4_worker_t *w);

/* ----------------------------------------------------- team metrics */

/* A team's own metrics, recorded beside the built-in ones and shown in
 * reports and on /metrics as j4_team_<name> (histograms in seconds as
 * j4_team_<name>_seconds, counters as j4_team_<name>_total). Names are
 * [a-z0-9_]{1,64}, do not end in _total, _seconds, _count, _sum, _bucket,
 * _created or _info and hold none of the words counter, gauge, histogram,
 * summary; at most 64 distinct names per scenario. Any other name is
 * recorded under "other". */
J4_EXPORT void j4_metric_observe(j4_worker_t *w, const char *name,
                                 uint64_t value_us);  /* histogram, us */
J4_EXPORT void j4_metric_count(j4_worker_t *w, const char *name,
                               uint64_t n);           /* counter */
J4_EXPORT void j4_metric_gauge(j4_worker_t *w, const char *name,
                               int64_t value);        /* last value, summed
                                                          over workers */
/* A named true/false assertion, counted as passed or failed. Returns ok. */
J4_EXPORT int j4_check(j4_worker_t *w, const char *name, int ok);

/* ------------------------------------------------------------ GraphQL */

typedef struct j4_graphql_request {
    const char *name;           /* request name for metrics; NULL: "graphql" */
    const char *url;            /* required */
    const char *query;          /* required */
    const char *variables_json; /* JSON object text, or NULL */
    const char *operation_name; /* or NULL */
    const char *const *headers; /* NULL-terminated "Name: value" list */
    int64_t timeout_ms;         /* 0 means 30 s */
} j4_graphql_request_t;

/* POSTs the query; a 200 whose body carries "errors" is recorded as
 * J4_OUTCOME_GRAPHQL and returns J4_ERR_PROTOCOL. resp->body is the whole
 * JSON response. */
J4_EXPORT int j4_graphql(j4_worker_t *w, const j4_graphql_request_t *req,
                         j4_http_response_t *resp);

/* --------------------------------------------------------------- gRPC */

/* A channel to target ("127.0.0.1:50051"), shared by every worker of the
 * executor that asks for the same target; owned by the executor. */
typedef struct j4_grpc_channel j4_grpc_channel_t;
J4_EXPORT j4_grpc_channel_t *j4_grpc_channel(j4_worker_t *w,
                                             const char *target);

typedef struct j4_grpc_call_options {
    const char *name;               /* request name; NULL: the method */
    int64_t timeout_ms;             /* deadline from now; 0 means 30 s */
    const char *const *metadata;    /* NULL-terminated "key: value" list */
} j4_grpc_call_options_t;

/* Status of the last call: the gRPC status code and message. */
typedef struct j4_grpc_status {
    int code;                       /* 0 OK, 14 UNAVAILABLE, ... */
    char message[256];
} j4_grpc_status_t;

/* One unary call of method ("/pkg.Service/Method") with a serialized
 * request; on J4_OK *reply and *reply_len hold the serialized answer,
 * owned by the worker until its next gRPC call. Recorded as one sample
 * (outcome J4_OUTCOME_GRPC for a non-OK status). */
J4_EXPORT int j4_grpc_unary(j4_worker_t *w, j4_grpc_channel_t *ch,
                            const char *method, const void *request,
                            size_t request_len,
                            const j4_grpc_call_options_t *opts,
                            const void **reply, size_t *reply_len,
                            j4_grpc_status_t *status);

/* A server-streaming call. */
typedef struct j4_grpc_stream j4_grpc_stream_t;

typedef struct j4_grpc_stream_options {
    const char *name;               /* stream name; NULL: the method */
    const char *const *metadata;
    int reconnect;                  /* reopen when the stream ends */
    int64_t backoff_initial_ms;     /* 0 means 100 ms */
    int64_t backoff_max_ms;         /* 0 means 5 s */
} j4_grpc_stream_options_t;

J4_EXPORT int j4_grpc_stream_open(j4_worker_t *w, j4_grpc_channel_t *ch,
                                  const char *method, const void *request,
                                  size_t request_len,
                                  const j4_grpc_stream_options_t *opts,
                                  j4_grpc_stream_t **stream);

/* Waits up to timeout_ms for the next message. J4_OK with the message
 * (owned by the stream until the next call); J4_ERR_TIMEOUT; J4_ERR_STOPPED;
 * J4_ERR_UNAVAILABLE when the stream ended (with reconnect on, the next
 * call reopens it after the backoff). */
J4_EXPORT int j4_grpc_stream_recv(j4_worker_t *w, j4_grpc_stream_t *s,
                                  int64_t timeout_ms, const void **msg,
                                  size_t *len);
J4_EXPORT void j4_grpc_stream_close(j4_worker_t *w, j4_grpc_stream_t *s);

/* --------------------------------------------------------- user pools */

/* Takes an item of the data set named by the scenario's "pool" parameter
 * (a CSV or JSON-lines file given at submit) that no other worker in the
 * cluster holds; it is returned when the worker stops or its executor
 * dies. *item is a JSON object text owned by the worker. */
J4_EXPORT int j4_pool_take(j4_worker_t *w, const char *pool,
                           const char **item);

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

    /* Once per executor and scenario, before its first worker starts:
     * state shared by all its workers (j4_shared() returns it). May be
     * NULL. A non-zero return refuses the share with that error. */
    int (*setup)(const char *params_json, void **shared);

    /* Once per executor and scenario, after its last worker stopped. */
    void (*teardown)(void *shared);
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
