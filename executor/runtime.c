/*
 * runtime.c - runs, their workers, and reconciling them to the schedule.
 *
 * A run is one scenario share. Its workers live in two lists: "active"
 * (in start order, so the newest is last and is the first to stop) and
 * "stopping" (told to stop, not yet exited). Only the owning thread
 * touches the lists. Workers are fibers on the scheduler's loops
 * (scheduler.h); a worker signals its exit through an atomic flag and
 * runtime_wake(), and the owner drains its last statistics into the
 * run's delta and frees it. A run is freed once nobody wants it any
 * more and it is drained: no worker alive and every sample acknowledged.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "runtime.h"
#include "sdk_pool.h"
#include "split.h"
#include "worker.h"

/* Address space per worker fiber; only the pages a worker touches become
 * resident (a few KiB for most scenarios). Sanitizers need more room. */
#if defined(__SANITIZE_ADDRESS__)
#define WORKER_STACK (1024 * 1024)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WORKER_STACK (1024 * 1024)
#endif
#endif
#ifndef WORKER_STACK
#define WORKER_STACK (256 * 1024)
#endif

/* A worker whose init failed tries again after this long. */
#define INIT_RETRY_MS 1000

/* Workers started per reconcile pass: the owner gets control back to
 * heartbeat and check the lease while thousands start. */
#define START_BATCH 512

struct worker_list {
    struct j4_worker **items;
    uint32_t count, cap;
};

struct run {
    struct run *next;
    struct run_ctx ctx;
    char *plugin;
    char error[512];
    int desired; /* in the last desired set */
    int seen;    /* scratch for runtime_set_shares */
    int64_t start_ms;
    struct schedule schedule;
    uint32_t slot, slots;
    uint32_t want; /* share computed at last reconcile */
    struct worker_list active, stopping;
    struct stats_delta acc; /* drained, not yet taken */
    struct series_names *names; /* request and metric names, bounded */
    uint64_t pending_seq;   /* report holding its data, 0: none */
    int capacity_warned;
};

struct runtime {
    const struct plugin_set *plugins;
    struct sched *sched;
    uint32_t capacity;
    struct run *runs;
    _Atomic int64_t lease_mono_ms;
    int shutdown;
    int changed;

    pthread_mutex_t wait_lock;
    pthread_cond_t wait_cond;
    int wake_pending;

    int64_t watch_ms;   /* last look at the worker threads */
    int stuck_warned;   /* a warning for the current episode was logged */
};

/* A worker thread stuck this long in one worker earns a warning. */
#define STUCK_WARN_US (2 * 1000 * 1000)

/* ------------------------------------------------------------ helpers */

static void cond_init_monotonic(pthread_cond_t *cond)
{
    pthread_condattr_t attr;

    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
}

static void timespec_at_mono_ms(struct timespec *ts, int64_t mono_ms)
{
    ts->tv_sec = (time_t)(mono_ms / 1000);
    ts->tv_nsec = (long)(mono_ms % 1000) * 1000000L;
}

static int list_push(struct worker_list *l, struct j4_worker *w)
{
    if (l->count == l->cap) {
        uint32_t cap = l->cap ? l->cap * 2 : 16;
        struct j4_worker **grown = realloc(l->items, cap * sizeof(*grown));

        if (!grown)
            return J4_ERR_NOMEM;
        l->items = grown;
        l->cap = cap;
    }
    l->items[l->count++] = w;
    return J4_OK;
}

static uint32_t run_alive(const struct run *run)
{
    return run->active.count + run->stopping.count;
}

static int run_drained(const struct run *run)
{
    return run_alive(run) == 0 && stats_delta_empty(&run->acc) &&
           run->pending_seq == 0;
}

/* ------------------------------------------------------------ workers */

void worker_request_stop(struct j4_worker *w)
{
    struct sched *sched = w->ctx->rt->sched;

    if (!atomic_load(&w->stop)) {
        atomic_store(&w->stop_us, clock_mono_us());
        atomic_store(&w->stop, 1);
    }
    fiber_wake(sched, w->fiber);
    for (unsigned i = 0; i < J4_ROUTINES_MAX; i++) {
        fiber_handle h = atomic_load(&w->routine_fibers[i]);

        if (h)
            fiber_wake(sched, h);
    }
}

