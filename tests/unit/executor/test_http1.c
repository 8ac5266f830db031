/*
 * test_http1.c - the native HTTP/1.1 client (executor/http1.c) against a
 * loopback server of its own, run in this process on one thread per
 * connection, that counts connections and requests and logs every
 * request head it receives.
 *
 * Cases: Content-Length, chunked with trailers, close-delimited and
 * HTTP/1.0 bodies, 1xx skipped, HEAD, 204 and 304 without bodies,
 * keep-alive reuse counted at the server, a server that closes (or
 * resets) an idle kept connection and the transparent retry, redirect
 * chains with curl's method rules, the redirect limit, a redirect to
 * https that falls back, timeouts, aborts (also woken in a fiber),
 * refused connections, broken replies, a 6 MiB body kept to 4 MiB, names
 * through a fake resolver and its cache, no heap allocation per request
 * in steady state, and many clients as fibers on one loop. Last, every
 * request head is compared byte for byte with what libcurl sends for the
 * same request with sdk_http.c's options, redirects included, and odd
 * replies (Content-Length values, heads at libcurl's size limits, broken
 * chunked framing) must get the outcome libcurl gets; beside them, a
 * caller's "Connection: close", timeouts too long for microseconds, and
 * file descriptors running out.
 *
 * With "--nginx BASE SHORT_BASE" it checks the client against a real
 * nginx instead (http1_nginx.py starts it): keep-alive reuse counted by
 * nginx's stub_status, HEAD, a 6 MiB file, 404, 405, a redirect, and
 * nginx closing connections after keepalive_requests and when idle.
 *
 * Nothing leaves 127.0.0.1: getaddrinfo() is replaced below by a table
 * of made-up names, so no name ever reaches a real resolver. Every wait
 * is bounded.
 */
#define _GNU_SOURCE /* memmem, strcasestr */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "clock.h"
#include "http1.h"
#include "scheduler.h"

#define BIG_BODY (6u * 1024 * 1024)
#define LOG_SLOTS 64
#define HEAD_CAP 8192

/* ------------------------------------------------- a fake resolver */

static atomic_int gai_calls;

/* Replaces the C library's for this process: names with ".test" in them
 * are 127.0.0.1 (but "nxdomain.test"), IPv4 literals are themselves,
 * every other name fails. */
int getaddrinfo(const char *node, const char *service,
                const struct addrinfo *hints, struct addrinfo **res)
{
    struct fake {
        struct addrinfo ai;
        struct sockaddr_in sin;
    } *f;
    struct in_addr ip = {htonl(INADDR_LOOPBACK)};

    (void)service;
    (void)hints;
    atomic_fetch_add(&gai_calls, 1);
    if (!node || strcmp(node, "nxdomain.test") == 0 ||
        (!strstr(node, ".test") && inet_pton(AF_INET, node, &ip) != 1))
        return EAI_NONAME;
    f = calloc(1, sizeof(*f));
    if (!f)
        return EAI_MEMORY;
    f->sin.sin_family = AF_INET;
    f->sin.sin_addr = ip;
    f->ai.ai_family = AF_INET;
    f->ai.ai_socktype = SOCK_STREAM;
    f->ai.ai_addr = (struct sockaddr *)&f->sin;
    f->ai.ai_addrlen = sizeof(f->sin);
    *res = &f->ai;
    return 0;
}

void freeaddrinfo(struct addrinfo *ai)
{
    free(ai);
}

/* ------------------------------------------ counting allocations */

#if defined(__SANITIZE_ADDRESS__)
#define COUNT_ALLOCS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define COUNT_ALLOCS 0
#endif
#endif
#ifndef COUNT_ALLOCS
#define COUNT_ALLOCS 1
#endif

#if COUNT_ALLOCS
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

static __thread int counting;  /* this thread counts its allocations */
static __thread long allocs;

void *malloc(size_t n)
{
    allocs += counting;
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    allocs += counting;
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    allocs += counting;
    return __libc_realloc(p, n);
}

void free(void *p)
{
    __libc_free(p);
}
#endif

/* ------------------------------------------------- the test server */

static int srv_fd;
static unsigned srv_port;
static atomic_int srv_conns, srv_requests;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_head[LOG_SLOTS][HEAD_CAP];
static size_t log_body[LOG_SLOTS];
static int log_count;
static char *big;

/* One request as the server read it. */
struct sreq {
    char head[HEAD_CAP];         /* without the blank line */
    char method[16];
    char path[2048];
    const char *body;
    size_t body_len;
};

/* A connection's buffers; requests may be up to 1 MiB. */
struct sconn {
    int fd;
    char buf[(1u << 20) + HEAD_CAP];
    size_t len;
    char echo[(1u << 20) + HEAD_CAP + 2];
};

static void log_reset(void)
{
    pthread_mutex_lock(&log_lock);
    log_count = 0;
    pthread_mutex_unlock(&log_lock);
}

static void log_add(const struct sreq *r)
{
    pthread_mutex_lock(&log_lock);
    if (log_count < LOG_SLOTS) {
        snprintf(log_head[log_count], HEAD_CAP, "%s", r->head);
        log_body[log_count] = r->body_len;
        log_count++;
    }
    pthread_mutex_unlock(&log_lock);
}

static int wr(int fd, const void *p, size_t n)
{
    const char *s = p;

    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);

        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

static int wr_str(int fd, const char *s)
{
    return wr(fd, s, strlen(s));
}

/* The value of key in the query of path, %XX decoded, or def. */
static const char *qstr(const char *path, const char *key, char *out,
                        size_t size, const char *def)
{
    const char *q = strchr(path, '?');
    size_t klen = strlen(key), n = 0;

    while (q) {
        q++;
        if (strncmp(q, key, klen) == 0 && q[klen] == '=') {
            for (q += klen + 1; *q && *q != '&' && n + 1 < size; q++) {
                unsigned v;

                if (*q == '%' && sscanf(q + 1, "%2x", &v) == 1) {
                    out[n++] = (char)v;
                    q += 2;
                } else {
                    out[n++] = *q;
                }
            }
            out[n] = '\0';
            return out;
        }
        q = strchr(q, '&');
    }
    return def;
}

static long qint(const char *path, const char *key, long def)
{
    char buf[32];
    const char *v = qstr(path, key, buf, sizeof(buf), NULL);

    return v ? strtol(v, NULL, 10) : def;
}

/* The path's last segment, before the query: what the routes match. */
static int route_is(const struct sreq *r, const char *name)
{
    const char *end = r->path + strcspn(r->path, "?");
    const char *seg = end;
    size_t n = strlen(name);

    while (seg > r->path && seg[-1] != '/')
        seg--;
    return (size_t)(end - seg) == n && memcmp(seg, name, n) == 0;
}

/* Reads the next request of the connection. 0, or -1 at its end. */
static int srv_next(struct sconn *sc, struct sreq *r)
{
    char *end, *cl;
    size_t head_len, need;

    while (!(end = memmem(sc->buf, sc->len, "\r\n\r\n", 4))) {
        ssize_t n = read(sc->fd, sc->buf + sc->len,
                         sizeof(sc->buf) - sc->len);

        if (n <= 0 || sc->len + (size_t)n >= sizeof(sc->buf))
            return -1;
        sc->len += (size_t)n;
    }
    head_len = (size_t)(end - sc->buf);
    if (head_len >= HEAD_CAP)
        return -1;
    memcpy(r->head, sc->buf, head_len);
    r->head[head_len] = '\0';
    if (sscanf(r->head, "%15s %2047s", r->method, r->path) != 2)
        return -1;
    cl = strcasestr(r->head, "\r\nContent-Length:");
    r->body_len = cl ? strtoul(cl + 17, NULL, 10) : 0;
    need = head_len + 4 + r->body_len;
    while (sc->len < need) {
        ssize_t n = read(sc->fd, sc->buf + sc->len,
                         sizeof(sc->buf) - sc->len);

        if (n <= 0)
            return -1;
        sc->len += (size_t)n;
    }
    r->body = sc->buf + head_len + 4;
    return 0;
}

/* Drops the request just served from the connection's buffer. */
static void srv_consume(struct sconn *sc, const struct sreq *r)
{
    size_t used = strlen(r->head) + 4 + r->body_len;

    memmove(sc->buf, sc->buf + used, sc->len - used);
    sc->len -= used;
}

static int respond(int fd, const struct sreq *r, int status,
                   const char *headers, const char *body, size_t len)
{
    char head[1024];

    snprintf(head, sizeof(head),
             "HTTP/1.1 %d Test\r\nContent-Length: %zu\r\n%s\r\n", status,
             len, headers);
    if (wr_str(fd, head) < 0)
        return -1;
    return strcmp(r->method, "HEAD") == 0 ? 0 : wr(fd, body, len);
}

