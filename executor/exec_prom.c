/*
 * exec_prom.c - the executor's /metrics endpoint.
 *
 * Totals per scenario are a struct stats_delta that only grows: each
 * report's deltas are merged into it, so counters never go down while
 * the process lives (Prometheus sees a restart as a counter reset). See
 * exec_prom.h for the threading.
 */
#include "exec_prom.h"

#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "clock.h"
#include "log.h"
#include "net.h"
#include "prom.h"

struct prom_total {
    int64_t scenario_id;        /* 0: free slot */
    int64_t touched_ms;
    int has_workers;
    uint32_t planned, running;
    struct stats_delta *stats;  /* owned */
};

static struct {
    pthread_mutex_t lock;
    struct MHD_Daemon *daemon;
    char executor_id[72];
    struct prom_total totals[EXEC_PROM_SCENARIOS];
} server = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The slot of scenario id, taking the least recently used one when it
 * has none. Under the lock. NULL when out of memory. */
static struct prom_total *total_of(int64_t id)
{
    struct prom_total *oldest = &server.totals[0];

    for (size_t i = 0; i < EXEC_PROM_SCENARIOS; i++) {
        struct prom_total *t = &server.totals[i];

        if (t->scenario_id == id)
            return t;
        if (t->touched_ms < oldest->touched_ms)
            oldest = t;
    }
    if (!oldest->stats) {
        oldest->stats = malloc(sizeof(*oldest->stats));
        if (!oldest->stats)
            return NULL;
    } else {
        stats_delta_release(oldest->stats);
    }
    stats_delta_init(oldest->stats);
    oldest->scenario_id = id;
    oldest->has_workers = 0;
    oldest->planned = oldest->running = 0;
    return oldest;
}

void exec_prom_add(const struct run_delta *deltas, size_t n)
{
    if (!server.daemon)
        return;
    pthread_mutex_lock(&server.lock);
    for (size_t i = 0; i < n; i++) {
        struct prom_total *t = total_of(deltas[i].scenario_id);

        if (!t)
            continue;
        t->touched_ms = clock_mono_ms();
        stats_delta_merge(t->stats, &deltas[i].stats);
    }
    pthread_mutex_unlock(&server.lock);
}

void exec_prom_workers(const struct run_status *statuses, size_t n)
{
    if (!server.daemon)
        return;
    pthread_mutex_lock(&server.lock);
    for (size_t i = 0; i < EXEC_PROM_SCENARIOS; i++) {
        server.totals[i].planned = 0;
        server.totals[i].running = 0;
    }
    for (size_t i = 0; i < n; i++) {
        struct prom_total *t = total_of(statuses[i].scenario_id);

        if (!t)
            continue;
        t->touched_ms = clock_mono_ms();
        t->has_workers = 1;
        t->planned = statuses[i].planned;
        t->running = statuses[i].running;
    }
    pthread_mutex_unlock(&server.lock);
}

/* ------------------------------------------------------------ rendering */

static void series_view(struct prom_series *out, const struct series_delta *d)
{
    memset(out, 0, sizeof(*out));
    out->kind = d->key.kind; /* enum series_kind has prom_kind's values */
    out->name = d->key.name;
    out->protocol = series_protocol_name(d->key.protocol);
    out->tags = d->key.tags;
    memcpy(out->outcomes, d->counts, sizeof(out->outcomes));
    out->count = d->key.kind == SERIES_STREAM
                     ? d->counts[SERIES_STREAM_MESSAGES]
                     : d->counts[0];
    out->failed = d->counts[1];
    out->gauge = d->gauge;
    out->opened = d->counts[SERIES_STREAM_OPENED];
    out->resets = d->counts[SERIES_STREAM_RESETS];
    out->reconnects = d->counts[SERIES_STREAM_RECONNECTS];
    out->hist = d->hist;
    out->hist2 = d->hist2;
}

