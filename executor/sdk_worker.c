/*
 * sdk_worker.c - the worker extras of include/j4.h: random numbers, tags,
 * background routines, the executor-wide shared state, JSON params, and
 * the W3C trace context every protocol helper sends.
 *
 * A routine is a fiber on its worker's loop that shares its j4_worker_t.
 * It stops when the worker stops (the stop flag) or when a failed init is
 * cleaned up (routines_halt); j4_should_stop() and j4_sleep() look at
 * both. The worker waits for its routines before fini, so fini may free
 * what the routines use. The worker and its routines never run at the
 * same time (one loop), but samples and tags stay safe for several
 * writers anyway (series.h) for plugins that use threads of their own.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "prom.h"
#include "worker.h"

struct sdk_routine {
    struct j4_worker *w;
    void (*fn)(j4_worker_t *w, void *arg);
    void *arg;
    struct sdk_fiber fiber_data; /* routine = 1 */
    fiber_handle worker_fiber;   /* woken when the routine returns */
    int done;
};

/* One cached j4_param_json() answer. */
struct sdk_param {
    struct sdk_param *next;
    char *key;
    char *json;
};

/* -------------------------------------------------------------- random */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** over state s. */
static uint64_t xoshiro_next(uint64_t s[4])
{
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

void sdk_worker_init(struct j4_worker *w)
{
    uint64_t seed = w->number * 0x9e3779b97f4a7c15ULL ^
                    (uint64_t)w->ctx->scenario_id;

    for (int i = 0; i < 4; i++)
        w->rng[i] = splitmix64(&seed);
    pthread_mutex_init(&w->tags_lock, NULL);
    atomic_init(&w->routines_halt, 0);
}

J4_EXPORT uint64_t j4_random(j4_worker_t *w)
{
    return xoshiro_next(w->rng);
}

J4_EXPORT double j4_random_double(j4_worker_t *w)
{
    /* The top 53 bits fill a double's mantissa exactly. */
    return (double)(xoshiro_next(w->rng) >> 11) * 0x1.0p-53;
}

/* ---------------------------------------------------------------- tags */

const struct worker_tag *worker_tags(const struct j4_worker *w,
                                     unsigned *count)
{
    *count = w->ntags;
    return w->tags;
}

/* The slot of key in w's tags, or w->ntags when absent. */
static unsigned tag_slot(const struct j4_worker *w, const char *key)
{
    unsigned i = 0;

    while (i < w->ntags && strcmp(w->tags[i].key, key) != 0)
        i++;
    return i;
}

/* Writes the canonical text of w's tags with tags[slot] set to (key,
 * value): "k1=v1,k2=v2" sorted by key. Call under w->tags_lock. */
static int tags_canonical(const struct j4_worker *w, unsigned slot,
                          const char *key, const char *value, char *out,
                          size_t size)
{
    const char *keys[J4_TAGS_MAX + 1], *values[J4_TAGS_MAX + 1];
    unsigned n = w->ntags > slot ? w->ntags : slot + 1;
    size_t len = 0;

    for (unsigned i = 0; i < n; i++) {
        const char *k = i == slot ? key : w->tags[i].key;
        const char *v = i == slot ? value : w->tags[i].value;
        unsigned j = i;

        for (; j > 0 && strcmp(keys[j - 1], k) > 0; j--) {
            keys[j] = keys[j - 1];
            values[j] = values[j - 1];
        }
        keys[j] = k;
        values[j] = v;
    }
    out[0] = '\0';
    for (unsigned i = 0; i < n; i++) {
        int wrote = snprintf(out + len, size - len, "%s%s=%s",
                             i ? "," : "", keys[i], values[i]);

        if (wrote < 0 || (size_t)wrote >= size - len)
            return J4_ERR_TOOBIG;
        len += (size_t)wrote;
    }
    return J4_OK;
}

/* Makes the tag set with tags[slot] = (key, value) the one the worker's
 * samples carry from now on. Call under w->tags_lock. */
static int tags_publish(struct j4_worker *w, unsigned slot, const char *key,
                        const char *value)
{
    char text[SERIES_TAGS_LEN + 1];
    int id;

    if (tags_canonical(w, slot, key, value, text, sizeof(text)) != J4_OK)
        return J4_ERR_TOOBIG;
    if (!w->stats.names)
        return J4_OK; /* not recording series (no run) */
    id = series_tagset_intern(w->stats.names, text);
    if (id < 0)
        return id;
    atomic_store_explicit(&w->stats.tags_id, (uint32_t)id,
                          memory_order_relaxed);
    return J4_OK;
}

/* Stores (key, value) in slot, which is free or holds key. Call under
 * w->tags_lock. */
static int tag_store(struct j4_worker *w, unsigned slot, const char *key,
                     const char *value)
{
    char *v = strdup(value);
    char *k = slot == w->ntags ? strdup(key) : NULL;

    if (!v || (slot == w->ntags && !k)) {
        free(v);
        free(k);
        return J4_ERR_NOMEM;
    }
    if (slot == w->ntags) {
        w->tags[slot].key = k;
        w->ntags++;
    } else {
        free(w->tags[slot].value);
    }
    w->tags[slot].value = v;
    return J4_OK;
}

J4_EXPORT int j4_tag(j4_worker_t *w, const char *key, const char *value)
{
    unsigned slot;
    int rc;

    if (!w || !prom_tag_key_ok(key) || !prom_tag_value_ok(value))
        return J4_ERR_INVALID;
    pthread_mutex_lock(&w->tags_lock);
    slot = tag_slot(w, key);
    rc = slot == J4_TAGS_MAX ? J4_ERR_TOOBIG : J4_OK;
    if (rc == J4_OK && slot < w->ntags && !strcmp(w->tags[slot].value, value))
        goto out_unlock; /* unchanged */
    if (rc == J4_OK)
        rc = tags_publish(w, slot, key, value);
    if (rc == J4_OK)
        rc = tag_store(w, slot, key, value);
out_unlock:
    pthread_mutex_unlock(&w->tags_lock);
    return rc;
}

/* ------------------------------------------------------------- routines */

int sdk_in_routine(void)
{
    const struct sdk_fiber *f = fiber_local();

    return f && f->routine;
}

static void routine_main(void *arg)
{
    struct sdk_routine *r = arg;

    fiber_set_local(&r->fiber_data);
    r->fn(r->w, r->arg);
    sdk_grpc_fiber_release(&r->fiber_data);
    r->done = 1;
    fiber_wake(worker_sched(r->w), r->worker_fiber);
}

J4_EXPORT int j4_routine_start(j4_worker_t *w,
                               void (*fn)(j4_worker_t *w, void *arg),
                               void *arg)
{
    struct sdk_routine *r;
    fiber_handle h;

    if (!w || !fn || sdk_in_routine() || !fiber_current())
        return J4_ERR_INVALID;
    if (w->nroutines == J4_ROUTINES_MAX)
        return J4_ERR_TOOBIG;
    r = calloc(1, sizeof(*r));
    if (!r)
        return J4_ERR_NOMEM;
    r->w = w;
    r->fn = fn;
    r->arg = arg;
    r->fiber_data.routine = 1;
    r->worker_fiber = fiber_self();
    h = fiber_spawn_here(routine_main, r);
    if (!h) {
        free(r);
        return J4_ERR_IO;
    }
    atomic_store(&w->routine_fibers[w->nroutines], h);
    w->routines[w->nroutines++] = r;
    /* A stop that came before the handle was stored missed the routine;
     * it sees the flag at its first j4_should_stop() or wait anyway. */
    return J4_OK;
}

/* Non-zero once every routine of w has returned. */
static int routines_done(const struct j4_worker *w)
{
    for (unsigned i = 0; i < w->nroutines; i++) {
        if (!w->routines[i]->done)
            return 0;
    }
    return 1;
}

void sdk_routines_join(struct j4_worker *w)
{
    struct sched *sched = worker_sched(w);

    if (!w->nroutines)
        return;
    atomic_store(&w->routines_halt, 1);
    for (unsigned i = 0; i < w->nroutines; i++)
        fiber_wake(sched, atomic_load(&w->routine_fibers[i]));
    while (!routines_done(w))
        fiber_wait_until(INT64_MAX);

    for (unsigned i = 0; i < w->nroutines; i++) {
        atomic_store(&w->routine_fibers[i], 0);
        free(w->routines[i]);
        w->routines[i] = NULL;
    }
    w->nroutines = 0;
    atomic_store(&w->routines_halt, 0);
}

J4_EXPORT int j4_blocking(j4_worker_t *w, int (*fn)(void *arg), void *arg)
{
    if (!w || !fn)
        return J4_ERR_INVALID;
    return sched_block_user(fn, arg);
}

/* ------------------------------------------------------ shared, params */

J4_EXPORT void *j4_shared(const j4_worker_t *w)
{
    return w ? w->ctx->shared : NULL;
}

J4_EXPORT const char *j4_param_json(j4_worker_t *w, const char *key)
{
    struct sdk_param *p;
    json_t *v;

    if (!w || !key || !w->ctx->params)
        return NULL;
    for (p = w->params_cache; p; p = p->next) {
        if (strcmp(p->key, key) == 0)
            return p->json;
    }
    v = json_object_get(w->ctx->params, key);
    if (!v)
        return NULL;
    p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->key = strdup(key);
    p->json = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!p->key || !p->json) {
        free(p->key);
        free(p->json);
        free(p);
        return NULL;
    }
    p->next = w->params_cache;
    w->params_cache = p;
    return p->json;
}