static void reset_close(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};

    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

static int route_echo(int fd, const struct sreq *r, char *out)
{
    size_t hl = strlen(r->head);

    memcpy(out, r->head, hl);
    memcpy(out + hl, "\n\n", 2);
    memcpy(out + hl + 2, r->body, r->body_len);
    return respond(fd, r, 200, "", out, hl + 2 + r->body_len);
}

static int route_chunked(int fd, const struct sreq *r)
{
    static const char *const parts[] = {
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "5;name=value\r\nhel", "lo\r\n", "6\r", "\n world\r\n",
        "0\r\nX-Trailer: one\r\nX-Other: two\r\n", "\r\n"};

    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        if (wr_str(fd, parts[i]) < 0)
            return -1;
        usleep(2000); /* each part in its own read */
    }
    return 0;
}

static int route_big_chunked(int fd)
{
    char line[32];

    if (wr_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"))
        return -1;
    for (size_t off = 0; off < BIG_BODY; off += 65536) {
        snprintf(line, sizeof(line), "%x\r\n", 65536);
        if (wr_str(fd, line) || wr(fd, big + off, 65536) ||
            wr_str(fd, "\r\n"))
            return -1;
    }
    return wr_str(fd, "0\r\n\r\n");
}

static int route_redirect(int fd, const struct sreq *r)
{
    char buf[1024], hdr[1100];
    long code = qint(r->path, "code", 302);
    const char *to = route_is(r, "loop")      ? "/loop"
                     : route_is(r, "tohttps") ? "https://127.0.0.1:1/x"
                     : qstr(r->path, "to", buf, sizeof(buf), "/echo");

    snprintf(hdr, sizeof(hdr), "Location: %s\r\n", to);
    return respond(fd, r, (int)code, hdr, "moved", 5);
}

/* Answers that end the connection (1: close it). */
static int route_closing(int fd, const struct sreq *r)
{
    if (route_is(r, "close"))
        wr_str(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
                   "close-delimited body");
    else if (route_is(r, "eof10"))
        wr_str(fd, "HTTP/1.0 200 OK\r\n\r\nten bytes!");
    else if (route_is(r, "garbage"))
        wr_str(fd, "SPDY/9 200 nope\r\n\r\n");
    else if (route_is(r, "partial") || route_is(r, "resetmid"))
        wr_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
    if (route_is(r, "resetmid") || route_is(r, "idlerst"))
        reset_close(fd);
    if (route_is(r, "idleclose") || route_is(r, "idlerst")) {
        respond(fd, r, 200, "", "idle", 4);
        usleep(50000);
    }
    return 1;
}

static int is_closing(const struct sreq *r)
{
    static const char *const names[] = {"close", "eof10", "garbage",
                                        "partial", "resetmid", "idleclose",
                                        "idlerst", "noanswer"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (route_is(r, names[i]))
            return 1;
    }
    return 0;
}

/* Content-Length lines with the values v and w (w: none when absent)
 * under status code, then "abcdef"; with pre, in a 100 before a final
 * answer "ab" instead. */
static int route_clv(int fd, const struct sreq *r)
{
    char v[64], w[64], second[96] = "", head[512];
    long code = qint(r->path, "code", 200);

    qstr(r->path, "v", v, sizeof(v), "");
    if (qstr(r->path, "w", w, sizeof(w), NULL))
        snprintf(second, sizeof(second), "Content-Length:%s\r\n", w);
    if (qint(r->path, "pre", 0))
        snprintf(head, sizeof(head),
                 "HTTP/1.1 100 Continue\r\nContent-Length:%s\r\n\r\n"
                 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab", v);
    else
        snprintf(head, sizeof(head),
                 "HTTP/1.1 %ld Test\r\nContent-Length:%s\r\n%s\r\nabcdef",
                 code, v, second);
    wr_str(fd, head);
    return 1;
}

/* A header line of exactly len bytes (at least 7), CRLF included. */
static size_t filler(char *p, size_t len)
{
    memcpy(p, "X-F: ", 5);
    memset(p + 5, 'f', len - 7);
    memcpy(p + len - 2, "\r\n", 2);
    return len;
}

/* Heads of a given size: with line, one header line of that many bytes;
 * with total, a head of that many bytes in all; pre 100s before it, or
 * hops redirects of the same size to it. */
static int route_heads(int fd, const struct sreq *r)
{
    size_t line = (size_t)qint(r->path, "line", 0);
    size_t total = (size_t)qint(r->path, "total", 0);
    long pre = qint(r->path, "pre", 0), hops = qint(r->path, "hops", 0);
    char *buf = malloc(line + total + 4096);
    size_t n = 0, start;

    for (long i = 0; i < pre; i++)
        n += (size_t)sprintf(buf + n, "HTTP/1.1 100 Continue\r\n\r\n");
    start = n;
    if (hops)
        n += (size_t)sprintf(buf + n, "HTTP/1.1 302 Found\r\n"
                             "Location: /heads?total=%zu&hops=%ld\r\n"
                             "Content-Length: 0\r\n", total, hops - 1);
    else
        n += (size_t)sprintf(buf + n, "HTTP/1.1 200 OK\r\n"
                                      "Content-Length: 2\r\n");
    if (line)
        n += filler(buf + n, line);
    while (total && total - (n - start) > 2000)
        n += filler(buf + n, 1000);
    if (total)
        n += filler(buf + n, total - (n - start) - 2);
    n += (size_t)sprintf(buf + n, hops ? "\r\n" : "\r\nab");
    wr(fd, buf, n);
    free(buf);
    return 1;
}

/* Chunked bodies that curl takes or refuses: case n of the table, or
 * with trailer, one trailer line of that many bytes, or with ext, a
 * chunk extension that long. */
static const char *const chunk_cases[] = {
    "3x\r\nabc\r\r\r\n0\n\n",
    "zz\r\nabc\r\n0\r\n\r\n",
    "00000000000000003\r\nabc\r\n0\r\n\r\n",
    "0000000000000003\r\nabc\r\n0\r\n\r\n",
    "8000000000000000\r\nabc\r\n0\r\n\r\n",
    "3\r\nabcX\r\n0\r\n\r\n",
    "3\r\nabc\r\n0\r\n\r\r\n",
    "3\r\nabc\r\n0\r\nA: b\rX\r\n\r\n",
    "3\r\nabc\r\n0\r\nA: b\nB: c\r\n\r\n",
    "\r\n3\r\nabc\r\n0\r\n\r\n",
};

static int route_chunkcase(int fd, const struct sreq *r)
{
    size_t trailer = (size_t)qint(r->path, "trailer", 0);
    size_t ext = (size_t)qint(r->path, "ext", 0);
    long n = qint(r->path, "n", 0);
    char *buf = malloc(trailer + ext + 256);
    size_t len = (size_t)sprintf(buf, "HTTP/1.1 200 OK\r\n"
                                      "Transfer-Encoding: chunked\r\n\r\n");

    if (trailer || ext) {
        len += (size_t)sprintf(buf + len, "3;");
        memset(buf + len, 'e', ext);
        len += ext;
        len += (size_t)sprintf(buf + len, "\r\nabc\r\n0\r\n");
        if (trailer)
            len += filler(buf + len, trailer + 2);
        len += (size_t)sprintf(buf + len, "\r\n");
    } else {
        len += (size_t)sprintf(buf + len, "%s", chunk_cases[n]);
    }
    wr(fd, buf, len);
    free(buf);
    return 1;
}

/* Answers made for one request each, after which the server closes;
 * -1 when r is not for one of them. */
static int route_odd(int fd, const struct sreq *r)
{
    if (route_is(r, "clv"))
        return route_clv(fd, r);
    if (route_is(r, "heads"))
        return route_heads(fd, r);
    if (route_is(r, "chunkcase"))
        return route_chunkcase(fd, r);
    return -1;
}

/* Answers one request: 0 to keep the connection, non-zero to close it. */
static int route(struct sconn *sc, const struct sreq *r)
{
    int fd = sc->fd;
    char body[256];

    if (is_closing(r))
        return route_closing(fd, r);
    if (route_odd(fd, r) > 0)
        return 1;
    if (route_is(r, "echo"))
        return route_echo(fd, r, sc->echo);
    if (route_is(r, "cl")) {
        long n = qint(r->path, "n", 10);

        return respond(fd, r, 200, "", big, (size_t)n);
    }
    if (route_is(r, "big"))
        return respond(fd, r, 200, "", big, BIG_BODY);
    if (route_is(r, "bigchunked"))
        return route_big_chunked(fd);
    if (route_is(r, "chunked"))
        return route_chunked(fd, r);
    if (route_is(r, "http10"))
        return wr_str(fd, "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc");
    if (route_is(r, "http10ka"))
        return wr_str(fd, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
                          "Content-Length: 2\r\n\r\nka");
    if (route_is(r, "1xx"))
        return wr_str(fd, "HTTP/1.1 100 Continue\r\n\r\n"
                          "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
                          "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    if (route_is(r, "204"))
        return wr_str(fd, "HTTP/1.1 204 No Content\r\n\r\n");
    if (route_is(r, "304"))
        return wr_str(fd, "HTTP/1.1 304 Not Modified\r\n"
                          "Content-Length: 50\r\n\r\n");
    if (route_is(r, "redirect") || route_is(r, "loop") ||
        route_is(r, "tohttps"))
        return route_redirect(fd, r);
    if (route_is(r, "slow"))
        usleep((useconds_t)qint(r->path, "ms", 100) * 1000);
    if (route_is(r, "status") || route_is(r, "slow")) {
        long code = qint(r->path, "code", 200);

        snprintf(body, sizeof(body), "status %ld", code);
        return respond(fd, r, (int)code, "", body, strlen(body));
    }
    return respond(fd, r, 404, "", "no such route", 13);
}

static void *srv_conn(void *arg)
{
    struct sconn *sc = malloc(sizeof(*sc));
    struct sreq *r = malloc(sizeof(*r));

    sc->fd = (int)(intptr_t)arg;
    sc->len = 0;
    while (srv_next(sc, r) == 0) {
        atomic_fetch_add(&srv_requests, 1);
        log_add(r);
        if (route(sc, r) != 0)
            break;
        srv_consume(sc, r);
    }
    close(sc->fd);
    free(r);
    free(sc);
    return NULL;
}

static void *srv_main(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(srv_fd, NULL, NULL), one = 1;
        pthread_t t;

        if (fd < 0)
            continue;
        /* Heads and bodies go out in separate writes: without this,
         * Nagle holds each body until the client's delayed ACK. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        atomic_fetch_add(&srv_conns, 1);
        if (pthread_create(&t, NULL, srv_conn, (void *)(intptr_t)fd) != 0)
            close(fd);
        else
            pthread_detach(t);
    }
    return NULL;
}

/* A listening socket on 127.0.0.1 and a free port; listening or not. */
static int listener(unsigned *port, int listening)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        (listening && listen(fd, 128) != 0) ||
        getsockname(fd, (struct sockaddr *)&sin, &len) != 0) {
        perror("test server");
        exit(2);
    }
    *port = ntohs(sin.sin_port);
    return fd;
}

static void srv_start(void)
{
    pthread_t t;

    big = malloc(BIG_BODY);
    for (size_t i = 0; i < BIG_BODY; i++)
        big[i] = (char)('a' + i % 26);
    srv_fd = listener(&srv_port, 1);
    pthread_create(&t, NULL, srv_main, NULL);
    pthread_detach(t);
}

/* ------------------------------------------------------ the client */

static struct http1 *cli;

/* A fresh client, so each case counts its own connections. */
static void fresh(void)
{
    http1_free(cli);
    cli = http1_new();
}

static const char *url_of(char *buf, size_t size, const char *path)
{
    snprintf(buf, size, "http://127.0.0.1:%u%s", srv_port, path);
    return buf;
}

static int64_t never(void *arg)
{
    (void)arg;
    return INT64_MAX;
}

static int64_t abort_at_value(void *arg)
{
    return *(const int64_t *)arg;
}

static int run(const j4_http_request_t *req, struct http1_result *res)
{
    return http1_exchange(cli, req, NULL, never, NULL, res);
}

static int get(const char *path, struct http1_result *res)
{
    char url[512];
    j4_http_request_t req = {.url = url_of(url, sizeof(url), path)};

    return run(&req, res);
}

/* GET path answers 200 with body. */
static int get_ok(const char *path, const char *body)
{
    struct http1_result res;
    int rc = get(path, &res);

    return CHECK_INT_EQ(rc, J4_OK) && CHECK_INT_EQ(res.status, 200) &&
           CHECK_INT_EQ(res.outcome, J4_OUTCOME_OK) &&
           CHECK_STR_EQ(res.body, body) &&
           CHECK_UINT_EQ(res.body_len, strlen(body));
}

static void test_keepalive(void)
{
    int conns = atomic_load(&srv_conns);
    int reqs = atomic_load(&srv_requests);

    fresh();
    for (int i = 0; i < 100; i++) {
        if (!get_ok("/cl?n=34", "abcdefghijklmnopqrstuvwxyzabcdefgh"))
            break;
    }
    CHECK_INT_EQ(atomic_load(&srv_conns) - conns, 1);
    CHECK_INT_EQ(atomic_load(&srv_requests) - reqs, 100);
}

static void test_request_head(void)
{
    static const char *const headers[] = {
        "Accept: text/plain", "X-A: 1", "X-Empty:", "X-Semi;",
        "Host: example.test", "Content-Type: text/plain", NULL};
    static const char *const extra[] = {"traceparent: 00-abc-def-01",
                                        "baggage: j4.scenario=t", NULL};
    char url[512], want[1024];
    j4_http_request_t req = {.url = url_of(url, sizeof(url), "/echo")};
    struct http1_result res;

    fresh();
    CHECK_INT_EQ(run(&req, &res), J4_OK);
    snprintf(want, sizeof(want),
             "GET /echo HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nAccept: */*\n\n",
             srv_port);
    CHECK_STR_EQ(res.body, want);

    req.method = "POST";
    req.body = "hello";
    CHECK_INT_EQ(run(&req, &res), J4_OK);
    snprintf(want, sizeof(want),
             "POST /echo HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nAccept: */*\r\n"
             "Content-Length: 5\r\n"
             "Content-Type: application/x-www-form-urlencoded\n\nhello",
             srv_port);
    CHECK_STR_EQ(res.body, want);

    req.headers = headers;
    CHECK_INT_EQ(http1_exchange(cli, &req, extra, never, NULL, &res), J4_OK);
    CHECK_STR_EQ(res.body,
                 "POST /echo HTTP/1.1\r\nHost: example.test\r\n"
                 "Accept: text/plain\r\nX-A: 1\r\nX-Semi:\r\n"
                 "Content-Type: text/plain\r\n"
                 "traceparent: 00-abc-def-01\r\nbaggage: j4.scenario=t\r\n"
                 "Content-Length: 5\n\nhello");
}

static void test_bodies(void)
{
    int conns = atomic_load(&srv_conns);
    struct http1_result res;

    fresh();
    get_ok("/chunked", "hello world");
    get_ok("/1xx", "ok");
    CHECK_INT_EQ(get("/204", &res), J4_OK);
    CHECK_INT_EQ(res.status, 204);
    CHECK_UINT_EQ(res.body_len, 0);
    CHECK_INT_EQ(get("/304", &res), J4_OK);
    CHECK_INT_EQ(res.status, 304);
    CHECK_UINT_EQ(res.body_len, 0);
    get_ok("/http10ka", "ka");
    CHECK_INT_EQ(atomic_load(&srv_conns) - conns, 1); /* all on one */

    get_ok("/close", "close-delimited body");
    get_ok("/eof10", "ten bytes!");
    get_ok("/http10", "abc"); /* no keep-alive: the client closes it */
    get_ok("/cl?n=2", "ab");
    CHECK_INT_EQ(atomic_load(&srv_conns) - conns, 4);
}

static void test_head(void)
{
    char url[512];
    j4_http_request_t req = {.method = "HEAD",
                             .url = url_of(url, sizeof(url), "/cl?n=100")};
    struct http1_result res;
    int conns = atomic_load(&srv_conns);

    fresh();
    CHECK_INT_EQ(run(&req, &res), J4_OK);
    CHECK_INT_EQ(res.status, 200);
    CHECK_UINT_EQ(res.body_len, 0);
    get_ok("/cl?n=3", "abc"); /* the HEAD's answer had no body */
    CHECK_INT_EQ(atomic_load(&srv_conns) - conns, 1);
}

/* The server ends a kept connection while it is idle: the next request
 * finds it dead and is sent again on a new one, unnoticed. */
static void test_idle_close(void)
{
    static const char *const kinds[] = {"/idleclose", "/idlerst"};

    for (int i = 0; i < 2; i++) {
        int conns = atomic_load(&srv_conns);
        int reqs = atomic_load(&srv_requests);

        fresh();
        get_ok(kinds[i], "idle");
        usleep(150000);
        get_ok("/cl?n=3", "abc");
        CHECK_INT_EQ(atomic_load(&srv_conns) - conns, 2);
        CHECK_INT_EQ(atomic_load(&srv_requests) - reqs, 2);
    }
}

/* The method and body length of the server's log entry i. */
static int logged(int i, const char *method, const char *path, size_t body)
{
    char want[512];
    int ok;

    snprintf(want, sizeof(want), "%s %s HTTP/1.1\r\n", method, path);
    pthread_mutex_lock(&log_lock);
    ok = i < log_count && strncmp(log_head[i], want, strlen(want)) == 0 &&
         log_body[i] == body;
    if (!ok)
        fprintf(stderr, "log %d: \"%.60s\" body %zu, wanted \"%s\" %zu\n", i,
                i < log_count ? log_head[i] : "(none)",
                i < log_count ? log_body[i] : 0, want, body);
    pthread_mutex_unlock(&log_lock);
    return CHECK(ok);
}

static int send_as(const char *method, const char *path, const char *body,
                   int max_redirects, struct http1_result *res)
{
    char url[512];
    j4_http_request_t req = {.method = method,
                             .url = url_of(url, sizeof(url), path),
                             .body = body,
                             .max_redirects = max_redirects};

    log_reset();
    return run(&req, res);
}

static void test_redirect_methods(void)
{
    struct http1_result res;

    fresh();
    CHECK_INT_EQ(send_as("POST",
                         "/redirect?code=307&to=%2Fredirect%3Fcode%3D301"
                         "%26to%3D%2Fecho",
                         "hello", -1, &res),
                 J4_OK);
    logged(0, "POST", "/redirect?code=307&to=%2Fredirect%3Fcode%3D301%26to"
                      "%3D%2Fecho", 5);
    logged(1, "POST", "/redirect?code=301&to=/echo", 5);
    logged(2, "GET", "/echo", 0);
    CHECK(strncmp(res.body, "GET /echo HTTP/1.1", 18) == 0);

    send_as("POST", "/redirect?code=302", "hello", -1, &res);
    logged(1, "GET", "/echo", 0);
    send_as("PUT", "/redirect?code=303", "hello", -1, &res);
    logged(1, "PUT", "/echo", 0);
    send_as("POST", "/redirect?code=308", "hello", -1, &res);
    logged(1, "POST", "/echo", 5);
    send_as("DELETE", "/redirect?code=302", NULL, -1, &res);
    logged(1, "DELETE", "/echo", 0);
    send_as("HEAD", "/redirect?code=303", NULL, -1, &res);
    logged(1, "HEAD", "/echo", 0);
    CHECK_INT_EQ(res.status, 200);
}

static void test_redirect_targets(void)
{
    struct http1_result res;

    fresh();
    send_as("GET", "/a/b/redirect?to=..%2Fecho", NULL, -1, &res);
    logged(1, "GET", "/a/echo", 0);
    send_as("GET", "/a/b/redirect?to=%3Fto%3Decho", NULL, -1, &res);
    logged(1, "GET", "/a/b/redirect?to=echo", 0);
    logged(2, "GET", "/a/b/echo", 0);
    send_as("GET", "/a/redirect?to=.%2F..%2F..%2Fx%2F.%2Fecho%23frag", NULL,
            -1, &res);
    logged(1, "GET", "/x/echo", 0);
    CHECK_INT_EQ(res.status, 200);
    send_as("GET", "/redirect?to=%20%2Fecho%20", NULL, -1, &res);
    logged(1, "GET", "/echo", 0);
}

static void test_redirect_limits(void)
{
    struct http1_result res;

    fresh();
    CHECK_INT_EQ(send_as("GET", "/loop", NULL, 5, &res), J4_ERR_REDIRECTS);
    CHECK_INT_EQ(res.outcome, J4_OUTCOME_REDIRECTS);
    CHECK_INT_EQ(res.status, 302);
    CHECK_INT_EQ(log_count, 6);
    CHECK_INT_EQ(send_as("GET", "/loop", NULL, -1, &res), J4_ERR_REDIRECTS);
    CHECK_INT_EQ(log_count, 11);
    CHECK_INT_EQ(send_as("GET", "/loop", NULL, 0, &res), J4_OK);
    CHECK_INT_EQ(res.status, 302);
    CHECK_STR_EQ(res.body, "moved");
    CHECK_INT_EQ(log_count, 1);

    CHECK_INT_EQ(send_as("POST", "/tohttps", "x", -1, &res), J4_OK);
    CHECK_INT_EQ(res.fallback, 1);
    CHECK_INT_EQ(log_count, 1);
    CHECK_INT_EQ(send_as("GET", "/tohttps", NULL, 0, &res), J4_OK);
    CHECK_INT_EQ(res.fallback, 0); /* not followed, so not a fallback */
}

/* Another host: curl's own Host, and no Authorization or Cookie. */
static void test_redirect_cross_host(void)
{
    static const char *const headers[] = {"Host: example.test",
                                          "Authorization: Bearer x",
                                          "Cookie: a=b", "X-K: v", NULL};
    char url[512], path[256], want[512];
    j4_http_request_t req = {.url = url, .headers = headers,
                             .max_redirects = -1};
    struct http1_result res;
    int conns = atomic_load(&srv_conns);

    fresh();
    snprintf(path, sizeof(path),
             "/redirect?to=http%%3A%%2F%%2Flocalhost%%3A%u%%2Fecho", srv_port);
    url_of(url, sizeof(url), path);
    log_reset();
    CHECK_INT_EQ(run(&req, &res), J4_OK);
    snprintf(want, sizeof(want),
             "GET /echo HTTP/1.1\r\nHost: localhost:%u\r\nAccept: */*\r\n"
             "X-K: v\n\n", srv_port);
    CHECK_STR_EQ(res.body, want);
    CHECK(strstr(log_head[0], "Authorization: Bearer x") != NULL);
    CHECK_INT_EQ(atomic_load(&srv_conns) - conns, 2); /* one per host */
    CHECK_INT_EQ(run(&req, &res), J4_OK);
    CHECK_INT_EQ(atomic_load(&srv_conns) - conns, 2); /* both kept */
}

static void test_timeout_abort(void)
{
    char url[512];
    j4_http_request_t req = {.url = url_of(url, sizeof(url),
                                           "/slow?ms=1500"),
                             .timeout_ms = 300};
    struct http1_result res;
    int64_t start = clock_mono_us(), at;

    fresh();
    CHECK_INT_EQ(run(&req, &res), J4_ERR_TIMEOUT);
    CHECK_INT_EQ(res.outcome, J4_OUTCOME_TIMEOUT);
    CHECK_INT_EQ(res.status, 0);
    CHECK(clock_mono_us() - start >= 290000);
    CHECK(clock_mono_us() - start < 1000000);

    req.timeout_ms = 0;
    start = clock_mono_us();
    at = start + 200000;
    CHECK_INT_EQ(http1_exchange(cli, &req, NULL, abort_at_value, &at, &res),
                 J4_ERR_STOPPED);
    CHECK_INT_EQ(res.outcome, J4_OUTCOME_INTERRUPTED);
    CHECK(clock_mono_us() - start >= 190000);
    CHECK(clock_mono_us() - start < 1000000);

    log_reset();
    at = clock_mono_us() - 1; /* already stopping: nothing is sent */
    CHECK_INT_EQ(http1_exchange(cli, &req, NULL, abort_at_value, &at, &res),
                 J4_ERR_STOPPED);
    CHECK_INT_EQ(log_count, 0);
    get_ok("/cl?n=1", "a");
}

static void test_failures(void)
{
    unsigned port;
    int fd = listener(&port, 0); /* bound, not listening: refused */
    char url[512];
    j4_http_request_t req = {.url = url};
    struct http1_result res;

    fresh();
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/", port);
    CHECK_INT_EQ(run(&req, &res), J4_ERR_CONNECT);
    CHECK_INT_EQ(res.outcome, J4_OUTCOME_CONNECT);
    close(fd);

    CHECK_INT_EQ(get("/garbage", &res), J4_ERR_IO);
    CHECK_INT_EQ(res.outcome, J4_OUTCOME_OTHER);
    CHECK_INT_EQ(get("/partial", &res), J4_ERR_IO);
    CHECK_INT_EQ(res.status, 200);
    CHECK_INT_EQ(get("/resetmid", &res), J4_ERR_CONNECT);
    CHECK_INT_EQ(get("/noanswer", &res), J4_ERR_CONNECT);
    CHECK_INT_EQ(res.outcome, J4_OUTCOME_CONNECT);

    CHECK_INT_EQ(get("/status?code=404", &res), J4_ERR_HTTP);
    CHECK_INT_EQ(res.outcome, J4_OUTCOME_HTTP_4XX);
    CHECK_STR_EQ(res.body, "status 404");
    CHECK_INT_EQ(get("/status?code=503", &res), J4_ERR_HTTP);
    CHECK_INT_EQ(res.outcome, J4_OUTCOME_HTTP_5XX);
    CHECK_INT_EQ(get("/status?code=399", &res), J4_OK);
}

static void check_big(const struct http1_result *res)
{
    size_t last = HTTP1_BODY_CAP - 1;

    CHECK_INT_EQ(res->outcome, J4_OUTCOME_OK);
    CHECK_UINT_EQ(res->body_len, HTTP1_BODY_CAP);
    CHECK(res->body[0] == 'a' && res->body[last] == (char)('a' + last % 26));
    CHECK(res->body[HTTP1_BODY_CAP] == '\0');
}

static void test_big_body(void)
{
    struct http1_result res;
    int conns = atomic_load(&srv_conns);

    fresh();
    CHECK_INT_EQ(get("/big", &res), J4_OK);
    check_big(&res);
    CHECK_INT_EQ(get("/bigchunked", &res), J4_OK);
    check_big(&res);
    get_ok("/cl?n=3", "abc"); /* the rest was read off the connection */
    CHECK_INT_EQ(atomic_load(&srv_conns) - conns, 1);
}

static void test_names(void)
{
    char url[512];
    j4_http_request_t req = {.url = url};
    struct http1_result res;
    int calls = atomic_load(&gai_calls);

    fresh();
    snprintf(url, sizeof(url), "http://svc.test:%u/cl?n=2", srv_port);
    CHECK_INT_EQ(run(&req, &res), J4_OK);
    fresh();
    CHECK_INT_EQ(run(&req, &res), J4_OK);
    CHECK_INT_EQ(atomic_load(&gai_calls) - calls, 1); /* cached */

    snprintf(url, sizeof(url), "http://LOCALHOST:%u/cl?n=2", srv_port);
    CHECK_INT_EQ(run(&req, &res), J4_OK);
    snprintf(url, sizeof(url), "http://a.b.localhost:%u/cl?n=2", srv_port);
    CHECK_INT_EQ(run(&req, &res), J4_OK);
    CHECK_INT_EQ(atomic_load(&gai_calls) - calls, 1); /* no lookup */

    snprintf(url, sizeof(url), "http://nxdomain.test:%u/", srv_port);
    CHECK_INT_EQ(run(&req, &res), J4_ERR_DNS);
    CHECK_INT_EQ(res.outcome, J4_OUTCOME_DNS);
    snprintf(url, sizeof(url), "http://[::1]:%u/", srv_port);
    CHECK_INT_EQ(run(&req, &res), J4_ERR_CONNECT); /* IPv4 server */
}

static void test_can(void)
{
    static const char *const crlf[] = {"X-A: 1\r\nX-B: 2", NULL};
    static const char *const clen[] = {"content-length: 3", NULL};
    static const char *const expect[] = {"Expect: 100-continue", NULL};
    static const char *const fine[] = {"X-A: 1", "Accept:", NULL};
    static char body[HTTP1_BODY_NATIVE_MAX + 2];
    j4_http_request_t req = {.url = "http://127.0.0.1:1/x"};
    struct http1_result res;

    CHECK(http1_can(&req));
    req.headers = fine;
    CHECK(http1_can(&req));
    req.headers = crlf;
    CHECK(!http1_can(&req));
    req.headers = clen;
    CHECK(!http1_can(&req));
    req.headers = expect;
    CHECK(!http1_can(&req));
    req.headers = NULL;
    req.method = "GE T";
    CHECK(!http1_can(&req));
    req.method = "M-SEARCH";
    CHECK(http1_can(&req));
    req.body = body;
    req.body_len = HTTP1_BODY_NATIVE_MAX;
    CHECK(http1_can(&req));
    req.body_len++;
    CHECK(!http1_can(&req));
    CHECK_INT_EQ(http1_exchange(cli, &req, NULL, NULL, NULL, &res), J4_OK);
    CHECK_INT_EQ(res.fallback, 1);
}

static void test_can_urls(void)
{
    static const char *const yes[] = {
        "http://h/", "HTTP://H", "http://h:8080?q=1", "http://[::1]:80/x",
        "http://h/p\"<>{}|^`#f", "http://a-b.c_d/%7e"};
    static const char *const no[] = {
        "https://h/", "http://u:p@h/", "http://u@h/", "http://h/a b",
        "http://h/\xc3\xbc", "http://h:/", "http://h:0/", "http://h:65536/",
        "http://[fe80::1%25eth0]/", "http://[zz]/", "http:/h", "ftp://h/",
        "http://h\\x/", "http://h/a\\b", " http://h/", "http://h/\t",
        "http://h/#f g"};
    j4_http_request_t req = {0};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        req.url = yes[i];
        if (!CHECK(http1_can(&req)))
            fprintf(stderr, "    refused: %s\n", yes[i]);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        req.url = no[i];
        if (!CHECK(!http1_can(&req)))
            fprintf(stderr, "    taken: %s\n", no[i]);
    }
}

/* A proxy in the environment sends everything to libcurl. In a child,
 * because the environment is read once per process. */
static void test_proxy_env(void)
{
    j4_http_request_t req = {.url = "http://127.0.0.1:1/x"};
    int status = 0;
    pid_t pid = fork();

    if (pid == 0) {
        setenv("HTTP_PROXY", "http://127.0.0.1:9", 1);
        _exit(http1_can(&req) ? 1 : 0);
    }
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Steady state: no heap allocation per request. */
static void test_no_allocs(void)
{
#if COUNT_ALLOCS
    static const char *const headers[] = {"X-A: 1", "Cookie: c=d", NULL};
    static const char *const extra[] = {"traceparent: 00-1-2-01", NULL};
    char url[512];
    j4_http_request_t req = {.url = url_of(url, sizeof(url), "/cl?n=300"),
                             .headers = headers};
    j4_http_request_t post = {.method = "POST", .url = url, .body = "x=1"};
    struct http1_result res;
    long before;

    fresh();
    for (int i = 0; i < 50; i++) {
        http1_exchange(cli, &req, extra, never, NULL, &res);
        http1_exchange(cli, &post, extra, never, NULL, &res);
    }
    before = allocs;
    counting = 1;
    for (int i = 0; i < 500; i++) {
        http1_exchange(cli, &req, extra, never, NULL, &res);
        http1_exchange(cli, &post, extra, never, NULL, &res);
    }
    counting = 0;
    CHECK_INT_EQ(res.outcome, J4_OUTCOME_OK);
    CHECK_INT_EQ(allocs - before, 0);
#endif
}

/* -------------------------------------------------------- in fibers */

#define FIBERS 20
#define FIBER_REQUESTS 50

static atomic_int fibers_done, fibers_ok;

static void fiber_client(void *arg)
{
    struct http1 *c = http1_new();
    char url[512];
    j4_http_request_t req = {.url = url_of(url, sizeof(url), "/cl?n=100")};
    struct http1_result res;

    (void)arg;
    for (int i = 0; i < FIBER_REQUESTS; i++) {
        if (http1_exchange(c, &req, NULL, never, NULL, &res) == J4_OK &&
            res.body_len == 100)
            atomic_fetch_add(&fibers_ok, 1);
    }
    http1_free(c);
    atomic_fetch_add(&fibers_done, 1);
}

static int wait_done(int want)
{
    for (int i = 0; i < 10000 && atomic_load(&fibers_done) < want; i++)
        usleep(1000);
    return atomic_load(&fibers_done);
}

static void test_fibers(struct sched *s)
{
    int conns = atomic_load(&srv_conns);

    atomic_store(&fibers_done, 0);
    atomic_store(&fibers_ok, 0);
    for (int i = 0; i < FIBERS; i++)
        CHECK(sched_spawn(s, 0, fiber_client, NULL) != 0);
    CHECK_INT_EQ(wait_done(FIBERS), FIBERS);
    CHECK_INT_EQ(atomic_load(&fibers_ok), FIBERS * FIBER_REQUESTS);
    CHECK_INT_EQ(atomic_load(&srv_conns) - conns, FIBERS);
}

static _Atomic int64_t stop_at = INT64_MAX;
static atomic_int aborted_rc, aborted_outcome;
static _Atomic int64_t aborted_after;

static int64_t stop_at_now(void *arg)
{
    (void)arg;
    return atomic_load(&stop_at);
}

/* Waits on a slow answer until a stop is announced and it is woken. */
static void fiber_stopped(void *arg)
{
    struct http1 *c = http1_new();
    char url[512];
    j4_http_request_t req = {.url = url_of(url, sizeof(url),
                                           "/slow?ms=3000")};
    struct http1_result res;
    int64_t start = clock_mono_us();

    (void)arg;
    atomic_store(&aborted_rc,
                 http1_exchange(c, &req, NULL, stop_at_now, NULL, &res));
    atomic_store(&aborted_outcome, (int)res.outcome);
    atomic_store(&aborted_after, clock_mono_us() - start);
    http1_free(c);
    atomic_fetch_add(&fibers_done, 1);
}

static void test_fiber_stop(struct sched *s)
{
    fiber_handle h;

    atomic_store(&fibers_done, 0);
    h = sched_spawn(s, 0, fiber_stopped, NULL);
    usleep(100000);
    CHECK_INT_EQ(atomic_load(&fibers_done), 0);
    atomic_store(&stop_at, clock_mono_us() + 100000); /* the grace */
    fiber_wake(s, h);
    CHECK_INT_EQ(wait_done(1), 1);
    CHECK_INT_EQ(atomic_load(&aborted_rc), J4_ERR_STOPPED);
    CHECK_INT_EQ(atomic_load(&aborted_outcome), J4_OUTCOME_INTERRUPTED);
    CHECK(atomic_load(&aborted_after) >= 190000);
    CHECK(atomic_load(&aborted_after) < 1000000);
}

static atomic_int fiber_dns_rc;
#if COUNT_ALLOCS
static atomic_long fiber_allocs = -1;
#endif

/* A name looked up on a helper thread; then requests that allocate
 * nothing, counted on the loop's thread. */
static void fiber_dns(void *arg)
{
    struct http1 *c = http1_new();
    char url[512];
    j4_http_request_t req = {.url = url};
    struct http1_result res;

    (void)arg;
    snprintf(url, sizeof(url), "http://fiber.test:%u/cl?n=10", srv_port);
    atomic_store(&fiber_dns_rc,
                 http1_exchange(c, &req, NULL, never, NULL, &res));
#if COUNT_ALLOCS
    for (int i = 0; i < 50; i++)
        http1_exchange(c, &req, NULL, never, NULL, &res);
    counting = 1;
    allocs = 0;
    for (int i = 0; i < 200; i++)
        http1_exchange(c, &req, NULL, never, NULL, &res);
    counting = 0;
    atomic_store(&fiber_allocs, allocs);
#endif
    http1_free(c);
    atomic_fetch_add(&fibers_done, 1);
}

static void test_fiber_dns(struct sched *s)
{
    int calls = atomic_load(&gai_calls);

    atomic_store(&fibers_done, 0);
    CHECK(sched_spawn(s, 0, fiber_dns, NULL) != 0);
    CHECK_INT_EQ(wait_done(1), 1);
    CHECK_INT_EQ(atomic_load(&fiber_dns_rc), J4_OK);
    CHECK_INT_EQ(atomic_load(&gai_calls) - calls, 1);
#if COUNT_ALLOCS
    CHECK_INT_EQ(atomic_load(&fiber_allocs), 0);
#endif
}

/* ------------------------------------------------- beside libcurl */

/* One request as a scenario could make it. */
struct case_ {
    const char *method;
    const char *path;            /* %u: the server's port */
    const char *body;
    const char *const *headers;
    int max_redirects;
};

/* What the server saw of one exchange. */
struct seen {
    int count;
    char heads[LOG_SLOTS][HEAD_CAP];
    size_t bodies[LOG_SLOTS];
};

static void seen_take(struct seen *s)
{
    pthread_mutex_lock(&log_lock);
    s->count = log_count;
    memcpy(s->heads, log_head, sizeof(s->heads));
    memcpy(s->bodies, log_body, sizeof(s->bodies));
    pthread_mutex_unlock(&log_lock);
}

static size_t sink(char *data, size_t size, size_t n, void *arg)
{
    (void)data;
    (void)arg;
    return size * n;
}

/* The request with sdk_http.c's options, extra lines after the caller's. */
static long curl_send(CURL *easy, const j4_http_request_t *req,
                      const char *const *extra)
{
    struct curl_slist *list = NULL;
    const char *method = req->method ? req->method : "GET";
    long status = 0;

    curl_easy_reset(easy);
    curl_easy_setopt(easy, CURLOPT_URL, req->url);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION,
                     req->max_redirects ? 1L : 0L);
    curl_easy_setopt(easy, CURLOPT_MAXREDIRS,
                     req->max_redirects < 0 ? 10L : (long)req->max_redirects);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, sink);
    if (req->body) {
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)strlen(req->body));
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, req->body);
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
    }
    for (const char *const *h = req->headers; h && *h; h++)
        list = curl_slist_append(list, *h);
    for (const char *const *h = extra; h && *h; h++)
        list = curl_slist_append(list, *h);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, list);
    curl_easy_perform(easy);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(list);
    return status;
}

