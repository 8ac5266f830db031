/*
 * leader_int.h - the leader's internal state, shared by leader.c (election,
 * the loop, messages) and plan.c (scenario state machine and splits).
 *
 * Everything here is owned by the leader thread alone, except the fields
 * marked atomic or guarded by queue_lock.
 */
#ifndef J4_DIST_LEADER_INT_H
#define J4_DIST_LEADER_INT_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "fleet.h"
#include "idindex.h"
#include "leader.h"
#include "schedule.h"

#define METRICS_QUEUE_MAX 256

/* What one executor may run of one scenario: slot k of n. A scenario's
 * grants are kept sorted by exec (strcmp), so plan_grant_of() can
 * search them. */
struct grant {
    char exec[DIST_ID_MAX + 1];
    uint64_t incarnation;
    uint32_t slot;
    uint32_t slots;
    uint64_t version;           /* desired-state version that carried it */
};

/* A holder whose grant was removed and who must report drained. */
struct drain {
    char exec[DIST_ID_MAX + 1];
    uint64_t incarnation;
    uint64_t version;           /* version that removed it */
};

struct lscen {
    int64_t id;
    char name[DIST_ID_MAX + 1];
    char plugin[DIST_ID_MAX + 1];
    char *params_json;
    struct schedule sched;
    int64_t grace_ms;
    int running;                /* 0: pending */
    int started_here;           /* this leader started it: no grant of
                                   an earlier leader can be in force */
    char fail_reason[FLEET_ERROR_MAX + 128]; /* set once it is failing */
    uint32_t peak_running;      /* most workers seen running at once */
    int64_t short_ms;           /* time in hold with fewer than target */
    uint32_t short_low;         /* fewest running then */
    int64_t tracked_ms;         /* mono ms of the last track_peak() */
    char shortfall[128];        /* why a finished run fell short */
    int stop_requested;
    int64_t start_wall_ms;
    struct grant *grants;
    size_t n_grants;
    struct drain *drains;
    size_t n_drains;
    int64_t ending_since_ms;    /* mono ms when stop/end was first seen */
    int seen;                   /* mark for reloads */
    int persist;                /* grants changed outside a rebalance */
    uint64_t gen;               /* grows on every change of its grants or
                                   of a holder's status for it */
    uint64_t summed_gen;        /* gen when running_sum was counted */
    uint32_t running_sum;       /* workers live executors report for it */
    uint64_t balanced_gen;      /* live_gen of its last rebalance that
                                   left nothing pending */
    uint64_t blocked_gen;       /* live_gen when an increase of it last */
    size_t blocked_by;          /* waited for execs[blocked_by] */
    int has_abort;              /* a threshold has abort_on_fail */
    int64_t abort_check_ms;     /* mono ms of the next such check */
    uint8_t *share_prefix;      /* desired.c: its Share but slot(s) */
    size_t share_prefix_len;
    int64_t share_prefix_start; /* start_wall_ms it was packed with */
};

struct lexec {
    char id[DIST_ID_MAX + 1];   /* first: idindex.h finds records by it */
    uint64_t incarnation;
    uint32_t capacity;
    int64_t lease_end_ms;       /* our mono clock */
    int64_t lease_floor_ms;     /* adopted: not before won + lease */
    int64_t echo_mono_ms;
    uint64_t heartbeats_seen;
    uint64_t applied_epoch;
    uint64_t applied_version;
    struct fleet_status *status; /* sorted by scenario id */
    size_t n_status;
    int has_error;              /* some status carries an error */
    char plugins[FLEET_PLUGINS_MAX]; /* from its last heartbeat */
    int left;                   /* said goodbye: lost without a lease */
    uint64_t version;           /* of its current desired state */
    int heard;                  /* a heartbeat arrived this leadership */
    int live_recorded;          /* executors.live written as true */
    int dirty;                  /* desired state changed: publish */
    int answer;                 /* a heartbeat waits for its answer */
    uint8_t *shares;            /* desired.c: its packed shares, valid */
    size_t shares_len;          /* for shares_version and _incarnation */
    uint64_t shares_version;
    uint64_t shares_incarnation;
};

struct leader {
    const struct config *cfg;
    natsConnection *nc;
    struct fleet *fleet;
    pthread_t thread;
    int thread_started;
    int wake_fd;
    atomic_int stopping;
    atomic_int is_leader;
    atomic_ullong epoch_pub;

    /* leader thread only */
    PGconn *lock_conn;
    PGconn *conn;
    uint64_t epoch;
    uint64_t version;
    int64_t won_ms;
    _Atomic int64_t started_ms; /* listening to heartbeats since; reset
                                  by a NATS (re)connect */
    int64_t last_lock_check_ms;
    int64_t last_reload_ms;
    int reload;
    int discard_plan;           /* stepped down: free the plan */
    struct lscen **scens;       /* sorted by id */
    size_t n_scens;
    struct lexec *execs;
    size_t n_execs;
    size_t cap_execs;
    struct id_index exec_index; /* of execs by id */
    int ingest_all;             /* the next pass reads the whole fleet */
    uint64_t live_gen;          /* grows whenever the set of live
                                   executors (or what they offer) may
                                   have changed, or execs moved */
    struct live_set **live_sets; /* plan.c: per plugin, for live_gen */
    size_t n_live_sets;

    pthread_mutex_t queue_lock;
    natsMsg *queue[METRICS_QUEUE_MAX];
    size_t queue_len;

    struct dpool *pools;        /* user pool leases (pool.c) */
    struct timeline *timeline;  /* timeline.c */
};

/* leader.c */
void leader_step_down(struct leader *l, const char *why);
struct lexec *leader_exec(struct leader *l, const char *id);
struct lexec *leader_exec_add(struct leader *l, const char *id);
const struct fleet_status *lexec_status(const struct lexec *e,
                                        int64_t scenario_id);
int lexec_holding(const struct lexec *e, int64_t now_ms);

/* plan.c */
int plan_reload(struct leader *l);
int plan_adopt(struct leader *l);
void plan_drop_exec_grants(struct leader *l, const char *exec);
void plan_tick(struct leader *l);
void plan_free_all(struct leader *l);
int plan_record_exec(struct leader *l, const struct lexec *e, int live);
/* Notes that a holder's status for scenario sid changed (or vanished). */
void plan_status_changed(struct leader *l, int64_t sid);
/* Workers the live executors report running for s (cached until a
 * holder's status changes). */
uint32_t plan_running(struct leader *l, struct lscen *s, int64_t now);
/* The grant of exec in s, or NULL (binary search). */
const struct grant *plan_grant_of(const struct lscen *s, const char *exec);
/* Frees the cached live sets (the executor table is going away). */
void plan_live_release(struct leader *l);

#endif
