/*
 * run.c - `j4 run`: a scenario played locally by the executor's runtime.
 *
 * The same runtime that j4-executor drives from NATS is driven here by a
 * loop on this thread: one share holding slot 0 of 1, starting now. Its
 * statistics deltas are taken and acknowledged at once and summed into
 * totals, from which this file builds the same scenario object the REST
 * API serves, so the live view and the final report are the ones
 * `j4 submit --wait` shows. A plugin that works here runs unchanged on
 * the cluster.
 */
#include "run.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "clock.h"
#include "hist.h"
#include "hist_json.h"
#include "log.h"
#include "plugin.h"
#include "runtime.h"
#include "spec.h"
#include "view.h"

/* Statistics of the whole run, and of the last second for the rate. */
struct totals {
    uint64_t outcomes[J4_OUTCOME_COUNT_];
    uint64_t iterations, iteration_errors;
    struct hist latency;
    uint64_t window_requests;
    int64_t window_start_ms;
    double rps;
};

struct local {
    struct spec spec;
    struct plugin_set plugins;
    struct runtime *rt;
    struct totals totals;
    struct view view;
    int64_t start_ms, end_ms;   /* wall ms of t = 0 and of the last step */
    int64_t ended_ms;
    uint32_t peak;              /* most workers seen running */
    uint32_t stuck;             /* workers that never stopped */
    const char *state;
    char reason[600];
};

/* The id the local run's one scenario has in the log, in the SDK's
 * j4_scenario_id() and in the report. */
#define LOCAL_SCENARIO_ID 1

/* A worker that talks holds about one descriptor (its connection); the
 * rest of the process (plugins, libraries, the event loops) a few dozen. */
#define DESCRIPTORS_PER_WORKER 1
#define DESCRIPTORS_SPARE 64

static volatile sig_atomic_t stop_signal;

/* A run whose workers never stopped, left for the process exit. */
static struct local *abandoned;

/* The first signal stops the workers (within the grace period); a
 * second one leaves at once. */
static void on_signal(int sig)
{
    if (stop_signal)
        _exit(128 + sig);
    stop_signal = sig;
}

void catch_stop_signals(void (*handler)(int))
{
    struct sigaction old;

    signal(SIGINT, handler);
    signal(SIGTERM, handler);
    /* Under nohup the hangup is ignored on purpose: keep it so. */
    if (sigaction(SIGHUP, NULL, &old) == 0 && old.sa_handler == SIG_IGN)
        return;
    signal(SIGHUP, handler);
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    default: return "a signal";
    }
}

/* Takes every descriptor the hard limit allows and returns the soft
 * limit now in force (RLIM_INFINITY when unknown or unlimited). */
static rlim_t raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return RLIM_INFINITY;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t soft = rl.rlim_cur;

        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = soft;
    }
    return rl.rlim_cur;
}

/* Warns when the workers this run may start need more descriptors than
 * the limit allows: they would fail to connect, not to start. */
static void check_fd_limit(rlim_t limit, uint32_t workers)
{
    uint64_t need = (uint64_t)workers * DESCRIPTORS_PER_WORKER +
                    DESCRIPTORS_SPARE;

    if (limit == RLIM_INFINITY || need <= limit)
        return;
    fprintf(stderr, "j4: warning: descriptor limit %llu may not suffice "
                    "for %u workers (about %d per worker plus %d): raise "
                    "it with 'ulimit -n'\n",
            (unsigned long long)limit, workers, DESCRIPTORS_PER_WORKER,
            DESCRIPTORS_SPARE);
}

static uint64_t totals_requests(const struct totals *t)
{
    uint64_t n = 0;

    for (int i = 0; i < J4_OUTCOME_COUNT_; i++)
        n += t->outcomes[i];
    return n;
}

static void totals_add(struct totals *t, const struct stats_delta *d)
{
    for (int i = 0; i < J4_OUTCOME_COUNT_; i++)
        t->outcomes[i] += d->outcomes[i];
    t->iterations += d->iterations;
    t->iteration_errors += d->iteration_errors;
    hist_merge(&t->latency, &d->latency);
}

/* Takes what workers recorded and acknowledges it at once: there is no
 * one to ship it to. */
static void collect(struct local *l, uint64_t *seq)
{
    struct run_delta *deltas;
    size_t n;

    runtime_drain(l->rt);
    n = runtime_take_deltas(l->rt, ++*seq, &deltas);
    for (size_t i = 0; i < n; i++) {
        totals_add(&l->totals, &deltas[i].stats);
        stats_delta_release(&deltas[i].stats);
    }
    free(deltas);
    runtime_acked(l->rt, *seq);
}

static void update_rate(struct totals *t, int64_t now)
{
    uint64_t requests = totals_requests(t);

    if (now - t->window_start_ms < 1000)
        return;
    t->rps = (requests - t->window_requests) * 1000.0 /
             (double)(now - t->window_start_ms);
    t->window_requests = requests;
    t->window_start_ms = now;
}