static int seen_same(const struct seen *a, const struct seen *b,
                     const char *what)
{
    int ok = CHECK_INT_EQ(a->count, b->count);

    for (int i = 0; ok && i < a->count; i++) {
        ok = CHECK_STR_EQ(b->heads[i], a->heads[i]) &&
             CHECK_UINT_EQ(b->bodies[i], a->bodies[i]);
    }
    if (!ok)
        fprintf(stderr, "    in: %s\n", what);
    return ok;
}

static void compare_case(CURL *easy, const struct case_ *k)
{
    static const char *const extra[] = {"traceparent: 00-0af7-b7ad-01",
                                        "baggage: j4.scenario=cmp", NULL};
    static struct seen by_curl, by_http1;
    char path[512], url[600];
    j4_http_request_t req = {.method = k->method, .url = url,
                             .body = k->body, .headers = k->headers,
                             .max_redirects = k->max_redirects};
    struct http1_result res;
    long status;

    snprintf(path, sizeof(path), k->path, srv_port, srv_port);
    url_of(url, sizeof(url), path);
    log_reset();
    status = curl_send(easy, &req, extra);
    seen_take(&by_curl);
    log_reset();
    http1_exchange(cli, &req, extra, never, NULL, &res);
    seen_take(&by_http1);
    if (!seen_same(&by_curl, &by_http1, url) ||
        !CHECK_INT_EQ(res.status, status) || !CHECK_INT_EQ(res.fallback, 0))
        fprintf(stderr, "    %s %s\n", k->method ? k->method : "GET", url);
}

