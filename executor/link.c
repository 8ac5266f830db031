/*
 * link.c - j4-executor's NATS connection.
 *
 * The connection retries forever, from the first connect on, with a short
 * wait, and buffers what is published while disconnected; nothing sent
 * here must be durable (heartbeats repeat, reports are resent until
 * acked). Callbacks run on cnats threads: they decode, keep only what the
 * control thread needs (the newest desired state meant for this
 * incarnation, the highest ack) and wake it.
 */
#include <string.h>

#include "clock.h"
#include "executor.h"
#include "log.h"

#define RECONNECT_WAIT_MS 250
#define RECONNECT_BUF (8 * 1024 * 1024)

/* Asks the control thread for a heartbeat and a report resend at once. */
static void link_up(struct executor *ex)
{
    atomic_store(&ex->link_up, 1);
    if (ex->rt)
        runtime_wake(ex->rt);
}

static void on_connected(natsConnection *nc, void *closure)
{
    char url[256] = "";

    natsConnection_GetConnectedUrl(nc, url, sizeof(url));
    log_info("connected to NATS at %s", url);
    link_up(closure);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    struct executor *ex = closure;

    (void)nc;
    if (atomic_load(&ex->closing))
        return;
    log_warn("disconnected from NATS: retrying; workers keep playing "
             "until the lease runs out");
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    char url[256] = "";

    natsConnection_GetConnectedUrl(nc, url, sizeof(url));
    log_info("reconnected to NATS at %s", url);
    link_up(closure);
}

/* Non-zero when a is newer than b in (epoch, version) order; equal counts
 * as newer so that a fresher answer to a heartbeat replaces an older one. */
static int state_newer(const J4__DesiredState *a, const J4__DesiredState *b)
{
    if (a->epoch != b->epoch)
        return a->epoch > b->epoch;
    return a->version >= b->version;
}

static void on_assign(natsConnection *nc, natsSubscription *sub, natsMsg *msg,
                      void *closure)
{
    struct executor *ex = closure;
    int64_t now = clock_mono_ms();
    J4__DesiredState *ds;

    (void)nc;
    (void)sub;
    ds = j4__desired_state__unpack(NULL, (size_t)natsMsg_GetDataLength(msg),
                                   (const uint8_t *)natsMsg_GetData(msg));
    natsMsg_Destroy(msg);
    if (!ds) {
        log_debug("undecodable desired state ignored");
        return;
    }
    if (ds->incarnation != ex->incarnation ||
        strcmp(ds->executor_id, ex->cfg.id) != 0) {
        j4__desired_state__free_unpacked(ds, NULL);
        return;
    }
    pthread_mutex_lock(&ex->mbox_lock);
    if (!ex->mbox_state || state_newer(ds, ex->mbox_state)) {
        if (ex->mbox_state)
            j4__desired_state__free_unpacked(ex->mbox_state, NULL);
        ex->mbox_state = ds;
        ex->mbox_state_mono_ms = now;
        ds = NULL;
    }
    pthread_mutex_unlock(&ex->mbox_lock);
    if (ds)
        j4__desired_state__free_unpacked(ds, NULL);
    runtime_wake(ex->rt);
}

static void on_ack(natsConnection *nc, natsSubscription *sub, natsMsg *msg,
                   void *closure)
{
    struct executor *ex = closure;
    J4__MetricsAck *ack;

    (void)nc;
    (void)sub;
    ack = j4__metrics_ack__unpack(NULL, (size_t)natsMsg_GetDataLength(msg),
                                  (const uint8_t *)natsMsg_GetData(msg));
    natsMsg_Destroy(msg);
    if (!ack)
        return;
    if (ack->incarnation == ex->incarnation &&
        strcmp(ack->executor_id, ex->cfg.id) == 0) {
        pthread_mutex_lock(&ex->mbox_lock);
        if (ack->seq > ex->mbox_acked_seq)
            ex->mbox_acked_seq = ack->seq;
        pthread_mutex_unlock(&ex->mbox_lock);
        runtime_wake(ex->rt);
    }
    j4__metrics_ack__free_unpacked(ack, NULL);
}

