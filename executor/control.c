/*
 * control.c - j4-executor's control thread.
 *
 * One loop owns everything that changes: it applies the newest desired
 * state from the mailbox (dropping stale epochs and versions), renews the
 * lease from the heartbeat the state answers, estimates the leader's
 * clock, reconciles the runtime on leader time, sends heartbeats (every
 * interval and ~20 ms after a running count changes) and keeps one
 * metrics report in flight until it is acknowledged. It then sleeps
 * exactly until the next thing it has to do, or until woken.
 */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "exec_prom.h"
#include "executor.h"
#include "log.h"
#include "series_wire.h"

#define REPORT_EVERY_MS 1000
#define RESEND_EVERY_MS 2000
#define HB_AFTER_CHANGE_MS 20
#define FINAL_FLUSH_MS 2000
#define STOP_SLACK_MS 10000
/* After the lease lapsed, the next heartbeat waits this long at most for
 * the stopping workers to exit, so that it does not claim them. */
#define LAPSE_HOLD_MAX_MS 1000

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* Leader wall time now, from our monotonic clock and the offset. */
static int64_t leader_at(const struct executor *ex, int64_t mono_ms)
{
    if (!ex->have_offset)
        return clock_wall_ms() + (mono_ms - clock_mono_ms());
    return mono_ms + ex->offset_ms;
}

/* ------------------------------------------------------ leader clock */

/* The leader stamped leader_wall_ms between our heartbeat leaving (echo)
 * and its answer arriving (recv); the middle is the best guess, and the
 * answer with the smallest round trip among the recent ones the best. */
static void clock_sample(struct executor *ex, const J4__DesiredState *ds,
                         int64_t recv_mono_ms)
{
    struct clock_sample *best = NULL;
    struct clock_sample *slot;

    if (ds->echo_mono_ms <= 0 || ds->echo_mono_ms > recv_mono_ms ||
        ds->leader_wall_ms <= 0)
        return;
    slot = &ex->samples[ex->next_sample];
    slot->rtt_ms = recv_mono_ms - ds->echo_mono_ms;
    slot->offset_ms =
        ds->leader_wall_ms - (ds->echo_mono_ms + recv_mono_ms) / 2;
    ex->next_sample = (ex->next_sample + 1) % CLOCK_SAMPLES;
    if (ex->n_samples < CLOCK_SAMPLES)
        ex->n_samples++;

    for (unsigned i = 0; i < ex->n_samples; i++) {
        if (!best || ex->samples[i].rtt_ms < best->rtt_ms)
            best = &ex->samples[i];
    }
    ex->offset_ms = best->offset_ms;
    ex->have_offset = 1;
}

/* ------------------------------------------------------ desired state */

/* The lease starts when the answered heartbeat was sent, so it always
 * ends before the leader's own view of it does. */
static void lease_renew(struct executor *ex, const J4__DesiredState *ds,
                        int64_t recv_mono_ms)
{
    int64_t until;

    if (ds->echo_mono_ms <= 0 || ds->echo_mono_ms > recv_mono_ms ||
        ds->lease_ms == 0)
        return;
    until = ds->echo_mono_ms + ds->lease_ms;
    if (until <= ex->lease_mono_ms)
        return;
    ex->lease_mono_ms = until;
    runtime_set_lease(ex->rt, until);
    if (!ex->lease_live && until > clock_mono_ms()) {
        log_info("lease from leader epoch %llu: %u ms",
                 (unsigned long long)ds->epoch, ds->lease_ms);
        ex->lease_live = 1;
    }
}

static void share_from(struct run_share *out, const J4__Share *sh)
{
    const J4__Schedule *s = sh->schedule;

    memset(out, 0, sizeof(*out));
    out->scenario_id = sh->scenario_id;
    out->name = sh->name;
    out->plugin = sh->plugin;
    out->params_json = sh->params_json;
    out->start_ms = sh->start_wall_ms;
    out->slot = sh->slot;
    out->slots = sh->slots;
    if (!s)
        return;
    out->schedule.target = s->target;
    out->schedule.rampup_step = s->rampup_step;
    out->schedule.rampup_interval_ms = s->rampup_interval_ms;
    out->schedule.rampup_exponential = s->rampup_exponential;
    out->schedule.hold_ms = (int64_t)s->hold_ms;
    out->schedule.rampdown_step = s->rampdown_step;
    out->schedule.rampdown_interval_ms = s->rampdown_interval_ms;
    out->grace_ms = s->grace_ms;
}

