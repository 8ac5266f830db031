/*
 * leader.c - election, the leader loop, and the leader's messages.
 *
 * The leader thread alternates between two modes. Standing by, it tries
 * the advisory lock every 500 ms on its lock session. Leading, it wakes
 * on every heartbeat (through an eventfd the fleet pokes), on NOTIFY
 * j4_scenarios, and at least every 100 ms; each pass it checks the lock
 * session (once a second), takes in new heartbeats, runs the scenario
 * state machine (plan.c), publishes changed desired states and answers
 * heartbeats, then applies queued metrics reports. A pass costs what
 * changed, not the size of the fleet: it copies only the heartbeats that
 * arrived (fleet_take_new), finds executors and grants through indexes,
 * and plan.c skips scenarios whose split cannot have changed.
 *
 * Fencing: every write goes through pgstore_begin_fenced(); finding
 * another epoch in force means another leader exists, and this one steps
 * down at once: it stops publishing and applying, closes both sessions
 * (which frees the lock) and competes again.
 */
#include "leader_int.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "clock.h"
#include "desired.h"
#include "j4.h"
#include "j4.pb-c.h"
#include "log.h"
#include "metrics.h"
#include "pgstore.h"
#include "pool.h"
#include "timeline.h"

#define STANDBY_POLL_MS 500
#define LOCK_CHECK_MS 1000
#define LEADER_POLL_MS 100
#define RELOAD_MS 500

/* ----------------------------------------------------------- lifecycle */

struct leader *leader_new(const struct config *cfg, natsConnection *nc,
                          struct fleet *fleet)
{
    struct leader *l = calloc(1, sizeof(*l));

    if (!l)
        return NULL;
    l->cfg = cfg;
    l->nc = nc;
    l->fleet = fleet;
    l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->wake_fd < 0) {
        free(l);
        return NULL;
    }
    l->pools = dpool_new(l);
    if (!l->pools) {
        close(l->wake_fd);
        free(l);
        return NULL;
    }
    l->timeline = timeline_new();
    pthread_mutex_init(&l->queue_lock, NULL);
    l->started_ms = clock_mono_ms();
    return l;
}