static void test_beside_curl(void)
{
    static const char *const h1[] = {"Accept: text/plain", "X-A: 1",
                                     "X-Empty:", "X-Semi;", NULL};
    static const char *const h2[] = {"Host: example.test",
                                     "Authorization: Bearer x",
                                     "Cookie: a=b", "Content-Type: text/plain",
                                     NULL};
    static const char *const h3[] = {"Connection: close", "Accept:",
                                     "host: Other.Test:81", NULL};
    static char two_k[2001];
    static const char *const methods[] = {"POST", "PUT", "DELETE", "HEAD",
                                          "GET"};
    static const char *const codes[] = {"301", "302", "303", "307", "308"};
    const struct case_ cases[] = {
        {NULL, "/echo", NULL, NULL, -1},
        {NULL, "/echo", NULL, h1, -1},
        {NULL, "/echo", NULL, h2, -1},
        {NULL, "/echo", NULL, h3, -1},
        {"POST", "/echo", "hello", NULL, -1},
        {"POST", "/echo", "hello", h2, -1},
        {"POST", "/echo", "", NULL, -1},
        {"POST", "/echo", NULL, NULL, -1},
        {"PUT", "/echo", NULL, NULL, -1},
        {"PUT", "/echo", "hello", NULL, -1},
        {"DELETE", "/echo", "hello", h1, -1},
        {"GET", "/echo", "hello", NULL, -1},
        {"OPTIONS", "/echo", NULL, NULL, -1},
        {"HEAD", "/echo", NULL, NULL, -1},
        {"POST", "/echo", two_k, NULL, -1},
        {NULL, "/a/./b/../echo?x=/../y", NULL, NULL, -1},
        {NULL, "/a/b/..", NULL, NULL, -1},
        {NULL, "?q=1", NULL, NULL, -1},
        {NULL, "", NULL, NULL, -1},
        {NULL, "/p\"<>{}|^`/echo#frag", NULL, NULL, -1},
        {NULL, "/a/b/redirect?to=..%%2F..%%2Fc%%2Fecho", NULL, NULL, -1},
        {NULL, "/a/b/redirect?to=%%3Fto%%3Decho", NULL, NULL, -1},
        {NULL, "/a/b/redirect?to=%%2F%%2Flocalhost%%3A%u%%2Fecho", NULL, h2,
         -1},
        {"POST", "/redirect?to=http%%3A%%2F%%2FLocalHost%%3A%u%%2Fx%%2Fecho",
         "b", h2, -1},
        {"POST",
         "/redirect?code=308&to=http%%3A%%2F%%2F127.0.0.1%%3A%u%%2Fecho",
         "b", h2, -1},
        {NULL, "/redirect?to=%%23frag", NULL, NULL, -1},
        {NULL, "/redirect?to=", NULL, NULL, -1},
        {NULL, "/loop", NULL, NULL, 3},
        {NULL, "/loop", NULL, NULL, 0},
        {NULL, "/redirect?code=399&to=/echo", NULL, NULL, -1},
    };
    CURL *easy = curl_easy_init();
    char path[128];

    memset(two_k, 'k', sizeof(two_k) - 1);
    fresh();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        compare_case(easy, &cases[i]);
    for (size_t m = 0; m < 5; m++) {
        for (size_t c = 0; c < 5; c++) {
            struct case_ k = {methods[m], path,
                              m < 2 ? "body" : NULL, h2, -1};

            snprintf(path, sizeof(path), "/redirect?code=%s&to=/echo",
                     codes[c]);
            compare_case(easy, &k);
        }
    }
    curl_easy_cleanup(easy);
}

