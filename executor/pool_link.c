/*
 * pool_link.c - user pools over NATS: the executor asks the leader.
 *
 * A take is a request on j4.pool.take.<id> answered on a private inbox.
 * NATS waits block their thread, so takes and releases run on one of the
 * scheduler's helper threads (sched_block) while the worker's fiber
 * waits. The helper waits for the answer in short slices so that it
 * returns soon after the worker's stop flag is set, and resends the same request
 * id every second while no answer came (the leader answers a resend with
 * the item it already granted). A take abandoned without an answer (stop
 * or timeout) is released at once, in case the leader granted it after
 * all. Releases are requests too, retried once.
 */
#include "pool_link.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "scheduler.h"
#include "sdk_pool.h"

#define TAKE_TIMEOUT_MS 5000
#define TAKE_RESEND_MS 1000
#define TAKE_SLICE_MS 100
#define RELEASE_TIMEOUT_MS 1000
#define RELEASE_TRIES 2

struct pool_link {
    struct executor *ex;
    atomic_ullong next_request;
    char subj_take[96], subj_release[96];
    struct sdk_pool_backend backend;
};

static struct pool_link link_state;

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    uint8_t *buf;

    *len = protobuf_c_message_get_packed_size(m);
    buf = malloc(*len ? *len : 1);
    if (buf)
        protobuf_c_message_pack(m, buf);
    return buf;
}

static void release_blocking(void *ctx, int64_t scenario_id,
                             const uint64_t *request_ids, size_t count)
{
    struct pool_link *pl = ctx;
    J4__PoolRelease r = J4__POOL_RELEASE__INIT;
    natsMsg *reply = NULL;
    uint8_t *buf;
    size_t len;

    r.executor_id = pl->ex->cfg.id;
    r.incarnation = pl->ex->incarnation;
    r.scenario_id = scenario_id;
    r.n_request_ids = count;
    r.request_ids = (uint64_t *)request_ids;
    buf = pack(&r.base, &len);
    for (int i = 0; buf && i < RELEASE_TRIES; i++) {
        if (natsConnection_Request(&reply, pl->ex->nc, pl->subj_release, buf,
                                   (int)len, RELEASE_TIMEOUT_MS) == NATS_OK)
            break;
    }
    if (!reply)
        log_debug("pool release of %zu item(s) of scenario %lld not "
                  "acknowledged; the leader frees them when this executor's "
                  "lease or the scenario ends", count, (long long)scenario_id);
    natsMsg_Destroy(reply);
    free(buf);
}

/* Reads the answer to request id; J4_ERR_TIMEOUT when it is not one. */
static int take_answer(natsMsg *msg, uint64_t id, char **item, char *err,
                       size_t err_size)
{
    J4__PoolItem *a = j4__pool_item__unpack(
        NULL, (size_t)natsMsg_GetDataLength(msg),
        (const uint8_t *)natsMsg_GetData(msg));
    int rc = J4_ERR_TIMEOUT;

    if (a && a->request_id == id) {
        rc = a->status;
        if (rc == J4_OK) {
            *item = strdup(a->item_json ? a->item_json : "{}");
            if (!*item)
                rc = J4_ERR_NOMEM;
        } else {
            if (rc > 0)
                rc = J4_ERR_PROTOCOL;
            snprintf(err, err_size, "%s", a->error ? a->error : "refused");
        }
    }
    if (a)
        j4__pool_item__free_unpacked(a, NULL);
    return rc;
}

/* Sends the take and waits; returns the answer's status, J4_ERR_TIMEOUT
 * or J4_ERR_STOPPED. */