struct sched *worker_sched(const struct j4_worker *w)
{
    return w->ctx->rt->sched;
}

int64_t worker_abort_at_us(const struct j4_worker *w)
{
    if (!atomic_load(&w->stop))
        return INT64_MAX;
    return atomic_load(&w->stop_us) + w->ctx->grace_ms * 1000;
}

int64_t worker_grace_left_us(const struct j4_worker *w)
{
    int64_t at = worker_abort_at_us(w);

    return at == INT64_MAX ? INT64_MAX : at - clock_mono_us();
}

/* Between iterations: the stop flag, then the lease. */
static int worker_should_end(struct j4_worker *w)
{
    if (atomic_load_explicit(&w->stop, memory_order_relaxed))
        return 1;
    if (clock_mono_ms() >= atomic_load(&w->ctx->rt->lease_mono_ms)) {
        worker_request_stop(w);
        return 1;
    }
    return 0;
}

static void worker_main(void *arg)
{
    struct j4_worker *w = arg;
    const j4_scenario_t *sc = w->ctx->scenario;
    struct runtime *rt = w->ctx->rt;
    void *state = NULL;
    int ready = 0;

    fiber_set_local(&w->fiber_data);
    while (!worker_should_end(w)) {
        if (!ready) {
            if (sc->init && sc->init(w, &state) != 0) {
                worker_stats_iteration(&w->stats, 1);
                state = NULL;
                sdk_routines_join(w);
                sdk_pool_worker_release(w); /* what init took goes back */
                j4_sleep(w, INIT_RETRY_MS);
                continue;
            }
            ready = 1;
            continue;
        }
        worker_stats_iteration(&w->stats, sc->step(w, state) != 0);
        fiber_yield_if_busy(); /* a step that never waits */
    }
    sdk_routines_join(w);
    if (ready && sc->fini)
        sc->fini(w, state);
    sdk_pool_worker_release(w);
    sdk_worker_release(w);

    atomic_store(&w->exited, 1);
    runtime_wake(rt);
}

static void worker_free(struct j4_worker *w)
{
    worker_stats_release(&w->stats);
    free(w);
}

/* Starts worker number index of run. Returns J4_OK or an error. */
static int worker_start(struct run *run, uint32_t index)
{
    struct j4_worker *w = calloc(1, sizeof(*w));

    if (!w)
        return J4_ERR_NOMEM;
    w->ctx = &run->ctx;
    w->index = index;
    w->number = split_worker_number(run->slot, run->slots, index);
    sdk_worker_init(w);
    worker_stats_init(&w->stats);
    w->stats.names = run->names;

    if (list_push(&run->active, w) != J4_OK)
        goto out_free;
    w->fiber = sched_spawn(run->ctx.rt->sched, -1, worker_main, w);
    if (w->fiber)
        return J4_OK;
    run->active.count--;
    log_error("unable to start a worker for scenario %lld: out of memory "
              "or address space", (long long)run->ctx.scenario_id);
out_free:
    worker_free(w);
    return J4_ERR_IO;
}

/* Tells the newest active worker to stop and moves it to stopping. */
static int worker_stop_newest(struct run *run)
{
    struct j4_worker *w = run->active.items[run->active.count - 1];

    if (list_push(&run->stopping, w) != J4_OK)
        return J4_ERR_NOMEM;
    run->active.count--;
    worker_request_stop(w);
    return J4_OK;
}

/* Joins exited workers, and moves active ones that stopped themselves
 * (lease) to the stopping list. */
static int run_reap(struct run *run)
{
    uint32_t kept = 0;
    int changed = 0;

    for (uint32_t i = 0; i < run->active.count; i++) {
        struct j4_worker *w = run->active.items[i];

        if (atomic_load(&w->stop) && list_push(&run->stopping, w) == J4_OK)
            continue;
        run->active.items[kept++] = w;
    }
    run->active.count = kept;

    kept = 0;
    for (uint32_t i = 0; i < run->stopping.count; i++) {
        struct j4_worker *w = run->stopping.items[i];

        if (!atomic_load(&w->exited)) {
            run->stopping.items[kept++] = w;
            continue;
        }
        stats_drain(&w->stats, &run->acc);
        worker_free(w);
        changed = 1;
    }
    run->stopping.count = kept;
    return changed;
}

/* --------------------------------------------------------------- runs */

