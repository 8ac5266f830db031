/*
 * sdk_http.c - j4_http_request(): one HTTP exchange on the worker's own
 * libcurl handle.
 *
 * Each worker keeps one easy handle inside a one-handle multi handle, so
 * its keep-alive connection is reused across iterations. The multi
 * interface lets a stopping worker be woken at once (curl_multi_wakeup()
 * from worker_request_stop()) and lets the request run exactly until the
 * scenario's grace period is over; then it is aborted and recorded as
 * interrupted. Every request that was started is recorded exactly once.
 */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "worker.h"

#define BODY_CAP (4u * 1024 * 1024) /* kept; the rest is discarded */
#define BODY_KEEP (256u * 1024)     /* larger buffers are not kept */
#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_REDIRECTS 10

struct sdk_http {
    CURLM *multi;
    CURL *easy;
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
    curl_global_cleanup();
}

void sdk_http_wakeup_locked(struct j4_worker *w)
{
    if (w->http)
        curl_multi_wakeup(w->http->multi);
}

void sdk_worker_release(struct j4_worker *w)
{
    struct sdk_http *h = w->http;

    if (!h)
        return;
    pthread_mutex_lock(&w->lock);
    w->http = NULL;
    pthread_mutex_unlock(&w->lock);
    curl_multi_cleanup(h->multi);
    curl_easy_cleanup(h->easy);
    free(h->body);
    free(h);
}

/* The worker's handles, created on first use. NULL when out of memory. */
static struct sdk_http *http_of(struct j4_worker *w)
{
    struct sdk_http *h;

    if (w->http)
        return w->http;
    h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->multi = curl_multi_init();
    h->easy = curl_easy_init();
    if (!h->multi || !h->easy) {
        curl_multi_cleanup(h->multi);
        curl_easy_cleanup(h->easy);
        free(h);
        return NULL;
    }
    pthread_mutex_lock(&w->lock);
    w->http = h;
    pthread_mutex_unlock(&w->lock);
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
static int prepare(struct sdk_http *h, const j4_http_request_t *req,
                   struct curl_slist **headers)
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

    *headers = NULL;
    for (size_t i = 0; req->headers && req->headers[i]; i++) {
        struct curl_slist *l = curl_slist_append(*headers, req->headers[i]);

        if (!l) {
            curl_slist_free_all(*headers);
            *headers = NULL;
            return J4_ERR_NOMEM;
        }
        *headers = l;
    }
    if (*headers)
        curl_easy_setopt(easy, CURLOPT_HTTPHEADER, *headers);
    return J4_OK;
}

/* Runs the transfer until done or until the stop's grace has passed. */
static CURLcode perform(struct j4_worker *w, struct sdk_http *h)
{
    CURLcode rc = CURLE_FAILED_INIT;
    int running = 1;
    CURLMsg *msg;
    int left_msgs;

    if (curl_multi_add_handle(h->multi, h->easy) != CURLM_OK)
        return CURLE_FAILED_INIT;
    for (;;) {
        int64_t left;
        int wait_ms = 1000;

        if (curl_multi_perform(h->multi, &running) != CURLM_OK)
            goto out_remove;
        if (!running)
            break;
        left = worker_grace_left_us(w);
        if (left <= 0) {
            rc = CURLE_ABORTED_BY_CALLBACK;
            goto out_remove;
        }
        if (left < 1000 * 1000)
            wait_ms = (int)((left + 999) / 1000);
        if (curl_multi_poll(h->multi, NULL, 0, wait_ms, NULL) != CURLM_OK)
            goto out_remove;
    }
    while ((msg = curl_multi_info_read(h->multi, &left_msgs))) {
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == h->easy)
            rc = msg->data.result;
    }
out_remove:
    curl_multi_remove_handle(h->multi, h->easy);
    return rc;
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

J4_EXPORT int j4_http_request(j4_worker_t *w, const j4_http_request_t *req,
                              j4_http_response_t *resp)
{
    struct curl_slist *headers = NULL;
    struct sdk_http *h;
    uint64_t start, latency;
    j4_outcome outcome;
    long status = 0;
    CURLcode rc;

    if (!w || !req || !req->url)
        return J4_ERR_INVALID;
    if (worker_grace_left_us(w) <= 0)
        return J4_ERR_STOPPED; /* not started, so not recorded */
    h = http_of(w);
    if (!h)
        return J4_ERR_NOMEM;
    body_reset(h);
    if (prepare(h, req, &headers) != J4_OK)
        return J4_ERR_NOMEM;

    start = (uint64_t)clock_mono_us();
    rc = perform(w, h);
    latency = (uint64_t)clock_mono_us() - start;
    curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);

    outcome = classify(rc, status);
    worker_stats_record(&w->stats, outcome, latency);
    if (h->body)
        h->body[h->len] = '\0';
    if (resp) {
        resp->status = status;
        resp->body = h->body ? h->body : "";
        resp->body_len = h->len;
        resp->outcome = outcome;
        resp->latency_us = latency;
    }
    return status_of(outcome, rc);
}