/* Non-zero when ds must be ignored: an older epoch, or an older version
 * within the epoch in force. Logs a new epoch. */
static int state_stale(struct executor *ex, const J4__DesiredState *ds)
{
    if (ds->epoch < ex->epoch_seen) {
        log_debug("desired state of old epoch %llu ignored (have %llu)",
                  (unsigned long long)ds->epoch,
                  (unsigned long long)ex->epoch_seen);
        return 1;
    }
    if (ds->epoch > ex->epoch_seen) {
        log_info("leader epoch %llu seen (was %llu)",
                 (unsigned long long)ds->epoch,
                 (unsigned long long)ex->epoch_seen);
        ex->epoch_seen = ds->epoch;
        return 0;
    }
    return ex->have_state && ds->version < ex->applied_version;
}

static void apply_state(struct executor *ex, const J4__DesiredState *ds,
                        int64_t recv_mono_ms)
{
    struct run_share *shares = NULL;

    if (state_stale(ex, ds))
        return;
    clock_sample(ex, ds, recv_mono_ms);
    lease_renew(ex, ds, recv_mono_ms);

    if (ds->n_shares) {
        shares = calloc(ds->n_shares, sizeof(*shares));
        if (!shares) {
            log_error("out of memory applying desired state %llu.%llu",
                      (unsigned long long)ds->epoch,
                      (unsigned long long)ds->version);
            return;
        }
    }
    for (size_t i = 0; i < ds->n_shares; i++)
        share_from(&shares[i], ds->shares[i]);
    runtime_set_shares(ex->rt, shares, ds->n_shares);
    free(shares);
    if (!ex->have_state || ds->epoch != ex->applied_epoch ||
        ds->version != ex->applied_version)
        /* confirm a new state soon: the leader may wait on it before
         * granting an increase to another executor */
        ex->hb_due_ms =
            min64(ex->hb_due_ms, clock_mono_ms() + HB_AFTER_CHANGE_MS);
    ex->applied_epoch = ds->epoch;
    ex->applied_version = ds->version;
    ex->have_state = 1;
}

/* Takes the newest desired state and the highest ack. */
static void take_mailbox(struct executor *ex)
{
    J4__DesiredState *ds;
    int64_t recv;
    uint64_t acked;

    pthread_mutex_lock(&ex->mbox_lock);
    ds = ex->mbox_state;
    recv = ex->mbox_state_mono_ms;
    ex->mbox_state = NULL;
    acked = ex->mbox_acked_seq;
    pthread_mutex_unlock(&ex->mbox_lock);

    if (ds) {
        apply_state(ex, ds, recv);
        j4__desired_state__free_unpacked(ds, NULL);
    }
    if (ex->report.active && acked >= ex->report.seq) {
        ex->acked_seq = ex->report.seq;
        free(ex->report.buf);
        memset(&ex->report, 0, sizeof(ex->report));
        if (runtime_acked(ex->rt, ex->acked_seq))
            ex->hb_due_ms =
                min64(ex->hb_due_ms, clock_mono_ms() + HB_AFTER_CHANGE_MS);
    }
}

/* Runs first in every pass, so that after a pause (SIGSTOP, a stalled
 * host) the workers are stopped before anything else happens. */
static void check_lease(struct executor *ex, int64_t now)
{
    int64_t hold;

    if (!ex->lease_live || now < ex->lease_mono_ms)
        return;
    ex->lease_live = 0;
    hold = runtime_max_grace_ms(ex->rt);
    ex->lapse_hold_ms = now + min64(hold, LAPSE_HOLD_MAX_MS);
    log_warn("lease expired %lld ms ago, no leader heard from: stopping %u "
             "workers", (long long)(now - ex->lease_mono_ms),
             runtime_alive(ex->rt));
}

