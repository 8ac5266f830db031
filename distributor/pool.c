/*
 * pool.c - the leader's side of user pools (see pool.h).
 *
 * In memory the leader keeps one "use" per (scenario, data set) that has
 * been taken from: the items (read from PostgreSQL once) and, per item,
 * its holder: executor, incarnation, worker and the take's request id.
 * PostgreSQL's pool_leases is the truth; memory mirrors it. Each pass
 * changes memory first and collects the matching writes, runs them in one
 * fenced transaction and only then answers; if the transaction fails the
 * answers say "unavailable" and memory is read back from the table.
 */
#include "pool.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "datasets.h"
#include "j4.h"
#include "j4.pb-c.h"
#include "leader_int.h"
#include "log.h"
#include "pgstore.h"

#define POOL_QUEUE_MAX 1024
#define POOL_BATCH_MAX 256

struct holder {
    int held;
    char exec[DIST_ID_MAX + 1];
    uint64_t incarnation;
    uint64_t worker;
    uint64_t request_id;
};

struct pool_use {
    int64_t scenario_id;
    char name[DATASET_NAME_MAX + 1];
    size_t n_items;
    char **items;               /* JSON object texts */
    struct holder *holders;     /* one per item */
    size_t n_held;
    size_t cursor;              /* where the next search starts */
};

enum op_kind { OP_INSERT, OP_DELETE, OP_DROP_SCENARIO };

/* One write to pool_leases, collected during a pass. */
struct op {
    enum op_kind kind;
    int64_t scenario_id;
    char pool[DATASET_NAME_MAX + 1];
    uint32_t index;
    struct holder h;
};

/* One answer to send once the writes are committed. */
struct answer {
    natsMsg *msg;
    int is_take;
    uint64_t request_id;
    uint8_t *buf;
    size_t len;
};

struct dpool {
    struct leader *l;
    natsConnection *nc;
    natsSubscription *take_sub, *release_sub;

    pthread_mutex_t lock;
    natsMsg *queue[POOL_QUEUE_MAX];
    size_t queue_len;

    /* leader thread only */
    int loaded;                 /* memory mirrors pool_leases */
    struct pool_use **uses;
    size_t n_uses;
    struct op *ops;
    size_t n_ops, cap_ops;
};

/* ---------------------------------------------------------- lifecycle */

static void use_free(struct pool_use *u)
{
    if (!u)
        return;
    for (size_t i = 0; i < u->n_items; i++)
        free(u->items[i]);
    free(u->items);
    free(u->holders);
    free(u);
}

static void uses_clear(struct dpool *p)
{
    for (size_t i = 0; i < p->n_uses; i++)
        use_free(p->uses[i]);
    free(p->uses);
    p->uses = NULL;
    p->n_uses = 0;
    p->loaded = 0;
}

static void queue_clear(struct dpool *p)
{
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->queue_len; i++)
        natsMsg_Destroy(p->queue[i]);
    p->queue_len = 0;
    pthread_mutex_unlock(&p->lock);
}

struct dpool *dpool_new(struct leader *l)
{
    struct dpool *p = calloc(1, sizeof(*p));

    if (!p)
        return NULL;
    p->l = l;
    pthread_mutex_init(&p->lock, NULL);
    return p;
}

