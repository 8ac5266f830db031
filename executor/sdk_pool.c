/*
 * sdk_pool.c - user pools from the scenario's side: j4_pool_take().
 *
 * A worker may hold several items; each is remembered here, in a table
 * keyed by the worker, until the worker stops (or its init fails) and
 * sdk_pool_worker_release() gives them back. The table lives beside the
 * worker rather than inside it so the SDK's worker struct stays as it is.
 *
 * Where items come from: the cluster backend when j4-executor installed
 * one (the leader arbitrates, see executor/pool_link.c), otherwise a
 * local pool read from params.pool_file and shared by every worker of
 * this process, which is what `j4 run` plays with.
 */
#include "sdk_pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dataset.h"
#include "worker.h"

#define TABLE_BUCKETS 256

struct local_pool;

/* One item a worker holds. */
struct held {
    char *item;                 /* JSON text handed to the scenario */
    uint64_t request_id;        /* cluster: the take's id */
    struct local_pool *local;   /* local: the pool and index */
    size_t index;
};

struct worker_items {
    struct worker_items *next;
    const struct j4_worker *w;
    struct held *items;
    size_t count;
};

/* A pool read from a file, for when there is no cluster. */
struct local_pool {
    struct local_pool *next;
    char *path;
    char **items;
    unsigned char *taken;
    size_t count, n_taken, cursor;
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct worker_items *table[TABLE_BUCKETS];
static struct local_pool *locals;   /* under table_lock, never freed */
static const struct sdk_pool_backend *backend;

void sdk_pool_set_backend(const struct sdk_pool_backend *b)
{
    pthread_mutex_lock(&table_lock);
    backend = b;
    pthread_mutex_unlock(&table_lock);
}

static struct worker_items **bucket(const struct j4_worker *w)
{
    uintptr_t h = (uintptr_t)w;

    h ^= h >> 17;
    return &table[(h >> 4) % TABLE_BUCKETS];
}

/* Under table_lock: w's entry, created when create is set. */
static struct worker_items *items_of(const struct j4_worker *w, int create)
{
    struct worker_items **head = bucket(w), *e;

    for (e = *head; e; e = e->next) {
        if (e->w == w)
            return e;
    }
    if (!create || !(e = calloc(1, sizeof(*e))))
        return NULL;
    e->w = w;
    e->next = *head;
    *head = e;
    return e;
}

/* Under table_lock: detaches w's entry and returns it (or NULL). */
static struct worker_items *items_take(const struct j4_worker *w)
{
    struct worker_items **link = bucket(w);

    for (; *link; link = &(*link)->next) {
        struct worker_items *e = *link;
        if (e->w == w) {
            *link = e->next;
            return e;
        }
    }
    return NULL;
}

static int remember(const struct j4_worker *w, const struct held *h)
{
    struct worker_items *e;
    struct held *grown;
    int rc = J4_ERR_NOMEM;

    pthread_mutex_lock(&table_lock);
    e = items_of(w, 1);
    grown = e ? realloc(e->items, (e->count + 1) * sizeof(*grown)) : NULL;
    if (grown) {
        e->items = grown;
        e->items[e->count++] = *h;
        rc = J4_OK;
    }
    pthread_mutex_unlock(&table_lock);
    return rc;
}

/* ------------------------------------------------------- local pools */

static struct local_pool *local_build(const char *path, json_t *items)
{
    struct local_pool *lp = calloc(1, sizeof(*lp));
    size_t n = json_array_size(items);

