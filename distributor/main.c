/*
 * main.c - j4-distributor: start, run until SIGTERM or SIGINT, stop.
 *
 * Start: read the configuration, block the termination signals in every
 * thread (so libmicrohttpd's and cnats' threads never receive them),
 * apply the migrations (waiting for PostgreSQL if need be), connect to
 * NATS with endless reconnection, subscribe to heartbeats and metrics,
 * then start the leader thread and the REST server. The main thread then
 * waits in sigwait(). Stop runs the same steps backwards: the API first,
 * then the leader (which steps down and releases the lock), then NATS
 * and PostgreSQL, freeing everything.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#include "api.h"
#include "config.h"
#include "datasets.h"
#include "fleet.h"
#include "j4.h"
#include "leader.h"
#include "log.h"
#include "pgstore.h"

#ifndef J4_MIGRATIONS_DIR
#define J4_MIGRATIONS_DIR "migrations"
#endif
#ifndef J4_MIGRATIONS_INSTALL_DIR
#define J4_MIGRATIONS_INSTALL_DIR "/usr/local/share/j4/migrations"
#endif

struct dist {
    struct config cfg;
    struct fleet fleet;
    struct pgpool pool;
    natsOptions *opts;
    natsConnection *nc;
    natsSubscription *hb_sub;
    natsSubscription *metrics_sub;
    struct leader *leader;
    struct api *api;
    atomic_int closing;         /* shutting down: disconnects expected */
};

static const char *migrations_dir(const struct config *cfg)
{
    if (cfg->migrations_dir)
        return cfg->migrations_dir;
    if (access(J4_MIGRATIONS_DIR, R_OK | X_OK) == 0)
        return J4_MIGRATIONS_DIR;
    return J4_MIGRATIONS_INSTALL_DIR;
}

/* Non-zero when SIGTERM or SIGINT arrived within timeout_ms. */
static int signalled_within(const sigset_t *set, int timeout_ms)
{
    struct timespec ts = {timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};

    return sigtimedwait(set, NULL, &ts) > 0;
}

/* Applies migrations, retrying while PostgreSQL is unreachable. */
static int migrate(const struct config *cfg, const sigset_t *set)
{
    const char *dir = migrations_dir(cfg);
    int warned = 0;

    for (;;) {
        int rc = pgstore_migrate(cfg->pg_conninfo, dir);
        if (rc != J4_ERR_UNAVAILABLE)
            return rc;
        if (!warned)
            log_warn("pg: unable to connect ('%s'); retrying every second",
                     cfg->pg_conninfo);
        warned = 1;
        if (signalled_within(set, 1000))
            return J4_ERR_STOPPED;
    }
}

static void on_heartbeat(natsConnection *nc, natsSubscription *sub,
                         natsMsg *msg, void *arg)
{
    struct fleet *fleet = arg;

    fleet_handle_heartbeat(fleet, natsMsg_GetSubject(msg),
                           natsMsg_GetData(msg),
                           (size_t)natsMsg_GetDataLength(msg));
    natsMsg_Destroy(msg);
}

static void on_disconnected(natsConnection *nc, void *arg)
{
    const struct dist *d = arg;

    if (!atomic_load(&d->closing))
        log_warn("nats: disconnected; reconnecting");
}

static void on_reconnected(natsConnection *nc, void *arg)
{
    struct dist *d = arg;

    log_info("nats: reconnected");
    if (d->leader)
        leader_heard_from_nats(d->leader);
}

/* First connect after retrying (NATS was not up at start). */
static void on_connected(natsConnection *nc, void *arg)
{
    struct dist *d = arg;

    log_info("nats: connected");
    if (d->leader)
        leader_heard_from_nats(d->leader);
}

