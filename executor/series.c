/*
 * series.c - interning series names per run, recording per worker, and
 * draining into deltas.
 *
 * The layout and the threading rules are in series.h. The only lock a
 * worker ever takes is on the first sample of a name (to intern it and
 * allocate its series); after that a sample is a scan of the worker's
 * few series and relaxed atomic adds (common/chist.c for histograms).
 */
#include "series.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)

static const char *const kind_names[SERIES_KIND_COUNT_] = {
    "request", "histogram", "counter", "gauge", "check", "stream",
};
static const char *const protocol_names[SERIES_PROTOCOL_COUNT_] = {
    "http", "graphql", "grpc", "custom",
};

const char *series_kind_name(enum series_kind kind)
{
    return (unsigned)kind < SERIES_KIND_COUNT_ ? kind_names[kind] : "request";
}

const char *series_protocol_name(enum series_protocol protocol)
{
    return (unsigned)protocol < SERIES_PROTOCOL_COUNT_
               ? protocol_names[protocol]
               : "custom";
}

int series_kind_from_name(const char *name)
{
    for (int i = 0; name && i < SERIES_KIND_COUNT_; i++) {
        if (!strcmp(name, kind_names[i]))
            return i;
    }
    return -1;
}

int series_protocol_from_name(const char *name)
{
    for (int i = 0; name && i < SERIES_PROTOCOL_COUNT_; i++) {
        if (!strcmp(name, protocol_names[i]))
            return i;
    }
    return -1;
}

/* Groups share the bound: team metrics of every kind form one group. */
static unsigned group_of(enum series_kind kind)
{
    switch (kind) {
    case SERIES_REQUEST:
        return 0;
    case SERIES_CHECK:
        return 2;
    case SERIES_STREAM:
        return 3;
    default:
        return 1;
    }
}

/* Endings Prometheus gives meaning to, and type words its linter
 * refuses in names: a team metric named so could collide with the
 * families J4 derives from another one ("x" as a histogram makes
 * j4_team_x_seconds_count) and break every scrape. */
static int team_name_reserved(const char *name, size_t len)
{
    static const char *const endings[] = {
        "_total", "_seconds", "_count", "_sum", "_bucket", "_created",
        "_info"};
    static const char *const words[] = {"counter", "gauge", "histogram",
                                        "summary"};

    for (size_t i = 0; i < sizeof(endings) / sizeof(endings[0]); i++) {
        size_t n = strlen(endings[i]);

        if (len >= n && memcmp(name + len - n, endings[i], n) == 0)
            return 1;
    }
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (strstr(name, words[i]))
            return 1;
    }
    return 0;
}

/* A name is 1-64 printable ASCII characters; anything else is "other".
 * Team metric names are further [a-z0-9_] (they become metric names)
 * and not reserved (team_name_reserved). */
static int name_ok(enum series_kind kind, const char *name)
{
    size_t len = name ? strnlen(name, SERIES_NAME_MAX + 1) : 0;
    int team = group_of(kind) == 1;

    if (len == 0 || len > SERIES_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];

        if (c < 0x20 || c > 0x7e)
            return 0;
        if (team && !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '_'))
            return 0;
    }
    return !team || !team_name_reserved(name, len);
}

struct series_names *series_names_new(void)
{
    struct series_names *names = calloc(1, sizeof(*names));

    if (names)
        pthread_mutex_init(&names->lock, NULL);
    return names;
}

void series_names_free(struct series_names *names)
{
    if (!names)
        return;
    for (uint32_t i = 0; i < atomic_load(&names->count); i++)
        free(names->keys[i]);
    for (uint32_t i = 0; i < names->ntagsets; i++)
        free(names->tagsets[i]);
    pthread_mutex_destroy(&names->lock);
    free(names);
}

int series_tagset_intern(struct series_names *names, const char *tags)
{
    int id = J4_ERR_TOOBIG;

    if (!tags || !*tags)
        return 0;
    if (strlen(tags) > SERIES_TAGS_LEN)
        return J4_ERR_TOOBIG;
    pthread_mutex_lock(&names->lock);
    for (uint32_t i = 0; i < names->ntagsets; i++) {
        if (!strcmp(names->tagsets[i], tags)) {
            id = (int)i + 1;
            goto out_unlock;
        }
    }
    if (names->ntagsets < SERIES_TAGSETS_MAX) {
        char *copy = strdup(tags);

        id = J4_ERR_NOMEM;
        if (copy) {
            names->tagsets[names->ntagsets++] = copy;
            id = (int)names->ntagsets;
        }
    }
out_unlock:
    pthread_mutex_unlock(&names->lock);
    return id;
}