/* Non-zero while a heartbeat must wait: the lease lapsed and workers it
 * told to stop have not all exited yet (bounded by lapse_hold_ms). */
static int heartbeat_held(struct executor *ex, int64_t now)
{
    if (now >= ex->lapse_hold_ms)
        return 0;
    if (runtime_lease_valid(ex->rt, now) || runtime_alive(ex->rt) == 0) {
        ex->lapse_hold_ms = 0;
        return 0;
    }
    return 1;
}

/* ---------------------------------------------------------- heartbeat */

static void publish_packed(struct executor *ex, const char *subject,
                           const char *reply, const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);

    if (!buf)
        return;
    protobuf_c_message_pack(msg, buf);
    link_publish(ex, subject, reply, buf, len);
    free(buf);
}

static void send_heartbeat(struct executor *ex)
{
    J4__Heartbeat hb = J4__HEARTBEAT__INIT;
    struct run_status *st = NULL;
    size_t n = runtime_statuses(ex->rt, &st);
    exec_prom_workers(st, n);
    J4__ScenarioStatus *items = calloc(n + 1, sizeof(*items));
    J4__ScenarioStatus **ptrs = calloc(n + 1, sizeof(*ptrs));
    char **plugins = calloc(ex->plugins.count + 1, sizeof(*plugins));

    if (!items || !ptrs || !plugins)
        goto out_free;
    for (size_t i = 0; i < n; i++) {
        j4__scenario_status__init(&items[i]);
        items[i].scenario_id = st[i].scenario_id;
        items[i].planned = st[i].planned;
        items[i].running = st[i].running;
        items[i].drained = st[i].drained;
        items[i].error = st[i].error;
        ptrs[i] = &items[i];
    }
    for (size_t i = 0; i < ex->plugins.count; i++)
        plugins[i] = (char *)ex->plugins.items[i].scenario->name;

    hb.executor_id = ex->cfg.id;
    hb.incarnation = ex->incarnation;
    hb.capacity = ex->cfg.capacity;
    hb.seq = ++ex->hb_seq;
    hb.sent_wall_ms = clock_wall_ms();
    hb.sent_mono_ms = clock_mono_ms();
    hb.applied_epoch = ex->applied_epoch;
    hb.applied_version = ex->applied_version;
    hb.n_scenarios = n;
    hb.scenarios = ptrs;
    hb.metrics_acked_seq = ex->acked_seq;
    hb.n_plugins = ex->plugins.count;
    hb.plugins = plugins;
    hb.leaving = ex->leaving;
    publish_packed(ex, ex->subj_hb, NULL, &hb.base);
out_free:
    free(plugins);
    free(ptrs);
    free(items);
    free(st);
}

/* ------------------------------------------------------------ reports */

/* Everything one report points to, freed together after packing. */
struct report_parts {
    J4__ScenarioMetrics *metrics;
    J4__ScenarioMetrics **metrics_ptrs;
    J4__OutcomeCount *outcomes;
    J4__OutcomeCount **outcome_ptrs;
    J4__Histogram *hists;
};

static int parts_alloc(struct report_parts *p, size_t n)
{
    memset(p, 0, sizeof(*p));
    p->metrics = calloc(n, sizeof(*p->metrics));
    p->metrics_ptrs = calloc(n, sizeof(*p->metrics_ptrs));
    p->outcomes = calloc(n * J4_OUTCOME_COUNT_, sizeof(*p->outcomes));
    p->outcome_ptrs = calloc(n * J4_OUTCOME_COUNT_, sizeof(*p->outcome_ptrs));
    p->hists = calloc(n, sizeof(*p->hists));
    return p->metrics && p->metrics_ptrs && p->outcomes && p->outcome_ptrs &&
                   p->hists
               ? J4_OK
               : J4_ERR_NOMEM;
}

