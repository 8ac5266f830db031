/*
 * series.h - named series: what a worker measured, per request name.
 *
 * A series is keyed by (kind, name, protocol, tags). Kinds are the requests a
 * worker made (by request name and protocol), the team metrics of
 * include/j4.h (histogram, counter, gauge), checks, and streams. Names are
 * interned once per run in a struct series_names, bounded to
 * SERIES_GROUP_MAX names per group (requests, team metrics, checks,
 * streams); a name past the bound folds into "other", so a request name
 * built from a URL with ids in it cannot grow the label set.
 *
 * Tags (j4_tag) are part of the key: a worker's tag set is kept as one
 * canonical text "k1=v1,k2=v2" sorted by key, interned per run in the
 * same struct series_names (SERIES_TAGSETS_MAX sets), and the worker
 * holds its set's small id. Each tagged variant of a name counts
 * against the group bound; what folds into "other" loses its tags.
 *
 * Recording: each worker holds a small table of its own series, found by
 * name with a linear scan (a worker uses few names). The first sample of
 * a name takes the run's intern lock and allocates the series once; every
 * later sample is relaxed atomic adds only, no lock, and no malloc but
 * for the first sample in a histogram chunk. A worker's histograms are
 * struct chist (common/chist.h): chunks of buckets allocated as samples
 * reach them, a few KiB for a worker whose latencies keep to a band. The
 * executor's control thread drains the worker tables into a struct
 * series_set (plain memory it owns, full struct hist) with atomic
 * exchanges. Recording is safe from more than one thread of the same
 * worker (its routines), since creation is locked and chunks are
 * published with compare-and-swap.
 *
 * The worker's totals (stats.h) are not recorded apart: series_drain()
 * adds what it moves out of the request series into them as well.
 */
#ifndef J4_EXECUTOR_SERIES_H
#define J4_EXECUTOR_SERIES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "chist.h"
#include "hist.h"
#include "j4.h"

#define SERIES_NAME_MAX 64
#define SERIES_GROUP_MAX 64     /* names per group and run, "other" aside */
#define SERIES_RUN_MAX (4 * (SERIES_GROUP_MAX + 1))
#define SERIES_TAGS_LEN 799     /* canonical tag text, J4_TAGS_MAX tags */
#define SERIES_TAGSETS_MAX 256  /* distinct tag sets per run, none aside */

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
    uint16_t tags_id;           /* the run's tag set; 0: no tags */
    char name[SERIES_NAME_MAX + 1];
    char tags[SERIES_TAGS_LEN + 1]; /* canonical text, "" for none */
};

/* The run's intern table. Keys never move once published. */
struct series_names {
    pthread_mutex_t lock;
    _Atomic uint32_t count;
    uint32_t per_group[4];
    struct series_key *keys[SERIES_RUN_MAX];
    uint32_t ntagsets;          /* under lock; id i + 1 is tagsets[i] */
    char *tagsets[SERIES_TAGSETS_MAX];
};

/* One series of one worker: written by the worker, drained by control.
 * The histograms live in the same allocation (hists). */
struct worker_series {
    const struct series_key *key;
    _Atomic uint64_t counts[SERIES_COUNTS];
    _Atomic int64_t gauge;
    int64_t gauge_shipped;      /* control thread only */
    struct chist *hist;         /* NULL for kinds without one */
    struct chist *hist2;        /* streams: lifetime */
    struct chist hists[];
};

/* A worker's series, SERIES_BLOCK to a block; a block is allocated when
 * the first series of it is made, so a worker using one name holds one. */
#define SERIES_BLOCK 16
#define SERIES_BLOCKS ((SERIES_RUN_MAX + SERIES_BLOCK - 1) / SERIES_BLOCK)

struct worker_series_table {
    pthread_mutex_t lock;       /* creation only */
    _Atomic uint32_t count;     /* published after its block and item */
    struct worker_series **blocks[SERIES_BLOCKS];
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

/* The id of the canonical tag text tags in names ("" is 0), interned on
 * first use. Returns the id, or J4_ERR_TOOBIG once SERIES_TAGSETS_MAX
 * sets exist (or tags is too long), J4_ERR_NOMEM. Any thread. */
int series_tagset_intern(struct series_names *names, const char *tags);

/* The worker's series for (kind, protocol, name, tag set tags_id),
 * created on first use; NULL only when out of memory. name NULL or
 * invalid means "other". */
struct worker_series *worker_series_get(struct worker_series_table *t,
                                        struct series_names *names,
                                        enum series_kind kind,
                                        enum series_protocol protocol,
                                        const char *name, uint32_t tags_id);

/* Control side: moves what t recorded so far into set. What leaves the
 * request series is also added to outcomes (SERIES_COUNTS counters, by
 * j4_outcome) and latency, the worker's totals, when they are not NULL. */
void series_drain(struct worker_series_table *t, struct series_set *set,
                  uint64_t *outcomes, struct hist *latency);

void series_set_init(struct series_set *set);
void series_set_release(struct series_set *set);
int series_set_empty(const struct series_set *set);
/* The delta for key in set, allocated on first use; NULL on no memory. */
struct series_delta *series_set_get(struct series_set *set,
                                    const struct series_key *key);
/* dst += src. Keys are matched by (kind, protocol, name, tags). */
void series_set_merge(struct series_set *dst, const struct series_set *src);

#endif