static void run_set_error(struct run *run, const struct runtime *rt)
{
    char names[512];

    if (!plugin_name_ok(run->plugin)) {
        snprintf(run->error, sizeof(run->error),
                 "scenario plugin name '%.64s' is not [a-z0-9_]{1,64}",
                 run->plugin);
    } else if (!run->ctx.scenario) {
        plugin_set_names(rt->plugins, names, sizeof(names));
        snprintf(run->error, sizeof(run->error),
                 "scenario plugin '%.64s' is not in %.200s (have: %.200s)",
                 run->plugin, rt->plugins->dir, names);
    } else if (!run->ctx.params) {
        snprintf(run->error, sizeof(run->error),
                 "params of scenario %lld are not a JSON object",
                 (long long)run->ctx.scenario_id);
    }
}

static struct run *run_new(struct runtime *rt, const struct run_share *sh)
{
    const char *params =
        sh->params_json && *sh->params_json ? sh->params_json : "{}";
    struct run *run = calloc(1, sizeof(*run));

    if (!run)
        return NULL;
    run->ctx.rt = rt;
    run->ctx.scenario_id = sh->scenario_id;
    run->ctx.name = strdup(sh->name ? sh->name : "");
    run->ctx.params_text = strdup(params);
    run->plugin = strdup(sh->plugin ? sh->plugin : "");
    if (!run->ctx.name || !run->ctx.params_text || !run->plugin) {
        free(run->ctx.name);
        free(run->ctx.params_text);
        free(run->plugin);
        free(run);
        return NULL;
    }
    run->ctx.params = json_loads(params, JSON_REJECT_DUPLICATES, NULL);
    if (run->ctx.params && !json_is_object(run->ctx.params)) {
        json_decref(run->ctx.params);
        run->ctx.params = NULL;
    }
    run->ctx.grace_ms = sh->grace_ms;
    if (plugin_name_ok(run->plugin))
        run->ctx.scenario = plugin_set_find(rt->plugins, run->plugin);
    stats_delta_init(&run->acc);
    run->names = series_names_new();
    if (!run->names)
        abort(); /* a service may abort on out-of-memory */
    run_set_error(run, rt);
    if (run->error[0])
        log_error("scenario %lld '%s' refused: %s", (long long)sh->scenario_id,
                  run->ctx.name, run->error);
    return run;
}

static void run_free(struct run *run)
{
    if (run->ctx.setup_done && run->ctx.scenario->teardown)
        run->ctx.scenario->teardown(run->ctx.shared);
    sdk_log_flush(&run->ctx);
    free(run->active.items);
    free(run->stopping.items);
    json_decref(run->ctx.params);
    free(run->ctx.name);
    free(run->ctx.params_text);
    free(run->plugin);
    stats_delta_release(&run->acc);
    series_names_free(run->names);
    free(run);
}

static struct run *run_find(struct runtime *rt, int64_t scenario_id)
{
    for (struct run *run = rt->runs; run; run = run->next) {
        if (run->ctx.scenario_id == scenario_id)
            return run;
    }
    return NULL;
}

static int schedule_equal(const struct schedule *a, const struct schedule *b)
{
    return a->target == b->target && a->rampup_step == b->rampup_step &&
           a->rampup_interval_ms == b->rampup_interval_ms &&
           a->rampup_exponential == b->rampup_exponential &&
           a->hold_ms == b->hold_ms && a->rampdown_step == b->rampdown_step &&
           a->rampdown_interval_ms == b->rampdown_interval_ms;
}

/* Copies the share's placement into run; logs when it changed. */
static void run_update(struct run *run, const struct run_share *sh, int fresh)
{
    uint32_t slots = sh->slots ? sh->slots : 1;
    uint32_t slot = sh->slot < slots ? sh->slot : slots - 1;
    int moved = fresh || !run->desired || run->slot != slot ||
                run->slots != slots || run->start_ms != sh->start_ms ||
                !schedule_equal(&run->schedule, &sh->schedule);

    run->desired = 1;
    run->start_ms = sh->start_ms;
    run->schedule = sh->schedule;
    run->slot = slot;
    run->slots = slots;
    if (moved && !run->error[0])
        log_info("scenario %lld '%s' (%s): share applied, slot %u of %u, "
                 "%u of %u workers at full target",
                 (long long)run->ctx.scenario_id, run->ctx.name, run->plugin,
                 run->slot, run->slots,
                 split_share(run->schedule.target, run->slot, run->slots),
                 run->schedule.target);
}

