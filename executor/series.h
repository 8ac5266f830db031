/*
 * series.h - named series: what a worker measured, per request name.
 *
 * A series is keyed by (kind, name, protocol). Kinds are the requests a
 * worker made (by request name and protocol), the team metrics of
 * include/j4.h (histogram, counter, gauge), checks, and streams. Names are
 * interned once per run in a struct series_names, bounded to
 * SERIES_GROUP_MAX names per group (requests, team metrics, checks,
 * streams); a name past the bound folds into "other", so a request name
 * built from a URL with ids in it cannot grow the label set.
 *
 * Recording: each worker holds a small table of its own series, found by
 * name with a linear scan (a worker uses few names). The first sample of
 * a name takes the run's intern lock and allocates the series once; every
 * later sample is relaxed atomic adds only, no lock and no malloc. The
 * executor's control thread drains the worker tables into a struct
 * series_set (plain memory it owns) with atomic exchanges, as stats.c
 * does for the totals. Recording is safe from more than one thread of
 * the same worker (its routines), since creation is locked and
 * histogram ranges grow with compare-and-swap.
 */
#ifndef J4_EXECUTOR_SERIES_H
#define J4_EXECUTOR_SERIES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "hist.h"
#include "j4.h"

#define SERIES_NAME_MAX 64
#define SERIES_GROUP_MAX 64     /* names per group and run, "other" aside */
#define SERIES_RUN_MAX (4 * (SERIES_GROUP_MAX + 1))

enum series_kind {
    SERIES_REQUEST = 0,     /* counts by outcome, latency histogram */
    SERIES_TEAM_HIST = 1,   /* j4_metric_observe: histogram */
    SERIES_TEAM_COUNTER = 2, /* j4_metric_count: counts[0] */
    SERIES_TEAM_GAUGE = 3,  /* j4_metric_gauge: gauge */
    SERIES_CHECK = 4,       /* counts[0] passed, counts[1] failed */
    SERIES_STREAM = 5,      /* see enum series_stream_count */
    SERIES_KIND_COUNT_
};

enum series_protocol {
    SERIES_HTTP = 0,
    SERIES_GRAPHQL = 1,
    SERIES_GRPC = 2,
    SERIES_CUSTOM = 3,
    SERIES_PROTOCOL_COUNT_
};

/* Counter slots of a stream series; hist is the time to first message,
 * hist2 the stream lifetime. */
enum series_stream_count {
    SERIES_STREAM_OPENED = 0,
    SERIES_STREAM_MESSAGES = 1,
    SERIES_STREAM_RESETS = 2,
    SERIES_STREAM_RECONNECTS = 3,
};

#define SERIES_COUNTS J4_OUTCOME_COUNT_

struct series_key {
    uint16_t id;                /* index in the run's table */
    uint8_t kind;
    uint8_t protocol;
    char name[SERIES_NAME_MAX + 1];
};

/* The run's intern table. Keys never move once published. */
struct series_names {
    pthread_mutex_t lock;
    _Atomic uint32_t count;
    uint32_t per_group[4];
    struct series_key *keys[SERIES_RUN_MAX];
};

/* One series of one worker: written by the worker, drained by control. */
struct worker_series {
    const struct series_key *key;
    _Atomic uint64_t counts[SERIES_COUNTS];
    _Atomic int64_t gauge;
    int64_t gauge_shipped;      /* control thread only */
    struct hist *hist;          /* NULL for kinds without one */
    struct hist *hist2;         /* streams: lifetime */
};

struct worker_series_table {
    pthread_mutex_t lock;       /* creation only */
    _Atomic uint32_t count;
    struct worker_series *items[SERIES_RUN_MAX];
};

/* A drained series, owned by one thread. gauge is a change: the sum of
 * every worker's movement since the last drain. */
struct series_delta {
    struct series_key key;
    uint64_t counts[SERIES_COUNTS];
    int64_t gauge;
    struct hist *hist;
    struct hist *hist2;
};

/* Deltas indexed by key id; entries allocated on first use. */
struct series_set {
    struct series_delta *items[SERIES_RUN_MAX];
    uint32_t count;             /* non-NULL entries */
};

const char *series_kind_name(enum series_kind kind);
const char *series_protocol_name(enum series_protocol protocol);
int series_kind_from_name(const char *name);
int series_protocol_from_name(const char *name);

struct series_names *series_names_new(void);
void series_names_free(struct series_names *names);

void worker_series_table_init(struct worker_series_table *t);
void worker_series_table_release(struct worker_series_table *t);

/* The worker's series for (kind, protocol, name), created on first use;
 * NULL only when out of memory. name NULL or invalid means "other". */
struct worker_series *worker_series_get(struct worker_series_table *t,
                                        struct series_names *names,
                                        enum series_kind kind,
                                        enum series_protocol protocol,
                                        const char *name);

/* Histogram recording safe against other writers of the same series. */
void series_hist_record(struct hist *h, uint64_t value);

/* Control side: moves what t recorded so far into set. */
void series_drain(struct worker_series_table *t, struct series_set *set);

void series_set_init(struct series_set *set);
void series_set_release(struct series_set *set);
int series_set_empty(const struct series_set *set);
/* The delta for key in set, allocated on first use; NULL on no memory. */
struct series_delta *series_set_get(struct series_set *set,
                                    const struct series_key *key);
/* dst += src. Keys are matched by (kind, protocol, name). */
void series_set_merge(struct series_set *dst, const struct series_set *src);

#endif