void dpool_free(struct dpool *p)
{
    if (!p)
        return;
    natsSubscription_Destroy(p->take_sub);
    natsSubscription_Destroy(p->release_sub);
    queue_clear(p);
    uses_clear(p);
    free(p->ops);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static void on_pool_msg(natsConnection *nc, natsSubscription *sub,
                        natsMsg *msg, void *closure)
{
    struct dpool *p = closure;
    int queued = 0;

    (void)nc;
    (void)sub;
    if (atomic_load(&p->l->is_leader)) {
        pthread_mutex_lock(&p->lock);
        if (p->queue_len < POOL_QUEUE_MAX) {
            p->queue[p->queue_len++] = msg;
            queued = 1;
        }
        pthread_mutex_unlock(&p->lock);
    }
    if (!queued) {
        natsMsg_Destroy(msg);
        return;
    }
    leader_wake(p->l);
}

int dpool_subscribe(struct dpool *p, natsConnection *nc)
{
    natsStatus s = natsConnection_Subscribe(&p->take_sub, nc,
                                            "j4.pool.take.*", on_pool_msg, p);

    p->nc = nc;
    if (s == NATS_OK)
        s = natsConnection_Subscribe(&p->release_sub, nc,
                                     "j4.pool.release.*", on_pool_msg, p);
    if (s != NATS_OK) {
        log_error("nats: unable to subscribe to j4.pool.*: %s",
                  natsStatus_GetText(s));
        return J4_ERR_UNAVAILABLE;
    }
    return J4_OK;
}

void dpool_unsubscribe(struct dpool *p)
{
    if (p->take_sub)
        natsSubscription_Unsubscribe(p->take_sub);
    if (p->release_sub)
        natsSubscription_Unsubscribe(p->release_sub);
}

void dpool_won(struct dpool *p)
{
    uses_clear(p);
}

void dpool_lost(struct dpool *p)
{
    queue_clear(p);
    uses_clear(p);
    p->n_ops = 0;
}

/* --------------------------------------------------------------- uses */

static struct pool_use *use_find(struct dpool *p, int64_t scenario_id,
                                 const char *name)
{
    for (size_t i = 0; i < p->n_uses; i++) {
        struct pool_use *u = p->uses[i];
        if (u->scenario_id == scenario_id && !strcmp(u->name, name))
            return u;
    }
    return NULL;
}

/* Builds a use from the data set's items text (a JSON array). */
static struct pool_use *use_from_items(int64_t scenario_id, const char *name,
                                       const char *text)
{
    json_t *items = json_loads(text, 0, NULL);
    size_t n = json_array_size(items);
    struct pool_use *u = n ? calloc(1, sizeof(*u)) : NULL;

    if (u) {
        u->items = calloc(n, sizeof(*u->items));
        u->holders = calloc(n, sizeof(*u->holders));
    }
    if (!u || !u->items || !u->holders) {
        json_decref(items);
        use_free(u);
        return NULL;
    }
    u->scenario_id = scenario_id;
    snprintf(u->name, sizeof(u->name), "%s", name);
    for (; u->n_items < n; u->n_items++) {
        u->items[u->n_items] = json_dumps(json_array_get(items, u->n_items),
                                          JSON_COMPACT);
        if (!u->items[u->n_items])
            abort();            /* a service may abort on out of memory */
    }
    json_decref(items);
    return u;
}

/* The use of (scenario, name), read from PostgreSQL if new. Returns
 * J4_OK, J4_ERR_NOTFOUND (no such data set) or J4_ERR_UNAVAILABLE. */
static int use_get(struct dpool *p, int64_t scenario_id, const char *name,
                   struct pool_use **out)
{
    const char *params[] = {name};
    struct pool_use **grown;
    PGresult *res;

    *out = use_find(p, scenario_id, name);
    if (*out)
        return J4_OK;
    res = pgstore_query(p->l->conn,
                        "SELECT items::text FROM datasets WHERE name = $1",
                        1, params);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return J4_ERR_UNAVAILABLE;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        return J4_ERR_NOTFOUND;
    }
    *out = use_from_items(scenario_id, name, PQgetvalue(res, 0, 0));
    PQclear(res);
    grown = *out ? realloc(p->uses, (p->n_uses + 1) * sizeof(*grown)) : NULL;
    if (!grown) {
        use_free(*out);
        *out = NULL;
        return J4_ERR_UNAVAILABLE;
    }
    p->uses = grown;
    p->uses[p->n_uses++] = *out;
    return J4_OK;
}