/* Fills one scenario's view; series and exec are its storage. */
static void scenario_view(struct prom_scenario *sc, struct prom_series *series,
                          struct prom_executor *exec,
                          const struct prom_total *t)
{
    const struct stats_delta *d = t->stats;

    memset(sc, 0, sizeof(*sc));
    sc->id = t->scenario_id;
    sc->iterations = d->iterations;
    sc->iteration_errors = d->iteration_errors;
    for (uint32_t k = 0; k < SERIES_RUN_MAX; k++) {
        if (d->series.items[k])
            series_view(&series[sc->n_series++], d->series.items[k]);
    }
    sc->series = series;
    exec->id = server.executor_id;
    exec->has_workers = t->has_workers;
    exec->planned = t->planned;
    exec->running = t->running;
    exec->requests = stats_delta_requests(d);
    sc->executors = exec;
    sc->n_executors = 1;
}

static void render(struct prom_buf *b)
{
    struct prom_scenario scs[EXEC_PROM_SCENARIOS];
    struct prom_executor execs[EXEC_PROM_SCENARIOS];
    struct prom_series *series;
    size_t n = 0;

    series = calloc((size_t)EXEC_PROM_SCENARIOS * SERIES_RUN_MAX,
                    sizeof(*series));
    if (!series) {
        b->oom = 1;
        return;
    }
    pthread_mutex_lock(&server.lock);
    for (size_t i = 0; i < EXEC_PROM_SCENARIOS; i++) {
        if (!server.totals[i].scenario_id || !server.totals[i].stats)
            continue;
        scenario_view(&scs[n], series + n * SERIES_RUN_MAX, &execs[n],
                      &server.totals[i]);
        n++;
    }
    prom_render(b, scs, n);
    pthread_mutex_unlock(&server.lock);
    free(series);
}

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status,
                              const char *type, char *text, size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, text, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result ret;

    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version,
                                  const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct prom_buf b;

    if (*upload_data_size) {
        *upload_data_size = 0; /* no body is wanted: drop it */
        return MHD_YES;
    }
    if (strcmp(url, "/metrics") != 0 || strcmp(method, "GET") != 0)
        return answer(conn, MHD_HTTP_NOT_FOUND, "text/plain",
                      strdup("only GET /metrics is served here\n"), 33);
    prom_buf_init(&b);
    render(&b);
    if (b.oom || !b.data) {
        prom_buf_release(&b);
        return answer(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain",
                      strdup("out of memory\n"), 14);
    }
    return answer(conn, MHD_HTTP_OK, PROM_CONTENT_TYPE, b.data, b.len);
}

/* ------------------------------------------------------------- daemon */

int exec_prom_start(const char *listen, const char *executor_id)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
    struct addrinfo *addr;

    if (!listen || !*listen)
        return J4_OK;
    addr = net_resolve_listen(listen);
    if (!addr) {
        log_error("metrics: unable to resolve listen address '%s'", listen);
        return J4_ERR_IO;
    }
    snprintf(server.executor_id, sizeof(server.executor_id), "%s",
             executor_id);
    if (addr->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    server.daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, NULL,
        MHD_OPTION_SOCK_ADDR, addr->ai_addr,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
        MHD_OPTION_END);
    freeaddrinfo(addr);
    if (!server.daemon) {
        log_error("metrics: unable to listen on '%s' (address in use?)",
                  listen);
        return J4_ERR_IO;
    }
    log_info("metrics: serving http://%s/metrics", listen);
    return J4_OK;
}

void exec_prom_stop(void)
{
    if (!server.daemon)
        return;
    MHD_stop_daemon(server.daemon);
    server.daemon = NULL;
    for (size_t i = 0; i < EXEC_PROM_SCENARIOS; i++) {
        if (!server.totals[i].stats)
            continue;
        stats_delta_release(server.totals[i].stats);
        free(server.totals[i].stats);
        server.totals[i].stats = NULL;
    }
}