    if (!lp)
        return NULL;
    lp->path = strdup(path);
    lp->items = calloc(n, sizeof(*lp->items));
    lp->taken = calloc(n, 1);
    if (!lp->path || !lp->items || !lp->taken)
        goto out_free;
    for (; lp->count < n; lp->count++) {
        lp->items[lp->count] = json_dumps(json_array_get(items, lp->count),
                                          JSON_COMPACT);
        if (!lp->items[lp->count])
            goto out_free;
    }
    return lp;

out_free:
    for (size_t i = 0; i < lp->count; i++)
        free(lp->items[i]);
    free(lp->items);
    free(lp->taken);
    free(lp->path);
    free(lp);
    return NULL;
}

/* Reads and parses path; returns the items array or NULL with err. */
static json_t *local_read(const char *path, char *err, size_t err_size)
{
    const char *dot = strrchr(path, '.');
    enum dataset_format format = dot && !strcmp(dot, ".csv")
                                     ? DATASET_CSV : DATASET_JSONL;
    FILE *f = fopen(path, "rb");
    struct stat st;
    json_t *items = NULL;
    char *text = NULL;

    if (!f || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_size > DATASET_FILE_MAX) {
        snprintf(err, err_size, "unable to read pool_file '%s': %s", path,
                 f ? "not a regular file under 64 MiB" : strerror(errno));
        goto out_close;
    }
    text = malloc((size_t)st.st_size + 1);
    if (!text || fread(text, 1, (size_t)st.st_size, f) !=
                     (size_t)st.st_size) {
        snprintf(err, err_size, "unable to read pool_file '%s'", path);
        goto out_close;
    }
    if (dataset_parse(text, (size_t)st.st_size, format, &items, err,
                      err_size) != J4_OK)
        items = NULL;
out_close:
    free(text);
    if (f)
        fclose(f);
    return items;
}

/* Under table_lock: the local pool of path, read on first use. */
static struct local_pool *local_get(const char *path, char *err,
                                    size_t err_size)
{
    struct local_pool *lp;
    json_t *items;

    for (lp = locals; lp; lp = lp->next) {
        if (!strcmp(lp->path, path))
            return lp;
    }
    items = local_read(path, err, err_size);
    if (!items)
        return NULL;
    lp = local_build(path, items);
    json_decref(items);
    if (!lp) {
        snprintf(err, err_size, "out of memory reading '%s'", path);
        return NULL;
    }
    lp->next = locals;
    locals = lp;
    return lp;
}

static int local_take(j4_worker_t *w, const char *pool, struct held *h,
                      char *err, size_t err_size)
{
    const char *path = j4_param_str(w, "pool_file", NULL);
    struct local_pool *lp;
    int rc = J4_ERR_UNAVAILABLE;

    if (!path) {
        snprintf(err, err_size, "pool '%s': no cluster here; set "
                 "params.pool_file to a CSV or JSON-lines file", pool);
        return J4_ERR_NOTFOUND;
    }
    pthread_mutex_lock(&table_lock);
    lp = local_get(path, err, err_size);
    for (size_t k = 0; lp && k < lp->count; k++) {
        size_t i = (lp->cursor + k) % lp->count;
        if (lp->taken[i])
            continue;
        h->item = strdup(lp->items[i]);
        if (!h->item) {
            rc = J4_ERR_NOMEM;
            break;
        }
        lp->taken[i] = 1;
        lp->n_taken++;
        lp->cursor = (i + 1) % lp->count;
        h->local = lp;
        h->index = i;
        rc = J4_OK;
        break;
    }
    if (lp && rc == J4_ERR_UNAVAILABLE)
        snprintf(err, err_size, "pool '%s' exhausted: %zu of %zu items "
                 "held", pool, lp->n_taken, lp->count);
    pthread_mutex_unlock(&table_lock);
    return lp ? rc : J4_ERR_INVALID;
}

/* ------------------------------------------------------------- the SDK */

static void release_local(struct held *items, size_t count)
{
    pthread_mutex_lock(&table_lock);
    for (size_t i = 0; i < count; i++) {
        struct local_pool *lp = items[i].local;
        if (lp && lp->taken[items[i].index]) {
            lp->taken[items[i].index] = 0;
            lp->n_taken--;
        }
    }
    pthread_mutex_unlock(&table_lock);
}

/* Returns one item that could not be remembered. */
static void give_back(const struct sdk_pool_backend *b, j4_worker_t *w,
                      struct held *h)
{
    if (h->local)
        release_local(h, 1);
    else if (b)
        b->release(b->ctx, j4_scenario_id(w), &h->request_id, 1);
    free(h->item);
    h->item = NULL;
}

J4_EXPORT int j4_pool_take(j4_worker_t *w, const char *pool,
                           const char **item)
{
    const struct sdk_pool_backend *b;
    struct held h = {0};
    char err[320] = "";
    int rc;

    if (!w || !item)
        return J4_ERR_INVALID;
    *item = NULL;
    if (!pool || !pool[0])
        pool = j4_param_str(w, "pool", NULL);
    if (!dataset_name_ok(pool)) {
        j4_log(w, J4_LOG_ERROR, "j4_pool_take: no pool named (pass one, "
               "or set params.pool to a data set name)");
        return J4_ERR_INVALID;
    }
    pthread_mutex_lock(&table_lock);
    b = backend;
    pthread_mutex_unlock(&table_lock);
    if (b)
        rc = b->take(b->ctx, w, pool, &h.request_id, &h.item, err,
                     sizeof(err));
    else
        rc = local_take(w, pool, &h, err, sizeof(err));
    if (rc == J4_OK && remember(w, &h) != J4_OK) {
        give_back(b, w, &h);
        rc = J4_ERR_NOMEM;
    }
    if (rc == J4_OK)
        *item = h.item;
    else if (rc != J4_ERR_STOPPED && err[0])
        j4_log(w, J4_LOG_WARN, "j4_pool_take: %s", err);
    return rc;
}

void sdk_pool_worker_release(j4_worker_t *w)
{
    const struct sdk_pool_backend *b;
    struct worker_items *e;
    uint64_t *ids;
    size_t n = 0;

    pthread_mutex_lock(&table_lock);
    e = items_take(w);
    b = backend;
    pthread_mutex_unlock(&table_lock);
    if (!e)
        return;
    ids = calloc(e->count ? e->count : 1, sizeof(*ids));
    for (size_t i = 0; ids && i < e->count; i++) {
        if (!e->items[i].local)
            ids[n++] = e->items[i].request_id;
    }
    if (b && n)
        b->release(b->ctx, j4_scenario_id(w), ids, n);
    release_local(e->items, e->count);
    for (size_t i = 0; i < e->count; i++)
        free(e->items[i].item);
    free(ids);
    free(e->items);
    free(e);
}
