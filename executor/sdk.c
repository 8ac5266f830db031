/*
 * sdk.c - the j4_* functions of include/j4.h, except HTTP (sdk_http.c).
 *
 * Plugins call these from their worker's fibers. They live in the
 * executor binary, which exports them, so a plugin links against nothing.
 * j4_strerror() and j4_outcome_name() come from common/status.c; the
 * table at the end makes sure the linker keeps them in the binary even
 * though no executor code calls them.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "clock.h"
#include "duration.h"
#include "log.h"
#include "runtime.h"
#include "worker.h"

/* Lines a worker, and all workers of a run, may log per second before
 * the rest are only counted. */
#define WORKER_LINES_PER_SEC 10
#define RUN_LINES_PER_SEC 50

J4_EXPORT uint64_t j4_worker_id(const j4_worker_t *w)
{
    return w->number;
}

J4_EXPORT int64_t j4_scenario_id(const j4_worker_t *w)
{
    return w->ctx->scenario_id;
}

J4_EXPORT const char *j4_scenario_name(const j4_worker_t *w)
{
    return w->ctx->name;
}

J4_EXPORT const char *j4_params_json(const j4_worker_t *w)
{
    return w->ctx->params_text;
}

static json_t *param(const j4_worker_t *w, const char *key)
{
    if (!w->ctx->params || !key)
        return NULL;
    return json_object_get(w->ctx->params, key);
}

J4_EXPORT const char *j4_param_str(const j4_worker_t *w, const char *key,
                                   const char *def)
{
    json_t *v = param(w, key);

    return json_is_string(v) ? json_string_value(v) : def;
}

J4_EXPORT int64_t j4_param_int(const j4_worker_t *w, const char *key,
                               int64_t def)
{
    json_t *v = param(w, key);

    return json_is_integer(v) ? (int64_t)json_integer_value(v) : def;
}

J4_EXPORT int64_t j4_param_duration_ms(const j4_worker_t *w, const char *key,
                                       int64_t def)
{
    json_t *v = param(w, key);
    int64_t ms;

    if (!json_is_string(v) || duration_parse(json_string_value(v), &ms))
        return def;
    return ms;
}

/* The stop flag, or, for a routine, the halt of a failed init. */
static int must_stop(const j4_worker_t *w)
{
    return atomic_load_explicit(&w->stop, memory_order_relaxed) ||
           atomic_load_explicit(&w->routines_halt, memory_order_relaxed);
}

J4_EXPORT int j4_should_stop(const j4_worker_t *w)
{
    return must_stop(w);
}

/* Sleeps longer than this are "until stopped" (and cannot overflow). */
#define SLEEP_MAX_MS (INT64_C(1) << 40)

J4_EXPORT int j4_sleep(j4_worker_t *w, int64_t ms)
{
    int64_t deadline = ms >= SLEEP_MAX_MS
                           ? INT64_MAX
                           : clock_mono_us() + (ms > 0 ? ms : 0) * 1000;

    /* Woken early by a stop (or by nothing in particular): check why. */
    while (!must_stop(w) && fiber_wait_until(deadline) != 0)
        ;
    return must_stop(w) ? J4_ERR_STOPPED : J4_OK;
}

/* Counts the line against the worker's budget and the run's for this
 * second. Returns non-zero when it may be written. */
static int log_allowed(j4_worker_t *w)
{
    struct run_ctx *ctx = w->ctx;
    int64_t second = clock_mono_ms() / 1000;
    int64_t seen = atomic_load(&ctx->log_second);

    if (seen != second &&
        atomic_compare_exchange_strong(&ctx->log_second, &seen, second)) {
        atomic_store(&ctx->log_lines, 0);
        sdk_log_flush(ctx);
    }
    if (w->log_second != second) {
        w->log_second = second;
        w->log_lines = 0;
    }
    if (w->log_lines >= WORKER_LINES_PER_SEC ||
        atomic_fetch_add(&ctx->log_lines, 1) >= RUN_LINES_PER_SEC) {
        atomic_fetch_add(&ctx->log_dropped, 1);
        return 0;
    }
    w->log_lines++;
    return 1;
}

void sdk_log_flush(struct run_ctx *ctx)
{
    unsigned long n = atomic_exchange(&ctx->log_dropped, 0);

    if (n)
        log_warn("scenario %lld '%s': %lu log lines suppressed",
                 (long long)ctx->scenario_id, ctx->name, n);
}

J4_EXPORT void j4_log(j4_worker_t *w, j4_log_level level, const char *fmt, ...)
{
    char text[1024];
    va_list ap;

    if (!w || !fmt || !log_allowed(w))
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    log_msg(level, "scenario %lld '%s' worker %llu: %s",
            (long long)w->ctx->scenario_id, w->ctx->name,
            (unsigned long long)w->number, text);
}

J4_EXPORT void j4_record(j4_worker_t *w, j4_outcome outcome,
                         uint64_t latency_us)
{
    worker_stats_record(&w->stats, outcome, sdk_value_us(latency_us));
}

J4_EXPORT uint64_t j4_now_us(void)
{
    return (uint64_t)clock_mono_us();
}

/* Keeps common/status.c's SDK functions linked into the executor. */
__attribute__((used)) static const void *const sdk_status_functions[] = {
    (const void *)j4_strerror,
    (const void *)j4_outcome_name,
};