void leader_wake(void *leader)
{
    struct leader *l = leader;
    uint64_t one = 1;

    if (write(l->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        return;
}

void leader_heard_from_nats(struct leader *l)
{
    atomic_store(&l->started_ms, clock_mono_ms());
    leader_wake(l);
}

int leader_is_leader(struct leader *l, uint64_t *epoch)
{
    int leading = atomic_load(&l->is_leader);

    if (epoch)
        *epoch = leading ? atomic_load(&l->epoch_pub) : 0;
    return leading;
}

static void drain_queue(struct leader *l)
{
    pthread_mutex_lock(&l->queue_lock);
    for (size_t i = 0; i < l->queue_len; i++)
        natsMsg_Destroy(l->queue[i]);
    l->queue_len = 0;
    pthread_mutex_unlock(&l->queue_lock);
}

static void *leader_main(void *arg);

int leader_start(struct leader *l)
{
    if (dpool_subscribe(l->pools, l->nc) != J4_OK)
        return J4_ERR_IO;
    if (pthread_create(&l->thread, NULL, leader_main, l) != 0)
        return J4_ERR_IO;
    l->thread_started = 1;
    return J4_OK;
}

void leader_stop(struct leader *l)
{
    dpool_unsubscribe(l->pools);
    if (!l->thread_started)
        return;
    atomic_store(&l->stopping, 1);
    leader_wake(l);
    pthread_join(l->thread, NULL);
    l->thread_started = 0;
}

void leader_free(struct leader *l)
{
    if (!l)
        return;
    leader_stop(l);
    drain_queue(l);
    dpool_free(l->pools);
    timeline_free(l->timeline);
    plan_free_all(l);
    free(l->execs);
    id_index_release(&l->exec_index);
    PQfinish(l->conn);
    PQfinish(l->lock_conn);
    close(l->wake_fd);
    pthread_mutex_destroy(&l->queue_lock);
    free(l);
}

/* ----------------------------------------------------------- executors */

struct lexec *leader_exec(struct leader *l, const char *id)
{
    long at = id_index_find(&l->exec_index, l->execs, sizeof(*l->execs),
                            id);

    return at >= 0 ? &l->execs[at] : NULL;
}

/* Adds a record for id. Pointers into the table are invalidated (so are
 * the plan's live sets: live_gen grows). */
struct lexec *leader_exec_add(struct leader *l, const char *id)
{
    struct lexec *e;

    if (l->n_execs == l->cap_execs) {
        size_t cap = l->cap_execs ? l->cap_execs * 2 : 16;
        struct lexec *grown = realloc(l->execs, cap * sizeof(*grown));
        if (!grown)
            return NULL;
        l->execs = grown;
        l->cap_execs = cap;
    }
    l->live_gen++;
    e = &l->execs[l->n_execs++];
    memset(e, 0, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%s", id);
    if (id_index_add(&l->exec_index, l->execs, sizeof(*l->execs),
                     l->n_execs, l->n_execs - 1) != 0) {
        l->n_execs--;
        return NULL;
    }
    return e;
}

const struct fleet_status *lexec_status(const struct lexec *e,
                                        int64_t scenario_id)
{
    return fleet_status_find(e->status, e->n_status, scenario_id);
}

/* Non-zero while e may still be running what it was granted. */
int lexec_holding(const struct lexec *e, int64_t now_ms)
{
    return now_ms < e->lease_end_ms;
}

static void free_execs(struct leader *l)
{
    for (size_t i = 0; i < l->n_execs; i++) {
        free(l->execs[i].status);
        desired_exec_release(&l->execs[i]);
    }
    l->n_execs = 0;
    id_index_clear(&l->exec_index);
    plan_live_release(l);
    l->live_gen++;
}

/* A heartbeat from a process we did not know under this id. */
static void exec_joined(struct leader *l, struct lexec *e,
                        const struct fleet_exec *f)
{
    int restarted = e->heard && e->incarnation != f->incarnation;

    if (e->incarnation != f->incarnation)
        plan_drop_exec_grants(l, e->id);
    e->incarnation = f->incarnation;
    e->capacity = f->capacity;
    e->dirty = 1;
    l->live_gen++;
    if (!e->live_recorded || restarted) {
        log_info("executor %s %s (incarnation %016llx, capacity %u)",
                 e->id, restarted ? "restarted" : "joined",
                 (unsigned long long)f->incarnation, f->capacity);
        if (plan_record_exec(l, e, 1) == J4_OK)
            e->live_recorded = 1;
    }
}

static int any_running(const struct lexec *e)
{
    for (size_t i = 0; i < e->n_status; i++) {
        if (e->status[i].running > 0)
            return 1;
    }
    return 0;
}

static int status_equal(const struct fleet_status *a,
                        const struct fleet_status *b)
{
    return a->planned == b->planned && a->running == b->running &&
           a->drained == b->drained && !strcmp(a->error, b->error);
}

/* Tells the plan which scenarios' statuses differ between the sorted
 * arrays a (old) and b (new). */
static void diff_status(struct leader *l, const struct fleet_status *a,
                        size_t na, const struct fleet_status *b, size_t nb)
{
    size_t i = 0, j = 0;

    while (i < na || j < nb) {
        if (j == nb || (i < na && a[i].scenario_id < b[j].scenario_id)) {
            plan_status_changed(l, a[i++].scenario_id);
        } else if (i == na || b[j].scenario_id < a[i].scenario_id) {
            plan_status_changed(l, b[j++].scenario_id);
        } else {
            if (!status_equal(&a[i], &b[j]))
                plan_status_changed(l, a[i].scenario_id);
            i++;
            j++;
        }
    }
}

/* Replaces e's statuses with f's (ownership moves from the snapshot). */
static void take_status(struct leader *l, struct lexec *e,
                        struct fleet_exec *f)
{
    diff_status(l, e->status, e->n_status, f->status, f->n_status);
    free(e->status);
    e->status = f->status;
    e->n_status = f->n_status;
    f->status = NULL;
    f->n_status = 0;
    e->has_error = 0;
    for (size_t i = 0; i < e->n_status; i++)
        e->has_error |= e->status[i].error[0] != '\0';
}

static void take_heartbeat(struct leader *l, struct lexec *e,
                           struct fleet_exec *f)
{
    int64_t end = f->recv_mono_ms + l->cfg->lease_ms;

    if (e->incarnation != f->incarnation || !e->live_recorded)
        exec_joined(l, e, f);
    e->lease_end_ms = end > e->lease_floor_ms ? end : e->lease_floor_ms;
    e->echo_mono_ms = f->sent_mono_ms;
    e->applied_epoch = f->applied_epoch;
    e->applied_version = f->applied_version;
    take_status(l, e, f);
    e->heartbeats_seen = f->heartbeats;
    if (!e->heard || strcmp(e->plugins, f->plugins))
        l->live_gen++;          /* what it offers may have changed */
    memcpy(e->plugins, f->plugins, sizeof(e->plugins));
    e->heard = 1;
    e->answer = 1;
    if (f->leaving && !any_running(e)) {
        /* A clean shutdown with no worker left: nothing of its share can
         * still run, so it need not be waited out. */
        e->lease_end_ms = f->recv_mono_ms;
        e->lease_floor_ms = 0;
        e->left = 1;
        e->answer = 0;
    }
}

/* Takes in every heartbeat that arrived since the last pass. */
static void ingest_fleet(struct leader *l, int64_t now)
{
    struct fleet_exec *snap;
    size_t n;

    if (fleet_take_new(l->fleet, l->ingest_all, &snap, &n) != J4_OK)
        return;
    l->ingest_all = 0;
    for (size_t i = 0; i < n; i++) {
        struct fleet_exec *f = &snap[i];
        struct lexec *e = leader_exec(l, f->id);

        if (f->recv_mono_ms + l->cfg->lease_ms <= now)
            continue;           /* silent: nothing new to learn */
        if (!e)
            e = leader_exec_add(l, f->id);
        if (e && f->heartbeats != e->heartbeats_seen)
            take_heartbeat(l, e, f);
    }
    fleet_snapshot_free(snap, n);
}

/* Executors whose lease ran out on our clock: their slots are free. */
static void expire_execs(struct leader *l, int64_t now)
{
    for (size_t i = 0; i < l->n_execs; i++) {
        struct lexec *e = &l->execs[i];

        if (lexec_holding(e, now) || !e->incarnation)
            continue;
        plan_drop_exec_grants(l, e->id);
        for (size_t j = 0; j < e->n_status; j++)
            plan_status_changed(l, e->status[j].scenario_id);
        l->live_gen++;
        if (e->live_recorded && e->left) {
            log_info("executor %s left (clean shutdown)", e->id);
            if (plan_record_exec(l, e, 0) == J4_OK)
                e->live_recorded = 0;
        } else if (e->live_recorded) {
            log_info("executor %s lost (no heartbeat within the %u ms "
                     "lease)", e->id, l->cfg->lease_ms);
            if (plan_record_exec(l, e, 0) == J4_OK)
                e->live_recorded = 0;
        }
        e->incarnation = 0;
        e->heard = 0;
        e->left = 0;
    }
}

/* ------------------------------------------------------ desired states */

static void publish_state(struct leader *l, struct lexec *e)
{
    char subject[80];
    uint8_t *buf;
    size_t len;

    if (desired_pack(l, e, &buf, &len) != J4_OK)
        return;         /* the next answer or change tries again */
    snprintf(subject, sizeof(subject), "j4.assign.%s", e->id);
    natsConnection_Publish(l->nc, subject, buf, (int)len);
    free(buf);
}

/* Sends each changed desired state and answers each new heartbeat. */
static void publish_states(struct leader *l)
{
    for (size_t i = 0; i < l->n_execs; i++) {
        struct lexec *e = &l->execs[i];

        if (!(e->dirty || e->answer) || !e->heard || !e->incarnation)
            continue;
        publish_state(l, e);
        e->dirty = 0;
        e->answer = 0;
    }
}

/* ------------------------------------------------------------- metrics */

void leader_on_metrics(natsConnection *nc, natsSubscription *sub,
                       natsMsg *msg, void *leader)
{
    struct leader *l = leader;
    int queued = 0;

    if (atomic_load(&l->is_leader)) {
        pthread_mutex_lock(&l->queue_lock);
        if (l->queue_len < METRICS_QUEUE_MAX) {
            l->queue[l->queue_len++] = msg;
            queued = 1;
        }
        pthread_mutex_unlock(&l->queue_lock);
    }
    if (!queued) {
        natsMsg_Destroy(msg);
        return;
    }
    leader_wake(l);
}

static void send_ack(struct leader *l, natsMsg *msg,
                     const J4__MetricsReport *report)
{
    J4__MetricsAck ack = J4__METRICS_ACK__INIT;
    const char *reply = natsMsg_GetReply(msg);
    char subject[80];
    uint8_t buf[160];
    size_t len;

    ack.executor_id = report->executor_id;
    ack.incarnation = report->incarnation;
    ack.seq = report->seq;
    ack.epoch = l->epoch;
    len = j4__metrics_ack__get_packed_size(&ack);
    if (len > sizeof(buf))
        return;
    j4__metrics_ack__pack(&ack, buf);
    if (!reply || !reply[0]) {
        snprintf(subject, sizeof(subject), "j4.ack.%s",
                 report->executor_id);
        reply = subject;
    }
    natsConnection_Publish(l->nc, reply, buf, (int)len);
}

/* Applies one queued report; returns J4_ERR_CONFLICT when fenced. */
static int apply_report(struct leader *l, natsMsg *msg)
{
    const char *subject = natsMsg_GetSubject(msg);
    J4__MetricsReport *report = j4__metrics_report__unpack(
        NULL, (size_t)natsMsg_GetDataLength(msg),
        (const uint8_t *)natsMsg_GetData(msg));
    int duplicate = 0;
    int rc = J4_ERR_INVALID;

    if (report && report->executor_id && subject &&
        !strncmp(subject, "j4.metrics.", 11) &&
        !strcmp(subject + 11, report->executor_id))
        rc = metrics_apply(l->conn, l->epoch, report, &duplicate);
    if (rc == J4_OK)
        send_ack(l, msg, report);
    else if (rc == J4_ERR_UNAVAILABLE)
        log_debug("metrics: report from '%s' not applied: %s",
                  subject ? subject : "?", PQerrorMessage(l->conn));
    if (report)
        j4__metrics_report__free_unpacked(report, NULL);
    return rc;
}

static void apply_reports(struct leader *l)
{
    for (int budget = 0; budget < 64 && atomic_load(&l->is_leader);
         budget++) {
        natsMsg *msg = NULL;

        pthread_mutex_lock(&l->queue_lock);
        if (l->queue_len > 0) {
            msg = l->queue[0];
            memmove(l->queue, l->queue + 1,
                    (l->queue_len - 1) * sizeof(l->queue[0]));
            l->queue_len--;
        }
        pthread_mutex_unlock(&l->queue_lock);
        if (!msg)
            return;
        if (apply_report(l, msg) == J4_ERR_CONFLICT)
            leader_step_down(l, "another leader's epoch is in force");
        natsMsg_Destroy(msg);
    }
}

/* ------------------------------------------------------------ election */

void leader_step_down(struct leader *l, const char *why)
{
    if (!atomic_load(&l->is_leader))
        return;
    atomic_store(&l->is_leader, 0);
    log_warn("leader: stepped down (%s), epoch %llu", why,
             (unsigned long long)l->epoch);
    drain_queue(l);
    dpool_lost(l->pools);
    /* the plan is freed by the loop once this pass is over: callers up
     * the stack may still hold pointers into it */
    l->discard_plan = 1;
    PQfinish(l->conn);
    l->conn = NULL;
    PQfinish(l->lock_conn);     /* frees the advisory lock */
    l->lock_conn = NULL;
    l->epoch = 0;
}

static int try_lock(struct leader *l)
{
    char sql[64];
    PGresult *res;
    int won;

    if (l->lock_conn && PQstatus(l->lock_conn) != CONNECTION_OK) {
        PQfinish(l->lock_conn);
        l->lock_conn = NULL;
    }
    if (!l->lock_conn)
        l->lock_conn = pgstore_connect(l->cfg->pg_conninfo);
    if (!l->lock_conn || PQstatus(l->lock_conn) != CONNECTION_OK)
        return 0;
    snprintf(sql, sizeof(sql), "SELECT pg_try_advisory_lock(%d)",
             PGSTORE_LOCK_LEADER);
    res = PQexec(l->lock_conn, sql);
    won = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
          !strcmp(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    return won;
}

/* Bumps the epoch on the write session; returns it, or 0 on failure. */
static uint64_t bump_epoch(struct leader *l)
{
    const char *params[] = {l->cfg->id};
    PGresult *res = pgstore_query(l->conn,
        "UPDATE cluster SET epoch = epoch + 1, leader_id = $1,"
        " leader_since = now() WHERE id = 1 RETURNING epoch", 1, params);
    uint64_t epoch = 0;

    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        epoch = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return epoch;
}

static int open_write_session(struct leader *l)
{
    PQfinish(l->conn);
    l->conn = pgstore_connect(l->cfg->pg_conninfo);
    return l->conn && PQstatus(l->conn) == CONNECTION_OK &&
           pgstore_exec_ok(l->conn, "SET statement_timeout = '10s'",
                           PGRES_COMMAND_OK) &&
           pgstore_exec_ok(l->conn, "LISTEN j4_scenarios",
                           PGRES_COMMAND_OK);
}

/* Called with the lock just won. */
static void become_leader(struct leader *l)
{
    uint64_t epoch;

    if (!open_write_session(l) || (epoch = bump_epoch(l)) == 0) {
        log_error("leader: won the lock but could not start: %s",
                  l->conn ? PQerrorMessage(l->conn) : "out of memory");
        PQfinish(l->conn);
        l->conn = NULL;
        PQfinish(l->lock_conn);
        l->lock_conn = NULL;
        return;
    }
    l->epoch = epoch;
    l->version = 0;
    l->ingest_all = 1;
    l->won_ms = clock_mono_ms();
    l->last_lock_check_ms = l->won_ms;
    atomic_store(&l->epoch_pub, epoch);
    dpool_won(l->pools);
    atomic_store(&l->is_leader, 1);
    log_info("leader: won, epoch %llu (distributor %s)",
             (unsigned long long)epoch, l->cfg->id);
    if (plan_reload(l) != J4_OK || plan_adopt(l) != J4_OK)
        leader_step_down(l, "could not load the scenarios");
    l->last_reload_ms = l->won_ms;
}

static void check_lock(struct leader *l, int64_t now)
{
    if (now - l->last_lock_check_ms < LOCK_CHECK_MS)
        return;
    l->last_lock_check_ms = now;
    if (!pgstore_exec_ok(l->lock_conn, "SELECT 1", PGRES_TUPLES_OK))
        leader_step_down(l, "the lock session failed");
    else if (PQstatus(l->conn) != CONNECTION_OK)
        leader_step_down(l, "the write session failed");
}

/* ---------------------------------------------------------------- loop */

/* Sleeps until woken, a notification arrives or timeout_ms passes. */
static void wait_events(struct leader *l, int timeout_ms)
{
    struct pollfd fds[2] = {{.fd = l->wake_fd, .events = POLLIN}};
    int n = 1;
    uint64_t count;

    if (l->conn && PQsocket(l->conn) >= 0) {
        fds[1].fd = PQsocket(l->conn);
        fds[1].events = POLLIN;
        n = 2;
    }
    if (poll(fds, n, timeout_ms) > 0 && (fds[0].revents & POLLIN))
        while (read(l->wake_fd, &count, sizeof(count)) > 0)
            ;
}

static void take_notifications(struct leader *l)
{
    PGnotify *note;

    if (!PQconsumeInput(l->conn))
        return;
    while ((note = PQnotifies(l->conn)) != NULL) {
        l->reload = 1;
        PQfreemem(note);
    }
}

static void leader_pass(struct leader *l)
{
    int64_t now = clock_mono_ms();

    check_lock(l, now);
    if (!atomic_load(&l->is_leader))
        return;
    take_notifications(l);
    ingest_fleet(l, now);
    expire_execs(l, now);
    if (l->reload || now - l->last_reload_ms >= RELOAD_MS) {
        l->reload = 0;
        l->last_reload_ms = now;
        if (plan_reload(l) != J4_OK && PQstatus(l->conn) != CONNECTION_OK)
            leader_step_down(l, "the write session failed");
    }
    if (!atomic_load(&l->is_leader))
        return;
    plan_tick(l);
    if (!atomic_load(&l->is_leader))
        return;
    publish_states(l);
    timeline_tick(l, l->timeline, now);
    if (!atomic_load(&l->is_leader))
        return;
    apply_reports(l);
    if (atomic_load(&l->is_leader))
        dpool_pass(l->pools);
}

static void *leader_main(void *arg)
{
    struct leader *l = arg;
    int64_t next_try = 0;

    while (!atomic_load(&l->stopping)) {
        if (atomic_load(&l->is_leader)) {
            leader_pass(l);
            wait_events(l, LEADER_POLL_MS);
            continue;
        }
        if (l->discard_plan) {
            plan_free_all(l);
            free_execs(l);
            l->discard_plan = 0;
        }
        if (clock_mono_ms() >= next_try) {
            next_try = clock_mono_ms() + STANDBY_POLL_MS;
            if (try_lock(l))
                become_leader(l);
        }
        if (!atomic_load(&l->is_leader))
            wait_events(l, STANDBY_POLL_MS);
    }
    leader_step_down(l, "shutting down");
    plan_free_all(l);
    free_execs(l);
    PQfinish(l->lock_conn);
    l->lock_conn = NULL;
    return NULL;
}