static void use_remove(struct dpool *p, size_t i)
{
    use_free(p->uses[i]);
    memmove(&p->uses[i], &p->uses[i + 1],
            (p->n_uses - i - 1) * sizeof(p->uses[0]));
    p->n_uses--;
}

/* Reads pool_leases back (scenarios still running only). */
static int load(struct dpool *p)
{
    PGresult *res = PQexec(p->l->conn,
        "SELECT l.scenario_id, l.pool, l.item_index, l.executor_id,"
        " l.incarnation, l.worker, l.request_id FROM pool_leases l"
        " JOIN scenarios s ON s.id = l.scenario_id"
        " WHERE s.state = 'running'");
    size_t n = 0;

    uses_clear(p);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return J4_ERR_UNAVAILABLE;
    }
    for (int r = 0; r < PQntuples(res); r++) {
        int64_t sid = strtoll(PQgetvalue(res, r, 0), NULL, 10);
        unsigned long index = strtoul(PQgetvalue(res, r, 2), NULL, 10);
        struct pool_use *u;
        struct holder *h;

        if (use_get(p, sid, PQgetvalue(res, r, 1), &u) == J4_ERR_UNAVAILABLE)
            break;
        if (!u || index >= u->n_items || u->holders[index].held)
            continue;
        h = &u->holders[index];
        h->held = 1;
        snprintf(h->exec, sizeof(h->exec), "%s", PQgetvalue(res, r, 3));
        h->incarnation = strtoull(PQgetvalue(res, r, 4), NULL, 10);
        h->worker = strtoull(PQgetvalue(res, r, 5), NULL, 10);
        h->request_id = strtoull(PQgetvalue(res, r, 6), NULL, 10);
        u->n_held++;
        n++;
    }
    PQclear(res);
    if (n)
        log_info("pools: leader holds %zu item lease(s) of %zu pool(s)", n,
                 p->n_uses);
    return J4_OK;
}

/* ----------------------------------------------------------- writes */

static struct op *op_add(struct dpool *p, enum op_kind kind,
                         const struct pool_use *u, uint32_t index)
{
    struct op *op;

    if (p->n_ops == p->cap_ops) {
        size_t cap = p->cap_ops ? p->cap_ops * 2 : 64;
        struct op *grown = realloc(p->ops, cap * sizeof(*grown));
        if (!grown)
            abort();
        p->ops = grown;
        p->cap_ops = cap;
    }
    op = &p->ops[p->n_ops++];
    memset(op, 0, sizeof(*op));
    op->kind = kind;
    op->scenario_id = u->scenario_id;
    snprintf(op->pool, sizeof(op->pool), "%s", u->name);
    op->index = index;
    if (kind == OP_INSERT)
        op->h = u->holders[index];
    return op;
}

static int op_exec(struct dpool *p, const struct op *op)
{
    char sid[24], idx[16], inc[24], worker[24], req[24], epoch[24];
    const char *params[] = {sid, op->pool, idx, op->h.exec, inc, worker,
                            req, epoch};
    static const char *const sql[] = {
        [OP_INSERT] = "INSERT INTO pool_leases (scenario_id, pool,"
            " item_index, executor_id, incarnation, worker, request_id,"
            " epoch) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        [OP_DELETE] = "DELETE FROM pool_leases WHERE scenario_id = $1"
            " AND pool = $2 AND item_index = $3",
        [OP_DROP_SCENARIO] = "DELETE FROM pool_leases"
            " WHERE scenario_id = $1",
    };
    static const int n_params[] = {8, 3, 1};
    PGresult *res;
    int ok;

    snprintf(sid, sizeof(sid), "%lld", (long long)op->scenario_id);
    snprintf(idx, sizeof(idx), "%u", op->index);
    snprintf(inc, sizeof(inc), "%lld", (long long)op->h.incarnation);
    snprintf(worker, sizeof(worker), "%lld", (long long)op->h.worker);
    snprintf(req, sizeof(req), "%lld", (long long)op->h.request_id);
    snprintf(epoch, sizeof(epoch), "%llu", (unsigned long long)p->l->epoch);
    res = pgstore_query(p->l->conn, sql[op->kind], n_params[op->kind],
                        params);
    ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    return ok ? J4_OK : J4_ERR_UNAVAILABLE;
}