static int take_wait(struct pool_link *pl, j4_worker_t *w, natsInbox *inbox,
                     const uint8_t *buf, size_t len, uint64_t id,
                     char **item, char *err, size_t err_size)
{
    natsSubscription *sub = NULL;
    int64_t end = clock_mono_ms() + TAKE_TIMEOUT_MS, resend = 0;
    int rc = J4_ERR_TIMEOUT;

    if (natsConnection_SubscribeSync(&sub, pl->ex->nc, inbox) != NATS_OK)
        return J4_ERR_UNAVAILABLE;
    while (rc == J4_ERR_TIMEOUT && clock_mono_ms() < end) {
        natsMsg *msg = NULL;

        if (j4_should_stop(w)) {
            rc = J4_ERR_STOPPED;
            break;
        }
        if (clock_mono_ms() >= resend) {
            natsConnection_PublishRequest(pl->ex->nc, pl->subj_take, inbox,
                                          buf, (int)len);
            resend = clock_mono_ms() + TAKE_RESEND_MS;
        }
        if (natsSubscription_NextMsg(&msg, sub, TAKE_SLICE_MS) != NATS_OK)
            continue;
        rc = take_answer(msg, id, item, err, err_size);
        natsMsg_Destroy(msg);
    }
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    return rc;
}

static int take_blocking(void *ctx, j4_worker_t *w, const char *pool,
                         uint64_t *request_id, char **item, char *err,
                         size_t err_size)
{
    struct pool_link *pl = ctx;
    J4__PoolTake t = J4__POOL_TAKE__INIT;
    natsInbox *inbox = NULL;
    uint8_t *buf;
    size_t len;
    int rc;

    t.executor_id = pl->ex->cfg.id;
    t.incarnation = pl->ex->incarnation;
    t.scenario_id = j4_scenario_id(w);
    t.pool = (char *)pool;
    t.worker = j4_worker_id(w);
    t.request_id = atomic_fetch_add(&pl->next_request, 1);
    *request_id = t.request_id;
    buf = pack(&t.base, &len);
    if (!buf || natsInbox_Create(&inbox) != NATS_OK) {
        free(buf);
        return J4_ERR_NOMEM;
    }
    rc = take_wait(pl, w, inbox, buf, len, t.request_id, item, err,
                   err_size);
    if (rc == J4_ERR_TIMEOUT || rc == J4_ERR_STOPPED)
        release_blocking(pl, t.scenario_id, &t.request_id, 1);
    if (rc == J4_ERR_TIMEOUT) {
        snprintf(err, err_size, "pool '%s': no leader answered within "
                 "%d ms", pool, TAKE_TIMEOUT_MS);
        rc = J4_ERR_UNAVAILABLE;
    }
    natsInbox_Destroy(inbox);
    free(buf);
    return rc;
}

/* The backend's calls, run off the worker's loop. */
struct pool_call {
    void *ctx;
    j4_worker_t *w;
    const char *pool;
    uint64_t *request_id;
    char **item;
    char *err;
    size_t err_size;
    int64_t scenario_id;
    const uint64_t *request_ids;
    size_t count;
};

static int take_job(void *arg)
{
    struct pool_call *c = arg;

    return take_blocking(c->ctx, c->w, c->pool, c->request_id, c->item,
                         c->err, c->err_size);
}

static int release_job(void *arg)
{
    struct pool_call *c = arg;

    release_blocking(c->ctx, c->scenario_id, c->request_ids, c->count);
    return 0;
}

static int take(void *ctx, j4_worker_t *w, const char *pool,
                uint64_t *request_id, char **item, char *err,
                size_t err_size)
{
    struct pool_call c = {.ctx = ctx, .w = w, .pool = pool,
                          .request_id = request_id, .item = item,
                          .err = err, .err_size = err_size};

    return sched_block(take_job, &c);
}

static void release(void *ctx, int64_t scenario_id,
                    const uint64_t *request_ids, size_t count)
{
    struct pool_call c = {.ctx = ctx, .scenario_id = scenario_id,
                          .request_ids = request_ids, .count = count};

    sched_block(release_job, &c);
}

void pool_link_install(struct executor *ex)
{
    struct pool_link *pl = &link_state;

    pl->ex = ex;
    atomic_init(&pl->next_request, 1);
    snprintf(pl->subj_take, sizeof(pl->subj_take), "j4.pool.take.%s",
             ex->cfg.id);
    snprintf(pl->subj_release, sizeof(pl->subj_release),
             "j4.pool.release.%s", ex->cfg.id);
    pl->backend.ctx = pl;
    pl->backend.take = take;
    pl->backend.release = release;
    sdk_pool_set_backend(&pl->backend);
}

void pool_link_remove(void)
{
    sdk_pool_set_backend(NULL);
}