void sdk_extras_release(struct j4_worker *w)
{
    while (w->params_cache) {
        struct sdk_param *p = w->params_cache;

        w->params_cache = p->next;
        free(p->key);
        free(p->json);
        free(p);
    }
    for (unsigned i = 0; i < w->ntags; i++) {
        free(w->tags[i].key);
        free(w->tags[i].value);
    }
    w->ntags = 0;
    sdk_grpc_fiber_release(&w->fiber_data);
    pthread_mutex_destroy(&w->tags_lock);
}

/* -------------------------------------------------------- trace context */

/* Ids need not be reproducible, only distinct: a per-thread generator
 * seeded from the clock and the thread (fibers of one thread share it;
 * they never run at once). */
static uint64_t trace_random(void)
{
    static __thread uint64_t s[4];
    static __thread int seeded;

    if (!seeded) {
        uint64_t seed = (uint64_t)clock_mono_us() ^
                        (uint64_t)(uintptr_t)&seeded ^
                        ((uint64_t)pthread_self() << 17);

        for (int i = 0; i < 4; i++)
            s[i] = splitmix64(&seed);
        seeded = 1;
    }
    return xoshiro_next(s);
}

/* Writes name percent-encoded for a baggage value. */
static void baggage_encode(const char *name, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;

    for (const unsigned char *p = (const unsigned char *)name;
         *p && n + 4 < size; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
            (*p >= '0' && *p <= '9') || strchr("-_.~", *p)) {
            out[n++] = (char)*p;
            continue;
        }
        out[n++] = '%';
        out[n++] = hex[*p >> 4];
        out[n++] = hex[*p & 15];
    }
    out[n] = '\0';
}