/* Runs the collected writes in one fenced transaction. */
static int flush_ops(struct dpool *p)
{
    int rc;

    if (p->n_ops == 0)
        return J4_OK;
    rc = pgstore_begin_fenced(p->l->conn, p->l->epoch);
    for (size_t i = 0; rc == J4_OK && i < p->n_ops; i++)
        rc = op_exec(p, &p->ops[i]);
    if (rc == J4_OK)
        rc = pgstore_commit(p->l->conn);
    else if (rc != J4_ERR_CONFLICT)
        pgstore_rollback(p->l->conn);
    p->n_ops = 0;
    if (rc == J4_ERR_CONFLICT)
        leader_step_down(p->l, "another leader's epoch is in force");
    else if (rc != J4_OK)
        log_warn("pools: unable to record leases: %s",
                 PQerrorMessage(p->l->conn));
    return rc;
}

/* ------------------------------------------------------------- expiry */

static const struct lscen *scen_running(const struct leader *l, int64_t id)
{
    for (size_t i = 0; i < l->n_scens; i++) {
        if (l->scens[i]->id == id)
            return l->scens[i]->running ? l->scens[i] : NULL;
    }
    return NULL;
}

/* Non-zero while the process that took h may still be running. */
static int holder_alive(struct leader *l, const struct holder *h,
                        int64_t now)
{
    const struct lexec *e = leader_exec(l, h->exec);

    if (now < l->won_ms + (int64_t)l->cfg->lease_ms)
        return 1;               /* not every executor heard from yet */
    return e && e->incarnation == h->incarnation && lexec_holding(e, now);
}

static void expire_use(struct dpool *p, struct pool_use *u, int64_t now)
{
    size_t freed = 0;
    char exec[DIST_ID_MAX + 1] = "";

    for (size_t i = 0; i < u->n_items; i++) {
        struct holder *h = &u->holders[i];

        if (!h->held || holder_alive(p->l, h, now))
            continue;
        snprintf(exec, sizeof(exec), "%s", h->exec);
        h->held = 0;
        u->n_held--;
        op_add(p, OP_DELETE, u, (uint32_t)i);
        freed++;
    }
    if (freed)
        log_info("pools: scenario %lld pool '%s': %zu item(s) of lost "
                 "executor %s are free again", (long long)u->scenario_id,
                 u->name, freed, exec);
}

/* Ends the leases of dead executors and of scenarios no longer running. */
static void expire(struct dpool *p, int64_t now)
{
    for (size_t i = p->n_uses; i-- > 0;) {
        struct pool_use *u = p->uses[i];

        if (!scen_running(p->l, u->scenario_id)) {
            if (u->n_held)
                op_add(p, OP_DROP_SCENARIO, u, 0);
            use_remove(p, i);
            continue;
        }
        expire_use(p, u, now);
    }
}

/* ------------------------------------------------------------- takes */

static void answer_pack(struct answer *a, const ProtobufCMessage *m)
{
    a->len = protobuf_c_message_get_packed_size(m);
    a->buf = malloc(a->len ? a->len : 1);
    if (!a->buf)
        abort();
    protobuf_c_message_pack(m, a->buf);
}

static void answer_take(struct dpool *p, struct answer *a, int status,
                        const struct pool_use *u, uint32_t index,
                        const char *error)
{
    J4__PoolItem item = J4__POOL_ITEM__INIT;

    item.request_id = a->request_id;
    item.status = status;
    item.epoch = p->l->epoch;
    item.error = (char *)(error ? error : "");
    if (status == J4_OK) {
        item.index = index;
        item.item_json = u->items[index];
    }
    free(a->buf);
    answer_pack(a, &item.base);
}