/* ----------------------------------------- failing as libcurl does */

/* What sdk_http.c's classify() makes of libcurl's answer to a GET of
 * url, redirects followed (only the codes these cases can get). */
static j4_outcome curl_outcome(CURL *easy, const char *url)
{
    long status = 0;
    CURLcode rc;

    curl_easy_reset(easy);
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(easy, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, sink);
    rc = curl_easy_perform(easy);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    switch (rc) {
    case CURLE_OK:
        return status >= 500   ? J4_OUTCOME_HTTP_5XX
               : status >= 400 ? J4_OUTCOME_HTTP_4XX
                               : J4_OUTCOME_OK;
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
        return J4_OUTCOME_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return J4_OUTCOME_TIMEOUT;
    default:
        return J4_OUTCOME_OTHER;
    }
}

/* A reply and what both clients must make of it. */
struct verdict {
    const char *path;
    j4_outcome outcome;
    const char *body;            /* for OK: the body kept */
};

static int status_for(j4_outcome outcome)
{
    return outcome == J4_OUTCOME_OK        ? J4_OK
           : outcome == J4_OUTCOME_CONNECT ? J4_ERR_CONNECT
                                           : J4_ERR_IO;
}

static void check_verdict(CURL *easy, const struct verdict *v)
{
    char url[512];
    j4_http_request_t req = {.url = url_of(url, sizeof(url), v->path),
                             .max_redirects = -1};
    struct http1_result res;
    int rc = run(&req, &res);
    int ok = CHECK_INT_EQ(res.outcome, v->outcome);

    ok &= CHECK_INT_EQ(rc, status_for(v->outcome));
    ok &= CHECK_INT_EQ(curl_outcome(easy, url), v->outcome);
    if (v->outcome == J4_OUTCOME_OK && v->body)
        ok &= CHECK_STR_EQ(res.body, v->body);
    if (!ok)
        fprintf(stderr, "    GET %s\n", v->path);
}

