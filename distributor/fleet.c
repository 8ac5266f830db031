/*
 * fleet.c - the heartbeat table shared by the NATS callbacks, the REST
 * handlers and the leader.
 *
 * One mutex guards the whole table; every operation under it is a copy
 * of at most one heartbeat, so holders never wait long. A heartbeat is
 * accepted when it decodes, its id is a valid subject token equal to the
 * subject's last token, and it is newer (by seq) than the one stored for
 * the same incarnation. A new incarnation replaces the old record: that
 * process is gone. Records are found by id through an idindex.h index,
 * and each record's statuses are kept sorted by scenario id, so that
 * lookups stay cheap with thousands of executors.
 */
#include "fleet.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "j4.h"
#include "j4.pb-c.h"

static atomic_ullong fleet_dropped_count;

void fleet_init(struct fleet *fleet)
{
    memset(fleet, 0, sizeof(*fleet));
    pthread_mutex_init(&fleet->lock, NULL);
}

void fleet_release(struct fleet *fleet)
{
    for (size_t i = 0; i < fleet->n_execs; i++)
        free(fleet->execs[i].status);
    free(fleet->execs);
    id_index_release(&fleet->index);
    pthread_mutex_destroy(&fleet->lock);
    memset(fleet, 0, sizeof(*fleet));
}

uint64_t fleet_dropped(struct fleet *fleet)
{
    (void)fleet;
    return atomic_load(&fleet_dropped_count);
}