/* Finds the item already granted to this request (a resend). */
static int held_by_request(const struct pool_use *u, const J4__PoolTake *t)
{
    for (size_t i = 0; i < u->n_items; i++) {
        const struct holder *h = &u->holders[i];
        if (h->held && h->request_id == t->request_id &&
            h->incarnation == t->incarnation && !strcmp(h->exec,
                                                        t->executor_id))
            return (int)i;
    }
    return -1;
}

static int grant(struct dpool *p, struct pool_use *u, const J4__PoolTake *t)
{
    for (size_t k = 0; k < u->n_items; k++) {
        size_t i = (u->cursor + k) % u->n_items;
        struct holder *h = &u->holders[i];

        if (h->held)
            continue;
        h->held = 1;
        snprintf(h->exec, sizeof(h->exec), "%s", t->executor_id);
        h->incarnation = t->incarnation;
        h->worker = t->worker;
        h->request_id = t->request_id;
        u->n_held++;
        u->cursor = (i + 1) % u->n_items;
        op_add(p, OP_INSERT, u, (uint32_t)i);
        return (int)i;
    }
    return -1;
}

/* Checks who asks: a live executor process and a running scenario. */
static int take_allowed(struct dpool *p, const J4__PoolTake *t, char *error,
                        size_t size)
{
    const struct lexec *e = leader_exec(p->l, t->executor_id);
    const struct lscen *s = scen_running(p->l, t->scenario_id);

    if (!e || e->incarnation != t->incarnation ||
        !lexec_holding(e, clock_mono_ms())) {
        snprintf(error, size, "executor %s (incarnation %016llx) is not "
                 "live on the leader", t->executor_id,
                 (unsigned long long)t->incarnation);
        return J4_ERR_CONFLICT;
    }
    if (!s || s->stop_requested) {
        snprintf(error, size, "scenario %lld is not running",
                 (long long)t->scenario_id);
        return J4_ERR_CONFLICT;
    }
    if (!dataset_name_ok(t->pool)) {
        snprintf(error, size, "pool name '%.64s' is not 1-64 of "
                 "[a-z0-9_-]", t->pool);
        return J4_ERR_INVALID;
    }
    return J4_OK;
}

static void handle_take(struct dpool *p, const J4__PoolTake *t,
                        struct answer *a)
{
    char error[256] = "";
    struct pool_use *u = NULL;
    int rc = take_allowed(p, t, error, sizeof(error));
    int index = -1;

    a->is_take = 1;
    a->request_id = t->request_id;
    if (rc == J4_OK) {
        rc = use_get(p, t->scenario_id, t->pool, &u);
        if (rc == J4_ERR_NOTFOUND)
            snprintf(error, sizeof(error), "no data set '%s'", t->pool);
        else if (rc != J4_OK)
            snprintf(error, sizeof(error), "pool '%s': PostgreSQL is "
                     "unreachable", t->pool);
    }
    if (rc == J4_OK && (index = held_by_request(u, t)) < 0 &&
        (index = grant(p, u, t)) < 0) {
        rc = J4_ERR_UNAVAILABLE;
        snprintf(error, sizeof(error), "pool '%s' exhausted: %zu of %zu "
                 "items held", t->pool, u->n_held, u->n_items);
    }
    answer_take(p, a, rc, u, (uint32_t)(index < 0 ? 0 : index),
                rc == J4_OK ? NULL : error);
}

static void handle_release(struct dpool *p, const J4__PoolRelease *r,
                           struct answer *a)
{
    J4__PoolReleased done = J4__POOL_RELEASED__INIT;