/* ------------------------------------------------------------ runtime */

/* The stack size asked for, else J4_STACK_KIB, else the default. */
static size_t stack_bytes(unsigned kib)
{
    const char *env = getenv("J4_STACK_KIB");
    char *end;
    unsigned long n;

    if (kib)
        return (size_t)kib * 1024;
    if (!env || !*env)
        return WORKER_STACK;
    errno = 0;
    n = strtoul(env, &end, 10);
    if (errno || *end || n < RUNTIME_STACK_KIB_MIN ||
        n > RUNTIME_STACK_KIB_MAX) {
        log_warn("ignoring J4_STACK_KIB '%.32s': expected %d to %d; using "
                 "%d KiB", env, RUNTIME_STACK_KIB_MIN, RUNTIME_STACK_KIB_MAX,
                 WORKER_STACK / 1024);
        return WORKER_STACK;
    }
    return (size_t)n * 1024;
}

struct runtime *runtime_new(const struct plugin_set *plugins,
                            uint32_t capacity, unsigned threads,
                            unsigned stack_kib)
{
    struct runtime *rt = calloc(1, sizeof(*rt));

    if (!rt)
        return NULL;
    if (sdk_global_init() != J4_OK) {
        log_error("unable to initialise libcurl");
        free(rt);
        return NULL;
    }
    rt->sched = sched_new(threads, stack_bytes(stack_kib));
    if (!rt->sched) {
        log_error("unable to start the worker threads");
        sdk_global_cleanup();
        free(rt);
        return NULL;
    }
    rt->plugins = plugins;
    rt->capacity = capacity;
    atomic_init(&rt->lease_mono_ms, INT64_MAX);
    pthread_mutex_init(&rt->wait_lock, NULL);
    cond_init_monotonic(&rt->wait_cond);
    return rt;
}

void runtime_set_shares(struct runtime *rt, const struct run_share *shares,
                        size_t count)
{
    for (struct run *run = rt->runs; run; run = run->next)
        run->seen = 0;

    for (size_t i = 0; i < count; i++) {
        struct run *run = run_find(rt, shares[i].scenario_id);
        int fresh = 0;

        if (!run) {
            run = run_new(rt, &shares[i]);
            if (!run) {
                log_error("out of memory for scenario %lld",
                          (long long)shares[i].scenario_id);
                continue;
            }
            run->next = rt->runs;
            rt->runs = run;
            fresh = 1;
        }
        run->seen = 1;
        run_update(run, &shares[i], fresh);
    }

    for (struct run *run = rt->runs; run; run = run->next) {
        if (!run->seen && run->desired) {
            log_info("scenario %lld '%s': share removed, stopping %u workers",
                     (long long)run->ctx.scenario_id, run->ctx.name,
                     run->active.count);
            run->desired = 0;
        }
    }
}

void runtime_set_lease(struct runtime *rt, int64_t deadline_mono_ms)
{
    atomic_store(&rt->lease_mono_ms, deadline_mono_ms);
}

int runtime_lease_valid(const struct runtime *rt, int64_t now_mono_ms)
{
    return now_mono_ms < atomic_load(&rt->lease_mono_ms);
}

void runtime_stop_all(struct runtime *rt)
{
    rt->shutdown = 1;
}