static int connect_nats(struct dist *d)
{
    natsStatus s = natsOptions_Create(&d->opts);

    if (s == NATS_OK)
        s = natsOptions_SetURL(d->opts, d->cfg.nats_url);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(d->opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(d->opts, 250);
    if (s == NATS_OK)
        s = natsOptions_SetRetryOnFailedConnect(d->opts, true,
                                                on_connected, d);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(d->opts, on_disconnected, d);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(d->opts, on_reconnected, d);
    if (s == NATS_OK) {
        s = natsConnection_Connect(&d->nc, d->opts);
        if (s == NATS_NOT_YET_CONNECTED) {
            log_warn("nats: '%s' not reachable yet; retrying",
                     d->cfg.nats_url);
            s = NATS_OK;
        }
    }
    if (s != NATS_OK) {
        log_error("nats: unable to use '%s': %s", d->cfg.nats_url,
                  natsStatus_GetText(s));
        return J4_ERR_UNAVAILABLE;
    }
    return J4_OK;
}

static int subscribe(struct dist *d)
{
    natsStatus s = natsConnection_Subscribe(&d->hb_sub, d->nc, "j4.hb.*",
                                            on_heartbeat, &d->fleet);

    if (s == NATS_OK)
        s = natsConnection_Subscribe(&d->metrics_sub, d->nc, "j4.metrics.*",
                                     leader_on_metrics, d->leader);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(d->hb_sub, 65536,
                                              64 * 1024 * 1024);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(d->metrics_sub, 4096,
                                              64 * 1024 * 1024);
    if (s != NATS_OK) {
        log_error("nats: unable to subscribe: %s", natsStatus_GetText(s));
        return J4_ERR_UNAVAILABLE;
    }
    return J4_OK;
}

static int start(struct dist *d, const sigset_t *set)
{
    int rc = migrate(&d->cfg, set);

    if (rc != J4_OK)
        return rc;
    if (d->cfg.datasets_dir &&
        datasets_load_dir(d->cfg.pg_conninfo, d->cfg.datasets_dir) < 0)
        log_warn("datasets: PostgreSQL failed while loading '%s'",
                 d->cfg.datasets_dir);
    if (connect_nats(d) != J4_OK)
        return J4_ERR_UNAVAILABLE;
    d->leader = leader_new(&d->cfg, d->nc, &d->fleet);
    if (!d->leader)
        return J4_ERR_NOMEM;
    d->fleet.wake = leader_wake;
    d->fleet.wake_arg = d->leader;
    if (subscribe(d) != J4_OK)
        return J4_ERR_UNAVAILABLE;
    if (leader_start(d->leader) != J4_OK)
        return J4_ERR_IO;
    d->api = api_start(&d->cfg, &d->pool, &d->fleet, d->leader, d->nc);
    return d->api ? J4_OK : J4_ERR_IO;
}

static void stop(struct dist *d)
{
    api_stop(d->api);
    if (d->leader)
        leader_stop(d->leader);
    if (d->hb_sub)
        natsSubscription_Unsubscribe(d->hb_sub);
    if (d->metrics_sub)
        natsSubscription_Unsubscribe(d->metrics_sub);
    natsSubscription_Destroy(d->hb_sub);
    natsSubscription_Destroy(d->metrics_sub);
    atomic_store(&d->closing, 1);
    if (d->nc)
        natsConnection_Close(d->nc);
    natsConnection_Destroy(d->nc);
    natsOptions_Destroy(d->opts);
    nats_CloseAndWait(2000);
    leader_free(d->leader);
    fleet_release(&d->fleet);
    pgpool_release(&d->pool);
}

int main(int argc, char **argv)
{
    struct dist d;
    sigset_t set;
    int rc, sig;

    memset(&d, 0, sizeof(d));
    rc = config_parse(&d.cfg, argc, argv);
    if (rc != J4_OK) {
        config_release(&d.cfg);
        return rc == J4_ERR_STOPPED ? 0 : 2;
    }
    log_init("distributor", d.cfg.log_level);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    fleet_init(&d.fleet);
    if (pgpool_init(&d.pool, d.cfg.pg_conninfo) != J4_OK)
        return 1;
    log_info("starting distributor %s (lease %u ms)", d.cfg.id,
             d.cfg.lease_ms);
    rc = start(&d, &set);
    if (rc == J4_OK) {
        while (sigwait(&set, &sig) != 0)
            ;
        log_info("%s received; shutting down", strsignal(sig));
    } else if (rc != J4_ERR_STOPPED) {
        log_error("unable to start: %s", j4_strerror(rc));
    }
    stop(&d);
    config_release(&d.cfg);
    return rc == J4_OK || rc == J4_ERR_STOPPED ? 0 : 1;
}