    for (size_t i = 0; i < p->n_uses; i++) {
        struct pool_use *u = p->uses[i];

        if (u->scenario_id != r->scenario_id)
            continue;
        for (size_t j = 0; j < u->n_items; j++) {
            struct holder *h = &u->holders[j];
            for (size_t k = 0; h->held && k < r->n_request_ids; k++) {
                if (h->request_id != r->request_ids[k] ||
                    h->incarnation != r->incarnation ||
                    strcmp(h->exec, r->executor_id))
                    continue;
                h->held = 0;
                u->n_held--;
                op_add(p, OP_DELETE, u, (uint32_t)j);
                done.released++;
            }
        }
    }
    done.epoch = p->l->epoch;
    answer_pack(a, &done.base);
}

/* Decodes one queued message into an answer (none for junk). */
static void handle_msg(struct dpool *p, natsMsg *msg, struct answer *a)
{
    const char *subject = natsMsg_GetSubject(msg);
    const uint8_t *data = (const uint8_t *)natsMsg_GetData(msg);
    size_t len = (size_t)natsMsg_GetDataLength(msg);
    const char *id;

    a->msg = msg;
    if (!strncmp(subject, "j4.pool.take.", 13)) {
        J4__PoolTake *t = j4__pool_take__unpack(NULL, len, data);
        id = subject + 13;
        if (t && t->executor_id && t->pool && !strcmp(id, t->executor_id))
            handle_take(p, t, a);
        if (t)
            j4__pool_take__free_unpacked(t, NULL);
    } else if (!strncmp(subject, "j4.pool.release.", 16)) {
        J4__PoolRelease *r = j4__pool_release__unpack(NULL, len, data);
        id = subject + 16;
        if (r && r->executor_id && !strcmp(id, r->executor_id))
            handle_release(p, r, a);
        if (r)
            j4__pool_release__free_unpacked(r, NULL);
    }
}

/* ---------------------------------------------------------------- pass */

static size_t take_queue(struct dpool *p, natsMsg **batch)
{
    size_t n;

    pthread_mutex_lock(&p->lock);
    n = p->queue_len < POOL_BATCH_MAX ? p->queue_len : POOL_BATCH_MAX;
    memcpy(batch, p->queue, n * sizeof(*batch));
    memmove(p->queue, p->queue + n, (p->queue_len - n) * sizeof(*batch));
    p->queue_len -= n;
    pthread_mutex_unlock(&p->lock);
    return n;
}

/* After a failed write: takes are told "unavailable", releases get no
 * answer (the executor resends them). */
static void answers_failed(struct dpool *p, struct answer *answers,
                           size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (answers[i].is_take)
            answer_take(p, &answers[i], J4_ERR_UNAVAILABLE, NULL, 0,
                        "the leader could not record the lease; retry");
        else {
            free(answers[i].buf);
            answers[i].buf = NULL;
        }
    }
}

static void answers_send(struct dpool *p, struct answer *answers, size_t n,
                         int send)
{
    for (size_t i = 0; i < n; i++) {
        const char *reply = natsMsg_GetReply(answers[i].msg);

        if (send && answers[i].buf && reply && reply[0])
            natsConnection_Publish(p->nc, reply, answers[i].buf,
                                   (int)answers[i].len);
        free(answers[i].buf);
        natsMsg_Destroy(answers[i].msg);
    }
}

void dpool_pass(struct dpool *p)
{
    natsMsg *batch[POOL_BATCH_MAX];
    struct answer answers[POOL_BATCH_MAX];
    size_t n;
    int rc;

    if (!p->loaded && load(p) != J4_OK)
        return;
    p->loaded = 1;
    expire(p, clock_mono_ms());
    n = take_queue(p, batch);
    memset(answers, 0, n * sizeof(answers[0]));
    for (size_t i = 0; i < n; i++)
        handle_msg(p, batch[i], &answers[i]);
    rc = flush_ops(p);
    if (rc != J4_OK) {
        answers_failed(p, answers, n);
        uses_clear(p);          /* read the table back next pass */
    }
    answers_send(p, answers, n, rc != J4_ERR_CONFLICT);
}