static void parts_free(struct report_parts *p, size_t n)
{
    for (size_t i = 0; p->hists && i < n; i++) {
        free(p->hists[i].index);
        free(p->hists[i].count);
    }
    for (size_t i = 0; p->metrics && i < n; i++)
        series_wire_free(&p->metrics[i]);
    free(p->metrics);
    free(p->metrics_ptrs);
    free(p->outcomes);
    free(p->outcome_ptrs);
    free(p->hists);
}

static int metrics_fill(struct report_parts *p, size_t i,
                        const struct run_delta *d)
{
    J4__ScenarioMetrics *m = &p->metrics[i];
    J4__OutcomeCount *oc = &p->outcomes[i * J4_OUTCOME_COUNT_];
    J4__OutcomeCount **ocp = &p->outcome_ptrs[i * J4_OUTCOME_COUNT_];

    j4__scenario_metrics__init(m);
    m->scenario_id = d->scenario_id;
    m->requests = stats_delta_requests(&d->stats);
    m->iterations = d->stats.iterations;
    m->iteration_errors = d->stats.iteration_errors;
    m->outcomes = ocp;
    for (int k = 0; k < J4_OUTCOME_COUNT_; k++) {
        if (!d->stats.outcomes[k])
            continue;
        j4__outcome_count__init(&oc[m->n_outcomes]);
        oc[m->n_outcomes].kind = (char *)j4_outcome_name((j4_outcome)k);
        oc[m->n_outcomes].count = d->stats.outcomes[k];
        ocp[m->n_outcomes] = &oc[m->n_outcomes];
        m->n_outcomes++;
    }
    m->latency = &p->hists[i];
    p->metrics_ptrs[i] = m;
    if (series_wire_fill(m, &d->stats.series) != J4_OK)
        return J4_ERR_NOMEM;
    return series_wire_hist(&p->hists[i], &d->stats.latency);
}

/* Packs deltas as report seq into ex->report. */
static int report_pack(struct executor *ex, uint64_t seq,
                       const struct run_delta *d, size_t n)
{
    J4__MetricsReport r = J4__METRICS_REPORT__INIT;
    struct report_parts p;
    int rc = parts_alloc(&p, n);

    for (size_t i = 0; rc == J4_OK && i < n; i++)
        rc = metrics_fill(&p, i, &d[i]);
    if (rc == J4_OK) {
        r.executor_id = ex->cfg.id;
        r.incarnation = ex->incarnation;
        r.seq = seq;
        r.interval_start_wall_ms = ex->interval_start_wall_ms;
        r.interval_end_wall_ms = clock_wall_ms();
        r.n_scenarios = n;
        r.scenarios = p.metrics_ptrs;
        ex->report.len = j4__metrics_report__get_packed_size(&r);
        ex->report.buf = malloc(ex->report.len);
        if (!ex->report.buf)
            rc = J4_ERR_NOMEM;
    }
    if (rc == J4_OK) {
        j4__metrics_report__pack(&r, ex->report.buf);
        ex->report.seq = seq;
        ex->report.active = 1;
        ex->interval_start_wall_ms = r.interval_end_wall_ms;
    }
    parts_free(&p, n);
    return rc;
}

static void report_tick(struct executor *ex, int64_t now)
{
    struct run_delta *d = NULL;
    size_t n;

    if (ex->report.active) {
        if (now - ex->report.sent_mono_ms < RESEND_EVERY_MS)
            return;
        link_publish(ex, ex->subj_metrics, ex->subj_ack, ex->report.buf,
                     ex->report.len);
        ex->report.sent_mono_ms = now;
        return;
    }
    if (now < ex->report_due_ms)
        return;
    ex->report_due_ms = now + REPORT_EVERY_MS;
    runtime_drain(ex->rt);
    if (!runtime_has_data(ex->rt))
        return;
    n = runtime_take_deltas(ex->rt, ex->next_seq, &d);
    if (n && report_pack(ex, ex->next_seq, d, n) != J4_OK)
        abort(); /* the deltas are taken: losing them would miscount */
    exec_prom_add(d, n);
    for (size_t i = 0; i < n; i++)
        stats_delta_release(&d[i].stats);
    free(d);
    if (!n)
        return;
    ex->next_seq++;
    link_publish(ex, ex->subj_metrics, ex->subj_ack, ex->report.buf,
                 ex->report.len);
    ex->report.sent_mono_ms = now;
}