const struct fleet_status *fleet_status_find(const struct fleet_status *st,
                                             size_t n, int64_t scenario_id)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int64_t sid = st[mid].scenario_id;

        if (sid == scenario_id)
            return &st[mid];
        if (sid < scenario_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const struct fleet_status *fleet_exec_status(const struct fleet_exec *e,
                                             int64_t scenario_id)
{
    return fleet_status_find(e->status, e->n_status, scenario_id);
}

/* Drops executors silent for FLEET_FORGET_MS. Call with the lock held. */
static void forget_silent(struct fleet *fleet, int64_t now)
{
    size_t kept = 0;

    for (size_t i = 0; i < fleet->n_execs; i++) {
        if (now - fleet->execs[i].recv_mono_ms > FLEET_FORGET_MS) {
            free(fleet->execs[i].status);
            continue;
        }
        fleet->execs[kept++] = fleet->execs[i];
    }
    fleet->n_execs = kept;
    id_index_rebuild(&fleet->index, fleet->execs, sizeof(*fleet->execs),
                     kept);
}

/* The record for id, created when missing; NULL when the table is full.
 * Call with the lock held. */
static struct fleet_exec *find_or_add(struct fleet *fleet, const char *id,
                                      int64_t now)
{
    long at = id_index_find(&fleet->index, fleet->execs,
                            sizeof(*fleet->execs), id);
    struct fleet_exec *e;

    if (at >= 0)
        return &fleet->execs[at];
    if (fleet->n_execs == FLEET_MAX)
        forget_silent(fleet, now);
    if (fleet->n_execs == FLEET_MAX)
        return NULL;
    if (!fleet->execs) {
        fleet->execs = calloc(FLEET_MAX, sizeof(*fleet->execs));
        if (!fleet->execs)
            return NULL;
    }
    e = &fleet->execs[fleet->n_execs++];
    memset(e, 0, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->first_seen_wall_ms = clock_wall_ms();
    if (id_index_add(&fleet->index, fleet->execs, sizeof(*fleet->execs),
                     fleet->n_execs, fleet->n_execs - 1) != 0) {
        fleet->n_execs--;
        return NULL;
    }
    return e;
}

/* Writes the heartbeat's plugin names as ",a,b," (names that would not
 * fit are left out, so such a plugin is simply not offered). */
static void join_plugins(const J4__Heartbeat *hb, char *buf, size_t size)
{
    size_t used = 1;

    snprintf(buf, size, ",");
    for (size_t i = 0; i < hb->n_plugins; i++) {
        size_t len = strlen(hb->plugins[i]);

        if (used + len + 2 > size || strchr(hb->plugins[i], ','))
            continue;
        memcpy(buf + used, hb->plugins[i], len);
        used += len;
        buf[used++] = ',';
        buf[used] = '\0';
    }
}

static int cmp_status(const void *a, const void *b)
{
    int64_t x = ((const struct fleet_status *)a)->scenario_id;
    int64_t y = ((const struct fleet_status *)b)->scenario_id;

    return (x > y) - (x < y);
}

/* Sorts statuses by scenario id unless they already are (executors
 * usually send them in order). */
static void sort_status(struct fleet_status *st, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        if (st[i - 1].scenario_id > st[i].scenario_id) {
            qsort(st, n, sizeof(*st), cmp_status);
            return;
        }
    }
}

/* Converts the heartbeat's statuses, sorted by scenario id; NULL with
 * *n = 0 when none. */
static struct fleet_status *copy_status(const J4__Heartbeat *hb, size_t *n)
{
    size_t count = hb->n_scenarios;
    struct fleet_status *out;

    *n = 0;
    if (count > FLEET_STATUS_MAX)
        count = FLEET_STATUS_MAX;
    if (count == 0)
        return NULL;
    out = calloc(count, sizeof(*out));
    if (!out)
        return NULL;
    for (size_t i = 0; i < count; i++) {
        const J4__ScenarioStatus *s = hb->scenarios[i];
        out[i].scenario_id = s->scenario_id;
        out[i].planned = s->planned;
        out[i].running = s->running;
        out[i].drained = s->drained;
        if (s->error)
            snprintf(out[i].error, sizeof(out[i].error), "%s", s->error);
    }
    sort_status(out, count);
    *n = count;
    return out;
}

static int heartbeat_valid(const J4__Heartbeat *hb, const char *subject)
{
    const char *token;

    if (!hb->executor_id || !config_id_valid(hb->executor_id) ||
        hb->incarnation == 0)
        return 0;
    if (strncmp(subject, "j4.hb.", 6) != 0)
        return 0;
    token = subject + 6;
    if (strcmp(token, hb->executor_id) != 0)
        return 0;
    for (size_t i = 0; i < hb->n_scenarios; i++) {
        if (!hb->scenarios[i])
            return 0;
    }
    return 1;
}

/* Stores hb. Returns non-zero when it was accepted. Lock held. */
static int store(struct fleet *fleet, const J4__Heartbeat *hb, int64_t now)
{
    struct fleet_exec *e = find_or_add(fleet, hb->executor_id, now);
    struct fleet_status *status;
    size_t n_status;

    if (!e)
        return 0;
    if (e->heartbeats > 0 && e->incarnation == hb->incarnation &&
        hb->seq <= e->seq)
        return 0;
    status = copy_status(hb, &n_status);
    free(e->status);
    e->status = status;
    e->n_status = n_status;
    e->incarnation = hb->incarnation;
    e->capacity = hb->capacity;
    e->seq = hb->seq;
    e->recv_mono_ms = now;
    e->sent_mono_ms = hb->sent_mono_ms;
    e->applied_epoch = hb->applied_epoch;
    e->applied_version = hb->applied_version;
    join_plugins(hb, e->plugins, sizeof(e->plugins));
    e->leaving = hb->leaving;
    e->heartbeats++;
    return 1;
}

int fleet_offers(const char *plugins, const char *plugin)
{
    char key[DIST_ID_MAX + 3];

    snprintf(key, sizeof(key), ",%s,", plugin);
    return strstr(plugins, key) != NULL;
}

void fleet_handle_heartbeat(struct fleet *fleet, const char *subject,
                            const void *data, size_t len)
{
    J4__Heartbeat *hb = j4__heartbeat__unpack(NULL, len, data);
    int accepted = 0;

    if (hb && subject && heartbeat_valid(hb, subject)) {
        pthread_mutex_lock(&fleet->lock);
        accepted = store(fleet, hb, clock_mono_ms());
        pthread_mutex_unlock(&fleet->lock);
    } else {
        atomic_fetch_add(&fleet_dropped_count, 1);
    }
    if (hb)
        j4__heartbeat__free_unpacked(hb, NULL);
    if (accepted && fleet->wake)
        fleet->wake(fleet->wake_arg);
}

/* Deep copy of one record into out. Lock held. */
static void copy_exec(struct fleet_exec *out, const struct fleet_exec *e)
{
    *out = *e;
    out->status = NULL;
    if (e->n_status == 0)
        return;
    out->status = malloc(e->n_status * sizeof(*out->status));
    if (!out->status) {
        out->n_status = 0;
        return;
    }
    memcpy(out->status, e->status, e->n_status * sizeof(*out->status));
}

int fleet_snapshot(struct fleet *fleet, struct fleet_exec **execs,
                   size_t *n_execs)
{
    struct fleet_exec *copy = NULL;
    size_t n;
    int rc = J4_OK;

    pthread_mutex_lock(&fleet->lock);
    n = fleet->n_execs;
    if (n > 0) {
        copy = calloc(n, sizeof(*copy));
        if (!copy)
            rc = J4_ERR_NOMEM;
    }
    for (size_t i = 0; copy && i < n; i++)
        copy_exec(&copy[i], &fleet->execs[i]);
    pthread_mutex_unlock(&fleet->lock);
    *execs = copy;
    *n_execs = copy ? n : 0;
    return rc;
}

int fleet_take_new(struct fleet *fleet, int all, struct fleet_exec **execs,
                   size_t *n_execs)
{
    struct fleet_exec *copy = NULL;
    size_t n = 0;
    int rc = J4_OK;

    pthread_mutex_lock(&fleet->lock);
    for (size_t i = 0; i < fleet->n_execs; i++)
        n += all || fleet->execs[i].taken != fleet->execs[i].heartbeats;
    if (n > 0 && !(copy = calloc(n, sizeof(*copy))))
        rc = J4_ERR_NOMEM;
    n = 0;
    for (size_t i = 0; copy && i < fleet->n_execs; i++) {
        struct fleet_exec *e = &fleet->execs[i];

        if (!all && e->taken == e->heartbeats)
            continue;
        e->taken = e->heartbeats;
        copy_exec(&copy[n++], e);
    }
    pthread_mutex_unlock(&fleet->lock);
    *execs = copy;
    *n_execs = n;
    return rc;
}

void fleet_snapshot_free(struct fleet_exec *execs, size_t n_execs)
{
    for (size_t i = 0; i < n_execs; i++)
        free(execs[i].status);
    free(execs);
}