static void check_verdicts(CURL *easy, const struct verdict *v, size_t n)
{
    fresh();
    for (size_t i = 0; i < n; i++)
        check_verdict(easy, &v[i]);
}

/* The number a Content-Length starts with, the last header winning;
 * no number, an error; 1xx, 204 and 304 not read at all. */
static void test_lengths(CURL *easy)
{
    static const struct verdict cases[] = {
        {"/clv?v=%202,%202", J4_OUTCOME_OK, "ab"},
        {"/clv?v=2&w=2", J4_OUTCOME_OK, "ab"},
        {"/clv?v=2,%203", J4_OUTCOME_OK, "ab"},
        {"/clv?v=2&w=%203", J4_OUTCOME_OK, "abc"},
        {"/clv?v=3&w=2", J4_OUTCOME_OK, "ab"},
        {"/clv?v=%09+2", J4_OUTCOME_OK, "ab"},
        {"/clv?v=2x", J4_OUTCOME_OK, "ab"},
        {"/clv?v=0002", J4_OUTCOME_OK, "ab"},
        {"/clv?v=99999999999999999999", J4_OUTCOME_OK, "abcdef"},
        {"/clv?v=2&w=99999999999999999999", J4_OUTCOME_OK, "ab"},
        {"/clv?v=x", J4_OUTCOME_OTHER, NULL},
        {"/clv?v=-1", J4_OUTCOME_OTHER, NULL},
        {"/clv?v=", J4_OUTCOME_OTHER, NULL},
        {"/clv?v=,2", J4_OUTCOME_OTHER, NULL},
        {"/clv?v=+", J4_OUTCOME_OTHER, NULL},
        {"/clv?v=2&w=x", J4_OUTCOME_OTHER, NULL},
        {"/clv?v=x&code=204", J4_OUTCOME_OK, ""},
        {"/clv?v=x&code=304", J4_OUTCOME_OK, ""},
        {"/clv?v=x&pre=1", J4_OUTCOME_OK, "ab"},
        {"/clv?v=x&code=205", J4_OUTCOME_OTHER, NULL},
    };

    check_verdicts(easy, cases, sizeof(cases) / sizeof(cases[0]));
}

