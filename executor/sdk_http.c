/*
 * sdk_http.c - j4_http_request(): one HTTP exchange on the worker's own
 * libcurl handle.
 *
 * Plain http:// requests go through the native HTTP/1.1 client
 * (http1.h), which costs a fraction of libcurl's CPU per request; what it
 * does not do (https, proxies, large bodies, odd URLs, a redirect to
 * https) goes through libcurl, with the same outcomes either way.
 *
 * For libcurl each worker keeps one easy handle; its transfers run on the multi
 * handle of the worker's loop (scheduler.h), whose connection cache the
 * loop's workers share, so keep-alive connections are reused across
 * iterations. While a transfer runs the worker's fiber waits; a stop
 * wakes it, and the request runs exactly until the scenario's grace
 * period is over; then it is aborted and recorded as interrupted. Every
 * request that was started is recorded exactly once.
 *
 * Redirects are libcurl's: with the default CURLOPT_POSTREDIR a POST
 * answered 301, 302 or 303 is repeated as a GET without its body, one
 * answered 307 or 308 is repeated as it was. Each request also carries a
 * fresh W3C traceparent and the scenario as baggage (sdk_worker.c).
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "http1.h"
#include "worker.h"

#define BODY_CAP (4u * 1024 * 1024) /* kept; the rest is discarded */
#define BODY_KEEP (256u * 1024)     /* larger buffers are not kept */
#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_REDIRECTS 10

struct sdk_http {
    CURL *easy;
    struct http1 *native; /* created at the first native request */
    char *body;
    size_t len, cap;
};

int sdk_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? J4_OK
                                                             : J4_ERR_IO;
}

void sdk_global_cleanup(void)
{
    sdk_grpc_cleanup();
    curl_global_cleanup();
}

void sdk_worker_release(struct j4_worker *w)
{
    struct sdk_http *h = w->http;

    sdk_extras_release(w);
    if (!h)
        return;
    w->http = NULL;
    http1_free(h->native);
    curl_easy_cleanup(h->easy);
    free(h->body);
    free(h);
}

/* The worker's handle, created on first use. NULL when out of memory. */
static struct sdk_http *http_of(struct j4_worker *w)
{
    struct sdk_http *h;

    if (w->http)
        return w->http;
    h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->easy = curl_easy_init();
    if (!h->easy) {
        free(h);
        return NULL;
    }
    w->http = h;
    return h;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct sdk_http *h = arg;
    size_t len = size * n;
    size_t room = BODY_CAP - h->len;
    size_t take = len < room ? len : room;

    if (take && h->len + take + 1 > h->cap) {
        size_t cap = h->cap ? h->cap : 4096;
        char *grown;

        while (cap < h->len + take + 1)
            cap *= 2;
        grown = realloc(h->body, cap);
        if (!grown)
            return len; /* keep going; the body is only truncated */
        h->body = grown;
        h->cap = cap;
    }
    if (take) {
        memcpy(h->body + h->len, data, take);
        h->len += take;
    }
    return len;
}

/* Prepares the body buffer for a new response. */
static void body_reset(struct sdk_http *h)
{
    if (h->cap > BODY_KEEP) {
        free(h->body);
        h->body = NULL;
        h->cap = 0;
    }
    h->len = 0;
}

static void set_method(CURL *easy, const j4_http_request_t *req)
{
    const char *method = req->method ? req->method : "GET";
    size_t len =
        req->body && !req->body_len ? strlen(req->body) : req->body_len;

    if (req->body) {
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, req->body);
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
    }
}

/* Sets every option of one request; the handle keeps its connections. */
static int prepare(struct sdk_http *h, const j4_http_request_t *req)
{
    CURL *easy = h->easy;
    int redirects =
        req->max_redirects < 0 ? DEFAULT_REDIRECTS : req->max_redirects;

    curl_easy_reset(easy);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_URL, req->url);
    curl_easy_setopt(
        easy, CURLOPT_TIMEOUT_MS,
        (long)(req->timeout_ms > 0 ? req->timeout_ms : DEFAULT_TIMEOUT_MS));
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, redirects > 0 ? 1L : 0L);
    curl_easy_setopt(easy, CURLOPT_MAXREDIRS, (long)redirects);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, h);
    set_method(easy, req);

    if (req->tls_no_verify) {
        curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (req->tls_ca_file)
        curl_easy_setopt(easy, CURLOPT_CAINFO, req->tls_ca_file);
    return J4_OK;
}

/* Appends line to *list; J4_ERR_NOMEM frees the whole list. */
static int header_add(struct curl_slist **list, const char *line)
{
    struct curl_slist *l = curl_slist_append(*list, line);

    if (!l) {
        curl_slist_free_all(*list);
        *list = NULL;
        return J4_ERR_NOMEM;
    }
    *list = l;
    return J4_OK;
}