/* Writes v as 16 lower-case hex digits. */
static char *hex64(char *out, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";

    for (int i = 15; i >= 0; i--) {
        out[i] = digits[v & 15];
        v >>= 4;
    }
    return out + 16;
}

void sdk_trace_context(const struct j4_worker *w,
                       char traceparent[SDK_TRACEPARENT_LEN],
                       char *baggage, size_t baggage_size)
{
    static const char key[] = "j4.scenario=";
    uint64_t hi = trace_random(), lo = trace_random();
    uint64_t span = trace_random();
    char *p = traceparent;

    /* All-zero ids are invalid; a zero draw is astronomically rare but
     * cheap to rule out. Formatted by hand: this runs per request. */
    hi |= hi == 0 && lo == 0;
    span |= span == 0;
    memcpy(p, "00-", 3);
    p = hex64(hex64(p + 3, hi), lo);
    *p++ = '-';
    p = hex64(p, span);
    memcpy(p, "-01", 4);
    if (baggage_size <= sizeof(key)) {
        if (baggage_size)
            baggage[0] = '\0';
        return;
    }
    memcpy(baggage, key, sizeof(key) - 1);
    baggage_encode(w->ctx->name, baggage + sizeof(key) - 1,
                   baggage_size - (sizeof(key) - 1));
}