/* Call only while holding names->lock. */
static const struct series_key *find_key(struct series_names *names,
                                         enum series_kind kind,
                                         enum series_protocol protocol,
                                         const char *name, uint32_t tags_id)
{
    uint32_t n = atomic_load(&names->count);

    for (uint32_t i = 0; i < n; i++) {
        const struct series_key *k = names->keys[i];

        if (k->kind == kind && k->protocol == protocol &&
            k->tags_id == tags_id && !strcmp(k->name, name))
            return k;
    }
    return NULL;
}

static const struct series_key *add_key(struct series_names *names,
                                        enum series_kind kind,
                                        enum series_protocol protocol,
                                        const char *name, uint32_t tags_id)
{
    uint32_t n = atomic_load(&names->count);
    struct series_key *k;

    if (n >= SERIES_RUN_MAX)
        return NULL;
    k = calloc(1, sizeof(*k));
    if (!k)
        return NULL;
    k->id = (uint16_t)n;
    k->kind = (uint8_t)kind;
    k->protocol = (uint8_t)protocol;
    snprintf(k->name, sizeof(k->name), "%s", name);
    if (tags_id > 0 && tags_id <= names->ntagsets) {
        k->tags_id = (uint16_t)tags_id;
        snprintf(k->tags, sizeof(k->tags), "%s", names->tagsets[tags_id - 1]);
    }
    names->keys[n] = k;
    atomic_store(&names->count, n + 1);
    return k;
}

/* The interned key, or the group's untagged "other" once the group is
 * full. Every tagged variant but "other" counts against the bound. */