/* Non-zero when the caller set a header named name itself. */
static int has_header(const char *const *headers, const char *name)
{
    size_t len = strlen(name);

    for (size_t i = 0; headers && headers[i]; i++) {
        if (strncasecmp(headers[i], name, len) == 0 &&
            headers[i][len] == ':')
            return 1;
    }
    return 0;
}

/* The caller's headers, then the trace context unless it set its own. */
static int build_headers(struct j4_worker *w, const j4_http_request_t *req,
                         struct curl_slist **headers)
{
    char traceparent[SDK_TRACEPARENT_LEN], baggage[200], line[256];

    *headers = NULL;
    for (size_t i = 0; req->headers && req->headers[i]; i++) {
        if (header_add(headers, req->headers[i]) != J4_OK)
            return J4_ERR_NOMEM;
    }
    sdk_trace_context(w, traceparent, baggage, sizeof(baggage));
    if (!has_header(req->headers, "traceparent")) {
        snprintf(line, sizeof(line), "traceparent: %s", traceparent);
        if (header_add(headers, line) != J4_OK)
            return J4_ERR_NOMEM;
    }
    if (!has_header(req->headers, "baggage")) {
        snprintf(line, sizeof(line), "baggage: %s", baggage);
        if (header_add(headers, line) != J4_OK)
            return J4_ERR_NOMEM;
    }
    return J4_OK;
}

/* Runs the transfer until done or until the stop's grace has passed. */
static CURLcode perform(struct j4_worker *w, struct sdk_http *h)
{
    struct sched_curl_op op;

    if (sched_curl_start(&op, h->easy) != CURLM_OK)
        return CURLE_FAILED_INIT;
    for (;;) {
        int64_t abort_at = worker_abort_at_us(w);

        if (abort_at != INT64_MAX && clock_mono_us() >= abort_at) {
            sched_curl_cancel(&op);
            return CURLE_ABORTED_BY_CALLBACK;
        }
        if (sched_curl_wait(&op, abort_at) == 1)
            return op.result;
    }
}

static j4_outcome classify(CURLcode rc, long status)
{
    switch (rc) {
    case CURLE_OK:
        if (status >= 500)
            return J4_OUTCOME_HTTP_5XX;
        return status >= 400 ? J4_OUTCOME_HTTP_4XX : J4_OUTCOME_OK;
    case CURLE_OPERATION_TIMEDOUT:
        return J4_OUTCOME_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
        return J4_OUTCOME_CONNECT;
    case CURLE_COULDNT_RESOLVE_HOST:
        return J4_OUTCOME_DNS;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_USE_SSL_FAILED:
        return J4_OUTCOME_TLS;
    case CURLE_TOO_MANY_REDIRECTS:
        return J4_OUTCOME_REDIRECTS;
    case CURLE_ABORTED_BY_CALLBACK:
        return J4_OUTCOME_INTERRUPTED;
    default:
        return J4_OUTCOME_OTHER;
    }
}

static int status_of(j4_outcome outcome, CURLcode rc)
{
    switch (outcome) {
    case J4_OUTCOME_OK:
        return J4_OK;
    case J4_OUTCOME_HTTP_4XX:
    case J4_OUTCOME_HTTP_5XX:
        return J4_ERR_HTTP;
    case J4_OUTCOME_TIMEOUT:
        return J4_ERR_TIMEOUT;
    case J4_OUTCOME_CONNECT:
        return J4_ERR_CONNECT;
    case J4_OUTCOME_DNS:
        return J4_ERR_DNS;
    case J4_OUTCOME_TLS:
        return J4_ERR_TLS;
    case J4_OUTCOME_REDIRECTS:
        return J4_ERR_REDIRECTS;
    case J4_OUTCOME_INTERRUPTED:
        return J4_ERR_STOPPED;
    default:
        break;
    }
    if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL)
        return J4_ERR_INVALID;
    if (rc == CURLE_OUT_OF_MEMORY)
        return J4_ERR_NOMEM;
    return J4_ERR_IO;
}

/* Non-zero when body is a JSON object with a non-empty "errors" array. */
static int graphql_failed(const char *body, size_t len)
{
    json_t *doc = json_loadb(body, len, 0, NULL);
    json_t *errors = json_object_get(doc, "errors");
    int failed = json_is_array(errors) && json_array_size(errors) > 0;

    json_decref(doc);
    return failed;
}

/* The outcome of a GraphQL exchange: a 200 whose body carries errors
 * is one. */
static j4_outcome graphql_outcome(j4_outcome outcome, long status,
                                  const char *body, size_t len)
{
    if (outcome == J4_OUTCOME_OK && status == 200 &&
        graphql_failed(body ? body : "", len))
        return J4_OUTCOME_GRAPHQL;
    return outcome;
}

