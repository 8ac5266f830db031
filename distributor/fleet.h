/*
 * fleet.h - every distributor's view of the executors, from heartbeats.
 *
 * Each distributor subscribes to j4.hb.* and keeps the newest heartbeat of
 * every executor here, so any of them can answer GET /executors and fill
 * the running counts of GET /scenarios/{id}. The leader takes snapshots
 * to decide who is live and to answer each heartbeat. The table is
 * bounded (FLEET_MAX executors, FLEET_STATUS_MAX scenarios each) so no
 * publisher can make it grow without limit.
 */
#ifndef J4_DIST_FLEET_H
#define J4_DIST_FLEET_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "idindex.h"

#define FLEET_MAX 4096
#define FLEET_STATUS_MAX 1024
#define FLEET_ERROR_MAX 256
#define FLEET_PLUGINS_MAX 1024
/* An executor silent this long is forgotten. */
#define FLEET_FORGET_MS (10 * 60 * 1000)

struct fleet_status {
    int64_t scenario_id;
    uint32_t planned;
    uint32_t running;
    int drained;
    char error[FLEET_ERROR_MAX];
};

struct fleet_exec {
    char id[DIST_ID_MAX + 1];   /* first: idindex.h finds records by it */
    uint64_t incarnation;
    uint32_t capacity;
    uint64_t seq;
    int64_t recv_mono_ms;       /* our monotonic clock at arrival */
    int64_t first_seen_wall_ms;
    int64_t sent_mono_ms;       /* the executor's, for echo_mono_ms */
    uint64_t applied_epoch;
    uint64_t applied_version;
    uint64_t heartbeats;        /* grows by one per accepted heartbeat */
    uint64_t taken;             /* heartbeats when fleet_take_new() last
                                   copied it */
    struct fleet_status *status; /* sorted by scenario id */
    size_t n_status;
    char plugins[FLEET_PLUGINS_MAX]; /* ",http,chat,": what it offers */
    int leaving;                /* its last heartbeat: it shut down */
};

/* Non-zero when the heartbeat's plugin list names plugin. */
int fleet_offers(const char *plugins, const char *plugin);

struct fleet {
    pthread_mutex_t lock;
    struct fleet_exec *execs;
    size_t n_execs;
    struct id_index index;      /* of execs by id */
    void (*wake)(void *arg);    /* called after each accepted heartbeat */
    void *wake_arg;
};

void fleet_init(struct fleet *fleet);
void fleet_release(struct fleet *fleet);

/* Decodes one Heartbeat published on subject ("j4.hb.<id>") and stores
 * it. Bad or mismatched messages are dropped silently (counted only).
 * Called on a NATS delivery thread. */
void fleet_handle_heartbeat(struct fleet *fleet, const char *subject,
                            const void *data, size_t len);

/* Deep copy of the table; free it with fleet_snapshot_free(). */
int fleet_snapshot(struct fleet *fleet, struct fleet_exec **execs,
                   size_t *n_execs);
void fleet_snapshot_free(struct fleet_exec *execs, size_t n_execs);

/* Like fleet_snapshot(), but copies only the records that accepted a
 * heartbeat since the previous call (every record when all is non-zero),
 * so that the leader's pass costs what arrived, not the fleet's size.
 * One caller only: the leader thread. */
int fleet_take_new(struct fleet *fleet, int all, struct fleet_exec **execs,
                   size_t *n_execs);

/* Finds the status of scenario_id in e (binary search), or NULL. */
const struct fleet_status *fleet_exec_status(const struct fleet_exec *e,
                                             int64_t scenario_id);

/* The same over any array of n statuses sorted by scenario id. */
const struct fleet_status *fleet_status_find(const struct fleet_status *st,
                                             size_t n, int64_t scenario_id);

/* Number of heartbeats dropped as malformed since start. */
uint64_t fleet_dropped(struct fleet *fleet);

#endif