static int64_t report_deadline(const struct executor *ex)
{
    if (ex->report.active)
        return ex->report.sent_mono_ms + RESEND_EVERY_MS;
    return ex->report_due_ms;
}

/* --------------------------------------------------------------- loop */

/* One pass: lease, mailbox, reconcile, heartbeat, report, then sleep
 * until the next deadline (never past cap). */
static void control_step(struct executor *ex, int64_t cap)
{
    int64_t now = clock_mono_ms(), next, wake;
    int held;

    check_lease(ex, now);
    take_mailbox(ex);
    if (atomic_exchange(&ex->link_up, 0)) {
        ex->hb_due_ms = now; /* heal at once after an outage */
        ex->report.sent_mono_ms = now - RESEND_EVERY_MS;
    }
    now = clock_mono_ms();
    next = runtime_reconcile(ex->rt, leader_at(ex, now));
    wake = next == INT64_MAX ? INT64_MAX : now + next;

    now = clock_mono_ms();
    if (runtime_take_changed(ex->rt))
        ex->hb_due_ms = min64(ex->hb_due_ms, now + HB_AFTER_CHANGE_MS);
    held = now >= ex->hb_due_ms && heartbeat_held(ex, now);
    if (now >= ex->hb_due_ms && !held) {
        send_heartbeat(ex);
        ex->hb_due_ms = now + ex->cfg.heartbeat_ms;
    }
    report_tick(ex, now);

    wake = min64(wake, held ? ex->lapse_hold_ms : ex->hb_due_ms);
    wake = min64(wake, report_deadline(ex));
    if (ex->lease_live)
        wake = min64(wake, ex->lease_mono_ms);
    runtime_wait(ex->rt, min64(wake, cap));
}

/* Waits up to FINAL_FLUSH_MS for every sample to be acknowledged. */
static void final_flush(struct executor *ex)
{
    int64_t end = clock_mono_ms() + FINAL_FLUSH_MS;

    ex->report_due_ms = 0;
    while (clock_mono_ms() < end) {
        take_mailbox(ex);
        if (!ex->report.active) {
            runtime_drain(ex->rt);
            if (!runtime_has_data(ex->rt))
                break;
            ex->report_due_ms = 0;
        }
        control_step(ex, end);
    }
    if (ex->report.active || runtime_has_data(ex->rt))
        log_warn("shutting down with metrics not acknowledged by a leader "
                 "(report %llu)",
                 (unsigned long long)ex->report.seq);
    /* Only reached with every worker gone: the leader may hand our
     * share to the others without waiting out the lease. */
    ex->leaving = runtime_alive(ex->rt) == 0;
    send_heartbeat(ex);
}

/* Stops every worker within its grace period, then flushes. Returns
 * non-zero when some worker never ended. */
static int control_shutdown(struct executor *ex)
{
    int64_t limit;

    log_info("shutting down: stopping %u workers", runtime_alive(ex->rt));
    runtime_stop_all(ex->rt);
    limit = clock_mono_ms() + runtime_max_grace_ms(ex->rt) + STOP_SLACK_MS;
    while (runtime_alive(ex->rt) && clock_mono_ms() < limit)
        control_step(ex, limit);
    if (runtime_alive(ex->rt)) {
        log_error("%u workers did not stop within their grace period",
                  runtime_alive(ex->rt));
        return 1;
    }
    final_flush(ex);
    return 0;
}

int control_run(struct executor *ex)
{
    ex->hb_due_ms = clock_mono_ms();
    ex->report_due_ms = clock_mono_ms() + REPORT_EVERY_MS;
    ex->next_seq = 1;
    ex->interval_start_wall_ms = clock_wall_ms();
    runtime_set_lease(ex->rt, 0);

    while (!atomic_load(&ex->quit))
        control_step(ex, INT64_MAX);
    return control_shutdown(ex);
}