static natsStatus set_options(struct executor *ex)
{
    natsStatus s = natsOptions_Create(&ex->opts);

    if (s == NATS_OK)
        s = natsOptions_SetURL(ex->opts, ex->cfg.nats_url);
    if (s == NATS_OK)
        s = natsOptions_SetName(ex->opts, ex->cfg.id);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(ex->opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(ex->opts, RECONNECT_WAIT_MS);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectBufSize(ex->opts, RECONNECT_BUF);
    if (s == NATS_OK)
        s = natsOptions_SetRetryOnFailedConnect(ex->opts, true, on_connected,
                                                ex);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(ex->opts, on_disconnected, ex);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(ex->opts, on_reconnected, ex);
    return s;
}

int link_open(struct executor *ex)
{
    natsStatus s;

    snprintf(ex->subj_hb, sizeof(ex->subj_hb), "j4.hb.%s", ex->cfg.id);
    snprintf(ex->subj_assign, sizeof(ex->subj_assign), "j4.assign.%s",
             ex->cfg.id);
    snprintf(ex->subj_metrics, sizeof(ex->subj_metrics), "j4.metrics.%s",
             ex->cfg.id);
    snprintf(ex->subj_ack, sizeof(ex->subj_ack), "j4.ack.%s", ex->cfg.id);

    s = set_options(ex);
    if (s == NATS_OK) {
        s = natsConnection_Connect(&ex->nc, ex->opts);
        if (s == NATS_OK)
            on_connected(ex->nc, ex);
        else if (s == NATS_NOT_YET_CONNECTED)
            log_warn("NATS at %s not reachable yet: retrying",
                     ex->cfg.nats_url);
        if (s == NATS_NOT_YET_CONNECTED)
            s = NATS_OK;
    }
    if (s == NATS_OK)
        s = natsConnection_Subscribe(&ex->assign_sub, ex->nc, ex->subj_assign,
                                     on_assign, ex);
    if (s == NATS_OK)
        s = natsConnection_Subscribe(&ex->ack_sub, ex->nc, ex->subj_ack,
                                     on_ack, ex);
    if (s != NATS_OK) {
        log_error("unable to use NATS at '%s': %s", ex->cfg.nats_url,
                  natsStatus_GetText(s));
        return J4_ERR_UNAVAILABLE;
    }
    return J4_OK;
}

void link_publish(struct executor *ex, const char *subject, const char *reply,
                  const uint8_t *data, size_t len)
{
    natsStatus s;

    if (!ex->nc)
        return;
    if (reply)
        s = natsConnection_PublishRequest(ex->nc, subject, reply, data,
                                          (int)len);
    else
        s = natsConnection_Publish(ex->nc, subject, data, (int)len);
    if (s != NATS_OK)
        log_debug("publish on '%s' failed: %s", subject,
                  natsStatus_GetText(s));
}

void link_close(struct executor *ex)
{
    atomic_store(&ex->closing, 1);
    if (ex->nc && natsConnection_Status(ex->nc) == NATS_CONN_STATUS_CONNECTED)
        natsConnection_FlushTimeout(ex->nc, 1000);
    if (ex->assign_sub)
        natsSubscription_Unsubscribe(ex->assign_sub);
    if (ex->ack_sub)
        natsSubscription_Unsubscribe(ex->ack_sub);
    if (ex->nc)
        natsConnection_Close(ex->nc);
    natsSubscription_Destroy(ex->assign_sub);
    natsSubscription_Destroy(ex->ack_sub);
    ex->assign_sub = ex->ack_sub = NULL;
    natsConnection_Destroy(ex->nc);
    ex->nc = NULL;
    natsOptions_Destroy(ex->opts);
    ex->opts = NULL;
    /* After this no cnats thread runs: callbacks cannot touch ex. */
    nats_CloseAndWait(2000);
}