static json_t *metrics_json(const struct local *l, int ended)
{
    const struct totals *t = &l->totals;
    uint64_t requests = totals_requests(t);
    uint64_t errors = requests - t->outcomes[J4_OUTCOME_OK];
    json_t *outcomes = json_object();
    double seconds = ((ended ? l->ended_ms : clock_wall_ms()) -
                      l->start_ms) / 1000.0;

    for (int i = 0; i < J4_OUTCOME_COUNT_; i++) {
        if (t->outcomes[i])
            json_object_set_new(outcomes, j4_outcome_name(i),
                                json_integer((json_int_t)t->outcomes[i]));
    }
    return json_pack("{s:I, s:I, s:f, s:o, s:f, s:I, s:I, s:o}",
                     "requests", (json_int_t)requests,
                     "errors", (json_int_t)errors,
                     "error_rate", requests ? (double)errors / requests : 0.0,
                     "outcomes", outcomes,
                     "rps", ended ? (seconds > 0 ? requests / seconds : 0.0)
                                  : t->rps,
                     "iterations", (json_int_t)t->iterations,
                     "iteration_errors", (json_int_t)t->iteration_errors,
                     "latency_ms", hist_latency_json(&t->latency));
}

static json_t *time_json(int64_t wall_ms)
{
    char buf[32];

    if (wall_ms <= 0)
        return json_null();
    clock_format_wall(wall_ms, buf, sizeof(buf));
    return json_string(buf);
}

/* The scenario object in the REST API's shape (docs/architecture.md). */
static json_t *scenario_json(struct local *l, int ended)
{
    int64_t t = clock_wall_ms() - l->start_ms;
    uint32_t planned = ended ? 0 : schedule_planned(&l->spec.schedule, t);
    uint32_t running = runtime_alive(l->rt);
    const char *phase = ended ? "done"
                        : stop_signal ? "stopping"
                        : phase_name(schedule_phase(&l->spec.schedule, t));

    return json_pack(
        "{s:i, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:i, s:i, s:[{s:s, s:i,"
        " s:i, s:i, s:i}], s:o, s:o}",
        "id", LOCAL_SCENARIO_ID, "name", l->spec.name,
        "scenario", l->spec.scenario,
        "state", l->state, "phase", phase,
        "reason", l->reason[0] ? json_string(l->reason) : json_null(),
        "started_at", time_json(l->start_ms),
        "ended_at", time_json(ended ? l->ended_ms : 0),
        "planned", (int)planned, "running", (int)running,
        "executors", "id", "local", "slot", 0, "slots", 1,
        "planned", (int)planned, "running", (int)running,
        "metrics", metrics_json(l, ended),
        "spec", spec_to_json(&l->spec));
}

static int load_spec(const char *file, struct spec *spec)
{
    struct spec_error err;
    FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
    static char text[SPEC_PARAMS_MAX * 4];
    size_t len;
    int rc;

    if (f == NULL) {
        fprintf(stderr, "j4: unable to open '%s'\n", file);
        return -1;
    }
    len = fread(text, 1, sizeof(text), f);
    if (f != stdin)
        fclose(f);
    if (len == sizeof(text)) {
        fprintf(stderr, "j4: '%s' is larger than %zu bytes\n", file,
                sizeof(text) - 1);
        return -1;
    }
    rc = spec_parse_text(text, len, spec, &err);
    if (rc != J4_OK) {
        fprintf(stderr, "j4: '%s' refused: %s%s%s\n", file, err.field,
                err.field[0] ? ": " : "", err.rule);
        return -1;
    }
    return 0;
}

/* Non-zero when the run refused its share (unknown plugin, bad setup). */
static int share_refused(struct local *l)
{
    struct run_status *st;
    size_t n = runtime_statuses(l->rt, &st);
    int refused = 0;

    for (size_t i = 0; i < n; i++) {
        if (st[i].error[0]) {
            snprintf(l->reason, sizeof(l->reason), "%s", st[i].error);
            refused = 1;
        }
    }
    free(st);
    return refused;
}

static void start_share(struct local *l)
{
    struct run_share share = {
        .scenario_id = LOCAL_SCENARIO_ID,
        .name = l->spec.name,
        .plugin = l->spec.scenario,
        .params_json = l->spec.params_json,
        .start_ms = l->start_ms,
        .schedule = l->spec.schedule,
        .grace_ms = l->spec.grace_ms,
        .slot = 0,
        .slots = 1,
    };

    runtime_set_shares(l->rt, &share, 1);
}

/* Workers still alive this long after the grace period are stuck in the
 * plugin (an init, a step or a routine that ignores the stop): give up on
 * them. */
#define STUCK_MARGIN_MS 5000

