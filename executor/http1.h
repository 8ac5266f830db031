/*
 * http1.h - a native HTTP/1.1 client for the SDK's plain http:// requests.
 *
 * j4_http_request() sends most load through here instead of libcurl: one
 * worker's struct http1 keeps its keep-alive connections (non-blocking
 * sockets waited on through scheduler.h, so a worker fiber never holds
 * up its loop), builds each request with one write and parses the answer
 * in a reusable buffer, with no heap allocation per request once its
 * buffers have grown to the traffic.
 *
 * It behaves as sdk_http.c's libcurl path does, byte for byte where a
 * server could tell: the same request line and headers in the same order
 * (Host, curl's default Accept, the caller's headers with curl's "Name:"
 * removal and "Name;" empty-value forms, then Content-Length and curl's
 * default Content-Type for a body), the same redirect rules, the same
 * retry of a reused connection that died idle, and the same outcomes,
 * down to the replies libcurl 7.88 refuses (Content-Length as it reads
 * it, its limits on head lines, heads and chunked framing). One
 * difference a server can see: a request whose headers say
 * "Connection: close" ends its connection, as RFC 9112 requires, where
 * libcurl would keep it if the server did.
 * What it does not do itself (https, proxies, credentials in the URL,
 * bodies big enough for curl's "Expect: 100-continue", URLs curl would
 * re-encode) it leaves to libcurl: http1_can() says no, or
 * http1_exchange() sets fallback and the caller replays the whole
 * request with libcurl.
 *
 * It never records: the caller records the one sample of the request.
 *
 * Threads: a struct http1 belongs to one fiber (or, outside the
 * scheduler, one thread) from its first exchange to http1_free(). The
 * name cache behind it is process-wide and locked.
 */
#ifndef J4_EXECUTOR_HTTP1_H
#define J4_EXECUTOR_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#include "j4.h"

/* Most connections one client keeps open, as libcurl's cache does for a
 * one-handle multi handle; the least recently used one is closed. */
#define HTTP1_CONNS 4

/* Response bodies are kept up to this many bytes, the rest discarded,
 * as sdk_http.c does; the kept body is always NUL-terminated. */
#define HTTP1_BODY_CAP (4u * 1024 * 1024)

/* Request bodies above this go to libcurl, which would send them with
 * "Expect: 100-continue". */
#define HTTP1_BODY_NATIVE_MAX (1024u * 1024)

struct http1;

/* A client with no connection yet; NULL when out of memory. Its buffers
 * are allocated at the first exchange. */
struct http1 *http1_new(void);

/* Closes its connections and frees it (NULL is fine). From the fiber or
 * thread that used it. */
void http1_free(struct http1 *c);

/* Non-zero when req can go native: an http:// URL without credentials
 * or characters libcurl would encode or refuse, a method that is an HTTP
 * token, headers without CR or LF and none of Content-Length,
 * Transfer-Encoding or Expect, a body of at most HTTP1_BODY_NATIVE_MAX
 * bytes, and no proxy in the environment (http_proxy, HTTP_PROXY,
 * all_proxy, ALL_PROXY, read once). TLS fields do not matter: they only
 * apply after a redirect to https://, which falls back. Cheap; any
 * thread. */
int http1_can(const j4_http_request_t *req);

/* What became of one exchange. body points into the client, valid until
 * its next exchange or http1_free(); "" when there was none. */
struct http1_result {
    long status;         /* last status received; 0 when none */
    j4_outcome outcome;
    const char *body;    /* NUL-terminated, at most HTTP1_BODY_CAP bytes */
    size_t body_len;
    int fallback;        /* 1: nothing else here is set; replay the whole
                            request with libcurl */
};

/* Tells when to abort the exchange as interrupted: monotonic us
 * (clock_mono_us()), INT64_MAX while the worker is not stopping. Called
 * at the start and again each time a wait is woken. */
typedef int64_t (*http1_abort_fn)(void *arg);

/* Performs req (redirects included, as req->max_redirects allows: -1
 * means 10, 0 none) within req->timeout_ms (0: 30 s) on c's connection
 * to the URL's host and port, opening one when needed. extra_headers
 * (NULL-terminated "Name: value" lines, may be NULL) are sent after the
 * caller's, as they are, on every request of the chain. A timeout of
 * 2^31 ms (24 days) or more never expires. abort_at may be NULL (never
 * abort). From c's fiber only.
 *
 * Returns as j4_http_request() documents: J4_OK for a status < 400,
 * J4_ERR_HTTP for >= 400 (outcome HTTP_4XX / HTTP_5XX), J4_ERR_TIMEOUT,
 * J4_ERR_CONNECT (refused, reset, out of file descriptors, or a reply
 * libcurl fails as a receive error: broken chunked framing, more than
 * 300 KiB of heads), J4_ERR_DNS, J4_ERR_REDIRECTS, J4_ERR_STOPPED
 * (aborted at abort_at: outcome INTERRUPTED), J4_ERR_IO for another
 * reply that breaks the protocol (outcome OTHER; libcurl returns
 * J4_ERR_NOMEM for a head line over its 100 KiB). The request was
 * started, so the caller records it, in all those cases; it was not for
 * J4_ERR_INVALID (a NULL argument) and J4_ERR_NOMEM (memory ran out
 * before anything was sent; later, that is J4_ERR_IO). J4_OK with
 * out->fallback set when the request, or a redirect it got, is not one
 * this client sends: nothing else in out is set then, and a request
 * that was sent before the redirect was not recorded either. */
int http1_exchange(struct http1 *c, const j4_http_request_t *req,
                   const char *const *extra_headers, http1_abort_fn abort_at,
                   void *arg, struct http1_result *out);

#endif