static const struct series_key *intern(struct series_names *names,
                                       enum series_kind kind,
                                       enum series_protocol protocol,
                                       const char *name, uint32_t tags_id)
{
    unsigned group = group_of(kind);
    const struct series_key *k;

    if (!name_ok(kind, name))
        name = "other";
    pthread_mutex_lock(&names->lock);
    if (!strcmp(name, "other"))
        tags_id = 0;
    k = find_key(names, kind, protocol, name, tags_id);
    if (!k && strcmp(name, "other") != 0 &&
        names->per_group[group] >= SERIES_GROUP_MAX) {
        name = "other";
        tags_id = 0;
        k = find_key(names, kind, protocol, name, tags_id);
    }
    if (!k) {
        k = add_key(names, kind, protocol, name, tags_id);
        if (k && strcmp(name, "other") != 0)
            __atomic_store_n(&names->per_group[group],
                             names->per_group[group] + 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&names->lock);
    return k;
}

void worker_series_table_init(struct worker_series_table *t)
{
    memset(t, 0, sizeof(*t));
    pthread_mutex_init(&t->lock, NULL);
}

/* Series i of t; i below a count read with acquire. */
static struct worker_series *table_item(const struct worker_series_table *t,
                                        uint32_t i)
{
    return t->blocks[i / SERIES_BLOCK][i % SERIES_BLOCK];
}

void worker_series_table_release(struct worker_series_table *t)
{
    uint32_t n = atomic_load(&t->count);

    for (uint32_t i = 0; i < n; i++) {
        struct worker_series *s = table_item(t, i);

        if (s->hist)
            chist_release(s->hist);
        if (s->hist2)
            chist_release(s->hist2);
        free(s);
    }
    for (uint32_t b = 0; b < SERIES_BLOCKS; b++)
        free(t->blocks[b]);
    memset(t->blocks, 0, sizeof(t->blocks));
    atomic_store(&t->count, 0);
    pthread_mutex_destroy(&t->lock);
}

static struct worker_series *table_find(struct worker_series_table *t,
                                        enum series_kind kind,
                                        enum series_protocol protocol,
                                        const char *name, uint32_t tags_id)
{
    uint32_t n = atomic_load_explicit(&t->count, memory_order_acquire);

    for (uint32_t i = 0; i < n; i++) {
        struct worker_series *s = table_item(t, i);
        const struct series_key *k = s->key;

        if (k->kind == kind && k->protocol == protocol &&
            k->tags_id == tags_id && !strcmp(k->name, name))
            return s;
    }
    return NULL;
}

static struct hist *hist_new(void)
{
    struct hist *h = malloc(sizeof(*h));

    if (h)
        hist_init(h);
    return h;
}

/* Histograms a series of kind keeps: latency or values, and for streams
 * the lifetime as well. */
static int hists_of(enum series_kind kind)
{
    switch (kind) {
    case SERIES_REQUEST:
    case SERIES_TEAM_HIST:
        return 1;
    case SERIES_STREAM:
        return 2;
    default:
        return 0;
    }
}

/* A worker series and its histograms in one allocation. */
static struct worker_series *series_new(const struct series_key *key)
{
    int hists = hists_of((enum series_kind)key->kind);
    struct worker_series *s =
        calloc(1, sizeof(*s) + (size_t)hists * sizeof(s->hists[0]));

    if (!s)
        return NULL;
    s->key = key;
    for (int i = 0; i < hists; i++)
        chist_init(&s->hists[i]);
    if (hists > 0)
        s->hist = &s->hists[0];
    if (hists > 1)
        s->hist2 = &s->hists[1];
    return s;
}

/* Slow path: the first sample of a name in this worker. Call only while
 * holding t->lock. */
static struct worker_series *table_append(struct worker_series_table *t,
                                          const struct series_key *key)
{
    uint32_t n = atomic_load(&t->count);
    struct worker_series ***block;
    struct worker_series *s;

    if (n >= SERIES_RUN_MAX)
        return NULL;
    block = &t->blocks[n / SERIES_BLOCK];
    if (!*block && !(*block = calloc(SERIES_BLOCK, sizeof(**block))))
        return NULL;
    if (!(s = series_new(key)))
        return NULL;
    (*block)[n % SERIES_BLOCK] = s;
    atomic_store_explicit(&t->count, n + 1, memory_order_release);
    return s;
}

static struct worker_series *table_add(struct worker_series_table *t,
                                       const struct series_key *key)
{
    struct worker_series *s;

    pthread_mutex_lock(&t->lock);
    s = table_find(t, key->kind, key->protocol, key->name, key->tags_id);
    if (!s)
        s = table_append(t, key);
    pthread_mutex_unlock(&t->lock);
    return s;
}

struct worker_series *worker_series_get(struct worker_series_table *t,
                                        struct series_names *names,
                                        enum series_kind kind,
                                        enum series_protocol protocol,
                                        const char *name, uint32_t tags_id)
{
    struct worker_series *s;
    const struct series_key *key;

    if (!name_ok(kind, name) || !strcmp(name, "other")) {
        name = "other";
        tags_id = 0;
    }
    s = table_find(t, kind, protocol, name, tags_id);
    if (s || !names)
        return s;
    /* A full group folds new names into "other" without the lock, so a
     * name with ids in it costs a scan, never a lock per sample. */
    if (LOAD(&names->per_group[group_of(kind)]) >= SERIES_GROUP_MAX) {
        name = "other";
        tags_id = 0;
        s = table_find(t, kind, protocol, name, tags_id);
        if (s)
            return s;
    }
    key = intern(names, kind, protocol, name, tags_id);
    if (!key)
        return NULL;
    s = table_find(t, key->kind, key->protocol, key->name, key->tags_id);
    return s ? s : table_add(t, key);
}

/* ------------------------------------------------------------- deltas */

void series_set_init(struct series_set *set)
{
    memset(set, 0, sizeof(*set));
}

void series_set_release(struct series_set *set)
{
    for (uint32_t i = 0; i < SERIES_RUN_MAX; i++) {
        if (!set->items[i])
            continue;
        free(set->items[i]->hist);
        free(set->items[i]->hist2);
        free(set->items[i]);
    }
    series_set_init(set);
}

int series_set_empty(const struct series_set *set)
{
    return set->count == 0;
}

static int same_key(const struct series_key *a, const struct series_key *b)
{
    return a->kind == b->kind && a->protocol == b->protocol &&
           !strcmp(a->name, b->name) && !strcmp(a->tags, b->tags);
}

static struct series_delta *delta_new(const struct series_key *key)
{
    struct series_delta *d = calloc(1, sizeof(*d));
    int hist = key->kind == SERIES_REQUEST || key->kind == SERIES_TEAM_HIST ||
               key->kind == SERIES_STREAM;

    if (!d)
        return NULL;
    d->key = *key;
    if (hist && !(d->hist = hist_new()))
        goto out_free;
    if (key->kind == SERIES_STREAM && !(d->hist2 = hist_new()))
        goto out_free;
    return d;

out_free:
    free(d->hist);
    free(d);
    return NULL;
}

struct series_delta *series_set_get(struct series_set *set,
                                    const struct series_key *key)
{
    uint32_t free_slot = SERIES_RUN_MAX;
    struct series_delta *d;

    if (key->id < SERIES_RUN_MAX && set->items[key->id] &&
        same_key(&set->items[key->id]->key, key))
        return set->items[key->id];
    for (uint32_t i = 0; i < SERIES_RUN_MAX; i++) {
        if (set->items[i] && same_key(&set->items[i]->key, key))
            return set->items[i];
        if (!set->items[i] && free_slot == SERIES_RUN_MAX)
            free_slot = i;
    }
    if (key->id < SERIES_RUN_MAX && !set->items[key->id])
        free_slot = key->id;
    if (free_slot == SERIES_RUN_MAX || !(d = delta_new(key)))
        return NULL;
    d->key.id = (uint16_t)free_slot;
    set->items[free_slot] = d;
    set->count++;
    return d;
}

static int worker_series_empty(struct worker_series *s)
{
    for (int i = 0; i < SERIES_COUNTS; i++) {
        if (atomic_load_explicit(&s->counts[i], memory_order_relaxed))
            return 0;
    }
    if (s->hist && chist_pending(s->hist))
        return 0;
    if (s->hist2 && chist_pending(s->hist2))
        return 0;
    return atomic_load(&s->gauge) == s->gauge_shipped;
}

/* Moves s into d; outcomes and latency (either may be NULL) get the same
 * counts and samples as well. */
static void drain_one(struct worker_series *s, struct series_delta *d,
                      uint64_t *outcomes, struct hist *latency)
{
    int64_t gauge = atomic_load(&s->gauge);

    for (int i = 0; i < SERIES_COUNTS; i++) {
        uint64_t n;

        if (!atomic_load_explicit(&s->counts[i], memory_order_relaxed))
            continue;
        n = atomic_exchange_explicit(&s->counts[i], 0, memory_order_relaxed);
        d->counts[i] += n;
        if (outcomes)
            outcomes[i] += n;
    }
    if (s->hist && d->hist)
        chist_drain(s->hist, d->hist, latency);
    if (s->hist2 && d->hist2)
        chist_drain(s->hist2, d->hist2, NULL);
    d->gauge += gauge - s->gauge_shipped;
    s->gauge_shipped = gauge;
}

void series_drain(struct worker_series_table *t, struct series_set *set,
                  uint64_t *outcomes, struct hist *latency)
{
    uint32_t n = atomic_load_explicit(&t->count, memory_order_acquire);

    for (uint32_t i = 0; i < n; i++) {
        struct worker_series *s = table_item(t, i);
        int request = s->key->kind == SERIES_REQUEST;
        struct series_delta *d;

        if (worker_series_empty(s))
            continue;
        d = series_set_get(set, s->key);
        if (d)
            drain_one(s, d, request ? outcomes : NULL,
                      request ? latency : NULL);
    }
}

void series_set_merge(struct series_set *dst, const struct series_set *src)
{
    for (uint32_t i = 0; i < SERIES_RUN_MAX; i++) {
        const struct series_delta *s = src->items[i];
        struct series_delta *d;

        if (!s || !(d = series_set_get(dst, &s->key)))
            continue;
        for (int k = 0; k < SERIES_COUNTS; k++)
            d->counts[k] += s->counts[k];
        d->gauge += s->gauge;
        if (s->hist && d->hist)
            hist_merge(d->hist, s->hist);
        if (s->hist2 && d->hist2)
            hist_merge(d->hist2, s->hist2);
    }
}