/* Non-zero once the workers left have had their chance to stop. */
static int stop_overdue(struct local *l, int64_t now, int64_t stop_since)
{
    if (stop_since == 0 || now < stop_since + l->spec.grace_ms +
                                     STUCK_MARGIN_MS)
        return 0;
    l->stuck = runtime_alive(l->rt);
    snprintf(l->reason, sizeof(l->reason),
             "%u worker(s) did not stop within the grace period plus %d s: "
             "the plugin's init, step or a routine it started ignores "
             "j4_should_stop()",
             l->stuck, STUCK_MARGIN_MS / 1000);
    return 1;
}

/* Plays the schedule until its end (or a signal) and every worker left. */
static void play(struct local *l)
{
    int64_t next_view = 0, stop_since = 0;
    uint64_t seq = 0;
    int stopping = 0;

    for (;;) {
        int64_t now = clock_wall_ms();
        int64_t wait = runtime_reconcile(l->rt, now);
        uint32_t alive = runtime_alive(l->rt);

        collect(l, &seq);
        update_rate(&l->totals, now);
        if (alive > l->peak)
            l->peak = alive;
        if (share_refused(l)) {
            l->state = "failed";
            return;
        }
        if (stop_signal && !stopping) {
            stopping = 1;
            runtime_stop_all(l->rt);
            snprintf(l->reason, sizeof(l->reason), "interrupted by %s",
                     signal_name((int)stop_signal));
            continue;
        }
        if ((stopping || now >= l->end_ms) && alive == 0)
            return;
        if ((stopping || now >= l->end_ms) && stop_since == 0)
            stop_since = now;
        if (stop_overdue(l, now, stop_since)) {
            l->state = "failed";
            return;
        }
        if (now >= next_view) {
            json_t *s = scenario_json(l, 0);

            view_progress(&l->view, s);
            json_decref(s);
            next_view = now + (l->view.tty ? 250 : 1000);
        }
        if (wait > 100 || wait < 0)
            wait = 100;
        runtime_wait(l->rt, clock_mono_ms() + wait);
    }
}

/* Why a run that played its whole schedule still did not do its job:
 * fewer workers than the target, or nothing that succeeded. Returns 1 with
 * the reason in buf, or 0. */
static int shortfall(const struct local *l, char *buf, size_t size)
{
    const struct totals *t = &l->totals;
    uint64_t requests = totals_requests(t);

    if (l->peak < l->spec.schedule.target)
        snprintf(buf, size, "reached %u of %u workers", l->peak,
                 l->spec.schedule.target);
    else if (requests > 0 && t->outcomes[J4_OUTCOME_OK] == 0)
        snprintf(buf, size, "every request failed (%llu)",
                 (unsigned long long)requests);
    else if (requests == 0 && t->iterations > 0 &&
             t->iteration_errors == t->iterations)
        snprintf(buf, size, "every iteration failed (%llu)",
                 (unsigned long long)t->iterations);
    else
        return 0;
    return 1;
}

static int finish(struct local *l)
{
    json_t *s;
    int rc = 0;

    l->ended_ms = clock_wall_ms();
    if (strcmp(l->state, "failed") == 0) {
        rc = 1;
    } else if (stop_signal) {
        l->state = "stopped";
        rc = 1;
    } else {
        l->state = "finished";
        rc = shortfall(l, l->reason, sizeof(l->reason));
    }
    s = scenario_json(l, 1);
    view_report(&l->view, s);
    json_decref(s);
    return rc;
}

int run_local(const struct run_options *opts)
{
    struct local *l = calloc(1, sizeof(*l));
    rlim_t fd_limit = raise_fd_limit();
    int rc = 2;

    if (l == NULL)
        return 1;
    hist_init(&l->totals.latency);
    if (load_spec(opts->file, &l->spec))
        goto out_free;
    check_fd_limit(fd_limit, l->spec.schedule.target < opts->capacity
                                 ? l->spec.schedule.target
                                 : opts->capacity);
    rc = 1;
    if (plugin_set_load(&l->plugins, opts->plugins) != J4_OK) {
        fprintf(stderr, "j4: unable to load plugins from '%s'\n",
                opts->plugins);
        goto out_plugins;
    }
    l->rt = runtime_new(&l->plugins, opts->capacity, opts->threads, 0);
    if (l->rt == NULL)
        goto out_plugins;

    catch_stop_signals(on_signal);
    view_init(&l->view, stdout, opts->per_executor);
    l->state = "running";
    l->start_ms = clock_wall_ms() + 50;
    l->end_ms = l->start_ms + schedule_end_ms(&l->spec.schedule);
    l->totals.window_start_ms = l->start_ms;
    start_share(l);
    play(l);
    rc = finish(l);

    /* Joining stuck workers would hang: leave them, and what they may
     * still touch, to the process exit (kept reachable, not leaked). */
    if (l->stuck) {
        abandoned = l;
        return rc;
    }
    runtime_free(l->rt);
out_plugins:
    plugin_set_release(&l->plugins);
    spec_release(&l->spec);
out_free:
    free(l);
    return rc;
}