/* Records one exchange and fills resp. */
static void exchange_done(struct j4_worker *w, const j4_http_request_t *req,
                          int graphql, j4_outcome outcome, long status,
                          const char *body, size_t len, uint64_t latency,
                          j4_http_response_t *resp)
{
    /* Named series (stats.h): multi-writer safe, so no lock here. */
    worker_stats_record_named(&w->stats, graphql ? SERIES_GRAPHQL : SERIES_HTTP,
                              req->name ? req->name
                              : graphql ? "graphql"
                              : req->method ? req->method : "GET",
                              outcome, latency);
    if (resp) {
        resp->status = status;
        resp->body = body ? body : "";
        resp->body_len = len;
        resp->outcome = outcome;
        resp->latency_us = latency;
    }
}

/* When the native client must give up on a stopping worker. */
static int64_t native_abort_at(void *arg)
{
    return worker_abort_at_us(arg);
}

#define NATIVE_FALLBACK 1 /* not a j4_status: replay with libcurl */

/* One exchange through the native client. Returns its status, or
 * NATIVE_FALLBACK when libcurl must play the request instead (nothing
 * was recorded then). */
static int native_exchange(struct j4_worker *w, struct sdk_http *h,
                           const j4_http_request_t *req,
                           j4_http_response_t *resp, int graphql)
{
    char traceparent[SDK_TRACEPARENT_LEN], baggage[200];
    char tp_line[SDK_TRACEPARENT_LEN + 16], bg_line[224];
    const char *extra[3];
    struct http1_result res;
    uint64_t start, latency;
    size_t n = 0;
    int rc;

    if (!h->native && !(h->native = http1_new()))
        return J4_ERR_NOMEM;
    sdk_trace_context(w, traceparent, baggage, sizeof(baggage));
    if (!has_header(req->headers, "traceparent")) {
        memcpy(tp_line, "traceparent: ", 13);
        memcpy(tp_line + 13, traceparent, SDK_TRACEPARENT_LEN);
        extra[n++] = tp_line;
    }
    if (!has_header(req->headers, "baggage")) {
        memcpy(bg_line, "baggage: ", 9);
        memcpy(bg_line + 9, baggage, strlen(baggage) + 1);
        extra[n++] = bg_line;
    }
    extra[n] = NULL;

    start = (uint64_t)clock_mono_us();
    rc = http1_exchange(h->native, req, extra, native_abort_at, w, &res);
    latency = (uint64_t)clock_mono_us() - start;
    if (rc == J4_OK && res.fallback)
        return NATIVE_FALLBACK;
    if (rc == J4_ERR_INVALID || rc == J4_ERR_NOMEM)
        return rc; /* nothing was sent */
    if (graphql)
        res.outcome = graphql_outcome(res.outcome, res.status, res.body,
                                      res.body_len);
    exchange_done(w, req, graphql, res.outcome, res.status, res.body,
                  res.body_len, latency, resp);
    return res.outcome == J4_OUTCOME_GRAPHQL ? J4_ERR_PROTOCOL : rc;
}

int sdk_http_exchange(struct j4_worker *w, const j4_http_request_t *req,
                      j4_http_response_t *resp, int graphql)
{
    struct curl_slist *headers = NULL;
    struct sdk_http *h;
    uint64_t start, latency;
    j4_outcome outcome;
    long status = 0;
    CURLcode rc;

    if (!w || !req || !req->url || sdk_in_routine())
        return J4_ERR_INVALID;
    if (worker_grace_left_us(w) <= 0)
        return J4_ERR_STOPPED; /* not started, so not recorded */
    h = http_of(w);
    if (!h)
        return J4_ERR_NOMEM;
    if (http1_can(req)) {
        int native = native_exchange(w, h, req, resp, graphql);

        if (native != NATIVE_FALLBACK)
            return native;
    }
    body_reset(h);
    if (prepare(h, req) != J4_OK ||
        build_headers(w, req, &headers) != J4_OK)
        return J4_ERR_NOMEM;
    curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, headers);

    start = (uint64_t)clock_mono_us();
    rc = perform(w, h);
    latency = (uint64_t)clock_mono_us() - start;
    curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    if (h->body)
        h->body[h->len] = '\0';

    outcome = classify(rc, status);
    if (graphql)
        outcome = graphql_outcome(outcome, status, h->body, h->len);
    exchange_done(w, req, graphql, outcome, status, h->body, h->len, latency,
                  resp);
    if (outcome == J4_OUTCOME_GRAPHQL)
        return J4_ERR_PROTOCOL;
    return status_of(outcome, rc);
}

J4_EXPORT int j4_http_request(j4_worker_t *w, const j4_http_request_t *req,
                              j4_http_response_t *resp)
{
    return sdk_http_exchange(w, req, resp, 0);
}