static int64_t min_delay(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* The share run plays at now_ms; lowers *next to the next step's delay. */
static uint32_t run_want(const struct runtime *rt, const struct run *run,
                         int64_t now_ms, int lease_ok, int64_t *next)
{
    int64_t t, change;

    if (!run->desired || run->error[0] || rt->shutdown || !lease_ok)
        return 0;
    t = now_ms - run->start_ms;
    change = schedule_next_change_ms(&run->schedule, t);
    if (change != INT64_MAX && change - t < *next)
        *next = change - t;
    return split_share(schedule_planned(&run->schedule, t), run->slot,
                       run->slots);
}

/* Calls the descriptor's setup() once, before the run's first worker.
 * Returns J4_OK, or marks the run refused and returns the error. */
static int run_setup(struct run *run)
{
    const j4_scenario_t *sc = run->ctx.scenario;
    int rc;

    if (run->ctx.setup_done)
        return J4_OK;
    rc = sc->setup ? sc->setup(run->ctx.params_text, &run->ctx.shared) : 0;
    if (rc != 0) {
        snprintf(run->error, sizeof(run->error),
                 "setup of scenario plugin '%.64s' failed: %s (%d)",
                 run->plugin, j4_strerror(rc), rc);
        log_error("scenario %lld '%s' refused: %s",
                  (long long)run->ctx.scenario_id, run->ctx.name, run->error);
        run->want = 0;
        return rc;
    }
    run->ctx.setup_done = 1;
    return J4_OK;
}

/* Starts workers up to run->want within *budget and *batch. Returns
 * non-zero when it stopped short and should be called again soon. */
static int run_grow(struct runtime *rt, struct run *run, uint32_t *budget,
                    uint32_t *batch)
{
    if (run->active.count < run->want && run_setup(run) != J4_OK)
        return 0;
    while (run->active.count < run->want) {
        if (*budget == 0) {
            if (!run->capacity_warned)
                log_warn("scenario %lld: capacity %u reached, running %u "
                         "of %u workers",
                         (long long)run->ctx.scenario_id, rt->capacity,
                         run->active.count, run->want);
            run->capacity_warned = 1;
            return 0;
        }
        if (*batch == 0)
            return 1;
        if (worker_start(run, run->active.count) != J4_OK)
            return 1;
        (*budget)--;
        (*batch)--;
        rt->changed = 1;
    }
    return 0;
}

/* Frees runs nobody wants any more once they are drained. */
static void remove_drained(struct runtime *rt)
{
    struct run **link = &rt->runs;

    while (*link) {
        struct run *run = *link;

        if (!run->desired && run_drained(run)) {
            *link = run->next;
            log_debug("scenario %lld drained and removed",
                      (long long)run->ctx.scenario_id);
            run_free(run);
            continue;
        }
        link = &run->next;
    }
}

/* Once a second: warns when a worker thread has been stuck in one
 * worker, which stalls every other worker of that thread. */
static void watch_threads(struct runtime *rt)
{
    int64_t now = clock_mono_ms(), us;
    unsigned loop;

    if (now - rt->watch_ms < 1000)
        return;
    rt->watch_ms = now;
    us = runtime_stuck_us(rt, &loop);
    if (us < STUCK_WARN_US) {
        rt->stuck_warned = 0;
        return;
    }
    if (rt->stuck_warned)
        return;
    rt->stuck_warned = 1;
    log_warn("worker thread %u has been inside one worker for %.1f s, "
             "which stalls the other workers of that thread: a scenario "
             "blocks it (sleep(), a blocking socket or library call; wrap "
             "such calls in j4_blocking())", loop, (double)us / 1e6);
}

int64_t runtime_reconcile(struct runtime *rt, int64_t now_ms)
{
    int lease_ok = runtime_lease_valid(rt, clock_mono_ms());
    int64_t next = INT64_MAX;
    uint32_t active = 0, budget, batch = START_BATCH;
    int retry = 0;

    for (struct run *run = rt->runs; run; run = run->next) {
        if (run_reap(run))
            rt->changed = 1;
        run->want = run_want(rt, run, now_ms, lease_ok, &next);
        while (run->active.count > run->want) {
            if (worker_stop_newest(run) != J4_OK)
                break;
            rt->changed = 1;
        }
        active += run->active.count;
    }

    budget = active < rt->capacity ? rt->capacity - active : 0;
    for (struct run *run = rt->runs; run; run = run->next)
        retry |= run_grow(rt, run, &budget, &batch);
    remove_drained(rt);
    watch_threads(rt);
    if (retry)
        next = batch == 0 ? 0 : min_delay(next, 1000);
    return next;
}

uint32_t runtime_alive(const struct runtime *rt)
{
    uint32_t n = 0;

    for (const struct run *run = rt->runs; run; run = run->next)
        n += run_alive(run);
    return n;
}

int runtime_take_changed(struct runtime *rt)
{
    int changed = rt->changed;

    rt->changed = 0;
    return changed;
}

size_t runtime_statuses(struct runtime *rt, struct run_status **out)
{
    size_t n = 0, i = 0;

    for (struct run *run = rt->runs; run; run = run->next)
        n++;
    *out = n ? calloc(n, sizeof(**out)) : NULL;
    if (!*out)
        return 0;
    for (struct run *run = rt->runs; run; run = run->next, i++) {
        (*out)[i].scenario_id = run->ctx.scenario_id;
        (*out)[i].planned = run->want;
        (*out)[i].running = run_alive(run);
        (*out)[i].drained = run_drained(run);
        snprintf((*out)[i].error, sizeof((*out)[i].error), "%s", run->error);
    }
    return n;
}

void runtime_drain(struct runtime *rt)
{
    for (struct run *run = rt->runs; run; run = run->next) {
        for (uint32_t i = 0; i < run->active.count; i++)
            stats_drain(&run->active.items[i]->stats, &run->acc);
        for (uint32_t i = 0; i < run->stopping.count; i++)
            stats_drain(&run->stopping.items[i]->stats, &run->acc);
    }
}

int runtime_has_data(const struct runtime *rt)
{
    for (const struct run *run = rt->runs; run; run = run->next) {
        if (!stats_delta_empty(&run->acc))
            return 1;
    }
    return 0;
}

size_t runtime_take_deltas(struct runtime *rt, uint64_t seq,
                           struct run_delta **out)
{
    size_t n = 0, i = 0;

    for (struct run *run = rt->runs; run; run = run->next)
        n += !stats_delta_empty(&run->acc);
    *out = n ? malloc(n * sizeof(**out)) : NULL;
    if (!*out)
        return 0;
    for (struct run *run = rt->runs; run; run = run->next) {
        if (stats_delta_empty(&run->acc))
            continue;
        (*out)[i].scenario_id = run->ctx.scenario_id;
        memcpy(&(*out)[i].stats, &run->acc, sizeof(run->acc));
        stats_delta_init(&run->acc);
        run->pending_seq = seq;
        i++;
    }
    return n;
}

int runtime_acked(struct runtime *rt, uint64_t seq)
{
    int drained = 0;

    for (struct run *run = rt->runs; run; run = run->next) {
        if (run->pending_seq && run->pending_seq <= seq) {
            run->pending_seq = 0;
            drained |= run_drained(run);
        }
    }
    return drained;
}

int64_t runtime_max_grace_ms(const struct runtime *rt)
{
    int64_t grace = 0;

    for (const struct run *run = rt->runs; run; run = run->next) {
        if (run->ctx.grace_ms > grace)
            grace = run->ctx.grace_ms;
    }
    return grace;
}

void runtime_wait(struct runtime *rt, int64_t deadline_mono_ms)
{
    struct timespec ts;

    timespec_at_mono_ms(&ts, deadline_mono_ms);
    pthread_mutex_lock(&rt->wait_lock);
    while (!rt->wake_pending && clock_mono_ms() < deadline_mono_ms) {
        if (pthread_cond_timedwait(&rt->wait_cond, &rt->wait_lock, &ts) ==
            ETIMEDOUT)
            break;
    }
    rt->wake_pending = 0;
    pthread_mutex_unlock(&rt->wait_lock);
}

void runtime_wake(struct runtime *rt)
{
    pthread_mutex_lock(&rt->wait_lock);
    rt->wake_pending = 1;
    pthread_cond_signal(&rt->wait_cond);
    pthread_mutex_unlock(&rt->wait_lock);
}

void runtime_free(struct runtime *rt)
{
    if (!rt)
        return;
    runtime_stop_all(rt);
    runtime_reconcile(rt, 0);
    while (runtime_alive(rt)) {
        runtime_wait(rt, clock_mono_ms() + 100);
        runtime_reconcile(rt, 0);
    }
    while (rt->runs) {
        struct run *run = rt->runs;

        rt->runs = run->next;
        run_free(run);
    }
    sched_free(rt->sched);
    pthread_cond_destroy(&rt->wait_cond);
    pthread_mutex_destroy(&rt->wait_lock);
    free(rt);
    sdk_global_cleanup();
}

int64_t runtime_stuck_us(struct runtime *rt, unsigned *loop)
{
    int64_t worst = 0;

    *loop = 0;
    for (unsigned i = 0; i < sched_loops(rt->sched); i++) {
        int64_t us = sched_loop_stuck_us(rt->sched, i);

        if (us > worst) {
            worst = us;
            *loop = i;
        }
    }
    return worst;
}