/* A head line of up to 100 KiB - 1 with its end, heads of up to 300
 * KiB for the whole exchange. */
static void test_head_limits(CURL *easy)
{
    static const struct verdict cases[] = {
        {"/heads?line=102399", J4_OUTCOME_OK, "ab"},
        {"/heads?line=102400", J4_OUTCOME_OTHER, NULL},
        {"/heads?line=204800", J4_OUTCOME_OTHER, NULL},
        {"/heads?total=204800", J4_OUTCOME_OK, "ab"},
        {"/heads?total=307200", J4_OUTCOME_OK, "ab"},
        {"/heads?total=307201", J4_OUTCOME_CONNECT, NULL},
        {"/heads?total=307175&pre=1", J4_OUTCOME_OK, "ab"},
        {"/heads?total=307176&pre=1", J4_OUTCOME_CONNECT, NULL},
        {"/heads?total=153600&hops=1", J4_OUTCOME_OK, "ab"},
        {"/heads?total=153601&hops=1", J4_OUTCOME_CONNECT, NULL},
        {"/heads?line=102399&total=307200", J4_OUTCOME_OK, "ab"},
    };

    check_verdicts(easy, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_chunk_framing(CURL *easy)
{
    static const struct verdict cases[] = {
        {"/chunkcase?n=0", J4_OUTCOME_OK, "abc"},
        {"/chunkcase?n=1", J4_OUTCOME_CONNECT, NULL},
        {"/chunkcase?n=2", J4_OUTCOME_CONNECT, NULL},
        {"/chunkcase?n=3", J4_OUTCOME_OK, "abc"},
        {"/chunkcase?n=4", J4_OUTCOME_CONNECT, NULL},
        {"/chunkcase?n=5", J4_OUTCOME_CONNECT, NULL},
        {"/chunkcase?n=6", J4_OUTCOME_CONNECT, NULL},
        {"/chunkcase?n=7", J4_OUTCOME_CONNECT, NULL},
        {"/chunkcase?n=8", J4_OUTCOME_OK, "abc"},
        {"/chunkcase?n=9", J4_OUTCOME_CONNECT, NULL},
        {"/chunkcase?trailer=4093", J4_OUTCOME_OK, "abc"},
        {"/chunkcase?trailer=4094", J4_OUTCOME_CONNECT, NULL},
        {"/chunkcase?ext=400000", J4_OUTCOME_OK, "abc"},
    };

    check_verdicts(easy, cases, sizeof(cases) / sizeof(cases[0]));
    get_ok("/chunked", "hello world"); /* parts in separate reads */
}

/* A caller's "Connection: close" ends the connection with the answer,
 * though this server would keep it. */
static void test_request_close(void)
{
    static const char *const closing[][2] = {
        {"Connection: close", NULL},
        {"connection: Keep-Alive, CLOSE", NULL},
        {"X-A: 1", "Connection:close"},
    };
    static const char *const keeping[][2] = {
        {"Connection: keep-alive", NULL},
        {"Connection: closed", NULL},
        {"X-Connection: close", NULL},
        {"Connection;", NULL},
    };
    char url[512];
    j4_http_request_t req = {.url = url_of(url, sizeof(url), "/cl?n=3")};
    struct http1_result res;

    for (size_t i = 0; i < 3 + 4; i++) {
        const char *h[3] = {NULL};
        int conns = atomic_load(&srv_conns);

        memcpy(h, i < 3 ? closing[i] : keeping[i - 3], sizeof(closing[0]));
        req.headers = h;
        fresh();
        for (int k = 0; k < 3; k++)
            CHECK_INT_EQ(run(&req, &res), J4_OK);
        if (!CHECK_INT_EQ(atomic_load(&srv_conns) - conns, i < 3 ? 3 : 1))
            fprintf(stderr, "    with \"%s\"\n", h[1] ? h[1] : h[0]);
    }
}

/* Timeouts too long for microseconds in an int64 do not wrap into the
 * past: they never expire. */
static void test_huge_timeout(void)
{
    static const int64_t timeouts[] = {INT64_MAX, INT64_MAX / 1000 + 1,
                                       INT64_MAX / 1000, INT32_MAX,
                                       INT32_MAX - 1};
    char url[512];
    j4_http_request_t req = {.url = url_of(url, sizeof(url),
                                           "/slow?ms=50")};
    struct http1_result res;
    int64_t at;

    fresh();
    for (size_t i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++) {
        req.timeout_ms = timeouts[i];
        if (!CHECK_INT_EQ(run(&req, &res), J4_OK))
            fprintf(stderr, "    timeout_ms %lld\n",
                    (long long)timeouts[i]);
    }
    req.timeout_ms = INT64_MAX;
    url_of(url, sizeof(url), "/slow?ms=1500");
    at = clock_mono_us() + 100000;
    CHECK_INT_EQ(http1_exchange(cli, &req, NULL, abort_at_value, &at, &res),
                 J4_ERR_STOPPED);
    CHECK(clock_mono_us() - at < 900000);
}

/* Fills the free descriptors below a limit lowered to max at most
 * (*limit); returns how many it took into fds. */
static int fds_exhaust(int *fds, int max, struct rlimit *saved,
                       unsigned long long *limit)
{
    struct rlimit low;
    int n = 0;

    getrlimit(RLIMIT_NOFILE, saved);
    low = *saved;
    if (low.rlim_cur > (rlim_t)max)
        low.rlim_cur = (rlim_t)max;
    setrlimit(RLIMIT_NOFILE, &low);
    *limit = (unsigned long long)low.rlim_cur;
    while (n < max && (fds[n] = open("/dev/null", O_RDONLY)) >= 0)
        n++;
    return n;
}

static void fds_release(int *fds, int n, const struct rlimit *saved)
{
    while (n > 0)
        close(fds[--n]);
    setrlimit(RLIMIT_NOFILE, saved);
}

/* Out of descriptors: "connect", as libcurl says (couldn't connect),
 * and one line in the log however many requests fail. */
static void test_out_of_fds(void)
{
    static int fds[256];
    char url[512], logged_text[2048] = "", want[128];
    j4_http_request_t req = {.url = url_of(url, sizeof(url), "/cl?n=1")};
    struct http1_result res;
    CURL *easy = curl_easy_init();
    struct rlimit saved;
    int pipefd[2], err_fd = dup(2), n, rcs[2];
    unsigned long long limit;
    CURLcode curl_rc;
    ssize_t got;

    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 5000L);
    CHECK_INT_EQ(curl_easy_perform(easy), CURLE_OK); /* its fds, first */
    curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, 1L);
    fresh();
    if (!CHECK(pipe2(pipefd, O_NONBLOCK) == 0))
        return;
    dup2(pipefd[1], 2);
    n = fds_exhaust(fds, 256, &saved, &limit);
    rcs[0] = run(&req, &res);
    rcs[1] = run(&req, &res);
    curl_rc = curl_easy_perform(easy);
    fds_release(fds, n, &saved);
    dup2(err_fd, 2);
    got = read(pipefd[0], logged_text, sizeof(logged_text) - 1);
    logged_text[got > 0 ? got : 0] = '\0';
    close(pipefd[0]);
    close(pipefd[1]);
    close(err_fd);
    curl_easy_cleanup(easy);

    CHECK(n > 0 && n < 256);
    CHECK_INT_EQ(rcs[0], J4_ERR_CONNECT);
    CHECK_INT_EQ(rcs[1], J4_ERR_CONNECT);
    CHECK_INT_EQ(res.outcome, J4_OUTCOME_CONNECT);
    CHECK_INT_EQ(curl_rc, CURLE_COULDNT_CONNECT);
    snprintf(want, sizeof(want),
             "out of file descriptors (ulimit -n %llu): raise it or lower "
             "the worker count\n", limit);
    if (!CHECK(strstr(logged_text, want) != NULL))
        fprintf(stderr, "    logged: %s\n", logged_text);
    CHECK(strchr(logged_text, '\n') == strrchr(logged_text, '\n'));
    get_ok("/cl?n=1", "a"); /* and fine again */
}

static void test_like_curl(void)
{
    CURL *easy = curl_easy_init();

    test_lengths(easy);
    test_head_limits(easy);
    test_chunk_framing(easy);
    curl_easy_cleanup(easy);
    test_request_close();
    test_huge_timeout();
    test_out_of_fds();
}

/* ------------------------------------------------- a real nginx */

/* "accepts" of nginx's stub_status, fetched on c's own connection. */
static long nginx_accepts(struct http1 *c, const char *base)
{
    char url[512];
    j4_http_request_t req = {.url = url};
    struct http1_result res;
    long accepts = -1;

    snprintf(url, sizeof(url), "%s/status", base);
    if (http1_exchange(c, &req, NULL, never, NULL, &res) == J4_OK) {
        const char *p = strstr(res.body, "requests\n");

        if (p)
            accepts = strtol(p + 9, NULL, 10);
    }
    return accepts;
}

static int nginx_get(struct http1 *c, const char *base, const char *path,
                     const char *method, struct http1_result *res)
{
    char url[512];
    j4_http_request_t req = {.url = url, .method = method,
                             .max_redirects = -1};

    if (method && strcmp(method, "POST") == 0)
        req.body = "a=1"; /* a 301 turns it into a GET */
    snprintf(url, sizeof(url), "%s%s", base, path);
    return http1_exchange(c, &req, NULL, never, NULL, res);
}

/* base: keep-alive without limits; short: keepalive_requests 5 and a
 * 1 s keepalive_timeout (tests/unit/executor/http1_nginx.py). */
static int nginx_main(const char *base, const char *short_base)
{
    struct http1 *c = http1_new();
    struct http1_result res;
    long before = nginx_accepts(c, base);

    CHECK(before > 0);
    for (int i = 0; i < 1000; i++) {
        if (!CHECK_INT_EQ(nginx_get(c, base, "/hello.txt", NULL, &res),
                          J4_OK) ||
            !CHECK_STR_EQ(res.body, "hello from nginx\n"))
            break;
    }
    CHECK_INT_EQ(nginx_get(c, base, "/hello.txt", "HEAD", &res), J4_OK);
    CHECK_UINT_EQ(res.body_len, 0);
    CHECK_INT_EQ(nginx_get(c, base, "/big.bin", NULL, &res), J4_OK);
    CHECK_UINT_EQ(res.body_len, HTTP1_BODY_CAP);
    CHECK_INT_EQ(nginx_get(c, base, "/nothing", NULL, &res), J4_ERR_HTTP);
    CHECK_INT_EQ(res.outcome, J4_OUTCOME_HTTP_4XX);
    CHECK_INT_EQ(nginx_get(c, base, "/moved", "POST", &res), J4_OK);
    CHECK_STR_EQ(res.body, "hello from nginx\n");
    CHECK_INT_EQ(nginx_get(c, base, "/hello.txt", "POST", &res),
                 J4_ERR_HTTP); /* 405 for a static file */
    CHECK_INT_EQ(nginx_accepts(c, base), before); /* all on one */

    for (int i = 0; i < 20; i++) /* nginx closes after every 5th */
        CHECK_INT_EQ(nginx_get(c, short_base, "/hello.txt", NULL, &res),
                     J4_OK);
    usleep(1500000); /* past keepalive_timeout: nginx closes it idle */
    CHECK_INT_EQ(nginx_get(c, short_base, "/hello.txt", NULL, &res), J4_OK);
    CHECK_INT_EQ(nginx_accepts(c, base), before + 5); /* 4, then 1 */
    http1_free(c);
    return check_done();
}

int main(int argc, char **argv)
{
    struct sched *s;

    if (argc == 4 && strcmp(argv[1], "--nginx") == 0)
        return nginx_main(argv[2], argv[3]);

    test_proxy_env(); /* first: the environment is read once */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    srv_start();
    test_keepalive();
    test_request_head();
    test_bodies();
    test_head();
    test_idle_close();
    test_redirect_methods();
    test_redirect_targets();
    test_redirect_limits();
    test_redirect_cross_host();
    test_timeout_abort();
    test_failures();
    test_big_body();
    test_names();
    test_can();
    test_can_urls();
    test_no_allocs();
    test_beside_curl();
    test_like_curl();

    s = sched_new(1, 256 * 1024);
    if (CHECK(s != NULL)) {
        test_fibers(s);
        test_fiber_stop(s);
        test_fiber_dns(s);
        usleep(10000);
        sched_free(s);
    }
    http1_free(cli);
    curl_global_cleanup();
    return check_done();
}
